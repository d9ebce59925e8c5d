import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_single_thread():
    """Tests run in parallel workers on a small machine: one intra-op thread each, fixed seed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
