"""Where the data and the decoded-array cache live.

Data root, first match wins: the explicit argument (``--data-root``), the environment variable
``SPIKECONV_DATA``, then ``../shared/data`` beside the current directory or beside the project.
Cache: ``SPIKECONV_CACHE`` or ``~/.cache/spikeconv`` (never inside the repository).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..cache import cache_dir
from ..errors import DataError

_PROJECT_ROOT = Path(__file__).resolve().parents[3]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root (see the module docstring); raise :class:`DataError` if it does not exist.

    Example:
        >>> data_root("/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        spikeconv.errors.DataError: data root /nonexistent does not exist ...
    """
    if root is None:
        root = os.environ.get("SPIKECONV_DATA") or None  # an empty variable counts as unset
    if root is not None:
        path = Path(root).expanduser()
        if not path.is_dir():
            raise DataError(f"data root {path} does not exist; pass --data-root DIR or set SPIKECONV_DATA")
        return path
    candidates = [Path.cwd() / ".." / "shared" / "data", _PROJECT_ROOT / ".." / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    raise DataError(
        "no data root found (looked for ../shared/data); pass --data-root DIR or set SPIKECONV_DATA"
    )


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` (``.npz``) through a temporary file and an atomic rename."""
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays), suffix=".tmp.npz")


def cached_arrays(key: str, source: Path, build) -> dict[str, np.ndarray]:
    """Load arrays cached under ``key`` (invalidated when ``source`` changes size or mtime), else build them."""
    stat = source.stat()
    path = cache_dir() / f"{key}-{stat.st_size}-{int(stat.st_mtime)}.npz"
    if path.exists():
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
    arrays = build()
    save_npz_atomic(path, **arrays)
    return arrays
