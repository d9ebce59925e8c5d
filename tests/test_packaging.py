"""The package as a user gets it: sdist and wheel by ``python -m build``, the wheel installed into a fresh
virtual environment (seeing the machine's torch), every upsampler run there, the native kernel built."""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import fade

ROOT = Path(__file__).resolve().parents[1]
NOT_SOURCES = shutil.ignore_patterns(
    ".git", "results", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".venv", "data", "tests"
)

# Run inside the fresh environment, from a folder outside the repository: forward and backward of every
# registered upsampler, counting the calls that reach the native reassembly kernel.
USE_EVERY_UPSAMPLER = """
import json, os, sys
import torch
import fade
from fade.ops import _native

calls = {"forward": 0, "backward": 0}
def counted(name, fn):
    def wrapper(*args, **kwargs):
        calls[name] += 1
        return fn(*args, **kwargs)
    return wrapper
_native.forward = counted("forward", _native.forward)
_native.backward = counted("backward", _native.backward)

torch.manual_seed(0)
gradients = {}
for name in fade.list_upsamplers():
    up = fade.create_upsampler(name, 8, scale=2)
    en, de = torch.randn(2, 8, 14, 10), torch.randn(2, 8, 7, 5, requires_grad=True)
    out = up(en, de)
    assert out.shape == (2, 8, 14, 10), (name, out.shape)
    out.square().sum().backward()
    gradients[name] = bool(torch.isfinite(de.grad).all()) and float(de.grad.abs().sum()) > 0
print(json.dumps({
    "fade_file": fade.__file__,
    "version": fade.__version__,
    "metadata_version": __import__("importlib.metadata").metadata.version("fade-upsampling"),
    "native_available": _native.available(),
    "calls": calls,
    "gradients": gradients,
    "cache": sorted(os.listdir(os.environ["FADE_CACHE_DIR"])),
}))
"""


def run(*command: str, **options) -> subprocess.CompletedProcess:
    """Run ``command``; on failure, fail with its stderr."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, **options)
    assert result.returncode == 0, f"{' '.join(command[:4])} ... failed:\n{result.stderr[-3000:]}"
    return result


def test_changelog_names_the_current_version_first():
    text = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(r"^## (\S+)", text, re.M).group(1) == fade.__version__


def test_the_version_has_one_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "fade.__version__"}


def test_wheel_installed_in_a_fresh_environment_runs_every_upsampler_and_builds_the_kernel(tmp_path):
    source, dist, venv, cache = (tmp_path / d for d in ("source", "dist", "venv", "cache"))
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    # sdist first, then the wheel built from the unpacked sdist: the sdist holds everything the build needs
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source))
    version = fade.__version__
    sdist, wheel = dist / f"fade_upsampling-{version}.tar.gz", dist / f"fade_upsampling-{version}-py3-none-any.whl"
    with tarfile.open(sdist) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", "src/fade/py.typed"} <= in_sdist
    assert "src/fade/ops/csrc/carafe_cpu.cpp" in in_sdist and "src/fade/ops/_native.py" in in_sdist
    with zipfile.ZipFile(wheel) as whl:
        in_wheel = set(whl.namelist())
        metadata = whl.read(f"fade_upsampling-{version}.dist-info/METADATA").decode()
    assert {"fade/__init__.py", "fade/py.typed", "fade/ops/csrc/carafe_cpu.cpp"} <= in_wheel
    assert f"Name: fade-upsampling\nVersion: {version}\n" in metadata and "Requires-Dist: torch>=2.4" in metadata

    # a fresh environment that sees the machine's packages (torch), with the wheel installed on top
    run(sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv))
    python = str(venv / "bin" / "python")
    run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--no-build-isolation", "-q", str(wheel))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "FADE_"))}
    env["FADE_CACHE_DIR"] = str(cache)
    result = run(python, "-c", USE_EVERY_UPSAMPLER, cwd=tmp_path, env=env)
    used = json.loads(result.stdout)

    assert Path(used["fade_file"]).is_relative_to(venv)  # the installed copy, not the repository's
    assert used["version"] == used["metadata_version"] == version
    assert used["gradients"] == dict.fromkeys(fade.list_upsamplers(), True)
    # the kernel was compiled into the fresh cache on first use and served the reassemblies
    assert used["native_available"] and len(used["cache"]) == 1 and used["cache"][0].endswith(".so")
    assert used["calls"]["forward"] > 0 and used["calls"]["backward"] > 0
