"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file in the same folder,
    flushed to disk and renamed over ``path``; missing parent folders are created.

    The file gets the mode a plain ``open`` gives a new file: 0o666 less the umask (0o644
    under umask 022). On any failure ``path`` keeps its old content and no temporary file
    is left behind.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     write_atomic(Path(folder) / "plan.json", '{"chips": 2}')
    ...     print(os.listdir(folder), (Path(folder) / "plan.json").read_text())
    ['plan.json'] {"chips": 2}
    """
    if not isinstance(data, (str, bytes)):
        raise TypeError(f"write_atomic writes str or bytes, not {type(data).__name__}")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new file next to ``path``, opened for writing. It is created with mode 0o666, which the
    kernel reduces by the umask, unlike ``tempfile.mkstemp`` (always 0o600); reading the umask
    instead would mean setting it, which races with other threads."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _OPEN_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path} after 100 tries")


def json_text(data: object, path: str | os.PathLike | None = None) -> str:
    """``data`` as indented JSON text; with ``path``, also written atomically to that file."""
    import json

    text = json.dumps(data, indent=2) + "\n"
    if path is not None:
        write_atomic(Path(path), text)
    return text
