"""Export a trained checkpoint as a converted SNN: the library call behind ``spikeconv export``."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from ..atomic import atomic_write
from ..convert import ConversionConfig, convert
from ..errors import SpikeconvError
from .checkpoint import load_model
from .samples import images

FORMATS = ("nir",)


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, config: ConversionConfig, *,
                      fmt: str = "nir", root: str | os.PathLike | None = None,
                      calibration_samples: int = 2000) -> dict[str, Any]:
    """Convert ``checkpoint`` with ``config`` and write it to ``out`` in format ``fmt`` (atomically).

    Plain-ReLU models are normalised from ``calibration_samples`` training images of the checkpoint's data
    set; the graph is traced on one test image. Returns ``{"out", "nodes", "targets": {"any": n,
    "spikeconv": n}}`` (see :func:`spikeconv.export.nir.nir_report`).

    Example: ``export_checkpoint("checkpoints/mnist_lenet_qrelu.pt", "lenet.nir", ConversionConfig())``.
    """
    if fmt not in FORMATS:
        raise SpikeconvError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and out.resolve() == checkpoint.resolve():
        raise SpikeconvError(f"--out {out} is the checkpoint itself; name another file")
    if out.is_dir():
        raise SpikeconvError(f"--out {out} is a directory; name a file, e.g. {out / (checkpoint.stem + '.nir')}")
    from ..export.nir import nir_report, to_nir  # needs the 'export' extra; says so when missing

    model, payload = load_model(checkpoint)
    example = images(payload, "test", limit=1, root=root)[0]
    calibration = images(payload, "train", limit=calibration_samples, root=root)
    graph = to_nir(convert(model, example, config, calibration=calibration), example)
    import nir

    atomic_write(out, lambda tmp: nir.write(tmp, graph), suffix=".tmp.nir")
    return {"out": str(out), "nodes": len(graph.nodes), "targets": dict(Counter(nir_report(graph).values()))}
