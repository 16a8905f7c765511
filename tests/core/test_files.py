"""write_atomic: exact content, the umask's permissions, the old file or the new one, no leftovers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from chipcut.core.files import write_atomic


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it after."""
    saved = os.umask(0o022)
    yield os.umask
    os.umask(saved)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_permissions_follow_the_umask(tmp_path: Path, umask, mask: int, expected: int) -> None:
    umask(mask)
    write_atomic(tmp_path / "new.json", "{}")
    old = tmp_path / "old.json"
    old.write_text("[]")
    old.chmod(0o600)
    write_atomic(old, "{}")  # a replaced file is a new file: the umask decides, not the old mode
    assert (mode(tmp_path / "new.json"), mode(old)) == (expected, expected)


def test_text_is_written_as_utf8_bytes_unchanged(tmp_path: Path) -> None:
    text = "chip 0 \u2192 chip 1: 3 MiB\r\nlast line without a newline"
    write_atomic(tmp_path / "plan.txt", text)
    assert (tmp_path / "plan.txt").read_bytes() == text.encode("utf-8")


def test_bytes_are_written_exactly(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    write_atomic(str(tmp_path / "plot.png"), data)
    assert (tmp_path / "plot.png").read_bytes() == data


def test_missing_folders_are_created(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a" / "b" / "trace.json", "[]")
    assert (tmp_path / "a" / "b" / "trace.json").read_text() == "[]"
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["trace.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path,
                                                                   monkeypatch) -> None:
    path = tmp_path / "plan.json"
    path.write_text("old")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]


def test_a_folder_in_the_way_leaves_no_temporary(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path / "out", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert list((tmp_path / "out").iterdir()) == []


def test_only_text_or_bytes_is_written(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="str or bytes, not dict"):
        write_atomic(tmp_path / "plan.json", {"chips": 2})  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
