"""The C kernels on the CPU (spikeconv.native): built where a C compiler exists; the IF scan bit-identical to
the eager scan over every supported case, multi-threaded sizes and converted networks, the engine's default
on the CPU; the frame span equal to PyTorch's reductions; a clear reason (and the PyTorch path) where they
cannot be built."""

import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fused_cases
from conftest import mutated_kernels
from spikeconv.neuron import NeuronConfig, if_init
from spikeconv import native
from spikeconv.layers import sparse
from spikeconv.native import build as native_build_module
from spikeconv.neuron.functional import _scan_steps_
from spikeconv.neuron.fused import native_scan_, native_scan_kernel
from spikeconv.sim.engine import scan_kernel_for

needs_native = pytest.mark.skipif(native.compiler() is None, reason="no C compiler on this machine")


def test_the_c_scan_builds_where_a_compiler_exists():
    if native.compiler() is None:
        pytest.skip("no C compiler")
    build = native.native_build()
    assert build.available, build.reason
    assert build.path.exists() and build.path.suffix == ".so"


@needs_native
def test_c_scan_equals_eager_scan_in_every_supported_case_and_in_networks():
    assert fused_cases.main(backend="native") == 0


@needs_native
def test_the_case_check_catches_a_broken_kernel(tmp_path, monkeypatch):
    # the same check against a C scan without the buffer bound max(S, -V^b): it must report mismatches
    with mutated_kernels(tmp_path, monkeypatch, "si = si > bound ? si : bound;", ""):
        assert fused_cases.main(backend="native") == 1


@needs_native
@settings(max_examples=25, deadline=None)
@given(signed=st.booleans(), smax=st.sampled_from([1, 2, 4, 8, 32]), subtract=st.booleans(),
       int8_spikes=st.booleans(), steps=st.integers(1, 9), batch=st.integers(1, 5),
       channels=st.integers(1, 40), side=st.integers(1, 19), channels_last=st.booleans(), seed=st.integers(0, 99))
def test_c_scan_equals_eager_scan_on_threaded_sizes(signed, smax, subtract, int8_spikes, steps, batch, channels,
                                                    side, channels_last, seed):
    # up to 5*40*19*19 = 72200 neurons: several threads, blocks of 256 and a partial last block
    shape = (batch, channels, side, side)
    config = NeuronConfig(max_strength=smax, signed=signed, reset="subtract" if subtract else "zero")
    x = fused_cases.currents(shape, steps, seed) * max(1, smax // 4)
    if channels_last:
        x = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).view(steps, *shape)
    results = []
    for run in ("eager", "native"):
        state = if_init(x[0], config, buffer_dtype=torch.int8 if signed and steps * smax <= 127 else None)
        state.v.copy_(torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 0.9)
        spikes = torch.empty((steps * batch, *shape[1:]), dtype=torch.int8 if int8_spikes else torch.float32,
                             memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        spikes = spikes.view(steps, *shape)
        if run == "eager":
            _scan_steps_(x, state.v, state.buffer, spikes, config, None, signed, False)
        else:
            native_scan_(x, state.v, state.buffer, spikes, config, signed, False)
        results.append((spikes, state.v, state.buffer))
    (s0, v0, b0), (s1, v1, b1) = results
    assert torch.equal(s0, s1) and torch.equal(v0, v1)
    assert b0 is None or torch.equal(b0, b1)


@needs_native
def test_the_engine_runs_the_c_scan_on_the_cpu_by_default():
    assert scan_kernel_for(torch.device("cpu")) is native_scan_kernel
    assert scan_kernel_for(torch.device("cpu"), "native") is native_scan_kernel
    assert scan_kernel_for(torch.device("cpu"), "eager") is None


def test_the_c_scan_refuses_tensors_off_the_cpu():
    config = NeuronConfig()
    v = torch.zeros(2, 3, device="meta")
    with pytest.raises(ValueError, match="CPU tensors"):
        native.if_scan_(torch.zeros(1, 2, 3, device="meta"), v, None, torch.zeros(1, 2, 3, device="meta"),
                        max_strength=config.max_strength, signed=False, subtract=True, constant=False)


def test_without_a_compiler_the_reason_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("SPIKECONV_CACHE", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="no-such-cc.*does not run.*PyTorch path"):
        build = native_build_module.native_build.__wrapped__()
    assert not build.available and "does not run" in build.reason


def test_a_compiler_that_fails_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "false")  # runs, prints nothing, exits 1
    monkeypatch.setenv("SPIKECONV_CACHE", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="could not build kernels.c"):
        build = native_build_module.native_build.__wrapped__()
    assert not build.available
    assert not list((tmp_path / "kernels").iterdir())  # no half-written library left behind


