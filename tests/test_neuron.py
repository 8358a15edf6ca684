"""The neuron semantics of papers 000 and 004, pinned exactly (inputs are dyadic, so float math is exact)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeconv.neuron import (
    NeuronConfig,
    Reset,
    adjust_strength,
    if_init,
    if_scan,
    if_scan_constant,
    if_step,
)

THRESHOLDS = st.sampled_from([0.5, 1.0, 2.0, 0.75])
dyadic = st.integers(-256, 256).map(lambda k: k / 64)


def run_constant(z: float, steps: int, config: NeuronConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Spike train and membrane trace for a constant input ``z`` (float64, one neuron)."""
    x = torch.tensor([z], dtype=torch.float64)
    state = if_init(x, config)
    spikes, membranes = [], []
    for _ in range(steps):
        s, state = if_step(x, state, config)
        spikes.append(float(s))
        membranes.append(float(state.v))
    return torch.tensor(spikes, dtype=torch.float64), torch.tensor(membranes, dtype=torch.float64)


def reference_neuron(xs: list[float], config: NeuronConfig) -> list[float]:
    """Algorithm 2 with Eq. 2-3 and 12, written literally for one scalar neuron (independent of the library)."""
    th, smax = config.threshold, config.max_strength

    def a(x: float) -> float:
        return 0.0 if x < 1 else float(2 ** math.floor(math.log2(min(x, smax))))

    v, vb, out = config.phi * th, 0.0, []
    for x in xs:
        vp = v + x
        if vp >= th:
            s = a(math.floor(vp / th))
        elif config.signed and vp < 0 and vb >= th:
            s = -a(min(math.ceil(-vp / th), math.floor(vb / th)))
        else:
            s = 0.0
        if config.signed:
            vb += th * s
        v = vp - th * s if config.reset is Reset.SUBTRACT else (0.0 if s != 0 else vp)
        out.append(s)
    return out


@given(k=st.integers(-64, 64), steps=st.integers(1, 40), th=THRESHOLDS)
def test_constant_input_count_is_floor_eq11(k, steps, th):
    """Eq. 11: constant input V_a/T per step (0 <= input <= V_th) gives floor(max(V_a/V_th, 0)) spikes."""
    z = k / 64 * th
    spikes, _ = run_constant(z, steps, NeuronConfig(threshold=th))
    assert spikes.sum().item() == math.floor(max(steps * z / th, 0))


@given(k=st.integers(-64, 64), steps=st.integers(1, 40), th=THRESHOLDS)
def test_phi_half_rounds_instead_of_floor(k, steps, th):
    z = k / 64 * th
    spikes, _ = run_constant(z, steps, NeuronConfig(threshold=th, phi=0.5))
    assert spikes.sum().item() == max(0, math.floor(steps * z / th + 0.5))


@given(k=st.integers(0, 64), steps=st.integers(1, 50), th=THRESHOLDS)
def test_reset_by_subtraction_rate_eq_s11(k, steps, th):
    """Paper 004 Eq. S11: r(t) = a r_max - (V(t) - V(0)) / (V_th t), exactly, at every t (r_max = 1)."""
    a = k / 64
    spikes, v = run_constant(a * th, steps, NeuronConfig(threshold=th))
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    # S11 multiplied by V_th * t, so that every term is an exact dyadic number: N(t) V_th = a V_th t - V(t)
    assert torch.equal(spikes.cumsum(0) * th, a * th * t - v)


