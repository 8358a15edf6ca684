"""A fused scan against the eager scan for every case it supports. The Triton scan: run by tests/test_fused.py
in a subprocess with TRITON_INTERPRET=1 (interpreted on the CPU), and by tests/test_cuda.py as ``main("cuda")``
(compiled); the C scan: ``main(backend="native")`` in tests/test_native.py. Prints one line per mismatch;
returns (exits with) 1 on any."""

import itertools
import sys

import torch

from spikeconv.neuron import NeuronConfig, if_init
from spikeconv.neuron.functional import _scan_steps_
from spikeconv.neuron.fused import fused_supported, native_scan_, triton_scan_


def currents(shape, steps, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((steps, *shape), generator=generator) * 1.5
    exact = torch.randint(-3, 5, (steps, *shape), generator=generator).float()  # lands V' on integers
    pick = torch.rand((steps, *shape), generator=generator) < 0.3
    return torch.where(pick, exact, x)


def main(device: str = "cpu", backend: str = "triton") -> int:
    bad = 0
    cases = itertools.product([False, True], [1, 2, 4, 8, 64], ["subtract", "zero"], [torch.int8, torch.float32],
                              [torch.int8, torch.float32], [False, True], [False, True])
    for seed, (signed, smax, reset, spike_dtype, buffer_dtype, constant, channels_last) in enumerate(cases):
        if buffer_dtype is torch.int8 and (not signed or 6 * smax > 127):  # int8 -V^b: while it fits
            continue
        if device != "cpu" and seed % 3:  # a third of the cases on a GPU: each new signature compiles (~1 s)
            continue
        config = NeuronConfig(max_strength=smax, signed=signed, reset=reset)
        shape, steps = (3, 5, 4, 6), 6
        x = currents(shape, steps, seed) * max(1, smax // 4)  # strengths up to S^max
        if channels_last:
            x = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).view(steps, *shape)
        x = (x[0] if constant else x).to(device)
        like = x if constant else x[0]
        results = []
        for run in ("eager", "fused"):
            state = if_init(like, config, buffer_dtype=torch.int8 if signed and buffer_dtype is torch.int8 else None)
            state.v.copy_(torch.rand(shape, generator=torch.Generator().manual_seed(seed)) * 0.9)
            spikes = torch.empty((steps * shape[0], *shape[1:]), dtype=spike_dtype, device=device,
                                 memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            spikes = spikes.view(steps, *shape)
            args = (x, state.v, state.buffer, spikes, config)
            if run == "eager":
                _scan_steps_(*args, None, signed, constant)
            else:
                if not fused_supported(*args, signed, constant):
                    print("not supported:", config, spike_dtype, buffer_dtype, constant, channels_last)
                    bad += 1
                    break
                {"triton": triton_scan_, "native": native_scan_}[backend](*args, signed, constant)
            results.append((spikes, state.v, state.buffer))
        if len(results) == 2:
            (s0, v0, b0), (s1, v1, b1) = results
            same = torch.equal(s0, s1) and torch.equal(v0, v1) and (b0 is None or torch.equal(b0, b1))
            if not same:
                print("mismatch:", config, spike_dtype, buffer_dtype, constant, channels_last)
                bad += 1
    bad += networks(device, backend)
    print(f"checked, {bad} failing")
    return 1 if bad else 0


def networks(device: str, backend: str) -> int:
    """Converted networks simulated with the fused scan forced on against the eager scan; every neuron layer
    of these nets must take the fused path, not the eager fallback."""
    from unittest import mock

    from helpers import tiny_resnet
    from spikeconv import ConversionConfig, convert, simulate
    from spikeconv.neuron import fused

    launch_name, kernel = ("_launch", fused.fused_scan_kernel) if backend == "triton" else \
        ("native_launch", fused.native_scan_kernel)
    bad = 0
    model, x = tiny_resnet()
    for config in (dict(), dict(max_strength=4), dict(signed=False, reset="zero"), dict(weight_bits=8)):
        snn = convert(model, x, ConversionConfig(**config)).to(device)
        inputs = x.to(device)
        eager = simulate(snn, inputs, 6, fused=False)
        calls = {"fused": 0, "eager": 0}
        real = getattr(fused, launch_name)

        def counted(*args):
            calls["fused"] += 1
            return real(*args)

        def fallback(*args):
            calls["eager"] += 1
            return _scan_steps_(*args)
        with mock.patch.object(fused, launch_name, counted), mock.patch.object(fused, "_scan_steps_", fallback), \
                mock.patch("spikeconv.sim.engine.scan_kernel_for", lambda device, kernel_="auto": kernel):
            out = simulate(snn, inputs, 6, order="layer", chunk=4)
        if not torch.equal(out, eager) or calls["eager"] or not calls["fused"]:
            print("network mismatch or fallback:", config, calls, torch.equal(out, eager))
            bad += 1
    return bad


if __name__ == "__main__":
    sys.exit(main())
