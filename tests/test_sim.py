"""The engine: execution orders, chunking and the compiled neuron step are bit-identical; readout after every t; input checks."""

import pytest
import torch
from helpers import dyadic, on_grid_, tiny_resnet
from torch import nn

from spikeconv import ConversionConfig, IFNeuron, NeuronConfig, convert, simulate


@pytest.mark.exactness
@pytest.mark.parametrize("signed,max_strength", [(False, 1), (True, 1), (True, 2)])
def test_layer_step_and_chunked_orders_are_bit_identical_on_a_residual_net(signed, max_strength):
    model, x = tiny_resnet()
    snn = on_grid_(convert(model, x, ConversionConfig(signed=signed, max_strength=max_strength)))
    spikes = {}

    def record(key):
        store = spikes.setdefault(key, {})
        return [n.register_forward_hook(lambda m, i, o, name=name: store.setdefault(name, []).append(o.clone()))
                for name, n in snn.neurons()]

    results = {}
    orders = {"layer": {"order": "layer"}, "step": {"order": "step"}, "chunk3": {"order": "layer", "chunk": 3},
              "auto": {}, "compiled": {"order": "step", "compile": True},
              "compiled3": {"order": "layer", "chunk": 3, "compile": True}}
    for key, kwargs in orders.items():
        handles = record(key)
        results[key] = simulate(snn, x, 10, **kwargs)
        for h in handles:
            h.remove()
    for key in orders:
        assert torch.equal(results["layer"], results[key]), key
    for name in spikes["layer"]:
        full = torch.cat(spikes["layer"][name])
        for key in orders:
            assert torch.equal(full, torch.cat(spikes[key][name])), (key, name)


@pytest.mark.exactness
def test_constant_input_shortcut_equals_an_explicit_sequence():
    model, x = tiny_resnet()
    snn = on_grid_(convert(model, x))
    constant = simulate(snn, x, 6)
    explicit = simulate(snn, x.unsqueeze(0).expand(6, *x.shape).contiguous(), 6, sequence=True)
    assert torch.equal(constant, explicit)


def test_readout_is_the_running_mean_of_the_output():
    net = nn.Sequential(IFNeuron(NeuronConfig(threshold=1.0)))
    out = simulate(net, torch.tensor([[0.75]]), 4).flatten()
    assert torch.equal(out, torch.tensor([0.0, 1.0, 2.0, 3.0]) / torch.tensor([1.0, 2.0, 3.0, 4.0]))


@pytest.mark.parametrize("timesteps", [0, -1, 2.5, True])
def test_bad_timesteps(timesteps):
    net = nn.Sequential(IFNeuron())
    with pytest.raises(ValueError, match="timesteps"):
        simulate(net, torch.zeros(1, 1), timesteps)


def test_nan_input_is_rejected():
    net = nn.Sequential(IFNeuron())
    with pytest.raises(ValueError, match="NaN"):
        simulate(net, torch.tensor([[float("nan")]]), 2)
    assert net[0]._run is None


@pytest.mark.exactness
def test_memory_budget_limits_the_folded_chunk_and_keeps_the_spikes():
    model, x = tiny_resnet()
    snn = on_grid_(convert(model, x, ConversionConfig(max_strength=2)))
    reference = simulate(snn, x, 8, order="step")
    calls = []
    neuron = next(m for m in snn.modules() if isinstance(m, IFNeuron))
    handle = neuron.register_forward_hook(lambda module, inputs, output: calls.append(output.shape[0]))
    try:
        tight = simulate(snn, x, 8, order="layer", memory_budget=1)
        plans = {"tight": list(calls)}
        calls.clear()
        loose = simulate(snn, x, 8, order="layer", memory_budget=1 << 40)
        plans["loose"] = list(calls)
    finally:
        handle.remove()
    assert torch.equal(tight, reference) and torch.equal(loose, reference)
    batch = x.shape[0]
    assert plans["tight"] == [batch] * 8                  # every step alone
    assert plans["loose"] == [batch, 7 * batch]          # the measured first step, then the other 7 folded
    with pytest.raises(ValueError, match="memory_budget"):
        simulate(snn, x, 4, memory_budget=0)


