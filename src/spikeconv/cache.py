"""Where spikeconv keeps what it derives and may rebuild: decoded dataset arrays, built CPU kernels.

``SPIKECONV_CACHE`` or ``~/.cache/spikeconv``; never inside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache directory (``SPIKECONV_CACHE`` or ``~/.cache/spikeconv``), or a subdirectory of it; created if
    needed.

    Example:
        >>> import os, tempfile
        >>> os.environ["SPIKECONV_CACHE"] = tempfile.mkdtemp()
        >>> cache_dir("kernels").name
        'kernels'
        >>> del os.environ["SPIKECONV_CACHE"]
    """
    path = Path(os.environ.get("SPIKECONV_CACHE", Path.home() / ".cache" / "spikeconv")).expanduser().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
