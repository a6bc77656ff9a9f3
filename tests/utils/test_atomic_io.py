import os
import stat

import pytest

from lstmtext.utils import atomic_write_bytes, atomic_write_json


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"b": 2})
    assert target.read_text() == '{\n  "b": 2\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_write_gives_the_permissions_of_a_plain_open(tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    atomic = atomic_write_bytes(tmp_path / "atomic", b"x")
    assert stat.S_IMODE(os.stat(atomic).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)


def test_failed_write_keeps_the_previous_content(tmp_path):
    target = atomic_write_bytes(tmp_path / "f", b"old")
    with pytest.raises(ValueError):  # NaN is not JSON: refused before anything is written
        atomic_write_json(target, {"x": float("nan")})
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
