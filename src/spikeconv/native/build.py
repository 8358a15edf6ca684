r"""Building and loading spikeconv's CPU kernels (``kernels.c``; :mod:`spikeconv.native` wraps them).

They are built on first use with the system's C compiler (``CC``, else ``cc``, ``gcc`` or ``clang``; about a
fifth of a second) for this machine's CPU (``-march=native``) and cached under ``cache_dir("kernels")``
(``SPIKECONV_CACHE``), named by a digest of the source, the flags, the compiler and the CPU, so a changed
source or another machine builds its own. Loaded with ``ctypes``; threads through OpenMP (the ``libgomp``
PyTorch already loaded). Without a compiler, or with ``SPIKECONV_NATIVE=0``, :func:`native_build` says why
and callers take their PyTorch path (same results, slower).
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

from ..atomic import atomic_write
from ..cache import cache_dir

SOURCE = Path(__file__).with_name("kernels.c")
#: exact IEEE arithmetic: no multiply-add contraction; -fno-trapping-math only lets the float -> int8 stores
#: vectorize (no result changes); -march=native: the library is cached per CPU (see the module docstring)
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC")
OPENMP = "-fopenmp"
BUILD_TIMEOUT_S = 120


@dataclass(frozen=True)
class NativeBuild:
    """The outcome of building and loading ``kernels.c``: the library (its functions typed) and its ``path``
    when available; otherwise ``reason`` says why not."""

    library: ctypes.CDLL | None
    path: Path | None
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.library is not None


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
    """Build (once per source, compiler and CPU; cached on disk) and load the kernels; once per process.

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
    try:
        path = cache_dir("kernels") / f"kernels-{digest.hexdigest()[:16]}.so"
    except OSError as error:
        return _unavailable(f"the kernel cache cannot be created ({error}); set SPIKECONV_CACHE to a writable "
                            "directory")
    library = None
    for attempt in range(2):  # a cached library that does not load (e.g. truncated) is rebuilt once
        if attempt or not path.exists():
            complaint = _compile(cc, path)
            if complaint:
                return _unavailable(f"{cc} could not build {SOURCE.name}: {complaint}")
        try:
            library = ctypes.CDLL(str(path))
            break
        except OSError as error:
            if attempt:
                return _unavailable(f"could not load {path} ({error})")
    i64, i32, pointer = ctypes.c_int64, ctypes.c_int, ctypes.c_void_p
    library.spikeconv_if_scan.argtypes = [pointer, i64, pointer, pointer, i32, pointer, i32, i64, i64, i64, i64,
                                          i32, i32, i32]
    library.spikeconv_if_scan.restype = i32
    library.spikeconv_frame_span.argtypes = [pointer, i64, i64, i64, i32, i32, ctypes.POINTER(i64),
                                             ctypes.POINTER(i64)]
    library.spikeconv_frame_span.restype = None
    library.spikeconv_any_negative.argtypes = [pointer, i64, i32]
    library.spikeconv_any_negative.restype = i32
    library.spikeconv_offset_bytes.argtypes = [pointer, pointer, i64, i32, i32]
    library.spikeconv_offset_bytes.restype = None
    library.spikeconv_rescale.argtypes = [pointer, pointer, pointer, pointer, i64, i64, i64, i32]
    library.spikeconv_rescale.restype = None
    library.spikeconv_event_lists.argtypes = [pointer, i32, i64, i64, pointer, pointer, pointer,
                                              ctypes.POINTER(i32), i32]
    library.spikeconv_event_lists.restype = i64
    library.spikeconv_event_conv.argtypes = [pointer, pointer, pointer, *[i64] * 4, pointer, *[i64] * 6, pointer,
                                             pointer, i64, i64, i64, i32]
    library.spikeconv_event_conv.restype = None
    return NativeBuild(library, path)


def _unavailable(reason: str) -> NativeBuild:
    warnings.warn(f"spikeconv's C kernels are unavailable: {reason}. Simulations on the CPU take their PyTorch "
                  "path (the same spikes, slower); SPIKECONV_NATIVE=0 silences this.", RuntimeWarning, stacklevel=3)
    return NativeBuild(None, None, reason)
