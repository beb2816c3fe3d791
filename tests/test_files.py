"""Atomic writes: the old file or folder or the new one, never half of one, and no private permissions."""

import os
import stat

import pytest

from edgeir.files import atomic_dir, atomic_path, write_atomic


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "plan.json"
    write_atomic(target, "old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


def test_the_temporary_file_keeps_the_suffix_writers_choose_formats_by(tmp_path):
    with atomic_path(tmp_path / "grid.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_bytes(b"x")
    assert (tmp_path / "grid.png").read_bytes() == b"x"


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "bundle"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("export failed")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_results_get_the_umask_permissions_not_private_ones(tmp_path):
    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "f", b"x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(umask)
    assert _mode(tmp_path / "f") == 0o644 and _mode(tmp_path / "d") == 0o755
