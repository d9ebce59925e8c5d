import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Property tests: "quick" (the default: few examples, the same ones every run) or, with
# HYPOTHESIS_PROFILE=long, many random ones. The autouse fixture below is safe to share between examples.
_UNCHECKED = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
settings.register_profile("quick", max_examples=20, deadline=None, derandomize=True, suppress_health_check=_UNCHECKED)
settings.register_profile("long", max_examples=2000, deadline=None, database=None, suppress_health_check=_UNCHECKED)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


@pytest.fixture(autouse=True)
def _deterministic_single_thread():
    """Tests run in parallel workers on a small machine: one intra-op thread each, fixed seed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
