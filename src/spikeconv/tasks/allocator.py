r"""Keep freed memory in the process: glibc's malloc without fresh mappings for large blocks, without trimming.

glibc serves every block above its mmap threshold (128 KiB, growing to at most 32 MiB) with a fresh ``mmap``
and unmaps it when the block is freed. A training step of the fast CIFAR-10 recipe allocates and frees
gigabytes of activations, so every step faults all of them in again, one 4 KiB page at a time, and the
kernel zeroes each page. On the 2-core AVX2 CPU (``python benchmarks/train_allocator.py --json
docs/results/train_allocator_avx2.json``) a step of batch 1024 took 13.08 s with glibc's defaults, 3.07
million page faults and 10.2 s of it in the kernel, against 6.77 s (84 thousand faults) with the blocks kept.

:func:`keep_freed_memory` sets ``M_MMAP_MAX = 0`` (large blocks come from the heap, which is reused) and
``M_TRIM_THRESHOLD`` to the largest value (the heap's top is not given back) for the duration of a block,
then restores glibc's default limits and gives the retained heap back (``malloc_trim``). The process's peak
memory stays that of the largest step; only its return to the system is deferred. The ``spikeconv`` command
runs every command inside it; ``SPIKECONV_KEEP_MEMORY=0`` turns it off. Elsewhere than on Linux with glibc
it does nothing.

These are process-wide allocator settings: nested blocks (the command and a training function it calls)
are counted, and only the outermost one restores the defaults.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: mallopt parameters of glibc's malloc.h
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
#: glibc's defaults (malloc/malloc.c): 128 KiB trim threshold, 65536 mappings
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
_KEEP_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int

_lock = threading.Lock()
_depth = [0]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, when this process runs on it (it has ``gnu_get_libc_version``; musl and others do not)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - raises AttributeError off glibc
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return libc


def on_glibc() -> bool:
    """Whether this process's malloc is glibc's, the one :func:`keep_freed_memory` configures."""
    return _glibc() is not None


def keeps_memory() -> bool:
    """Whether :func:`keep_freed_memory` takes effect here: glibc, and ``SPIKECONV_KEEP_MEMORY`` not ``0``."""
    return on_glibc() and os.environ.get("SPIKECONV_KEEP_MEMORY", "1") != "0"


@contextmanager
def keep_freed_memory() -> Iterator[bool]:
    """Within the block, freed memory stays in the process for the next allocation (module docstring);
    yields whether that is in effect.

    Example::

        with keep_freed_memory():
            train_fast_dataset(model, train_set, config)   # about 2x faster steps on a 2-core CPU
    """
    libc = _glibc() if keeps_memory() else None
    if libc is None:
        yield False
        return
    with _lock:
        _depth[0] += 1
        if _depth[0] == 1:
            libc.mallopt(M_MMAP_MAX, 0)
            libc.mallopt(M_TRIM_THRESHOLD, _KEEP_TRIM_THRESHOLD)
    try:
        yield True
    finally:
        with _lock:
            _depth[0] -= 1
            if _depth[0] == 0:
                libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
                libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_THRESHOLD)
                libc.malloc_trim(0)


__all__ = ["keep_freed_memory", "keeps_memory", "on_glibc"]
