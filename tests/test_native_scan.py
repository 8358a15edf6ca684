"""The operator spikeconv::if_scan_ (spikeconv.neuron.fused): its C kernel bit-identical to the eager scan over
every supported case, multi-threaded sizes and converted networks; the engine's default on the CPU; opcheck;
the C kernel checking its own domain; the eager scan where the kernel is not built; a broken kernel caught."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fused_cases
from spikeconv import native
from spikeconv.native import build as native_build_module
from spikeconv.neuron import NeuronConfig, if_init
from spikeconv.neuron.functional import _scan_steps_
from spikeconv.neuron.fused import native_scan_, native_scan_kernel
from spikeconv.sim.engine import scan_kernel_for

needs_native = pytest.mark.skipif(native.compiler() is None or native.cxx_compiler() is None,
                                  reason="no C and C++ compiler on this machine")
TESTS = Path(__file__).parent


@needs_native
def test_c_scan_equals_eager_scan_in_every_supported_case_and_in_networks():
    assert fused_cases.main(backend="native") == 0


@needs_native
def test_the_case_check_catches_a_broken_kernel(tmp_path):
    # in a fresh process (a kernel registered with the dispatcher stays for the process): the same check against
    # a C scan without the buffer bound max(S, -V^b) must report mismatches
    source = native_build_module.SOURCE.read_text()
    old = "si = si > bound ? si : bound;"
    assert old in source
    (tmp_path / "kernels.c").write_text(source.replace(old, ""))
    (tmp_path / "kernels.h").write_text(native_build_module.HEADER.read_text())
    script = (f"from pathlib import Path; from spikeconv.native import build; "
              f"build.SOURCE = Path({str(tmp_path / 'kernels.c')!r}); import fused_cases; "
              "print('result', fused_cases.main(backend='native'))")
    src = str(TESTS.parent / "src")
    env = {**os.environ, "SPIKECONV_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([src, str(TESTS), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert "result 1" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


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
    assert torch._C._dispatch_has_kernel_for_dispatch_key("spikeconv::if_scan_", "CPU")


def _scan_arguments(signed: bool):
    x = fused_cases.currents((2, 3, 4, 4), 5, 0)
    v = torch.rand(2, 3, 4, 4)
    buffer = torch.zeros(2, 3, 4, 4, dtype=torch.int8) if signed else None
    return x, v, buffer, torch.empty(5, 2, 3, 4, 4, dtype=torch.int8), 2, signed, True, False


@pytest.mark.parametrize("signed", [False, True])
def test_the_operator_passes_opcheck(signed):
    torch.library.opcheck(torch.ops.spikeconv.if_scan_.default, _scan_arguments(signed))


@needs_native
def test_the_c_kernel_checks_its_domain_itself():
    native.native_build()
    x, v, buffer, spikes, *rest = _scan_arguments(True)
    with pytest.raises(RuntimeError, match="-V\\^b buffer"):
        torch.ops.spikeconv.if_scan_(x, v, None, spikes, *rest)
    with pytest.raises(RuntimeError, match="laid out like v"):
        torch.ops.spikeconv.if_scan_(x, v.contiguous(memory_format=torch.channels_last), buffer, spikes, *rest)


def test_without_the_c_kernel_the_engine_takes_the_eager_scan(monkeypatch):
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
