"""The fast CIFAR-10 recipe: a whole training run on uint8 tensors in memory, augmented in batches.

What it takes from the fast-training literature (written here from the published descriptions): a frozen
patch-whitening stem (:func:`spikeconv.models.whitening_init_`) whose BatchNorm bias trains for the first
epochs only; BatchNorm without a learned scale; identity-initialised convolutions; summed label-smoothed loss on
logits scaled by ``logit_scale``; Nesterov SGD whose learning rate rises linearly for the first
``warmup`` of the steps and falls linearly to ``final_lr`` of its peak; BN biases at ``bias_scale`` times the
learning rate; random 2-pixel translations (reflect padding) and horizontal flips drawn per batch on the
uint8 tensors; an exponential moving average of the weights (``ema``) for the final model, whose BatchNorm
statistics are then recomputed on ``bn_samples`` un-augmented training images (the running statistics of
training belong to the last step's weights, not to their average: on the shipped run, 2,000 test images, the
average scored 84.2% with them and 88.0% with its own; the last step's weights 86.5%). The forward and
backward passes use ``channels_last`` tensors and, where the processor computes bfloat16 natively
(``bf16 = "auto"``: a CUDA GPU that supports it, a CPU with AVX-512 BF16 or AMX), bfloat16 autocast: on a
2-core AVX-512 BF16 CPU 2.4x the float32 throughput, while on a 2-core AVX2 CPU, which only emulates it,
one step of batch 1024 takes 95 s against 12.5 s in float32 (``benchmarks/train_precision.py``);
``device = "cuda"`` (or ``"auto"`` with a GPU present) keeps the whole data set on the
GPU and draws the batches and their augmentation there. QReLU bounds start at the
``calibration_percentile`` of their inputs under batch statistics (in eval mode, the untrained network's
last bound came out at 12.6 and 16.0 on two of four seeds where batch statistics give 1.0-1.2, and it stayed
there through training; ``benchmarks/bound_init.py``) and are learned at ``bound_lr`` without weight decay.

The learning rate follows the "per 1024 samples" convention: with batch ``B`` and momentum ``m`` the SGD
step is ``lr / (1024 (1 + 1 / (1 - m)))`` on the summed loss.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..atomic import atomic_write
from ..errors import is_count
from ..models import whitening_init_
from ..quant import QReLU, calibrate_bounds_
from .classification import Progress, _device
from .train_state import check_device, check_positive_ints, free_option


log = logging.getLogger("spikeconv")


def uses_bf16(setting: bool | str, device: torch.device) -> bool:
    """Whether training on ``device`` runs in bfloat16 autocast: ``setting`` itself, or for ``"auto"`` whether
    the device computes bfloat16 natively (CUDA: ``torch.cuda.is_bf16_supported()``; CPU: the AVX-512 BF16 or
    AMX-BF16 instructions in ``torch.cpu.get_capabilities()``). Emulated bfloat16 is several times slower than
    float32, so ``"auto"`` never picks it.

    Example:
        >>> uses_bf16(False, torch.device("cpu")), uses_bf16(True, torch.device("cpu"))
        (False, True)
    """
    if setting != "auto":
        return bool(setting)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return device.type == "cpu" and bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


@dataclass(frozen=True)
class FastTrainConfig:
    """Options of :func:`train_fast` (defaults: the shipped ``configs/cifar10_fast.toml``)."""

    epochs: int = 16
    batch_size: int = 1024
    lr: float = 11.5
    momentum: float = 0.85
    weight_decay: float = 0.0153
    bias_scale: float = 64.0
    bound_lr: float = 0.5
    label_smoothing: float = 0.2
    logit_scale: float = 1 / 9
    warmup: float = 0.23
    final_lr: float = 0.07
    whiten_bias_epochs: int = 3
    translate: int = 2
    ema: float = 0.99
    ema_every: int = 5
    average: str = "ema"
    calibration_percentile: float = 99.9
    bn_samples: int = free_option(4096)
    bf16: bool | str = "auto"
    seed: int = 0
    device: str = free_option("auto")

    def __post_init__(self) -> None:
        check_positive_ints(self, ("epochs", "batch_size", "ema_every"))
        if not is_count(self.bn_samples, least=0):
            raise ValueError(f"train.bn_samples must be a non-negative integer, got {self.bn_samples!r}")
        check_device(self)
        if self.bf16 not in (True, False, "auto"):
            raise ValueError(f"train.bf16 must be true, false or \"auto\", got {self.bf16!r}")
        if not 0 < self.warmup < 1 or not 0 <= self.final_lr <= 1:
            raise ValueError("train.warmup must lie in (0, 1) and train.final_lr in [0, 1]")
        if not 0 <= self.ema < 1:
            raise ValueError(f"train.ema must lie in [0, 1), got {self.ema}")
        if self.average not in AVERAGES:
            raise ValueError(f"train.average must be one of {sorted(AVERAGES)}, got {self.average!r}")


def lr_factor(step: int, total: int, config: FastTrainConfig) -> float:
    """Triangular schedule: ``0.2 -> 1`` over the first ``warmup * total`` steps, then ``1 -> final_lr``."""
    peak = max(int(config.warmup * total), 1)
    if step < peak:
        return 0.2 + 0.8 * step / peak
    return 1.0 + (config.final_lr - 1.0) * (step - peak) / max(total - peak, 1)


def augment(images: Tensor, translate: int, generator: torch.Generator) -> Tensor:
    """Random horizontal flip and a random shift of up to ``translate`` pixels (reflect padding), uint8 in/out.

    ``images`` is ``[B, C, H, W]``; one shift is drawn per image, applied by one gather.
    """
    b, _, h, w = images.shape
    device = images.device
    flip = torch.rand(b, generator=generator, device=device) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if translate <= 0:
        return images
    padded = nn.functional.pad(images.float(), (translate,) * 4, mode="reflect").to(images.dtype)
    dy = torch.randint(0, 2 * translate + 1, (b,), generator=generator, device=device)
    dx = torch.randint(0, 2 * translate + 1, (b,), generator=generator, device=device)
    rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]
    rows = rows.expand(b, images.shape[1], h, w + 2 * translate)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :].expand(b, images.shape[1], h, w)
    return out.gather(3, cols)


def _param_groups(model: nn.Module, config: FastTrainConfig) -> list[dict[str, Any]]:
    """Weights (convolution biases with them), BatchNorm biases (``bias_scale`` times the learning rate) and
    QReLU bounds.

    ``weight_decay`` is per 1024 samples and decoupled from the learning rate: SGD shrinks a parameter by
    ``lr_t * weight_decay_group = factor_t * wd`` per step, the same for weights and biases, where
    ``wd = weight_decay * batch_size / (1024 (1 + 1 / (1 - m)))``; so each group's ``weight_decay`` is
    ``wd`` divided by that group's learning rate.
    """
    scale = 1024 * (1 + 1 / (1 - config.momentum))
    lr = config.lr / scale
    wd = config.weight_decay * config.batch_size / scale
    bounds = {id(m.bound) for m in model.modules() if isinstance(m, QReLU)}
    biases = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.bias is not None}
    groups: dict[str, list[nn.Parameter]] = {"weights": [], "biases": [], "bounds": []}
    for p in model.parameters():
        if not p.requires_grad:
            continue
        key = "bounds" if id(p) in bounds else "biases" if id(p) in biases else "weights"
        groups[key].append(p)
    return [{"params": groups["weights"], "lr": lr, "weight_decay": wd / lr, "base": lr},
            {"params": groups["biases"], "lr": lr * config.bias_scale,
             "weight_decay": wd / (lr * config.bias_scale),
             "base": lr * config.bias_scale},
            {"params": groups["bounds"], "lr": lr * config.bound_lr, "weight_decay": 0.0,
             "base": lr * config.bound_lr}]


def train_fast(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    normalize: Callable[[Tensor], Tensor],
    config: FastTrainConfig,
    *,
    state_path: str | os.PathLike | None = None,
    progress: Progress | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` (a :class:`~spikeconv.models.FastNet`) on uint8 ``images [N, C, H, W]`` and ``labels``.

    ``normalize`` maps a uint8 batch to the model's float input. With ``state_path`` the training state is
    saved after every epoch and an interrupted run resumes from it (epoch ``e`` draws its batches and
    augmentation from seed ``seed + e``, so a resumed run ends with the same weights). The model ends in
    eval mode holding the EMA weights, on the training device. Returns the per-epoch history.
    """
    torch.manual_seed(config.seed)
    device = _device(config.device)
    model.to(device)
    images, labels = images.to(device), labels.to(device)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.requires_grad_(False)
            m.momentum = 0.4
    model.whiten.weight.requires_grad_(False)
    state_file = Path(state_path) if state_path else None
    history: list[dict[str, float]] = []
    start_epoch = 0
    resume = state_file is not None and state_file.exists()
    if not resume:
        with torch.no_grad():
            whitening_init_(model.whiten, normalize(images[:5000]))
            first = normalize(_seeded_sample(images, config.batch_size, config.seed))
            _batchnorm_statistics_(model, first)
            if any(isinstance(m, QReLU) for m in model.modules()):  # a plain-ReLU twin has no bounds
                calibrate_bounds_(model, [first], p=config.calibration_percentile, batch_statistics=True)
    model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(_param_groups(model, config), momentum=config.momentum, nesterov=True)
    ema = copy.deepcopy(model)
    if resume:
        state = torch.load(state_file, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
    steps_per_epoch = len(images) // config.batch_size
    total = steps_per_epoch * config.epochs
    bf16 = uses_bf16(config.bf16, device)
    log.info("fast recipe on %s in %s", device, "bfloat16 autocast" if bf16 else "float32")
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing, reduction="sum")
    for epoch in range(start_epoch, config.epochs):
        model.stem_bias.requires_grad_(epoch < config.whiten_bias_epochs)
        gen = torch.Generator(device).manual_seed(config.seed + 1 + epoch)
        order = torch.randperm(len(images), generator=gen, device=device)
        model.train()
        started, seen = time.perf_counter(), 0
        correct = torch.zeros((), dtype=torch.long, device=device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        batches = range(steps_per_epoch)
        if progress is not None:
            batches = progress(batches, desc=f"epoch {epoch + 1}/{config.epochs}", leave=False)
        for k in batches:
            step = epoch * steps_per_epoch + k
            for group in optimizer.param_groups:
                group["lr"] = group["base"] * lr_factor(step, total, config)
            index = order[k * config.batch_size:(k + 1) * config.batch_size]
            x = normalize(augment(images[index], config.translate, gen)).contiguous(memory_format=torch.channels_last)
            y = labels[index]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            loss = loss_fn(logits.float() * config.logit_scale, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % config.ema_every == 0:
                AVERAGES[config.average](ema, model, step / total, config.ema ** config.ema_every)
            seen += len(y)
            correct += (logits.argmax(1) == y).sum()
            loss_sum += loss.detach()
        if not torch.isfinite(loss_sum):  # checked once an epoch: a check per step would wait for the GPU
            raise FloatingPointError(f"training diverged in epoch {epoch + 1} (loss {loss_sum.item()}); "
                                     "lower train.lr")
        record = {"epoch": epoch + 1, "loss": loss_sum.item() / seen, "train_accuracy": 100.0 * correct.item() / seen,
                  "seconds": time.perf_counter() - started}
        history.append(record)
        if state_file is not None:
            state = {"model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                     "epoch": epoch + 1, "history": history}
            atomic_write(state_file, lambda tmp: torch.save(state, tmp))
        if on_epoch is not None:
            on_epoch(epoch + 1, record)
    model.load_state_dict(ema.state_dict())
    if config.bn_samples:  # statistics of the averaged weights, not of the last step's
        with torch.no_grad():
            _batchnorm_statistics_(model, normalize(_seeded_sample(images, config.bn_samples, config.seed)))
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return history


def _seeded_sample(images: Tensor, count: int, seed: int) -> Tensor:
    """``count`` of ``images``, drawn without replacement by a generator seeded with ``seed`` on their device."""
    gen = torch.Generator(images.device).manual_seed(seed)
    return images[torch.randperm(len(images), generator=gen, device=images.device)[:count]]


@torch.no_grad()
def _batchnorm_statistics_(model: nn.Module, x: Tensor) -> None:
    """Set every BatchNorm's running statistics from ``x``: the cumulative average over train-mode passes of
    256-sample chunks."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the passes below
    model.train()
    for part in x.split(256):
        model(part)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


@torch.no_grad()
def _ema_update_(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters; buffers (BN statistics) copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def _average(ema: nn.Module, model: nn.Module, progress: float, decay: float) -> None:
    """Exponential moving average with a constant ``decay``; training goes on from the model's own weights."""
    _ema_update_(ema, model, decay)


@torch.no_grad()
def _lookahead(ema: nn.Module, model: nn.Module, progress: float, decay: float) -> None:
    """Lookahead: the average's decay grows as ``decay * progress^3`` (none at the start) and the model is
    pulled back onto the average after each update (``model = ema``)."""
    _ema_update_(ema, model, decay * progress ** 3)
    for e, p in zip(ema.parameters(), model.parameters()):
        p.copy_(e)


AVERAGES: dict[str, Callable[[nn.Module, nn.Module, float, float], None]] = {"ema": _average, "lookahead": _lookahead}



def train_fast_dataset(
    model: nn.Module,
    train_set,
    config: FastTrainConfig,
    *,
    state_path: str | os.PathLike | None = None,
    progress: Progress | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """:func:`train_fast` on an in-memory data set (:class:`~spikeconv.data.ArrayDataset` without augmentation:
    its ``images`` are the uint8 tensors, its ``transform`` the normalisation, applied per batch)."""
    images, labels = getattr(train_set, "images", None), getattr(train_set, "labels", None)
    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or not isinstance(labels, Tensor):
        raise ValueError("the fast recipe trains on an in-memory uint8 data set (MNIST, CIFAR-10), not on "
                         f"{type(train_set).__name__}; use the standard recipe for streamed data")
    normalize = train_set.transform if train_set.transform is not None else (lambda u: u.float() / 255)
    return train_fast(model, images, labels, normalize, config, state_path=state_path, progress=progress,
                      on_epoch=on_epoch)
