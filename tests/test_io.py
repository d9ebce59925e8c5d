"""Atomic files."""

import os
import stat

from fade.io import write_file, write_json


def test_written_files_get_the_permissions_of_a_plain_open(tmp_path):
    write_file(tmp_path / "a.txt", "text")
    (tmp_path / "b.txt").write_text("text")
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(tmp_path / "a.txt") == mode(tmp_path / "b.txt")


def test_text_bytes_and_json_round_trip_and_leave_no_temporary_file(tmp_path):
    write_file(tmp_path / "t", "é")
    write_file(tmp_path / "b", b"\x00\x01")
    write_json(tmp_path / "j.json", {"a": [1, 2]})
    assert (tmp_path / "t").read_text(encoding="utf-8") == "é"
    assert (tmp_path / "b").read_bytes() == b"\x00\x01"
    assert (tmp_path / "j.json").read_text() == '{\n "a": [\n  1,\n  2\n ]\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "j.json", "t"]
