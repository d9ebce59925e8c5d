import gzip
import struct

import numpy as np
import pytest

from fade.data import read_idx


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_every_dtype(tmp_path, write_idx, dtype, gz):
    rng = np.random.default_rng(1)
    array = (rng.standard_normal((3, 5, 2)) * 100).astype(dtype)
    got = read_idx(write_idx(tmp_path / "a.idx", array, gz))
    assert got.dtype == np.dtype(dtype).newbyteorder("=") and got.shape == (3, 5, 2)
    np.testing.assert_array_equal(got, array)
    assert not got.flags.writeable


def test_gzip_recognised_by_content_not_name(tmp_path, write_idx):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw_named_gz = write_idx(tmp_path / "x.gz", array, gz=False)
    gz_named_raw = write_idx(tmp_path / "y", array, gz=True)
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)
    np.testing.assert_array_equal(read_idx(gz_named_raw), array)


def test_bad_magic_names_file(tmp_path, write_idx):
    path = write_idx(tmp_path / "labels.idx", np.zeros(4, dtype=np.uint8))
    data = bytearray(path.read_bytes())
    data[0] = 0x50
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"labels\.idx: expected an idx magic number .* got 50000801"):
        read_idx(path)


def test_unknown_dtype_code(tmp_path, write_idx):
    path = write_idx(tmp_path / "bad.idx", np.zeros(4, dtype=np.uint8))
    data = bytearray(path.read_bytes())
    data[2] = 0x0A
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bad\.idx: expected an idx dtype code in .* got 0x0A"):
        read_idx(path)


def test_truncated_raw_reports_expected_and_got_bytes(tmp_path, write_idx):
    path = write_idx(tmp_path / "images.idx", np.zeros((2, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"images\.idx: .*expected 1568 data bytes, got 1468 \(truncated\)"):
        read_idx(path)


def test_trailing_bytes_rejected(tmp_path, write_idx):
    path = write_idx(tmp_path / "long.idx", np.zeros(5, dtype=np.int32))
    path.write_bytes(path.read_bytes() + b"\x00\x01")
    with pytest.raises(ValueError, match=r"long\.idx: .*expected 20 data bytes, got 22 \(trailing bytes\)"):
        read_idx(path)


def test_truncated_gzip_names_file(tmp_path, write_idx):
    path = write_idx(tmp_path / "t.gz", np.arange(4000, dtype=np.int32), gz=True)
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ValueError, match=r"t\.gz: expected a complete gzip stream, got a truncated or corrupt"):
        read_idx(path)


def test_gzip_of_truncated_idx(tmp_path, write_idx):
    path = write_idx(tmp_path / "full.gz", np.zeros((3, 4), dtype=np.uint8), gz=True)
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))
    with pytest.raises(ValueError, match=r"full\.gz: .*expected 12 data bytes, got 7"):
        read_idx(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="empty: expected an idx magic number .* got an empty file"):
        read_idx(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="expected a file at .*nothing"):
        read_idx(tmp_path / "nothing")


@pytest.mark.parametrize("gz", [False, True])
def test_header_whose_size_overflows_int64_is_refused_before_allocating(tmp_path, gz):
    """dims 2^32-1 x 2^32-1 x 2^32-1 of float64: 8 * (2^32-1)^3 bytes, far beyond int64; the file holds 16."""
    header = struct.pack(">BBBB", 0, 0, 0x0E, 3) + struct.pack(">3I", *(3 * [2**32 - 1]))
    data = header + bytes(16)
    path = tmp_path / "huge.idx"
    path.write_bytes(gzip.compress(data) if gz else data)
    expected = 8 * (2**32 - 1) ** 3
    with pytest.raises(ValueError, match=rf"huge\.idx: .*expected {expected} data bytes, got 16 \(truncated\)"):
        read_idx(path)


@pytest.mark.parametrize("dims", [(0,), (3, 0, 2), ()])
def test_empty_and_zero_dimensional_arrays(tmp_path, write_idx, dims):
    array = np.arange(int(np.prod(dims)), dtype=np.int16).reshape(dims)
    got = read_idx(write_idx(tmp_path / "e.idx", array))
    assert got.shape == dims and got.dtype == np.int16
    np.testing.assert_array_equal(got, array)


def test_short_header_names_expected_and_got_bytes(tmp_path):
    path = tmp_path / "short.idx"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + b"\x00\x00\x00\x05\x00\x00")
    with pytest.raises(ValueError, match=r"short\.idx: expected a 16-byte header for 3 dims, got 10 bytes in all"):
        read_idx(path)


def test_corrupt_gzip_payload_names_file(tmp_path, write_idx):
    """A flipped byte inside the deflate stream: a CRC or stream error, reported as a corrupt gzip file."""
    path = write_idx(tmp_path / "flip.gz", np.arange(3000, dtype=np.int32), gz=True)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"flip\.gz: expected a complete gzip stream, got a truncated or corrupt"):
        read_idx(path)


@pytest.mark.parametrize("path", [None, 3, b"/tmp/labels.idx"])
def test_a_path_that_is_no_path_is_a_type_error(path):
    with pytest.raises(TypeError, match=r"path: expected a path \(str or os.PathLike\), got "):
        read_idx(path)


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "."])
def test_a_special_file_or_folder_is_not_read(path):
    """/dev/zero would be read forever: only regular files are opened."""
    with pytest.raises(FileNotFoundError, match=f"idx file not found: expected a file at {path}"):
        read_idx(path)
