"""The native library cache loads only what the current user alone can have written, and caches only real libraries.

A real kernel is compiled once per session (-O0, about a second); each test then "compiles" with a
stand-in compiler that copies it to the output path and logs the call, so the cache logic is tested
on real files without a compile per test. A planted library announces being loaded by creating a
marker file from its constructor: a test that finds the marker has caught foreign code running.
"""

import ast
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from fade.ops import _native

PLANTED_SOURCE = r"""
#include <cstdio>
#include <cstdlib>
__attribute__((constructor)) static void planted() {
    if (const char* path = std::getenv("FADE_TEST_MARKER")) std::fclose(std::fopen(path, "w"));
}
extern "C" {
int fade_carafe_forward_f32() { return 0; }
int fade_carafe_forward_f64() { return 0; }
int fade_carafe_backward_f32() { return 0; }
int fade_carafe_backward_f64() { return 0; }
int fade_pointwise_f32() { return 0; }
int fade_pointwise_f64() { return 0; }
}
"""


def compile_source(source: str, out: Path) -> Path:
    subprocess.run([_native._compiler(), "-x", "c++", "-shared", "-fPIC", "-O0", "-", "-o", str(out)],
                   input=source, text=True, check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def real_library(tmp_path_factory):
    """The kernel compiled once at -O0."""
    out = tmp_path_factory.mktemp("real") / "carafe_cpu.so"
    return compile_source(_native._SOURCE.read_text(), out)


@pytest.fixture(scope="session")
def planted_library(tmp_path_factory):
    """A library with the six entry points whose constructor creates $FADE_TEST_MARKER."""
    return compile_source(PLANTED_SOURCE, tmp_path_factory.mktemp("planted") / "planted.so")


def stand_in_compiler(folder: Path, body: str) -> tuple[str, Path]:
    """A shell script used as the compiler: logs each call, then runs ``body`` with $out = the -o path."""
    log = folder / "calls.log"
    script = folder / "cxx"
    script.write_text(
        "#!/bin/sh\n"
        f'echo call >> "{log}"\n'
        'while [ $# -gt 0 ]; do if [ "$1" = "-o" ]; then out="$2"; fi; shift; done\n'
        f"{body}\n"
    )
    script.chmod(0o700)
    return str(script), log


def calls(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def env(monkeypatch, tmp_path, real_library):
    """A private cache folder, the marker path, and a stand-in compiler that copies the real kernel."""
    monkeypatch.setattr(_native, "_ARCH_FLAGS", ((),))
    cache = tmp_path / "cache"
    monkeypatch.setenv(_native.CACHE_ENV, str(cache))
    marker = tmp_path / "planted-code-ran"
    monkeypatch.setenv("FADE_TEST_MARKER", str(marker))
    tools = tmp_path / "tools"
    tools.mkdir()
    compiler, log = stand_in_compiler(tools, f'cp "{real_library}" "$out"')
    return cache, marker, compiler, log


def assert_private(path: Path) -> None:
    st = path.lstat()
    assert st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH), oct(st.st_mode)


def test_cache_folder_created_private_and_library_reused(env):
    cache, _, compiler, log = env
    lib = _native._build(compiler)
    assert hasattr(lib, "fade_carafe_forward_f64")
    assert stat.S_IMODE(cache.stat().st_mode) & 0o077 == 0
    (cached,) = cache.iterdir()
    assert_private(cached)
    assert hasattr(_native._build(compiler), "fade_carafe_backward_f32")
    assert calls(log) == 1 and list(cache.iterdir()) == [cached]


@pytest.mark.parametrize(
    "body",
    [
        ":",  # exits 0, leaves the empty temporary file (like CXX=/bin/true)
        'rm -f "$out"',  # exits 0 without any output file
        'echo garbage > "$out"',
        'cp "$PLANTED_NO_SYMBOLS" "$out"',  # a real library without the entry points
    ],
    ids=["empty", "missing", "garbage", "no-entry-points"],
)
def test_a_build_without_a_valid_library_is_never_cached(env, monkeypatch, tmp_path, body):
    cache, _, _, _ = env
    monkeypatch.setenv("PLANTED_NO_SYMBOLS", str(compile_source("int f() { return 0; }", tmp_path / "other.so")))
    compiler, log = stand_in_compiler(tmp_path / "tools", body)
    monkeypatch.setenv("CXX", compiler)
    monkeypatch.delenv(_native.DISABLE_ENV, raising=False)
    _native._library.cache_clear()
    try:
        for attempt in (1, 2):  # nothing was cached, so a new process builds again
            _native._library.cache_clear()
            failed = r"building the native carafe kernel with .* failed.*no loadable library"
            with pytest.warns(RuntimeWarning, match=failed) as record:
                assert not _native.available()
            assert len(record) == 1
            assert calls(log) == attempt and list(cache.iterdir()) == []
    finally:
        _native._library.cache_clear()


@pytest.mark.parametrize("damage", ["empty", "garbage", "group-writable", "other-writable", "symlink"])
def test_untrusted_or_broken_cached_file_is_rebuilt(env, planted_library, damage):
    cache, marker, compiler, log = env
    _native._build(compiler)
    (cached,) = cache.iterdir()
    cached.unlink()
    if damage == "empty":
        cached.touch(mode=0o600)
    elif damage == "garbage":
        cached.write_bytes(b"\x7fELF not really")
    elif damage == "symlink":
        cached.symlink_to(planted_library)
    else:
        cached.write_bytes(planted_library.read_bytes())
        cached.chmod({"group-writable": 0o620, "other-writable": 0o602}[damage])
    with pytest.warns(RuntimeWarning, match=rf"rebuilding the cached native kernel {cached}"):
        lib = _native._build(compiler)
    assert hasattr(lib, "fade_carafe_forward_f32") and calls(log) == 2
    assert not marker.exists(), "the planted library was loaded"
    assert cached.is_file() and not cached.is_symlink()
    assert_private(cached)
    assert cached.read_bytes() != planted_library.read_bytes()


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o757])
def test_shared_folder_is_not_trusted(env, planted_library, mode):
    cache, marker, compiler, log = env
    _native._build(compiler)
    (cached,) = cache.iterdir()
    cached.write_bytes(planted_library.read_bytes())  # what another user could drop into a shared folder
    cache.chmod(mode)
    unsafe = rf"cache folder {cache} is writable by group or others .*private temporary"
    with pytest.warns(RuntimeWarning, match=unsafe):
        lib = _native._build(compiler)
    assert hasattr(lib, "fade_carafe_forward_f32") and calls(log) == 2
    assert not marker.exists(), "the planted library was loaded"
    assert list(cache.iterdir()) == [cached] and cached.read_bytes() == planted_library.read_bytes()


