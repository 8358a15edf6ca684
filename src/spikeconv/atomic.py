"""Atomic file writes: write to a temporary file beside the target, then rename over it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], *, suffix: str = ".tmp") -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically (readable by all: mode 644).

    A reader never sees a half-written file; on error the target is untouched and the temporary removed.

    Example:
        >>> import json, tempfile
        >>> target = Path(tempfile.mkdtemp()) / "x.json"
        >>> _ = atomic_write(target, lambda tmp: Path(tmp).write_text(json.dumps([1])))
        >>> target.read_text()
        '[1]'
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a directory; name a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
