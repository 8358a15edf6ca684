"""Event-camera (DVS) streams: the four shared formats read into one event array, and frames for an SNN.

Readers, by what the file is (the ``events`` extra: ``pip install 'spikeconv[events]'``):

| format | file | reader |
|---|---|---|
| HDF5 (``events`` dataset: ``timestamp`` us, ``x``, ``y``, ``polarity``) | ``.hdf5``, ``.h5`` | ``h5py`` |
| AEDAT 4.0 (iniVation, LZ4 packets) | ``.aedat4`` | ``tonic.io.read_aedat4`` (``aedat``) |
| N-MNIST binary (5 bytes an event) | ``.bin`` | ``tonic.io.read_mnist_file`` |
| Prophesee DAT (``%`` header, 8-byte ``Event2D`` records) | ``.dat`` with a ``%`` header | NumPy (below) |

No maintained package reads Prophesee's DAT files (``expelliarmus`` reads the RAW EVT2/EVT3 encodings only,
``tonic`` has no DAT reader), so :func:`read_prophesee_dat` decodes the documented layout: after the ``%``
header lines, one byte event type and one byte event size (8), then records of a little-endian ``uint32``
timestamp (us) and a ``uint32`` holding ``x`` (bits 0-13), ``y`` (bits 14-27) and polarity (bits 28-31).
A ``.dat`` without that header is a spike-camera stream (:mod:`spikeconv.data.spikecam`).

:func:`event_frames` bins events into ``T`` equal time bins (counts per polarity) and turns them into SNN
input: ``"count"`` keeps the counts, ``"binary"`` marks whether a pixel saw an event in the bin ({0, 1}, as
paper 000 section B does for the spike camera). Every event lands in a bin: ``tonic.transforms.ToFrame``
(``n_time_bins``) floors the bin length to whole microseconds and leaves out the events after the last full
bin and at the last timestamp (2-4 events of each shared file), so the binning is done here, in one
``bincount``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import DataError

EVENT_DTYPE = np.dtype([("t", np.int64), ("x", np.int16), ("y", np.int16), ("p", np.int8)])


@dataclass(frozen=True)
class EventStream:
    """Events ``t`` (us), ``x``, ``y``, ``p`` (0 = off, 1 = on) of a ``height x width`` sensor, sorted in time."""

    events: np.ndarray
    height: int
    width: int
    source: str

    @property
    def duration_us(self) -> int:
        return int(self.events["t"][-1] - self.events["t"][0]) if len(self.events) else 0


def _optional(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"reading event files needs {module}: pip install 'spikeconv[events]'") from exc


def _pack(t, x, y, p) -> np.ndarray:
    out = np.empty(len(t), dtype=EVENT_DTYPE)
    out["t"], out["x"], out["y"], out["p"] = t, x, y, (np.asarray(p) > 0)
    return out[np.argsort(out["t"], kind="stable")]


def read_hdf5(path: Path) -> np.ndarray:
    """Events of an HDF5 file with an ``events`` dataset of fields ``timestamp``, ``x``, ``y``, ``polarity``."""
    h5py = _optional("h5py")
    try:
        with h5py.File(path, "r") as handle:
            data = handle["events"][()]
    except (OSError, KeyError) as exc:
        raise DataError(f"{path} is not an HDF5 file with an 'events' dataset ({exc})") from None
    missing = {"timestamp", "x", "y", "polarity"} - set(data.dtype.names or ())
    if missing:
        raise DataError(f"{path}: the 'events' dataset lacks the field(s) {sorted(missing)}; "
                        f"found {list(data.dtype.names or ())}")
    return _pack(data["timestamp"], data["x"], data["y"], data["polarity"])


def read_aedat4(path: Path) -> np.ndarray:
    """Events of an AEDAT 4.0 file (through ``tonic.io.read_aedat4`` and ``aedat``)."""
    tonic_io = _optional("tonic.io")
    try:
        data = tonic_io.read_aedat4(str(path))
    except Exception as exc:  # the Rust decoder raises plain Exceptions on malformed files
        raise DataError(f"{path} is not a readable AEDAT 4.0 file ({exc})") from None
    return _pack(data["t"], data["x"], data["y"], data["p"])


def read_nmnist(path: Path) -> np.ndarray:
    """Events of an N-MNIST binary file (40 bits an event; through ``tonic.io.read_mnist_file``)."""
    tonic_io = _optional("tonic.io")
    if path.stat().st_size % 5:
        raise DataError(f"{path} is {path.stat().st_size} bytes, not a whole number of 5-byte N-MNIST events")
    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
    data = tonic_io.read_mnist_file(str(path), dtype=dtype)
    return _pack(data["t"], data["x"], data["y"], data["p"])


def read_prophesee_dat(path: Path) -> np.ndarray:
    """Events of a Prophesee DAT file (layout in the module docstring)."""
    raw = path.read_bytes()
    offset = 0
    while offset < len(raw) and raw[offset:offset + 1] == b"%":
        end = raw.find(b"\n", offset)
        if end < 0:
            raise DataError(f"{path}: the '%' header never ends")
        offset = end + 1
    if offset == 0:
        raise DataError(f"{path} has no '%' header: not a Prophesee DAT file (a spike-camera .dat? see SpikeStream)")
    if len(raw) < offset + 2:
        raise DataError(f"{path}: no event type/size bytes after the header")
    size = raw[offset + 1]
    body = len(raw) - offset - 2
    if size != 8 or body % 8:
        raise DataError(f"{path}: expected 8-byte events after the header, found event size {size} and "
                        f"{body} bytes ({body % 8 if size == 8 else body} left over)")
    records = np.frombuffer(raw, dtype=np.dtype([("t", "<u4"), ("data", "<u4")]), offset=offset + 2)
    data = records["data"]
    return _pack(records["t"].astype(np.int64), data & 0x3FFF, (data >> 14) & 0x3FFF, (data >> 28) & 0xF)


#: readers by file suffix
READERS = {".hdf5": read_hdf5, ".h5": read_hdf5, ".aedat4": read_aedat4, ".bin": read_nmnist,
           ".dat": read_prophesee_dat}
#: sensor sizes (height, width) of the known cameras, when the file does not say
SENSORS = {".bin": (34, 34)}


def read_events(path: str | os.PathLike, sensor: tuple[int, int] | None = None) -> EventStream:
    """Read an event file of any of the supported formats (module docstring).

    ``sensor = (height, width)``: the sensor size; default: the camera's known size, else the events' extent.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"event file {path} does not exist")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unknown event format {path.suffix!r}; supported: {sorted(READERS)}")
    events = reader(path)
    if len(events) == 0:
        raise DataError(f"{path} holds no events")
    height, width = sensor or SENSORS.get(path.suffix.lower(), (int(events["y"].max()) + 1, int(events["x"].max()) + 1))
    if int(events["x"].max()) >= width or int(events["y"].max()) >= height:
        raise DataError(f"{path}: events reach x={int(events['x'].max())}, y={int(events['y'].max())}, outside the "
                        f"{height}x{width} sensor given")
    return EventStream(events, height, width, str(path))


