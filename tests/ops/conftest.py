"""Fixtures shared by the operator tests."""

import pytest

from fade.ops import _native


@pytest.fixture(params=["native", "fallback"])
def path(request, monkeypatch):
    """Run a test on the native kernel (which must build here) and on the pure-PyTorch path."""
    if request.param == "native":
        monkeypatch.delenv(_native.DISABLE_ENV, raising=False)
        assert _native.available(), "the native kernel failed to build on this machine"
    else:
        monkeypatch.setenv(_native.DISABLE_ENV, "1")
        assert not _native.available()
    return request.param
