"""The fast CIFAR-10 recipe: batch augmentation, schedule, whitening stem, exact resume, config wiring."""

from pathlib import Path

import pytest
import torch
from torch import nn

from spikeconv import IFNeuron, convert
from spikeconv.cli.config import load_run_config
from spikeconv.errors import ConfigError
from spikeconv.models import build_model, whitening_init_
from spikeconv.quant import QReLU
from spikeconv.tasks.fast import FastTrainConfig, _param_groups, augment, lr_factor, train_fast

ROOT = Path(__file__).resolve().parents[1]


def test_augment_is_a_flip_and_a_reflected_shift_of_each_image():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=gen)
    out = augment(images, 2, torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    seen = set()
    for image, result in zip(images, out):
        matches = [(flip, dy, dx) for flip in (False, True) for dy in range(5) for dx in range(5)
                   if torch.equal(nn.functional.pad((image.flip(-1) if flip else image).float()[None], (2,) * 4,
                                                    mode="reflect")[0, :, dy:dy + 8, dx:dx + 8].byte(), result)]
        assert matches, "every output is one flip/shift of its input"
        seen.add(matches[0])
    assert len(seen) > 8  # drawn per image, not once per batch
    assert torch.equal(augment(images, 2, torch.Generator().manual_seed(1)), out)  # seeded


def test_triangular_schedule():
    config = FastTrainConfig(warmup=0.25, final_lr=0.1)
    assert lr_factor(0, 100, config) == pytest.approx(0.2)
    assert lr_factor(25, 100, config) == pytest.approx(1.0)
    assert lr_factor(100, 100, config) == pytest.approx(0.1)
    assert lr_factor(62, 100, config) == pytest.approx(1.0 + (0.1 - 1.0) * 37 / 75)


def test_whitening_stem_decorrelates_patches():
    torch.manual_seed(0)
    mix = torch.randn(12, 12)
    patches = torch.randn(4000, 12) @ mix  # correlated patches: images of 3 x 2 x 2 pixels, one position each
    images = patches.view(4000, 3, 2, 2)
    net = build_model("fastnet_cifar")
    whitening_init_(net.whiten, images, eps=1e-6)
    with torch.no_grad():
        out = net.whiten(images).flatten(1)[:, :12]  # one position per image; the first half of the filters
    cov = torch.cov(out.T)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    assert torch.equal(net.whiten.weight[12:], -net.whiten.weight[:12])


def _tiny(seed=0):
    torch.manual_seed(seed)
    return build_model("fastnet_cifar", activation=lambda: QReLU(levels=4, phi=0.5), widths=(8, 16, 16))


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (128,), generator=gen)
    normalize = lambda u: u.float() / 255 - 0.5  # noqa: E731
    config = FastTrainConfig(epochs=2, batch_size=32, bf16=False)
    straight = _tiny()
    history = train_fast(straight, images, labels, normalize, config, state_path=tmp_path / "a.pt")
    assert [h["epoch"] for h in history] == [1, 2]

    class Stop(Exception):
        pass

    def stop(epoch, record):
        raise Stop

    resumed = _tiny()
    with pytest.raises(Stop):
        train_fast(resumed, images, labels, normalize, config, state_path=tmp_path / "b.pt", on_epoch=stop)
    resumed = _tiny(seed=1)  # a fresh process: other initial weights, all restored from the state
    train_fast(resumed, images, labels, normalize, config, state_path=tmp_path / "b.pt")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert not straight.training


def test_fast_config_selects_the_recipe_and_rejects_foreign_options(tmp_path):
    config = load_run_config(ROOT / "configs" / "cifar10_fast.toml")
    assert config.recipe == "fast" and isinstance(config.train, FastTrainConfig)
    bad = tmp_path / "bad.toml"
    bad.write_text((ROOT / "configs" / "cifar10_fast.toml").read_text().replace("epochs = 20", "stages = 2"))
    with pytest.raises(ConfigError, match="stages.*'fast' recipe"):
        load_run_config(bad)
    bad.write_text((ROOT / "configs" / "cifar10_fast.toml").read_text().replace('recipe = "fast"', 'recipe = "fats"'))
    with pytest.raises(ConfigError, match="unknown training recipe 'fats'"):
        load_run_config(bad)


@pytest.mark.parametrize("table,line,expected", [
    ("[model]", "levles = 4", "unknown key 'levles' in \\[model\\]; did you mean 'levels'"),
    ("[evaluate]", "timestep = [8]", "unknown key 'timestep' in \\[evaluate\\]; did you mean 'timesteps'"),
    ("[data]", "rot = '/x'", "unknown key 'rot' in \\[data\\]; did you mean 'root'"),
    ("[train]", "epoch = 3", "unknown key 'epoch' in \\[train\\]; did you mean 'epochs'"),
])
def test_typos_in_any_table_are_refused_with_the_closest_key(tmp_path, table, line, expected):
    text = (ROOT / "configs" / "mnist.toml").read_text().replace(table, f"{table}\n{line}", 1)
    path = tmp_path / "typo.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_run_config(path)


