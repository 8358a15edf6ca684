"""Optional dependencies and the extra that installs each (``pip install 'spikeconv[EXTRA]'``).

>>> missing_dependency("matplotlib")
"needs the 'matplotlib' package: pip install 'spikeconv[figures]'"
"""

from __future__ import annotations

import importlib.util

#: top-level module -> the extra of pyproject.toml that brings it
EXTRA_OF = {
    "matplotlib": "figures", "torchmetrics": "detection", "faster_coco_eval": "detection", "h5py": "events",
    "tonic": "events", "aedat": "events", "nir": "export", "onnx": "onnx", "onnx2torch": "onnx",
    "spikingjelly": "bench", "snntorch": "bench", "sinabs": "bench", "norse": "bench",
}


def missing_dependency(module: str) -> str:
    """The sentence that names a missing module and the extra to install (``pip install`` for others)."""
    top = module.split(".")[0]
    extra = EXTRA_OF.get(top)
    return (f"needs the {top!r} package: pip install 'spikeconv[{extra}]'" if extra
            else f"needs the {top!r} package: pip install {top}")


def first_missing(modules: tuple[str, ...]) -> str | None:
    """The first of ``modules`` that is not installed, or ``None``."""
    return next((m for m in modules if importlib.util.find_spec(m) is None), None)