@given(k=st.integers(1, 64), steps=st.integers(1, 50), th=THRESHOLDS)
def test_reset_to_zero_rate_eq_s9(k, steps, th):
    """Paper 004 Eq. S9: r(t) = a V_th/(V_th + eps) - V(t) / (t (V_th + eps)), eps = n z - V_th."""
    a = k / 64
    z = a * th
    spikes, v = run_constant(z, steps, NeuronConfig(threshold=th, reset=Reset.ZERO))
    n = math.ceil(th / z)
    eps = n * z - th
    t = torch.arange(1, steps + 1, dtype=torch.float64)
    expected = a * th / (th + eps) - v / (t * (th + eps))
    assert torch.allclose(spikes.cumsum(0) / t, expected, rtol=0, atol=1e-12)
    # and the classic consequence: the rate is quantised to 1/n, below a whenever eps > 0
    assert spikes.sum().item() == (steps // n)


def test_overfire_example_is_corrected_by_the_buffered_neuron():
    """Two early strong inputs then a strong negative one: V_a = 0.5 V_th, ideal count 0 (Eq. 11)."""
    xs = [1.0, 1.0, -1.5, 0.0, 0.0]
    plain = reference_neuron(xs, NeuronConfig(signed=False))
    buffered = reference_neuron(xs, NeuronConfig(signed=True))
    assert sum(plain) == 2  # over-fire: 2 > floor(0.5) = 0
    assert sum(buffered) == 0
    assert buffered[:4] == [1.0, 1.0, -1.0, -1.0]


@settings(max_examples=200)
@given(xs=st.lists(dyadic, min_size=1, max_size=24), th=THRESHOLDS, smax=st.sampled_from([1, 2, 4]))
def test_buffered_neuron_ends_at_the_ideal_count_eq14_20(xs, th, smax):
    """After an arbitrary input sequence plus enough silent steps, the buffered neuron's count is exactly
    floor(max(V_a/V_th, 0)); the plain IF neuron's count is never below it (it can only over-fire)."""
    xs = [x * th for x in xs]
    silent = len(xs) + int(sum(abs(x) for x in xs) / th) + 4
    seq = torch.tensor(xs + [0.0] * silent, dtype=torch.float64).unsqueeze(1)
    ideal = math.floor(max(sum(xs) / th, 0))
    cfg_b = NeuronConfig(threshold=th, signed=True, max_strength=smax)
    cfg_p = NeuronConfig(threshold=th, signed=False, max_strength=smax)
    buffered, _ = if_scan(seq, if_init(seq[0], cfg_b), cfg_b)
    plain, _ = if_scan(seq, if_init(seq[0], cfg_p), cfg_p)
    assert buffered.sum().item() == ideal
    assert plain.sum().item() >= ideal


@settings(max_examples=200)
@given(
    xs=st.lists(dyadic, min_size=1, max_size=30),
    th=THRESHOLDS,
    smax=st.sampled_from([1, 2, 4, 8]),
    signed=st.booleans(),
    reset=st.sampled_from(list(Reset)),
    phi=st.sampled_from([0.0, 0.5]),
)
def test_vectorised_step_matches_the_literal_algorithm(xs, th, smax, signed, reset, phi):
    """if_step equals a scalar transcription of Algorithm 2 / Eq. 2, 3, 12 for every option."""
    cfg = NeuronConfig(threshold=th, max_strength=smax, signed=signed, reset=reset, phi=phi)
    seq = torch.tensor([x * th for x in xs], dtype=torch.float64).unsqueeze(1)
    spikes, _ = if_scan(seq, if_init(seq[0], cfg), cfg)
    assert spikes.squeeze(1).tolist() == reference_neuron([x * th for x in xs], cfg)


@given(k=st.integers(0, 128), steps=st.integers(1, 24), smax=st.sampled_from([1, 2]), th=THRESHOLDS)
def test_multibit_equals_single_bit_over_longer_time_table1(k, steps, smax, th):
    """Table 1's equal representation power: S^max over T steps == single-bit over T*S^max steps
    (constant input, 0 <= input <= S^max V_th per multi-bit step)."""
    z = k / 128 * smax * th
    multi = NeuronConfig(threshold=th, max_strength=smax)
    single = NeuronConfig(threshold=th)
    x = torch.tensor([z], dtype=torch.float64)
    s_multi, _ = if_scan_constant(x, steps, if_init(x, multi), multi)
    s_single, _ = if_scan_constant(x / smax, steps * smax, if_init(x, single), single)
    assert s_multi.sum().item() == s_single.sum().item() == math.floor(steps * z / th)


@given(k=st.integers(0, 128), steps=st.integers(1, 24))
def test_smax4_loses_at_most_the_last_step_residual(k, steps):
    """With S^max = 4 the power-of-two strengths (A(3) = 2) can leave charge unspent at T: the count
    falls short of the single-bit one over 4T steps by at most 1 (a strength-3 step emitted as 2)."""
    z = k / 128 * 4
    cfg = NeuronConfig(max_strength=4)
    x = torch.tensor([z], dtype=torch.float64)
    s_multi, _ = if_scan_constant(x, steps, if_init(x, cfg), cfg)
    ideal = math.floor(steps * z)
    assert ideal - 1 <= s_multi.sum().item() <= ideal


def test_adjust_function_eq3():
    x = torch.tensor([0.0, 1, 2, 3, 4, 5, 7, 8, 100])
    assert adjust_strength(x, 1).tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 1]
    assert adjust_strength(x, 4).tolist() == [0, 1, 2, 2, 4, 4, 4, 4, 4]
    assert adjust_strength(x, 8).tolist() == [0, 1, 2, 2, 4, 4, 4, 8, 8]


