r"""The IF scan of one chunk in C on the CPU (``if_scan.c``): every step of a neuron layer in one call.

The eager scan makes four (plain IF) to eight (buffered) passes over memory per step, each a PyTorch call;
this one keeps the membrane and ``-V^b`` of a block of 256 neurons in L1 across the chunk's steps and
reads each current and writes each spike once (the equations: :mod:`spikeconv.neuron.fused` and the C
file's header). Bit-identical to the eager scan (``tests/test_native.py``: every supported case and
converted networks).

It is built on first use with the system's C compiler (``CC``, else ``cc``, ``gcc`` or ``clang``; about a
fifth of a second) for this machine's CPU (``-march=native``) and cached under
``cache_dir("kernels")`` (``SPIKECONV_CACHE``), named by a digest of the source, the flags, the compiler
and the CPU, so a changed source or another machine builds its own. Loaded with ``ctypes``; threads
through OpenMP (the ``libgomp`` PyTorch already loaded) up to ``torch.get_num_threads()``. Without a
compiler, or with ``SPIKECONV_NATIVE=0``, :func:`native_build` says why and the engine takes the eager
scan (same spikes, slower).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..atomic import atomic_write
from ..cache import cache_dir
from .functional import NeuronConfig, Reset

SOURCE = Path(__file__).with_name("if_scan.c")
#: exact IEEE arithmetic: no multiply-add contraction; -fno-trapping-math only lets the float -> int8 stores
#: vectorize (no result changes); -march=native: the library is cached per CPU (see the module docstring)
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC")
OPENMP = "-fopenmp"
BUILD_TIMEOUT_S = 120
#: what torch.profiler calls the C scan
PROFILER_NAME = "spikeconv::native_if_scan"


@dataclass(frozen=True)
class NativeBuild:
    """The outcome of building and loading ``if_scan.c``: ``scan`` (the C function) and ``path`` when
    available; otherwise ``reason`` says why not."""

    scan: ctypes._CFuncPtr | None
    path: Path | None
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.scan is not None


def compiler() -> str | None:
    """The C compiler to build with: ``CC`` if set, else the first of ``cc``, ``gcc``, ``clang`` on the path."""
    if os.environ.get("CC"):
        return os.environ["CC"]
    return next((found for name in ("cc", "gcc", "clang") if (found := shutil.which(name))), None)


def _cpu_identity() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags (Linux), else the platform."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    keep = [line for line in lines if line.startswith(("model name", "flags", "Features", "CPU part"))]
    return "\n".join(dict.fromkeys(keep))


def _compile(cc: str, target: Path) -> str:
    """Compile ``SOURCE`` into ``target`` (atomically), with OpenMP if the compiler has it; returns '' or the
    compiler's complaint."""
    complaint = ""
    for extra in ((OPENMP,), ()):
        command = [*shlex.split(cc), *FLAGS, *extra, str(SOURCE), "-o"]
        try:
            atomic_write(target, lambda tmp: subprocess.run([*command, tmp], check=True, capture_output=True,
                                                            text=True, timeout=BUILD_TIMEOUT_S), suffix=".so")
            return ""
        except subprocess.CalledProcessError as error:
            lines = error.stderr.strip().splitlines()
            complaint = lines[-1] if lines else f"exit status {error.returncode}"
        except (subprocess.TimeoutExpired, OSError) as error:
            complaint = str(error)
    return complaint


@functools.cache
def native_build() -> NativeBuild:
    """Build (once per source, compiler and CPU; cached on disk) and load the C scan; once per process.

    Example:
        >>> build = native_build()
        >>> build.available or bool(build.reason)
        True
    """
    if os.environ.get("SPIKECONV_NATIVE", "1") == "0":
        return NativeBuild(None, None, "disabled by SPIKECONV_NATIVE=0")
    cc = compiler()
    if cc is None:
        return _unavailable("no C compiler found (install gcc or clang, or set CC)")
    try:
        version = subprocess.run([*shlex.split(cc), "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        return _unavailable(f"the C compiler {cc} does not run ({error})")
    digest = hashlib.sha256("\0".join([SOURCE.read_text(), *FLAGS, OPENMP, version, _cpu_identity()]).encode())
    path = cache_dir("kernels") / f"if_scan-{digest.hexdigest()[:16]}.so"
    if not path.exists():
        complaint = _compile(cc, path)
        if complaint:
            return _unavailable(f"{cc} could not build {SOURCE.name}: {complaint}")
    try:
        library = ctypes.CDLL(str(path))
    except OSError as error:
        return _unavailable(f"could not load {path} ({error}); delete it to rebuild")
    scan = library.spikeconv_if_scan
    i64, i32, pointer = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    scan.argtypes = [pointer, i64, pointer, pointer, i32, pointer, i32, i64, i64, i64, i64, i32, i32, i32]
    scan.restype = i32
    return NativeBuild(scan, path)


def _unavailable(reason: str) -> NativeBuild:
    warnings.warn(f"spikeconv's C neuron scan is unavailable: {reason}. Simulations on the CPU use the eager "
                  "scan (the same spikes, slower); SPIKECONV_NATIVE=0 silences this.", RuntimeWarning, stacklevel=3)
    return NativeBuild(None, None, reason)


def native_launch(x: Tensor, v: Tensor, buffer: Tensor | None, spikes: Tensor, config: NeuronConfig,
                  constant: bool) -> None:
    """Run the chunk through the C scan, in place, for a scan already found
    :func:`spikeconv.neuron.fused.fused_supported` on the CPU (``native_build().available``)."""
    if v.device.type != "cpu":
        raise ValueError(f"the C scan runs CPU tensors, got {v.device}; use the Triton or eager scan")
    steps = spikes.shape[0]
    if steps == 0:
        return
    args = (x.data_ptr(), 0 if constant else x.stride(0), v.data_ptr(),
            buffer.data_ptr() if config.signed else None, int(config.signed and buffer.dtype == torch.int8),
            spikes.data_ptr(), int(spikes.dtype == torch.int8), spikes.stride(0), steps, v.numel(),
            config.max_strength, int(config.signed), int(config.reset is Reset.SUBTRACT), torch.get_num_threads())
    if getattr(torch.autograd.profiler, "_is_profiler_enabled", False):  # visible to torch.profiler
        with torch.profiler.record_function(PROFILER_NAME):
            native_build().scan(*args)
    else:  # the annotation costs ~6 us a call: only while profiling
        native_build().scan(*args)
