"""What the command line prints and writes: progress bars, the accuracy tables, JSON written atomically."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from ..atomic import atomic_write

log = logging.getLogger("spikeconv")


def _progress():
    from tqdm.auto import tqdm

    def wrap(iterable, **kwargs):
        return tqdm(iterable, dynamic_ncols=True, **kwargs)

    return wrap


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON through a temporary file and a rename."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(payload, indent=2)))


def format_table(result: dict[str, Any]) -> str:
    """The accuracy-vs-T table of :func:`spikeconv.tasks.classification.accuracy_table` as text."""
    variants = result["snn_accuracy"]
    steps = sorted({int(t) for accs in variants.values() for t in accs})
    width = max([18, *(len(k) + 1 for k in variants)])
    lines = [f"{result.get('dataset', '')} test samples: {result.get('test_samples', '?')}",
             f"ANN (clip, no quantization): {result['ann_accuracy']:.2f}%   "
             f"quantized ANN (QReLU): {result['qann_accuracy']:.2f}%" if result.get("quantized", True) else
             f"ANN (plain ReLU, no quantizer): {result['ann_accuracy']:.2f}%",
             f"{'SNN':<{width}}" + "".join(f"{'T=' + str(t):>9}" for t in steps)]
    for key, accs in variants.items():
        accs = {int(k): v for k, v in accs.items()}
        lines.append(f"{key:<{width}}" + "".join(f"{accs[t]:>9.2f}" if t in accs else f"{'-':>9}" for t in steps))
    return "\n".join(lines)


def _say(message: str) -> None:
    """A progress line on stderr, from the main process only (torchrun runs many)."""
    from ..tasks.distributed import is_main

    if is_main():
        print(message, file=sys.stderr)


def _report(result: dict[str, Any], text: str, json_path: str | None) -> None:
    from ..tasks.distributed import is_main

    if is_main():
        print(text)
        if json_path:
            write_json_atomic(json_path, result)


def format_tradeoff(result: dict[str, Any]) -> str:
    """Table 1 layout: one row per S^max, one column per T, plus the spike budget T x S^max of each cell."""
    variants = result["snn_accuracy"]
    steps = sorted({int(t) for accs in variants.values() for t in accs})
    lines = [f"quantized ANN: {result['qann_accuracy']:.2f}%  (buffered neuron; equal T x S^max = equal "
             "representation power)", "S^max " + "".join(f"{'T=' + str(t):>9}" for t in steps)]
    for key, accs in variants.items():
        smax = int(key.rsplit("smax", 1)[1])
        lines.append(f"{smax:<6}" + "".join(f"{accs[str(t)]:>9.2f}" for t in steps))
        lines.append(f"{'':<6}" + "".join(f"{'(' + str(t * smax) + ')':>9}" for t in steps))
    return "\n".join(lines)


#: arguments that name files a command reads, and files or folders it writes
INPUT_ARGS = ("config", "checkpoint", "source", "model", "weights")
OUTPUT_FILE_ARGS = ("json", "figure")


#: commands whose ``--out`` is a folder (the others write one file there)
FOLDER_OUT = ("analyze", "stream")


def check_outputs(args) -> None:
    """Refuse, before any work, an output that would overwrite an input of the same command, that names a
    directory where a file is written (or a file where a folder is), or that lies under a file (the results of
    a long run are then never lost at the end)."""
    from ..errors import SpikeconvError

    inputs = {Path(v).resolve(): name for name in INPUT_ARGS if isinstance(v := getattr(args, name, None), str)}
    writes = [(name, getattr(args, name)) for name in (*OUTPUT_FILE_ARGS, "out") if getattr(args, name, None)]
    for name, value in writes:
        path = Path(value).resolve()
        if path in inputs:
            raise SpikeconvError(f"--{name} {value} is the {inputs[path]} this command reads; name another file")
        folder = name == "out" and getattr(args, "command", None) in FOLDER_OUT
        if folder and path.exists() and not path.is_dir():
            raise SpikeconvError(f"--{name} {value} is a file; name a folder for the command's files")
        if not folder and path.is_dir():
            raise SpikeconvError(f"--{name} {value} is a directory; name a file, e.g. {Path(value) / 'results.json'}")
        above = next(p for p in path.parents if p.exists())
        if not above.is_dir():
            raise SpikeconvError(f"--{name} {value} cannot be written: {above} is a file, not a directory")