def test_weight_decay_is_decoupled_from_the_learning_rate():
    # each group shrinks its parameters by lr * weight_decay = wd per step (times the schedule's factor)
    config = FastTrainConfig(batch_size=512, momentum=0.85, weight_decay=0.0153, bias_scale=64.0)
    groups = _param_groups(_tiny(), config)
    wd = 0.0153 * 512 / (1024 * (1 + 1 / 0.15))
    assert [g["lr"] * g["weight_decay"] for g in groups[:2]] == pytest.approx([wd, wd], rel=1e-12)
    assert groups[1]["lr"] == pytest.approx(64.0 * groups[0]["lr"]) and groups[2]["weight_decay"] == 0.0


def test_fastnet_without_the_stem_quantizer_computes_both_convolutions_on_the_analog_input():
    torch.manual_seed(0)
    net = build_model("fastnet_cifar", activation=lambda: QReLU(levels=4, phi=0.5), widths=(8, 16, 16),
                      stem_activation=False).eval()
    with_stem = _tiny().eval()
    x = torch.randn(2, 3, 32, 32)
    neurons = [type(m).__name__ for m in convert(net, x).modules() if isinstance(m, IFNeuron)]
    assert len(neurons) == len([m for m in convert(with_stem, x).modules() if isinstance(m, IFNeuron)]) - 1 == 6
    assert "act0.bound" not in net.state_dict() and "act0.bound" in with_stem.state_dict()


def test_free_options_do_not_block_a_resume_and_the_others_do():
    import dataclasses

    from spikeconv.cli.reuse import _fingerprint, _same_settings

    config = load_run_config(ROOT / "configs" / "cifar10_fast.toml")
    recorded = _fingerprint(config)
    assert "device" not in recorded["train"] and "bn_samples" not in recorded["train"]
    moved = dataclasses.replace(config, train=dataclasses.replace(config.train, device="cpu", bn_samples=0))
    assert _same_settings(recorded, moved)
    assert _same_settings({**recorded, "train": {**recorded["train"], "device": "auto"}}, config)  # older record
    faster = dataclasses.replace(config, train=dataclasses.replace(config.train, lr=1.0))
    assert not _same_settings(recorded, faster) and not _same_settings(None, config)


def test_stem_without_batchnorm_trains_its_bias_at_the_weights_rate_and_converts():
    torch.manual_seed(0)
    net = build_model("fastnet_cifar", activation=lambda: QReLU(levels=4, phi=0.5), widths=(8, 16, 16),
                      stem_norm=False).eval()
    assert isinstance(net.whiten_bn, nn.Identity) and net.stem_bias is net.whiten.bias
    groups = _param_groups(net, FastTrainConfig())
    assert any(p is net.whiten.bias for p in groups[0]["params"])
    assert not any(p is net.whiten.bias for g in groups[1:] for p in g["params"])
    x = torch.rand(2, 3, 32, 32)
    assert len([m for m in convert(net, x).modules() if isinstance(m, IFNeuron)]) == 7


def test_lookahead_pulls_the_model_onto_an_average_whose_decay_grows_with_progress():
    from spikeconv.tasks.fast import AVERAGES

    model, ema = nn.Linear(2, 1, bias=False), nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[4.0, 8.0]]))
        ema.weight.copy_(torch.tensor([[0.0, 0.0]]))
    AVERAGES["lookahead"](ema, model, 0.5, 0.8)  # decay 0.8 * 0.5^3 = 0.1: ema = 0.9 * model
    assert torch.allclose(ema.weight, torch.tensor([[3.6, 7.2]])) and torch.equal(model.weight, ema.weight)
    model.weight.data.fill_(1.0)
    AVERAGES["ema"](ema, model, 0.5, 0.5)  # plain EMA: the model keeps its own weights
    assert torch.allclose(ema.weight, torch.tensor([[2.3, 4.1]])) and torch.equal(model.weight, torch.ones(1, 2))
    with pytest.raises(ValueError, match="train.average must be one of"):
        FastTrainConfig(average="swa")


def test_bf16_auto_follows_the_cpus_native_bfloat16(monkeypatch):
    """``bf16 = "auto"`` trains in bfloat16 only where the CPU has AVX-512 BF16 or AMX-BF16 (emulated
    bfloat16 is 7.6x slower than float32 on an AVX2 CPU); true and false are taken as given."""
    from spikeconv.tasks.fast import uses_bf16

    cpu = torch.device("cpu")
    for caps, expected in (({"avx2": True}, False), ({"avx512_bf16": True}, True), ({"amx_bf16": True}, True),
                           ({"avx512_f": True, "avx512_bw": True}, False)):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda caps=caps: caps)
        assert uses_bf16("auto", cpu) is expected
        assert uses_bf16(True, cpu) is True and uses_bf16(False, cpu) is False
    assert FastTrainConfig().bf16 == "auto"
    with pytest.raises(ValueError, match='train.bf16 must be true, false or "auto"'):
        FastTrainConfig(bf16="yes")