def event_frames(stream: EventStream, steps: int, mode: str = "count") -> Tensor:
    """``[steps, 2, H, W]`` frames (off, on) of the whole stream cut into ``steps`` equal time bins: event ``i``
    goes to bin ``floor(steps * (t_i - t_0) / (t_end - t_0 + 1))``.

    ``mode``: ``"count"`` (events per pixel and bin) or ``"binary"`` (whether the pixel saw an event in the bin).

    Example:
        >>> ev = np.zeros(3, dtype=EVENT_DTYPE)
        >>> ev["t"], ev["x"], ev["y"], ev["p"] = [0, 10, 20], [0, 1, 1], [0, 0, 0], [1, 0, 0]
        >>> event_frames(EventStream(ev, 1, 2, "demo"), 2)[:, :, 0].tolist()
        [[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 0.0]]]
    """
    if mode not in ("count", "binary"):
        raise ValueError(f"mode must be 'count' or 'binary', got {mode!r}")
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    ev = stream.events
    t = torch.from_numpy(ev["t"].astype(np.int64))
    span = int(t[-1] - t[0]) + 1
    bins = (t - t[0]) * steps // span
    index = ((bins * 2 + torch.from_numpy(ev["p"].astype(np.int64))) * stream.height
             + torch.from_numpy(ev["y"].astype(np.int64))) * stream.width + torch.from_numpy(ev["x"].astype(np.int64))
    frames = torch.bincount(index, minlength=steps * 2 * stream.height * stream.width).float()
    frames = frames.view(steps, 2, stream.height, stream.width)
    return (frames > 0).float() if mode == "binary" else frames