def test_native_can_be_switched_off_silently(monkeypatch):
    monkeypatch.setenv("SPIKECONV_NATIVE", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build = native_build_module.native_build.__wrapped__()
    assert not build.available and "SPIKECONV_NATIVE=0" in build.reason


def _torch_span(x):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sparse, "frame_span", lambda rows: None)  # PyTorch's reductions
        return sparse.active_span(x)


@needs_native
@settings(max_examples=60, deadline=None)
@given(frames=st.integers(1, 12), dtype=st.sampled_from([torch.int8, torch.float32, torch.float16]),
       live=st.lists(st.integers(0, 11), max_size=4), negative_zero=st.booleans(), channels_last=st.booleans(),
       seed=st.integers(0, 99))
def test_frame_span_equals_the_reductions(frames, dtype, live, negative_zero, channels_last, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.zeros(frames, 3, 5, 4, dtype=dtype)
    if negative_zero and dtype is not torch.int8:
        x.fill_(-0.0)  # -0.0 is silent, as for max != 0 or min != 0
    for frame in (f for f in live if f < frames):
        index = tuple(int(torch.randint(0, size, (), generator=generator)) for size in x.shape[1:])
        x[(frame, *index)] = -1 if seed % 2 else 2
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    rows = sparse._frames(x)
    assert native.frame_span(rows) == _torch_span(x)
    assert sparse.active_span(x) == _torch_span(x)


@needs_native
def test_frame_span_reads_only_dense_cpu_rows_it_knows():
    assert native.frame_span(torch.zeros(4, 6)[:, ::2]) is None  # rows not contiguous
    assert native.frame_span(torch.zeros(4, 6, dtype=torch.float64)) is None
    assert native.frame_span(torch.zeros(4, 6, device="meta")) is None
    assert native.frame_span(torch.zeros(4, 6)) == (0, 0)


def test_without_the_c_kernels_the_engine_takes_the_eager_scan(monkeypatch):
    from spikeconv import simulate
    from spikeconv.neuron import IFNeuron, fused
    from spikeconv.sim import engine
    net = torch.nn.Sequential(IFNeuron(NeuronConfig()))
    expected = simulate(net, torch.tensor([[0.75, 0.3]]), timesteps=4)
    monkeypatch.setattr(engine, "native_available", lambda: False)
    assert scan_kernel_for(torch.device("cpu")) is None
    with monkeypatch.context() as patch:
        patch.setattr(fused, "native_launch", None)  # would raise if called
        assert torch.equal(simulate(net, torch.tensor([[0.75, 0.3]]), timesteps=4), expected)


@needs_native
def test_a_corrupt_cached_library_is_rebuilt(tmp_path):
    # in a fresh process: this one may have the library mapped already (dlopen matches loaded paths by name)
    import os
    import subprocess
    import sys

    script = ("import warnings; warnings.simplefilter('error'); from spikeconv.native import native_build; "
              "b = native_build(); print(b.available, b.path)")
    env = {**os.environ, "SPIKECONV_CACHE": str(tmp_path)}
    first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert first.stdout.startswith("True"), first.stderr[-2000:]
    path = Path(first.stdout.split()[1])
    path.write_bytes(b"not a shared library")
    again = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert again.stdout.split() == ["True", str(path)], again.stderr[-2000:]
    assert path.stat().st_size > 1000  # rebuilt in place


def test_an_unwritable_cache_is_reported(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should be")
    monkeypatch.setenv("SPIKECONV_CACHE", str(blocker))
    if native_build_module.compiler() is None:
        pytest.skip("no C compiler: the build stops before the cache")
    with pytest.warns(RuntimeWarning, match="SPIKECONV_CACHE"):
        build = native_build_module.native_build.__wrapped__()
    assert not build.available


def test_the_c_source_ships_with_the_package():
    # a wheel carries kernels.c only if package-data names it for the package that holds it
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"][native.__name__]
    assert any(native_build_module.SOURCE.match(pattern) for pattern in patterns)


@needs_native
@settings(max_examples=20, deadline=None)
@given(channels=st.integers(1, 40), side=st.integers(1, 9), count=st.integers(1, 6), bias=st.booleans(),
       seed=st.integers(0, 99))
def test_rescale_equals_the_pytorch_epilogue(channels, side, count, bias, seed):
    generator = torch.Generator().manual_seed(seed)
    total = torch.randint(-3000, 3000, (count, channels, side, side), generator=generator).float()
    total = total.contiguous(memory_format=torch.channels_last)
    offset = torch.randint(-300, 300, (1, channels, side, side), generator=generator).float()
    offset = offset.contiguous(memory_format=torch.channels_last)
    scale = torch.rand(channels, generator=generator) * 0.01
    shift = torch.randn(channels, generator=generator) if bias else None
    expected = total.clone().sub_(offset).mul_(scale.view(1, -1, 1, 1))
    if bias:
        expected.add_(shift.view(1, -1, 1, 1))
    assert native.rescale_(total, offset, scale, shift)
    assert torch.equal(total, expected)


@needs_native
def test_rescale_and_offset_refuse_what_they_cannot_read():
    total = torch.zeros(2, 3, 4, 4)  # NCHW: the C epilogue reads NHWC only
    assert not native.rescale_(total, torch.zeros(1, 3, 4, 4).contiguous(memory_format=torch.channels_last),
                               torch.ones(3), None)
    assert native.offset_bytes(torch.zeros(4, 6, dtype=torch.int8)[:, ::2], 128) is None
    assert native.offset_bytes(torch.zeros(4, dtype=torch.int32), 128) is None
    spikes = torch.arange(-128, 128, dtype=torch.int8).view(4, 4, 4, 4).contiguous(memory_format=torch.channels_last)
    assert torch.equal(native.offset_bytes(spikes, 128), spikes.view(torch.uint8) ^ 128)
    assert torch.equal(native.offset_bytes(spikes, 2), (spikes + 2).view(torch.uint8))  # wraps like int8


@needs_native
@pytest.mark.parametrize("side", [4, 17])  # the shifted path (small maps) and the kernel's zero point
def test_signed_integer_conv_is_the_same_with_and_without_the_c_helpers(side, monkeypatch):
    from spikeconv.layers import integer
    conv = integer.IntegerConv2d.from_layer(torch.nn.Conv2d(16, 24, 3, padding=1), bits=8, input_signed=True,
                                            spike_bound=2)
    spikes = torch.randint(-2, 3, (6, 16, side, side), dtype=torch.int8,
                           generator=torch.Generator().manual_seed(side))
    spikes = spikes.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        with_c = conv(spikes)
        monkeypatch.setattr(integer, "offset_bytes", lambda x, add: None)
        monkeypatch.setattr(integer, "rescale_", lambda *args: False)
        without = conv(spikes)
    assert conv._path(spikes) == ("shifted" if side == 4 else "kernel")
    assert torch.equal(with_c, without)
