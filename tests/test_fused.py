"""The fused Triton scan (spikeconv.neuron.fused): bit-identical to the eager scan, run through Triton's
interpreter on the CPU (tests/fused_cases.py, in a subprocess: the interpreter is chosen when Triton
compiles a kernel, from the environment); which scans it takes; the engine's choice of kernel."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spikeconv.neuron import NeuronConfig, if_init
from spikeconv.neuron.fused import fused_scan_kernel, fused_supported, native_scan_, triton_scan_
from spikeconv.sim.engine import scan_kernel_for


def test_fused_scan_interpreted_equals_eager_scan():
    pytest.importorskip("triton")
    script = Path(__file__).with_name("fused_cases.py")
    src = str(Path(__file__).parents[1] / "src")
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "checked, 0 failing" in done.stdout


def _scan_args(config, spike_dtype=torch.int8, shape=(2, 3, 4, 4), steps=5):
    x = torch.randn(steps, *shape)
    state = if_init(x[0], config)
    return x, state.v, state.buffer, torch.empty(steps, *shape, dtype=spike_dtype), config


@pytest.mark.parametrize("config,negated,supported", [
    (NeuronConfig(), False, True),
    (NeuronConfig(max_strength=4, signed=True), True, True),
    (NeuronConfig(max_strength=4, signed=True), False, False),  # the fused scan keeps -V^b only
    (NeuronConfig(threshold=0.5), False, False),
])
def test_fused_supported_cases(config, negated, supported):
    assert fused_supported(*_scan_args(config), negated, False) is supported


def test_fused_needs_equal_layouts_and_float32():
    config = NeuronConfig()
    x, v, buffer, spikes, _ = _scan_args(config)
    assert not fused_supported(x.half(), v, buffer, spikes, config, False, False)
    assert not fused_supported(x, v, buffer, spikes.to(torch.int16), config, False, False)
    channels_last = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).view(x.shape)
    assert not fused_supported(channels_last, v, buffer, spikes, config, False, False)  # v is contiguous
    assert not fused_supported(x[:3], v, buffer, spikes, config, False, False)  # fewer currents than steps
    for scan in (triton_scan_, native_scan_):
        with pytest.raises(ValueError, match="eager scan"):
            scan(x, v, buffer, spikes, NeuronConfig(threshold=0.5), False, False)


def test_the_engine_runs_triton_only_on_cuda_and_when_asked():
    assert scan_kernel_for(torch.device("cpu"), "native") is not fused_scan_kernel  # the C scan there
    assert scan_kernel_for(torch.device("cuda")) is None
    with pytest.raises(ValueError, match="CUDA"):
        scan_kernel_for(torch.device("cpu"), "triton")


@pytest.mark.parametrize("spikes,buffer,signed,max_strength,subtract", [
    ("*i8", "*i8", True, 2, True), ("*fp32", "*fp32", False, 1, False), ("*i8", "*fp32", True, 64, False)])
def test_fused_kernel_compiles_for_hopper_with_exact_arithmetic(spikes, buffer, signed, max_strength, subtract):
    # ahead-of-time compilation for an H100/H200 (sm_90), no GPU needed: the kernel must build, and its PTX
    # must neither flush denormals (.ftz: floor(-1e-40) would give 0, not -1) nor fuse a multiply-add (fma)
    triton = pytest.importorskip("triton")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from spikeconv.neuron.fused import BLOCK, _kernel
    _, kernel = _kernel()
    types = {"x_ptr": "*fp32", "v_ptr": "*fp32", "nb_ptr": buffer, "out_ptr": spikes, "n": "i32", "steps": "i32",
             "x_step": "i32", "out_step": "i32"}
    constants = {"LOWER": -max_strength if signed else 0, "SMAX": max_strength, "SIGNED": signed,
                 "SUBTRACT": subtract, "BLOCK": BLOCK}
    source = ASTSource(fn=kernel, signature={**types, **{name: "constexpr" for name in constants}},
                       constexprs={(kernel.arg_names.index(name),): value for name, value in constants.items()})
    ptx = triton.compile(source, target=GPUTarget("cuda", 90, 32)).asm["ptx"]
    assert "cvt.rzi.s32.f32" in ptx and "add.f32" in ptx  # the floor by truncation; the one float addition
    assert ".ftz" not in ptx and "fma." not in ptx
