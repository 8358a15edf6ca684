"""The C scan on the CPU (spikeconv.neuron.native): built where a C compiler exists, bit-identical to the eager
scan over every supported case, multi-threaded sizes and converted networks, the engine's default on the
CPU, and a clear reason (plus the eager scan) where it cannot be built."""

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fused_cases
from spikeconv.neuron import NeuronConfig, if_init
from spikeconv.neuron import native
from spikeconv.neuron.functional import _scan_steps_
from spikeconv.neuron.fused import fused_scan_, native_scan_kernel
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
    broken = native.SOURCE.read_text().replace("if (is_signed) s = s > nb[j] ? s : nb[j];", "")
    assert broken != native.SOURCE.read_text()
    (tmp_path / "if_scan.c").write_text(broken)
    monkeypatch.setattr(native, "SOURCE", tmp_path / "if_scan.c")
    monkeypatch.setenv("SPIKECONV_CACHE", str(tmp_path / "cache"))
    native.native_build.cache_clear()
    try:
        assert native.native_build().available
        assert fused_cases.main(backend="native") == 1
    finally:
        native.native_build.cache_clear()


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
            fused_scan_(x, state.v, state.buffer, spikes, config, signed, False, backend="native")
        results.append((spikes, state.v, state.buffer))
    (s0, v0, b0), (s1, v1, b1) = results
    assert torch.equal(s0, s1) and torch.equal(v0, v1)
    assert b0 is None or torch.equal(b0, b1)


@needs_native
def test_the_engine_runs_the_c_scan_on_the_cpu_by_default():
    assert scan_kernel_for(torch.device("cpu")) is native_scan_kernel
    assert scan_kernel_for(torch.device("cpu"), fused=True) is native_scan_kernel
    assert scan_kernel_for(torch.device("cpu"), fused=False) is None


def test_the_c_scan_refuses_tensors_off_the_cpu():
    config = NeuronConfig()
    v = torch.zeros(2, 3, device="meta")
    with pytest.raises(ValueError, match="CPU tensors"):
        native.native_launch(torch.zeros(1, 2, 3, device="meta"), v, None, torch.zeros(1, 2, 3, device="meta"),
                             config, False)


def test_without_a_compiler_the_reason_is_given_and_the_eager_scan_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("SPIKECONV_CACHE", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="no-such-cc.*does not run.*eager scan"):
        build = native.native_build.__wrapped__()
    assert not build.available and "does not run" in build.reason


def test_a_compiler_that_fails_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "false")  # runs, prints nothing, exits 1
    monkeypatch.setenv("SPIKECONV_CACHE", str(tmp_path))
    with pytest.warns(RuntimeWarning, match="could not build if_scan.c"):
        build = native.native_build.__wrapped__()
    assert not build.available
    assert not list((tmp_path / "kernels").iterdir())  # no half-written library left behind


def test_native_can_be_switched_off_silently(monkeypatch):
    monkeypatch.setenv("SPIKECONV_NATIVE", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build = native.native_build.__wrapped__()
    assert not build.available and "SPIKECONV_NATIVE=0" in build.reason
