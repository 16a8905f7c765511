"""Output files of the command line: every path checked before any work, and all written or none.

A path must name a regular file (or nothing yet) in a folder chipcut can write; a symlink is
written through (its target is replaced, the link stays). Each output is first written
beside its target under a temporary name; only when all of them are written are they
renamed into place, so a failure leaves no output behind and no old one replaced.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from chipcut.core.errors import ChipcutError

KINDS = {stat.S_ISDIR: "a folder", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
         stat.S_ISFIFO: "a named pipe", stat.S_ISSOCK: "a socket"}


def check_path(flag: str, text: str) -> Path:
    """The file ``text`` names (through a symlink), or a one-line error saying why it cannot be
    written and what to give instead."""
    path = Path(text).expanduser()
    if path.is_symlink():
        path = path.resolve()
    if path.exists():
        mode = path.stat().st_mode
        for test, kind in KINDS.items():
            if test(mode):
                raise ChipcutError(f"{flag} {text} is {kind}, not a file; give a file path such "
                                   "as plan.json")
        if not os.access(path, os.W_OK):
            raise ChipcutError(f"{flag} {text}: the file is not writable (permission denied); "
                               "choose another path or change its permissions")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ChipcutError(f"{flag} {text}: {folder} is a file, not a folder; choose a path in a "
                           "folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ChipcutError(f"{flag} {text}: cannot write in {folder} (permission denied); choose "
                           "a folder you can write")
    return path


def check_paths(outputs: Sequence[tuple[str, str | None]]) -> dict[str, Path]:
    """Check every (flag, path) given; the same file named twice is an error."""
    checked: dict[str, Path] = {}
    for flag, text in outputs:
        if not text:
            continue
        path = check_path(flag, text)
        for other, seen in checked.items():
            if seen == path:
                raise ChipcutError(f"{other} and {flag} both name {text}; give each output its "
                                   "own file")
        checked[flag] = path
    return checked


def write_all(writers: Sequence[tuple[str, Path, Callable[[Path], None]]]) -> None:
    """Run each ``write(temp_path)``, then rename every temporary file onto its path."""
    temps: list[tuple[Path, Path]] = []
    try:
        for flag, path, write in writers:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(f".{path.name}.chipcut-{os.getpid()}.tmp")
            temps.append((temp, path))
            try:
                write(temp)
            except OSError as e:
                raise ChipcutError(f"{flag} {path}: {e.strerror or e}; nothing was written") from None
        for temp, path in temps:
            os.replace(temp, path)
        temps.clear()
    finally:
        for temp, _ in temps:
            temp.unlink(missing_ok=True)
