"""How a benchmark measures a simulator run: peak host and device memory, and a profile of where it spends its
time (operators, CUDA kernels, values read back to the host). Used by ``peers.py`` and ``detection_speed.py``.
"""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Callable

import torch


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(key))


def peak_memory_mib(run: Callable[[], object]) -> float:
    """Peak resident memory a simulator needs: the high-water mark during a second run above the level
    before its first run (so state a simulator keeps in its modules between runs counts, as does state it
    allocates afresh). Linux: freed heap given back with malloc_trim, the mark reset through clear_refs.
    Run it with ``MALLOC_MMAP_THRESHOLD_=65536`` (as ``--memory`` does) so that every tensor is its own
    mapping, returned when freed: the resident set then follows the live tensors and the reading repeats
    to within 1 MiB (with glibc's default dynamic threshold the same variant read 139-260 MiB)."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _status_kib("VmRSS:")
    run()  # warm-up (and compilation)
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    run()
    return (_status_kib("VmHWM:") - before) / 1024


def synchronize(device: str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def profile_run(run: Callable[[], object], device: str, top: int = 6) -> dict[str, object]:
    """Where one (warmed-up) run spends its time, from ``torch.profiler``: the operators it dispatches
    (top level only, so a convolution counts once), on CUDA the kernels it launches and their summed device
    time, and the ``top`` operators or kernels by self time. At small batches a GPU simulator is bound by
    launches and host overhead rather than by its kernels; ``device_ms`` against the timed median says which."""
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # else the profiler logs an error on a machine without CUDA
    from torch.profiler import ProfilerActivity, profile
    cuda = torch.device(device).type == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    synchronize(device)
    with profile(activities=activities) as prof:
        run()
        synchronize(device)
    events = prof.events()
    top_level = [e for e in events if e.name.startswith("aten::") and
                 (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))]
    averages = prof.key_averages()
    # a value read back to the host (item, nonzero) waits for every queued kernel: on a GPU, a stall
    syncs = sum(e.name in ("aten::_local_scalar_dense", "aten::nonzero") for e in events)
    result: dict[str, object] = {"aten_ops": len(top_level), "host_syncs": syncs}
    if cuda:
        kernels = [e for e in averages if e.device_type == torch.autograd.DeviceType.CUDA]
        result["kernels"] = sum(e.count for e in kernels)
        result["device_ms"] = sum(e.self_device_time_total for e in kernels) / 1e3
        ranked = sorted(kernels, key=lambda e: e.self_device_time_total, reverse=True)
        result["top"] = [[e.key[:60], e.count, round(e.self_device_time_total / 1e3, 4)] for e in ranked[:top]]
    else:
        ranked = sorted((e for e in averages if e.key.startswith("aten::")), key=lambda e: e.self_cpu_time_total,
                        reverse=True)
        result["top"] = [[e.key, e.count, round(e.self_cpu_time_total / 1e3, 4)] for e in ranked[:top]]
    return result


def device_peak_mib(run: Callable[[], object], device: str) -> float:
    """Peak memory a simulator allocates on an accelerator during a run, above what was allocated before it
    (PyTorch's caching allocator counts every tensor; the run is warmed up first)."""
    run()
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    run()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20
