"""Training: QReLU bounds start from a percentile; an interrupted run resumes to the same weights."""

import math

import pytest
import torch

from spikeconv.data import make_dataset
from spikeconv.models import build_model
from spikeconv.quant import QReLU
from spikeconv.tasks.classification import TrainConfig, train_classifier


def _model():
    torch.manual_seed(0)
    return build_model("lenet_mnist", activation=lambda: QReLU(levels=4, phi=0.5), width=4)


@pytest.mark.parametrize("epochs,stages", [(2, 1), (1, 2)])
def test_resume_gives_the_same_weights(tmp_path, data_available, epochs, stages):
    """Also across the stage boundary of a training + fine-tuning recipe."""
    data = make_dataset("mnist", "train", limit=256, augment=True)
    config = TrainConfig(epochs=epochs, stages=stages, batch_size=64, lr=0.05, calibration_batches=1)
    straight = _model()
    history = train_classifier(straight, data, config)
    assert len(history) == 2 and history[1]["loss"] < history[0]["loss"]
    # 4 steps per epoch; "lr" is the rate of an epoch's last step k of a cosine over K steps
    if stages == 1:  # k = 3 of K = 8
        assert abs(history[0]["lr"] - 0.05 * 0.5 * (1 + math.cos(math.pi * 3 / 8))) < 1e-12
    else:  # k = 3 of K = 4 in both stages: the schedule restarted
        assert history[0]["lr"] == history[1]["lr"]
        assert abs(history[1]["lr"] - 0.05 * 0.5 * (1 + math.cos(math.pi * 3 / 4))) < 1e-12

    state = tmp_path / "state.pt"
    # interrupt after epoch 1 by training a 2-epoch schedule whose loop we stop via the callback
    stopped = _model()
    try:
        train_classifier(stopped, data, config, state_path=state, on_epoch=_stop_after_first)
    except _Stop:
        pass
    resumed = _model()
    train_classifier(resumed, data, config, state_path=state)
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


class _Stop(Exception):
    pass


def _stop_after_first(epoch, record):
    if epoch == 1:
        raise _Stop


def test_bounds_start_at_a_percentile(data_available):
    data = make_dataset("mnist", "train", limit=128)
    model = _model()
    train_classifier(model, data, TrainConfig(epochs=1, batch_size=64, lr=1e-9, bound_lr=0.0, calibration_batches=1))
    bounds = [m.bound.item() for m in model.modules() if isinstance(m, QReLU)]
    assert all(b != 1.0 and b > 0 for b in bounds)


def test_stability_rows_carry_the_training_seconds_the_recipe_reports():
    """A recipe whose history gives each epoch's ``seconds`` (the fast one) gets their sum per run; one
    without (the standard recipe) gets no such field."""
    from spikeconv.tasks.stability import stability_study

    torch.manual_seed(0)
    x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))

    def build():
        return torch.nn.Sequential(torch.nn.Linear(4, 6), QReLU(levels=4), torch.nn.Linear(6, 3)).eval()

    def timed(model, train_set, config, **_):
        return [{"epoch": 1, "seconds": 1.25 + config.seed}, {"epoch": 2, "seconds": 2.5}]

    def untimed(model, train_set, config, **_):
        return [{"epoch": 1, "loss": 1.0}]

    train = TrainConfig(epochs=2, seed=3)
    for train_fn, expected in ((timed, [6.75, 7.75]), (untimed, None)):
        result = stability_study(build, None, [(x, y)], x[:2], train, runs=2, train_fn=train_fn, timesteps=2)
        assert [r.get("train_seconds") for r in result["runs"]] == (expected or [None, None])
