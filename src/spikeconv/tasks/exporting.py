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
from .samples import OnDemand, images



def _write_nir(snn, example, out: Path) -> dict[str, Any]:
    from ..export.nir import nir_report, to_nir  # needs the 'export' extra; says so when missing

    graph = to_nir(snn, example)
    import nir

    atomic_write(out, lambda tmp: nir.write(tmp, graph), suffix=".tmp.nir")
    targets = dict(Counter(nir_report(graph).values()))
    return {"out": str(out), "nodes": len(graph.nodes), "targets": targets,
            "summary": f"{len(graph.nodes)} NIR nodes; {targets.get('any', 0)} run as plain NIR, "
                       f"{targets.get('spikeconv', 0)} need spikeconv's semantics (docs/export.md)"}


def _write_hardware(snn, example, out: Path) -> dict[str, Any]:
    from ..export import reference_numpy
    from ..export.hardware import save_hardware

    save_hardware(snn, example, out)
    model = reference_numpy.load(out)
    memory = reference_numpy.memory_bytes(model)
    spikes = reference_numpy.run(model, host_currents(snn, example), HARDWARE_STEPS)
    operations = reference_numpy.synaptic_operations(model, spikes)
    layers = len(model["layers"])
    return {"out": str(out), "layers": layers, "memory_bytes": memory, "synaptic_operations": operations,
            "summary": f"{layers} layers between the first and the last neuron; weights {memory['weights']} bytes, "
                       f"state {memory['state']} bytes per sample; {operations} synaptic operations per inference "
                       f"(T = {HARDWARE_STEPS}, one test image); check it with spikeconv.export.reference_numpy "
                       "(docs/export.md)"}


#: the steps the hardware export's operation count simulates
HARDWARE_STEPS = 8


def host_currents(snn, x):
    """The input current of ``snn``'s first IF neuron for inputs ``x`` (what the host computes before the
    spiking part of a hardware export), as a float32 NumPy array."""
    import torch

    from ..neuron import IFNeuron
    from ..sim import simulate

    first = next(m for m in snn.modules() if isinstance(m, IFNeuron))
    seen = []
    handle = first.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0].detach().clone()))
    try:
        with torch.no_grad():
            simulate(snn, x, 1)
    finally:
        handle.remove()
    return seen[0].contiguous().numpy()


#: export format -> writer(snn, example, out) -> result
FORMATS = {"nir": _write_nir, "hardware": _write_hardware}


def export_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, config: ConversionConfig, *,
                      fmt: str = "nir", root: str | os.PathLike | None = None,
                      calibration_samples: int = 2000) -> dict[str, Any]:
    """Convert ``checkpoint`` with ``config`` and write it to ``out`` in format ``fmt`` (atomically).

    Plain-ReLU models are normalised from ``calibration_samples`` training images of the checkpoint's data
    set; the graph is traced on one test image. ``fmt="nir"`` returns ``{"out", "nodes", "targets": {"any":
    n, "spikeconv": n}, "summary"}`` (see :func:`spikeconv.export.nir.nir_report`); ``fmt="hardware"`` (needs
    ``config.weight_bits``) ``{"out", "layers", "memory_bytes", "summary"}`` (:mod:`spikeconv.export.hardware`).

    Example: ``export_checkpoint("checkpoints/mnist_lenet_qrelu.pt", "lenet.nir", ConversionConfig())``.
    """
    if fmt not in FORMATS:
        raise SpikeconvError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "hardware" and config.weight_bits is None:
        raise SpikeconvError("the hardware export writes integer weights: give --weight-bits (2..8)")
    checkpoint, out = Path(checkpoint), Path(out)
    if out.exists() and out.resolve() == checkpoint.resolve():
        raise SpikeconvError(f"--out {out} is the checkpoint itself; name another file")
    if out.is_dir():
        raise SpikeconvError(f"--out {out} is a directory; name a file, e.g. {out / (checkpoint.stem + '.nir')}")
    model, payload = load_model(checkpoint)
    example = images(payload, "test", limit=1, root=root)[0]
    calibration = OnDemand(lambda: images(payload, "train", limit=calibration_samples, root=root))
    return FORMATS[fmt](convert(model, example, config, calibration=calibration), example, out)
