"""Spike-camera recordings: the headerless ``.dat`` format (read memory-mapped, by windows; written exactly) and
the ``.npz`` recordings of the shared data.

``.dat`` layout (``../shared/data/README.md``): a sequence of frames of ``H * W / 8`` bytes each; byte ``k`` of a
frame holds pixels ``8k .. 8k+7`` in raster order, pixel ``8k + b`` in bit ``b`` counted from the least
significant bit; frames are stored upside down. A 1 is a spike at that pixel in that time step (the camera
integrates light and fires when the accumulated intensity reaches its threshold, then subtracts it).

Frames come out as ``uint8`` arrays ``[T, H, W]`` of 0/1, upright.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..atomic import atomic_write
from ..errors import DataError, is_count


class SpikeStream:
    """A ``.dat`` spike stream of an ``height`` x ``width`` camera, memory-mapped: only the frames asked for
    are read.

    Example: ``stream = SpikeStream("x.dat", 250, 400); frames = stream.window(100, 41)  # [41, 250, 400]``.
    """

    def __init__(self, path: str | os.PathLike, height: int, width: int) -> None:
        self.path = Path(path)
        for name, value in (("height", height), ("width", width)):
            if not is_count(value):
                raise DataError(f"{self.path}: {name} must be a positive integer, got {value!r}")
        if height * width % 8:
            raise DataError(f"{self.path}: a {height} x {width} frame is {height * width} pixels, not a whole number "
                            "of bytes; the .dat layout needs H * W divisible by 8")
        if not self.path.is_file():
            raise DataError(f"spike stream {self.path} does not exist")
        self.height, self.width = height, width
        self.frame_bytes = height * width // 8
        size = self.path.stat().st_size
        if size == 0 or size % self.frame_bytes:
            raise DataError(
                f"{self.path} holds {size} bytes, not a whole number of {height} x {width} frames of "
                f"{self.frame_bytes} bytes ({size / self.frame_bytes:.2f} frames): the file is truncated or the camera "
                "size is wrong")
        self.frames = size // self.frame_bytes
        self._data = np.memmap(self.path, dtype=np.uint8, mode="r")

    def __len__(self) -> int:
        return self.frames

    def window(self, start: int, length: int) -> np.ndarray:
        """Frames ``start .. start + length - 1`` as ``uint8 [length, H, W]`` (0/1, upright)."""
        if start < 0 or length < 1 or start + length > self.frames:
            raise DataError(f"{self.path}: frames {start}..{start + length - 1} asked, the stream has {self.frames}")
        raw = np.asarray(self._data[start * self.frame_bytes:(start + length) * self.frame_bytes])
        bits = np.unpackbits(raw.reshape(length, self.frame_bytes), axis=1, bitorder="little")
        return np.ascontiguousarray(bits.reshape(length, self.height, self.width)[:, ::-1])

    def windows(self, length: int, stride: int | None = None) -> Iterator[np.ndarray]:
        """Successive windows of ``length`` frames, ``stride`` apart (default: ``length``, no overlap)."""
        stride = stride or length
        for start in range(0, self.frames - length + 1, stride):
            yield self.window(start, length)


def read_dat(path: str | os.PathLike, height: int, width: int) -> np.ndarray:
    """The whole ``.dat`` stream as ``uint8 [T, H, W]`` (use :class:`SpikeStream` to read it by windows)."""
    stream = SpikeStream(path, height, width)
    return stream.window(0, len(stream))


def write_dat(path: str | os.PathLike, frames: np.ndarray) -> Path:
    """Write ``frames`` (``[T, H, W]`` of 0/1) in the ``.dat`` layout, atomically; :func:`read_dat` gives them back.

    Example:
        >>> import tempfile
        >>> frames = (np.arange(2 * 4 * 6).reshape(2, 4, 6) % 3 == 0).astype(np.uint8)
        >>> path = write_dat(Path(tempfile.mkdtemp()) / "s.dat", frames)
        >>> bool((read_dat(path, 4, 6) == frames).all())
        True
    """
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[1] * frames.shape[2] % 8:
        raise DataError(f"frames must be [T, H, W] with H * W divisible by 8, got shape {frames.shape}")
    if not np.isin(frames, (0, 1)).all():
        raise DataError("spike frames hold 0 and 1 only")
    packed = np.packbits(frames[:, ::-1].reshape(frames.shape[0], -1).astype(np.uint8), axis=1, bitorder="little")
    return atomic_write(path, lambda tmp: packed.tofile(tmp), suffix=".tmp.dat")


#: the arrays of the shared ``.npz`` recordings and their axis order
NPZ_LAYOUTS = {"spk": "THW", "arr_0": "HWT"}


def load_spike_npz(path: str | os.PathLike, key: str | None = None, layout: str | None = None) -> np.ndarray:
    """The spike frames of an ``.npz`` recording as ``uint8 [T, H, W]``.

    ``key`` and ``layout`` (``"THW"`` or ``"HWT"``) default to the known arrays: ``spk`` (``[T, H, W]``, the
    UHSR recordings) and ``arr_0`` (``[H, W, T]``, the SpikingSIM real recording).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"spike recording {path} does not exist")
    try:
        archive = np.load(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from exc
    with archive:
        names = list(archive.files)
        key = key or next((k for k in NPZ_LAYOUTS if k in names), None)
        if key is None or key not in names:
            raise DataError(f"{path} holds the arrays {names}; none is a known spike array "
                            f"({', '.join(NPZ_LAYOUTS)}): pass key= and layout=")
        layout = layout or NPZ_LAYOUTS.get(key)
        if layout not in ("THW", "HWT"):
            raise DataError(f"{path}:{key}: layout must be 'THW' or 'HWT', got {layout!r}")
        frames = archive[key]
    if frames.ndim != 3:
        raise DataError(f"{path}:{key} has shape {frames.shape}; a spike recording is 3-dimensional")
    if layout == "HWT":
        frames = np.moveaxis(frames, -1, 0)
    if not np.isin(frames, (0, 1)).all():
        raise DataError(f"{path}:{key} holds values other than 0 and 1; it is not a spike recording")
    return np.ascontiguousarray(frames.astype(np.uint8))


def reds_streams(root: str | os.PathLike | None = None) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """The shared REDS spike streams with their ground truth: ``(name, spikes uint8 [301, 250, 400], grey image
    float32 [250, 400] in [0, 1])`` for every ``spikecam/reds/spike/*.dat`` whose ``gt/<name>.png`` exists."""
    import torch
    from torchvision.io import ImageReadMode, decode_image

    from .paths import data_root

    reds = data_root(root) / "spikecam" / "reds"
    streams = sorted((reds / "spike").glob("*.dat"))
    if not streams:
        raise DataError(f"{reds / 'spike'} holds no .dat streams")
    for path in streams:
        png = reds / "gt" / f"{path.stem}.png"
        if not png.is_file():
            continue
        image = decode_image(torch.from_numpy(np.fromfile(png, dtype=np.uint8)), mode=ImageReadMode.GRAY)[0]
        yield path.stem, read_dat(path, 250, 400), (image.float() / 255).numpy()