def test_files_and_folders_of_another_user_are_not_trusted(env, planted_library, monkeypatch):
    cache, marker, compiler, _ = env
    cache.mkdir(mode=0o700)
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 1)  # everything here now belongs to "another user"
    folder, reason = _native._cache_folder()
    assert folder == cache and reason.startswith(f"is owned by uid {os.getuid()}, not by the current user")
    with pytest.raises(OSError, match=rf"{planted_library} is owned by uid {os.getuid()}, not by the current user"):
        _native._load(planted_library)
    assert not marker.exists(), "the planted library was loaded"


@pytest.mark.parametrize(
    ("inside", "message"),
    [("", "is not a folder"), ("fade", r"cannot be created or read \(Not a directory\)")],
    ids=["a-file", "below-a-file"],
)
def test_unusable_cache_folder_builds_privately(env, monkeypatch, tmp_path, inside, message):
    _, _, compiler, log = env
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    monkeypatch.setenv(_native.CACHE_ENV, str(blocker / inside))
    with pytest.warns(RuntimeWarning, match=rf"cache folder {blocker / inside} {message}; building in a private"):
        lib = _native._build(compiler)
    assert hasattr(lib, "fade_carafe_forward_f32") and calls(log) == 1
    assert blocker.read_text() == "not a folder"


def test_no_warning_when_everything_is_in_order(env):
    _, _, compiler, _ = env
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _native._build(compiler)
        _native._build(compiler)


def test_no_home_folder_builds_privately(env, monkeypatch):
    _, _, compiler, log = env
    monkeypatch.delenv(_native.CACHE_ENV)
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: (_ for _ in ()).throw(RuntimeError("no home"))))
    with pytest.warns(RuntimeWarning, match=r"cache folder \$FADE_CACHE_DIR is unset and there is no home folder"):
        assert hasattr(_native._build(compiler), "fade_carafe_forward_f32")
    assert calls(log) == 1


def test_compiler_without_output_end_to_end(tmp_path):
    # A fresh process with CXX=/bin/true: one warning, the right result, nothing cached.
    script = (
        "import torch, fade.ops\n"
        "x = torch.arange(4.0).view(1, 1, 2, 2)\n"
        "print(fade.ops.carafe(x, torch.ones(1, 1, 4, 4)).flatten().tolist())\n"
    )
    env = {**os.environ, "CXX": "/bin/true", _native.CACHE_ENV: str(tmp_path / "cache")}
    env.pop(_native.DISABLE_ENV, None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ast.literal_eval(done.stdout) == [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]  # nearest, 2x
    assert done.stderr.count("RuntimeWarning") == 1 and "no loadable library" in done.stderr
    assert list((tmp_path / "cache").iterdir()) == []


def test_cache_folder_expands_the_home_folder(env, monkeypatch, tmp_path):
    _, _, compiler, _ = env
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(_native.CACHE_ENV, "~/fade-cache")
    _native._build(compiler)
    assert [p.suffix for p in (tmp_path / "home" / "fade-cache").iterdir()] == [".so"]
