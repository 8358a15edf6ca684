"""The operator spikeconv::event_conv2d (spikeconv.native): defined with its PyTorch reference and fake-tensor
rule whether or not a compiler exists; where one exists, its C kernel built and registered for the CPU; seen
by the profiler, traced by torch.compile, passing torch.library.opcheck; a clear reason (and the reference)
where the kernel cannot be built; a broken kernel caught by the exactness check."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from spikeconv import native
from spikeconv.native import build as native_build_module

needs_native = pytest.mark.skipif(native.compiler() is None or native.cxx_compiler() is None,
                                  reason="no C and C++ compiler on this machine")
SRC = str(Path(__file__).parents[1] / "src")


def _case(seed=0, shape=(2, 5, 6, 7), out_channels=20):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randint(-8, 9, (out_channels, shape[1], 3, 3), generator=gen).float()
    bias = torch.randint(-9, 10, (out_channels,), generator=gen).float()
    spikes = (torch.rand(shape, generator=gen) < 0.3).float() * torch.randint(-2, 3, shape, generator=gen)
    return spikes, weight.permute(2, 3, 1, 0).contiguous(), weight, bias


@needs_native
def test_the_kernel_builds_and_registers_for_the_cpu():
    build = native.native_build()
    assert build.available, build.reason
    assert build.path.exists() and build.path.suffix == ".so"
    assert torch._C._dispatch_has_kernel_for_dispatch_key("spikeconv::event_conv2d", "CPU")
    assert native.runs_compiled(torch.zeros(1)) and not native.runs_compiled(torch.zeros(1, device="meta"))


def test_the_operator_exists_without_the_kernel_and_equals_the_convolution():
    spikes, rows, weight, bias = _case()
    out, events = native.event_conv2d(spikes, rows, bias, (1, 1), (1, 1))
    assert events == int(torch.count_nonzero(spikes))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, F.conv2d(spikes, weight, bias, 1, 1))  # integer weights: every sum exact
    reference = native.event_conv2d_reference(spikes, rows, bias, (1, 1), (1, 1))
    assert torch.equal(reference, out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.int8])
def test_the_operator_passes_opcheck(dtype):
    spikes, rows, _, bias = _case(1)
    torch.library.opcheck(torch.ops.spikeconv.event_conv2d.default,
                          (spikes.to(dtype), rows, bias, [1, 2], [1, 0], 1.0))


def test_the_profiler_and_torch_compile_see_the_operator():
    spikes, rows, weight, bias = _case(2)
    native.runs_compiled(spikes)  # the kernel registered before the profiled call, where it builds
    with torch.profiler.profile() as profile:
        native.event_conv2d(spikes, rows, bias, (1, 1), (1, 1))
    assert any(event.name == "spikeconv::event_conv2d" for event in profile.events())

    def layer(x):
        out, _ = torch.ops.spikeconv.event_conv2d(x, rows, bias, [1, 1], [1, 1], 1.0)
        return out * 2

    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    assert torch.equal(compiled(spikes), 2 * F.conv2d(spikes, weight, bias, 1, 1))


def test_the_density_limit_leaves_the_output_to_the_caller():
    spikes, rows, _, _ = _case(3)
    events = int(torch.count_nonzero(spikes))
    limit = events / spikes.numel()
    _, counted = native.event_conv2d(spikes, rows, None, (1, 1), (1, 1), max_density=limit - 1e-3)
    assert counted == events  # counted, output not computed: the caller compares and runs the dense layer


def test_arguments_outside_the_domain_are_refused():
    spikes, rows, _, _ = _case(4)
    with pytest.raises(ValueError, match="int8 or float32"):
        native.event_conv2d(spikes.double(), rows, None, (1, 1), (1, 1))
    assert not native.event_supported(spikes, rows[:, :, :3].contiguous(), None, (1, 1), (1, 1))
    assert not native.event_supported(spikes, rows, torch.zeros(3), (1, 1), (1, 1))


@needs_native
def test_the_c_kernel_checks_its_domain_itself():
    spikes, rows, _, _ = _case(5)
    native.runs_compiled(spikes)
    with pytest.raises(RuntimeError, match="int8 or float32"):
        torch.ops.spikeconv.event_conv2d(spikes.double(), rows, None, [1, 1], [1, 1], 1.0)


def _subprocess(script: str, env: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), **env}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)


EXACT = """
import torch
from torch.nn import functional as F
from spikeconv import native
{setup}
ok = True
for seed, (channels, out_channels, width, values) in enumerate([(7, 80, 9, (1,)), (33, 17, 40, (-2, -1, 1, 2))]):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randint(-8, 9, (out_channels, channels, 3, 3), generator=gen).float()
    pick = torch.tensor(values, dtype=torch.float32)[torch.randint(len(values), (2, channels, 5, width), generator=gen)]
    x = ((torch.rand(2, channels, 5, width, generator=gen) < 0.5) * pick).to(torch.int8)
    out, _ = native.event_conv2d(x, weight.permute(2, 3, 1, 0).contiguous(), None, (1, 1), (1, 1))
    ok &= torch.equal(out, F.conv2d(x.float(), weight, None, 1, 1))
