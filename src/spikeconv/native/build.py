r"""Building and loading spikeconv's CPU operator library (``kernels.c`` + ``ops.cpp``).

Built on first use with the system's compilers (``CC``, else ``cc``, ``gcc`` or ``clang`` for the C kernel;
``CXX``, else ``c++``, ``g++`` or ``clang++`` for the PyTorch registration, against the headers of the
installed torch; about ten seconds once) for this machine's CPU (``-march=native``), and cached under
``cache_dir("kernels")`` (``SPIKECONV_CACHE``), named by a digest of the sources, the flags, the compilers,
the torch version and the CPU, so a changed source, another torch or another machine builds its own. Loaded
with ``torch.ops.load_library``: the library registers the CPU implementation of ``spikeconv::event_conv2d``
with PyTorch's dispatcher (the operator itself, its PyTorch reference and its fake-tensor rule are defined in
:mod:`spikeconv.native`). Threads through OpenMP (the ``libgomp`` PyTorch already loaded). Without a compiler,
or with ``SPIKECONV_NATIVE=0``, :func:`native_build` says why and the operator runs its PyTorch reference
(the same sums in another order; slower).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from ..atomic import atomic_write
from ..cache import cache_dir

SOURCE = Path(__file__).with_name("kernels.c")
OPS_SOURCE = Path(__file__).with_name("ops.cpp")
HEADER = Path(__file__).with_name("kernels.h")
#: exact IEEE arithmetic: no multiply-add contraction; -march=native: the library is cached per CPU (see the
#: module docstring)
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fPIC")
#: the registration file includes PyTorch's headers, which need C++20 with this torch
CXX_FLAGS = ("-O2", "-std=c++20", "-fPIC")
OPENMP = "-fopenmp"
BUILD_TIMEOUT_S = 300


@dataclass(frozen=True)
class NativeBuild:
    """The outcome of building and loading the operator library: its ``path`` when loaded; otherwise
    ``reason`` says why not."""

    path: Path | None
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.path is not None


def _find(variable: str, names: tuple[str, ...]) -> str | None:
    if os.environ.get(variable):
        return os.environ[variable]
    return next((found for name in names if (found := shutil.which(name))), None)


def compiler() -> str | None:
    """The C compiler to build with: ``CC`` if set, else the first of ``cc``, ``gcc``, ``clang`` on the path."""
    return _find("CC", ("cc", "gcc", "clang"))


def cxx_compiler() -> str | None:
    """The C++ compiler: ``CXX`` if set, else the first of ``c++``, ``g++``, ``clang++`` on the path."""
    return _find("CXX", ("c++", "g++", "clang++"))


def _torch_flags() -> list[str]:
    """Include and link flags for PyTorch's headers and libraries, and its C++ ABI."""
    # importing cpp_extension logs "No CUDA runtime is found" on CPU-only machines: true, and no concern of a
    # CPU kernel's build, so that logger is quiet while it loads
    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        log.setLevel(level)

    flags = [f"-I{path}" for path in cpp_extension.include_paths()]
    flags.append(f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
    for path in cpp_extension.library_paths():
        flags += [f"-L{path}", f"-Wl,-rpath,{path}"]
    return flags + ["-lc10", "-ltorch_cpu"]


def _cpu_identity() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags (Linux), else the platform."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    keep = [line for line in lines if line.startswith(("model name", "flags", "Features", "CPU part"))]
    return "\n".join(dict.fromkeys(keep))


def _run(command: list[str]) -> str:
    """Run one compiler command; '' or the last line of its complaint."""
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        return ""
    except subprocess.CalledProcessError as error:
        lines = error.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit status {error.returncode}"
    except (subprocess.TimeoutExpired, OSError) as error:
        return str(error)


def _compile(cc: str, cxx: str, target: Path) -> str:
    """Compile ``SOURCE`` and ``OPS_SOURCE``, link them and move the library to ``target`` (atomically), with
    OpenMP if the compilers have it; returns '' or the compilers' complaint."""
    complaint = ""
    for extra in ((OPENMP,), ()):
        with tempfile.TemporaryDirectory() as work:
            kernel, ops, linked = (str(Path(work, name)) for name in ("kernels.o", "ops.o", "ops.so"))
            complaint = (_run([*shlex.split(cc), *FLAGS, *extra, "-c", str(SOURCE), "-o", kernel])
                         or _run([*shlex.split(cxx), *CXX_FLAGS, *_torch_flags(), "-c", str(OPS_SOURCE), "-o", ops])
                         or _run([*shlex.split(cxx), "-shared", kernel, ops, *extra, *_torch_flags(), "-o", linked]))
            if not complaint:
                atomic_write(target, lambda tmp: shutil.copyfile(linked, tmp), suffix=".so")
                return ""
    return complaint


@functools.cache
def native_build() -> NativeBuild:
    """Build (once per sources, compilers, torch and CPU; cached on disk) and load the operator library; once
    per process. Loading registers the CPU kernel of ``spikeconv::event_conv2d``.

    Example:
        >>> build = native_build()
        >>> build.available or bool(build.reason)
        True
    """
    if os.environ.get("SPIKECONV_NATIVE", "1") == "0":
        return NativeBuild(None, "disabled by SPIKECONV_NATIVE=0")
    cc, cxx = compiler(), cxx_compiler()
    if cc is None or cxx is None:
        return _unavailable("no C and C++ compiler found (install gcc and g++ or clang, or set CC and CXX)")
    try:
        versions = [subprocess.run([*shlex.split(tool), "--version"], capture_output=True, text=True,
                                   timeout=30).stdout for tool in (cc, cxx)]
    except (OSError, subprocess.TimeoutExpired) as error:
        return _unavailable(f"the compilers {cc} / {cxx} do not run ({error})")
    sources = [path.read_text() for path in (SOURCE, OPS_SOURCE, HEADER)]
    digest = hashlib.sha256("\0".join([*sources, *FLAGS, *CXX_FLAGS, OPENMP, *versions, torch.__version__,
                                       _cpu_identity()]).encode())
    try:
        path = cache_dir("kernels") / f"ops-{digest.hexdigest()[:16]}.so"
    except OSError as error:
        return _unavailable(f"the kernel cache cannot be created ({error}); set SPIKECONV_CACHE to a writable "
                            "directory")
    for attempt in range(2):  # a cached library that does not load (e.g. truncated) is rebuilt once
        if attempt or not path.exists():
            complaint = _compile(cc, cxx, path)
            if complaint:
                return _unavailable(f"{cc} / {cxx} could not build {OPS_SOURCE.name}: {complaint}")
        try:
            torch.ops.load_library(str(path))
            return NativeBuild(path)
        except OSError as error:
            complaint = str(error)
    return _unavailable(f"could not load {path} ({complaint})")


def _unavailable(reason: str) -> NativeBuild:
    warnings.warn(f"spikeconv's C kernel is unavailable: {reason}. Event-driven layers on the CPU take the "
                  "PyTorch reference (slower); SPIKECONV_NATIVE=0 silences this.", RuntimeWarning, stacklevel=3)
    return NativeBuild(None, reason)
