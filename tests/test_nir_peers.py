"""NIR graphs across simulators (bench extra: skipped without the peers): a graph written by sinabs loads into
spikeconv and runs as sinabs runs it; spikeconv's export of the shipped MNIST LeNet, with the options plain NIR
represents, runs in norse with the same spikes in every layer (benchmarks/nir_interop.py measures all peers)."""

import warnings

import pytest
import torch

from spikeconv import ConversionConfig, convert, simulate
from spikeconv.analysis import record
from spikeconv.export.nir import from_nir, to_nir


@torch.no_grad()
def test_a_graph_written_by_sinabs_runs_in_spikeconv_as_in_sinabs():
    sinabs = pytest.importorskip("sinabs")
    import sinabs.layers as sl
    from sinabs.activation import MembraneReset, SingleSpike

    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    batch, steps = 4, 6
    # the semantics NIR's IF states (binary spikes, reset to zero); sinabs' default (several spikes a step,
    # reset by subtraction) exports to the same IF node: its exporter drops them (docs/export.md)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3),
                              sl.IAFSqueeze(batch_size=batch, spike_fn=SingleSpike, reset_fn=MembraneReset()),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    graph = sinabs.to_nir(net, torch.rand(batch * steps, 1, 8, 8))
    x = torch.rand(batch, 1, 8, 8) * 2
    spikes = []
    handle = net[1].register_forward_hook(lambda module, inputs, output: spikes.append(output))
    net[1].reset_states()  # to_nir ran the network on its sample: start from rest, as spikeconv does
    theirs = net(x.unsqueeze(1).expand(batch, steps, *x.shape[1:]).flatten(0, 1)).view(batch, steps, 5)
    handle.remove()
    snn = from_nir(graph)
    with record(snn) as recording:
        ours = simulate(snn, x, steps, order="step")
    their_spikes = spikes[0].view(batch, steps, -1).transpose(0, 1)
    assert torch.equal(next(iter(recording.values())).spikes.reshape(their_spikes.shape), their_spikes)
    running = theirs.transpose(0, 1).cumsum(0) / torch.arange(1, steps + 1).view(steps, 1, 1)
    torch.testing.assert_close(ours, running, rtol=1e-6, atol=1e-6)


@torch.no_grad()
def test_norse_runs_spikeconvs_export_with_the_same_spikes(data_available):
    norse = pytest.importorskip("norse.torch")
    from conftest import CHECKPOINTS
    from spikeconv.data import make_dataset, make_loader
    from spikeconv.tasks.checkpoint import load_model

    warnings.simplefilter("ignore")
    model, _ = load_model(CHECKPOINTS / "mnist_lenet_qrelu.pt")
    x, _ = next(iter(make_loader(make_dataset("mnist", "test", limit=4), 4)))
    snn = convert(model, x, ConversionConfig(reset="zero", signed=False, max_strength=1, phi=0.0,
                                             skip_silent=False, channels_last=False))
    graph = to_nir(snn, x)
    with record(snn) as recording:
        simulate(snn, x, 6, order="step")
    ours = [layer.spikes for layer in recording.values()]
    net = norse.from_nir(graph, dt=1.0)
    for b in range(x.shape[0]):  # norse's Flatten also flattens the batch axis: one sample at a time
        outs = []
        handles = [m.register_forward_hook(lambda m, i, o: outs.append(o[0])) for m in net.modules()
                   if type(m).__name__ == "IAFCell"]
        state = None
        for _ in range(6):
            _, state = net(x[b:b + 1], state)
        for handle in handles:
            handle.remove()
        for k, layer in enumerate(ours):
            theirs = torch.stack(outs[k::len(ours)]).reshape(6, -1)
            assert torch.equal(theirs, layer[:, b].reshape(6, -1)), f"layer {k}, sample {b}"