print(native.runs_compiled(torch.zeros(1)), ok)
"""


@needs_native
def test_the_exactness_check_catches_a_broken_kernel(tmp_path):
    # in fresh processes: a kernel registered with the dispatcher stays for the process
    source = native_build_module.SOURCE.read_text()
    old = "for (int j = 0; j < n; ++j) acc[j] = a[j] + b[j];"
    assert old in source
    broken = tmp_path / "kernels.c"
    broken.write_text(source.replace(old, "for (int j = 0; j < n; ++j) acc[j] = a[j];"))  # drops odd spikes
    (tmp_path / "kernels.h").write_text(native_build_module.HEADER.read_text())
    setup = (f"from pathlib import Path; from spikeconv.native import build; build.SOURCE = Path({str(broken)!r}); "
             "build.native_build.cache_clear()")
    done = _subprocess(EXACT.format(setup=setup), {"SPIKECONV_CACHE": str(tmp_path / "cache")})
    assert done.stdout.split() == ["True", "False"], done.stderr[-2000:]
    shipped = _subprocess(EXACT.format(setup=""), {})
    assert shipped.stdout.split() == ["True", "True"], shipped.stderr[-2000:]


def test_without_the_kernel_the_reference_gives_the_same_sums():
    done = _subprocess(EXACT.format(setup=""), {"SPIKECONV_NATIVE": "0"})
    assert done.stdout.split() == ["False", "True"], done.stderr[-2000:]


def test_without_a_compiler_the_reason_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("SPIKECONV_CACHE", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="no-such-cc.*do not run.*PyTorch reference"):
        build = native_build_module.native_build.__wrapped__()
    assert not build.available and "do not run" in build.reason


@needs_native
def test_a_compiler_that_fails_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "false")  # runs, prints nothing, exits 1
    monkeypatch.setenv("SPIKECONV_CACHE", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="could not build ops.cpp"):
        build = native_build_module.native_build.__wrapped__()
    assert not build.available
    assert not list((tmp_path / "kernels").iterdir())  # no half-written library left behind


def test_native_can_be_switched_off_silently(monkeypatch):
    monkeypatch.setenv("SPIKECONV_NATIVE", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build = native_build_module.native_build.__wrapped__()
    assert not build.available and "SPIKECONV_NATIVE=0" in build.reason


@needs_native
def test_a_corrupt_cached_library_is_rebuilt(tmp_path):
    # in fresh processes: this one may have the library mapped already (dlopen matches loaded paths by name)
    script = ("import warnings; warnings.simplefilter('error'); from spikeconv.native import native_build; "
              "b = native_build(); print(b.available, b.path)")
    first = _subprocess(script, {"SPIKECONV_CACHE": str(tmp_path)})
    assert first.stdout.startswith("True"), first.stderr[-2000:]
    path = Path(first.stdout.split()[1])
    path.write_bytes(b"not a shared library")
    again = _subprocess(script, {"SPIKECONV_CACHE": str(tmp_path)})
    assert again.stdout.split() == ["True", str(path)], again.stderr[-2000:]
    assert path.stat().st_size > 1000  # rebuilt in place


@needs_native
def test_an_unwritable_cache_is_reported(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("SPIKECONV_CACHE", str(blocker))
    with pytest.warns(RuntimeWarning, match="SPIKECONV_CACHE"):
        build = native_build_module.native_build.__wrapped__()
    assert not build.available


def test_the_sources_ship_with_the_package():
    # a wheel carries the sources only if package-data names them for the package that holds them
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"][native.__name__]
    for source in (native_build_module.SOURCE, native_build_module.OPS_SOURCE, native_build_module.HEADER):
        assert any(source.match(pattern) for pattern in patterns), source.name


WIDTH = """
import torch
from spikeconv import native
{setup}
outs = []
for seed, (out_channels, values) in enumerate([(117, (-2, -1, 1, 2)), (80, (1,)), (5, (1, -1))]):
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(3, 3, 24, out_channels, generator=gen)  # float weights: the order of additions shows
    pick = torch.tensor(values, dtype=torch.float32)[torch.randint(len(values), (3, 24, 6, 9), generator=gen)]
    x = (torch.rand(3, 24, 6, 9, generator=gen) < 0.4) * pick
    outs.append(native.event_conv2d(x, rows, torch.randn(out_channels, generator=gen), (1, 1), (1, 1))[0])
torch.save(outs, {path!r})
print(native.runs_compiled(torch.zeros(1)))
"""


@needs_native
def test_every_vector_width_gives_the_same_bits(tmp_path):
    # the kernel sums in vectors of the build's native width; with AVX turned off it builds with 16-byte
    # vectors, whose lanes add in the same order as the 32- or 64-byte ones of this machine's build
    setup = ("from spikeconv.native import build; build.FLAGS = (*build.FLAGS, '-mno-avx'); "
             "build.native_build.cache_clear()")
    runs = {}
    for name, code in (("narrow", setup), ("native", "")):
        path = tmp_path / f"{name}.pt"
        cache = {"SPIKECONV_CACHE": str(tmp_path / "cache")} if code else {}  # the native build: the usual cache
        done = _subprocess(WIDTH.format(setup=code, path=str(path)), cache)
        assert done.stdout.split() == ["True"], done.stderr[-2000:]
        runs[name] = torch.load(path, weights_only=True)
    for narrow, wide in zip(runs["narrow"], runs["native"]):
        assert torch.equal(narrow, wide)
