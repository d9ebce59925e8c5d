import contextlib
import os
import subprocess
import sys
from pathlib import Path

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


@pytest.fixture
def held_by_another_process():
    """``held(folder, command)``: a context manager in which a second process (tests/hold_lock.py) holds
    fade's lock on ``folder``, naming ``command``; it yields that process (its ``pid`` is in the message)."""

    @contextlib.contextmanager
    def held(folder, command: str):
        script = Path(__file__).parent / "hold_lock.py"
        holder = subprocess.Popen(
            [sys.executable, script, folder, command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout.readline() == "locked\n"
            yield holder
        finally:
            holder.communicate("")

    return held