@pytest.mark.parametrize("bad", [0, 3, 6, -2, 2.0, True])
def test_max_strength_must_be_a_power_of_two(bad):
    with pytest.raises(ValueError, match="power of two"):
        NeuronConfig(max_strength=bad)


@pytest.mark.parametrize("kwargs", [{"threshold": 0}, {"threshold": float("nan")}, {"phi": 1.0}, {"reset": "leak"}])
def test_bad_neuron_options_raise(kwargs):
    with pytest.raises(ValueError):
        NeuronConfig(**kwargs)


@settings(max_examples=100)
@given(xs=st.lists(dyadic, min_size=1, max_size=30), smax=st.sampled_from([1, 2, 4]),
       reset=st.sampled_from(list(Reset)), phi=st.sampled_from([0.0, 0.5]))
def test_negated_buffer_scan_equals_the_plain_scan(xs, smax, reset, phi):
    """The engine's -V^b representation (threshold 1) gives the same spikes and membrane, and -V^b."""
    from spikeconv.neuron import if_scan_

    cfg = NeuronConfig(threshold=1.0, max_strength=smax, signed=True, reset=reset, phi=phi)
    seq = torch.tensor(xs, dtype=torch.float64).unsqueeze(1)
    plain, negated = if_init(seq[0], cfg), if_init(seq[0], cfg)
    a = if_scan_(seq, plain, cfg)
    b = if_scan_(seq, negated, cfg, negated_buffer=True)
    assert torch.equal(a, b) and torch.equal(plain.v, negated.v) and torch.equal(plain.buffer, -negated.buffer)


def test_scratch_pool_is_keyed_by_shape_and_layout_and_shared_by_a_run():
    """Scratch tensors are reused per (index, shape, layout, dtype); a run's neurons share one pool, so it
    holds one set per distinct shape (memory), not one per neuron."""
    from torch import nn

    from spikeconv.neuron import IFNeuron
    from spikeconv.neuron.functional import _scratch
    from spikeconv.sim.engine import neuron_runs

    pool: dict = {}
    a = torch.zeros(2, 3, 4, 4)
    first = _scratch(pool, 2, a)
    assert _scratch(pool, 2, torch.ones(2, 3, 4, 4)) is first and _scratch(pool, 0, a) is not first
    other_layout = _scratch(pool, 2, a.contiguous(memory_format=torch.channels_last))
    assert other_layout is not first and other_layout.is_contiguous(memory_format=torch.channels_last)
    assert len(pool) == 3 and _scratch(None, 2, a) is not first
    net = nn.Sequential(IFNeuron(), IFNeuron(spike_dtype=torch.int8), IFNeuron())
    with neuron_runs(net, batch=2) as runs:
        assert all(run.work is runs[0].work for run in runs)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**16), smax=st.sampled_from([1, 2, 4, 8]), reset=st.sampled_from(list(Reset)),
       phi=st.sampled_from([0.0, 0.5]), int8_out=st.booleans(), scale=st.sampled_from([0.5, 2.0, 8.0]))
