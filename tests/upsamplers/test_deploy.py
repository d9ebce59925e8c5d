"""FADE and FADE-Lite as a user deploys them: torch.compile, ONNX + onnxruntime, bfloat16 on CPU."""

import warnings

import pytest
import torch

import fade

MODULES = {"fade": lambda: fade.FADE(8, 4, scale=2), "fade_lite": lambda: fade.FADELite(8, 4, scale=2)}


def inputs():
    torch.manual_seed(0)
    return torch.randn(2, 8, 15, 11), torch.randn(2, 4, 7, 5)  # odd, non-square, floor-mode sizes


@pytest.mark.parametrize("name", sorted(MODULES))
def test_torch_compile_fullgraph_matches_eager_values_and_grads(name):
    m = MODULES[name]()
    en, de = inputs()
    en.requires_grad_(True)
    eager = m(en, de)
    (g_eager,) = torch.autograd.grad(eager.square().sum(), en)
    compiled = torch.compile(m, fullgraph=True)
    out = compiled(en, de)
    (g_compiled,) = torch.autograd.grad(out.square().sum(), en)
    torch.testing.assert_close(out, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_compiled, g_eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODULES))
@pytest.mark.parametrize("dynamo", [False, True])
def test_onnx_export_runs_in_onnxruntime_and_matches_eager(tmp_path, name, dynamo):
    import onnxruntime as ort

    m = MODULES[name]().eval()
    en, de = inputs()
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(m, (en, de), dynamo=True, opset_version=18).save(str(path))
        else:
            torch.onnx.export(m, (en, de), str(path), dynamo=False, opset_version=17)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    (out,) = session.run(None, dict(zip(names, (en.numpy(), de.numpy()))))
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(out), m(en, de), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_bfloat16_on_cpu_is_close_to_float32(name):
    m = MODULES[name]()
    en, de = inputs()
    ref = m(en, de)
    out = m.to(torch.bfloat16)(en.bfloat16(), de.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("name", ["fade", "fade_lite", "carafe"])
def test_torch_compile_fullgraph_takes_a_second_input_size(name):
    """A new input size recompiles with symbolic sizes: the checks must trace (no repr of a symbolic size,
    no max(..., default=)) and the values match eager."""
    m = fade.create_upsampler(name, 4)
    compiled = torch.compile(m, fullgraph=True, backend="eager")
    for batch, low, high in ((1, (4, 4), (8, 8)), (2, (7, 5), (15, 11))):
        en, de = torch.randn(batch, 4, *high), torch.randn(batch, 4, *low)
        torch.testing.assert_close(compiled(en, de), m(en, de), rtol=1e-5, atol=1e-5)