@pytest.mark.exactness
def test_auto_order_on_cpu_folds_only_within_its_memory_budget():
    """A layer output of 4 MiB a step (8 x 32 x 64 x 64 floats): 16 MiB for input + output allows 2 steps
    at once; 8 MiB a step (twice the batch) allows none, so that run goes step by step."""
    from spikeconv.sim.engine import CPU_AUTO_BUDGET
    assert CPU_AUTO_BUDGET == 16 << 20
    net = on_grid_(nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), IFNeuron()))
    plans = {}
    for batch in (8, 16):
        calls = []
        handle = net[1].register_forward_hook(lambda module, inputs, output: calls.append(output.shape[0] // batch))
        x = dyadic(batch, 3, 64, 64)
        try:
            auto = simulate(net, x, 5)
        finally:
            handle.remove()
        assert torch.equal(auto, simulate(net, x, 5, order="step"))
        plans[batch] = calls
    assert plans[8] == [1, 2, 2]        # the measured first step, then chunks of 2 (64 // 8 = 8 would fold more)
    assert plans[16] == [1, 1, 1, 1, 1]


@pytest.mark.exactness
def test_neurons_reuse_their_output_tensor_only_when_asked_and_no_hook_observes_the_run(monkeypatch):
    import spikeconv.neuron.modules as modules
    model, x = tiny_resnet()
    snn = on_grid_(convert(model, x, ConversionConfig(max_strength=2, voltage_clamp=1)))
    reference = simulate(snn, x, 6, order="step")  # computed first: reuse would not change it anyway
    given = []
    original = modules.if_scan_

    def spy(*args, out=None, **kwargs):
        given.append(out is not None)
        return original(*args, out=out, **kwargs)
    monkeypatch.setattr(modules, "if_scan_", spy)
    neurons = sum(isinstance(m, IFNeuron) for m in snn.modules())
    uses = {}
    for order in ("step", "layer", "auto"):
        given.clear()
        assert torch.equal(simulate(snn, x, 6, order=order, chunk=2 if order == "layer" else None,
                                    reuse_outputs=True), reference)
        uses[order] = list(given)
    assert uses["step"].count(False) == neurons  # only each neuron's first step allocates
    assert any(uses["layer"])  # chunks of 2 after the clamped start
    assert not any(uses["auto"])  # the measured first step, then one chunk of 5: no two chunks alike
    given.clear()
    simulate(snn, x, 6, order="step")
    assert given and not any(given)  # off by default
    kept = []
    handle = snn.neurons()[0][1].register_forward_hook(lambda m, i, o: kept.append(o))
    try:
        given.clear()
        assert torch.equal(simulate(snn, x, 6, order="step", reuse_outputs=True), reference)
    finally:
        handle.remove()
    assert not any(given)
    assert len({t.data_ptr() for t in kept}) == len(kept)  # a hook sees six distinct tensors, none overwritten


def test_compiled_scan_with_int8_spikes_and_integer_layers_equals_eager():
    # the compiled scan returns a spike tensor of its own (int8 here, read by the integer layers)
    model, x = tiny_resnet()
    snn = on_grid_(convert(model, x, ConversionConfig(weight_bits=8, max_strength=2)))
    eager = simulate(snn, x, 9)
    assert torch.equal(simulate(snn, x, 9, compile=True, order="layer", chunk=4), eager)


def test_simulating_an_unconverted_model_is_refused():
    from spikeconv import simulate

    ann = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    with pytest.raises(ValueError, match="no spiking neurons.*convert it first"):
        simulate(ann, torch.rand(2, 3), 4)