def test_int8_buffer_equals_the_float_buffer(seed, smax, reset, phi, int8_out, scale):
    """A buffered neuron keeping -V^b in int8 (engines do when the run fits) sends the same spikes and ends
    with the same membrane and the same -V^b as with a float buffer, over the longest run that fits."""
    from spikeconv.neuron import compact_buffer_fits, if_scan_
    from spikeconv.neuron.config import INT8_BUFFER_LIMIT

    cfg = NeuronConfig(threshold=1.0, max_strength=smax, signed=True, reset=reset, phi=phi)
    steps = INT8_BUFFER_LIMIT // smax
    assert compact_buffer_fits(cfg, steps) and not compact_buffer_fits(cfg, steps + 1)
    gen = torch.Generator().manual_seed(seed)
    half = steps // 2
    seq = torch.randn(steps, 64, generator=gen) * scale
    seq[:half] += smax  # V^b climbs towards the int8 bound, then the current turns negative
    seq[half:] -= 0.9 * smax
    wide, compact = if_init(seq[0], cfg), if_init(seq[0], cfg, buffer_dtype=torch.int8)
    dtype = torch.int8 if int8_out else None
    for k, part in enumerate((seq[:half], seq[half:])):
        a = if_scan_(part, wide, cfg, negated_buffer=True, spike_dtype=dtype, work={})
        b = if_scan_(part, compact, cfg, negated_buffer=True, spike_dtype=dtype, work={})
        assert b.dtype == (torch.int8 if int8_out else torch.float32)
        assert torch.equal(a, b) and torch.equal(wide.v, compact.v)
        assert compact.buffer.dtype == torch.int8 and torch.equal(wide.buffer, compact.buffer.float())
        if k == 0:  # V^b came near the int8 bound
            assert int(-compact.buffer.min()) >= half * smax // 4
    assert (b < 0).any()  # negative spikes were sent and bounded by the int8 buffer


def test_int8_buffer_options_are_checked():
    from spikeconv.neuron import if_scan_

    x = torch.zeros(3)
    with pytest.raises(ValueError, match="signed"):
        if_init(x, NeuronConfig(), buffer_dtype=torch.int8)
    with pytest.raises(ValueError, match="threshold 1"):
        if_init(x, NeuronConfig(threshold=0.5, signed=True), buffer_dtype=torch.int8)
    with pytest.raises(ValueError, match="buffer_dtype"):
        if_init(x, NeuronConfig(signed=True), buffer_dtype=torch.int16)
    cfg = NeuronConfig(signed=True)
    with pytest.raises(ValueError, match="negated"):
        if_scan_(x.unsqueeze(0), if_init(x, cfg, buffer_dtype=torch.int8), cfg)


def test_engine_widens_the_int8_buffer_before_it_could_overflow():
    """simulate() keeps -V^b in int8 while steps * S^max <= 127 and widens it to float32 before the first
    chunk that could pass that bound: here V^b climbs by 2 a step to 154 (int8 would wrap at 128), then
    negative spikes draw on it; step order, chunks straddling the bound and a float32 buffer from the
    start all give the same readout. Without compact_state (hand-driven runs) the buffer is float32."""
    from unittest import mock

    from torch import nn

    from spikeconv.neuron import IFNeuron
    from spikeconv.sim import neuron_runs, simulate

    cfg = NeuronConfig(max_strength=2, signed=True)
    net = nn.Sequential(IFNeuron(cfg))
    dtypes = []
    net[0].register_forward_hook(lambda m, i, o: dtypes.append(m._run.state.buffer.dtype))
    frames = torch.cat([torch.full((70, 1, 3), 2.5), torch.full((30, 1, 3), -3.0)])  # [T, B, features]
    stepwise = simulate(net, frames, 100, sequence=True, order="step")
    assert dtypes[:63] == [torch.int8] * 63 and dtypes[63:] == [torch.float32] * 37
    dtypes.clear()
    chunked = simulate(net, frames, 100, sequence=True, order="layer", chunk=10)
    assert dtypes[:6] == [torch.int8] * 6 and dtypes[6:] == [torch.float32] * 4  # widened before steps 60-69
    with mock.patch("spikeconv.neuron.modules.compact_buffer_fits", lambda config, steps: False):
        wide = simulate(net, frames, 100, sequence=True, order="step")
    assert torch.equal(stepwise, wide) and torch.equal(chunked, wide)
    # 140 units out by step 70, 154 at the peak (int8 would have wrapped), 108 left after the negative spikes
    assert bool((stepwise[69] == 2.0).all()) and torch.equal((stepwise[-1] * 100).round(), torch.full((1, 3), 108.0))
    dtypes.clear()
    with torch.no_grad(), neuron_runs(net, batch=1) as runs:
        net(frames[0])
    assert dtypes == [torch.float32] and not runs[0].compact_state
