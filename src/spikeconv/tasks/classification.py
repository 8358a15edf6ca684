"""Training and evaluation of classifiers: the QReLU ANN, and its converted SNN at every T from one run."""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from ..analysis import calibrate_offsets
from ..convert import ConversionConfig, convert
from ..layers.replace import set_submodule
from ..quant import QReLU, calibrate_bounds_, param_groups
from ..sim import event_driven, simulate
from .distributed import all_sum, barrier, is_main, rank_and_size
from .train_state import check_device, check_positive_ints, distributed, epoch_loader, free_option, resume_, save_state

Progress = Callable[..., Iterable]


def _plain(iterable: Iterable, **_: Any) -> Iterable:
    return iterable


@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train_classifier` (defaults: a short CPU run; paper 000 uses lr 0.2, 256, 2x120 epochs).

    ``stages``: paper 000 trains twice with the same setting, the second (fine-tuning) stage inheriting the
    weights: the cosine schedule restarts and the momentum is reset at each stage; ``epochs`` is per stage.
    ``device``: ``"auto"`` (CUDA if present), ``"cpu"`` or ``"cuda"``. ``amp``: mixed precision (bfloat16
    autocast of convolutions and matrix products) on CUDA; ignored on CPU. ``batch_size`` is global: under
    ``torchrun`` every process takes ``batch_size / world_size``.
    """

    epochs: int = 10
    stages: int = 1
    batch_size: int = 128
    lr: float = 0.1
    bound_lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    seed: int = 0
    calibration_percentile: float = 99.9
    calibration_batches: int = 4
    workers: int = free_option(0)
    device: str = free_option("auto")
    amp: bool = True

    def __post_init__(self) -> None:
        check_device(self)
        check_positive_ints(self, ("epochs", "stages", "batch_size", "calibration_batches"))
        if not self.lr > 0 or not self.bound_lr >= 0:
            raise ValueError("train.lr must be > 0 and train.bound_lr >= 0")


def train_classifier(
    model: nn.Module,
    train_set: Dataset,
    config: TrainConfig,
    *,
    state_path: str | os.PathLike | None = None,
    progress: Progress = _plain,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` (SGD + momentum, cosine schedule, label smoothing; QReLU bounds in their own group).

    QReLU bounds start at the ``calibration_percentile`` of their inputs on the first batches. With
    ``state_path`` the full training state is saved after every epoch and an interrupted run resumes from
    it; epoch ``e`` always uses seed ``seed + e`` for shuffling and augmentation, so a resumed run ends
    with the same weights as an uninterrupted one. Under ``torchrun`` the model is wrapped in
    DistributedDataParallel, each process reads its own part of every epoch (``DistributedSampler``) and
    only rank 0 writes the state. Learning rate at step ``k`` of a stage of ``K`` steps:
    ``lr_k = lr * (1 + cos(pi * k / K)) / 2``. Returns the per-epoch history.
    """
    torch.manual_seed(config.seed)
    device = _device(config.device)
    model.to(device)
    world = rank_and_size()[1]
    if config.batch_size % world:
        raise ValueError(f"train.batch_size {config.batch_size} must be divisible by the {world} processes")
    local_batch = config.batch_size // world
    optimizer = torch.optim.SGD(
        param_groups(model, lr=config.lr, bound_lr=config.bound_lr, weight_decay=config.weight_decay),
        lr=config.lr, momentum=config.momentum, nesterov=True,
    )
    stage_steps = max(len(epoch_loader(train_set, config, local_batch, 0)), 1) * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * (step % stage_steps) / stage_steps)))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    history: list[dict[str, float]] = []
    start_epoch = 0
    resumed = resume_(state_path, model, optimizer, scheduler)
    if resumed is not None:
        start_epoch, history = resumed
    elif any(isinstance(m, QReLU) for m in model.modules()):  # the same batches in every process
        gen = torch.Generator().manual_seed(config.seed)
        loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, generator=gen)
        batches = [x.to(device) for (x, _), _ in zip(loader, range(config.calibration_batches))]
        calibrate_bounds_(model, batches, p=config.calibration_percentile)
    net = distributed(model, device)
    total_epochs = config.epochs * config.stages
    for epoch in range(start_epoch, total_epochs):
        if epoch > 0 and epoch % config.epochs == 0:
            optimizer.state.clear()  # a new stage: weights inherited, momentum and schedule restart
        torch.manual_seed(config.seed + epoch)
        loader = epoch_loader(train_set, config, local_batch, epoch)
        net.train()
        total, correct, loss_sum, last_lr = 0, 0, 0.0, optimizer.param_groups[0]["lr"]
        for x, y in progress(loader, desc=f"epoch {epoch + 1}/{total_epochs}", leave=False, disable=not is_main()):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda"):
                logits = net(x)
            loss = loss_fn(logits.float(), y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training diverged at epoch {epoch + 1} (loss {loss.item()}); lower train.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            last_lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            total += y.numel()
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += loss.item() * y.numel()
        sums = all_sum(torch.tensor([total, correct, loss_sum], dtype=torch.float64))
        record = {"epoch": epoch + 1, "loss": float(sums[2] / max(sums[0], 1)),
                  "train_accuracy": float(100.0 * sums[1] / max(sums[0], 1)), "lr": last_lr}
        history.append(record)
        save_state(state_path, model, optimizer, scheduler, epoch + 1, history)
        barrier()
        if on_epoch is not None:
            on_epoch(epoch + 1, record)
    model.eval()
    return history


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'")
        return torch.device(name) if ":" in name else torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def _model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def ann_predictions(model: nn.Module, loader: Iterable, *, progress: Progress = _plain) -> tuple[Tensor, Tensor]:
    """``(top-1 class, label)`` of ``model`` (in eval mode) for every sample of ``loader``, in order: two ``[N]``
    tensors on the CPU (this process's samples under torchrun).

    Example::

        predictions, labels = ann_predictions(model, batches)
        agree = (predictions == snn_readout[-1].argmax(-1)).float().mean()
    """
    was_training = model.training
    model.eval()
    device = _model_device(model)
    predictions, labels = [torch.zeros(0, dtype=torch.long)], [torch.zeros(0, dtype=torch.long)]
    try:
        for x, y in progress(loader, desc="ANN", leave=False, disable=not is_main()):
            predictions.append(model(x.to(device)).argmax(1).cpu())
            labels.append(y)
    finally:
        model.train(was_training)
    return torch.cat(predictions), torch.cat(labels)


@torch.no_grad()
def evaluate_ann(model: nn.Module, loader: Iterable, *, progress: Progress = _plain) -> float:
    """Top-1 accuracy (percent) of ``model`` in eval mode over ``loader`` (summed over processes under torchrun)."""
    predictions, labels = ann_predictions(model, loader, progress=progress)
    correct, total = (int(v) for v in all_sum(torch.tensor([int((predictions == labels).sum()), labels.numel()])))
    if total == 0:
        raise ValueError("the evaluation loader yielded no samples")
    return 100.0 * correct / total


@torch.no_grad()
def evaluate_snn(snn: nn.Module, loader: Iterable, timesteps: Sequence[int], *, progress: Progress = _plain,
                 desc: str = "SNN", **simulate_kwargs: Any) -> dict[int, float]:
    """Top-1 accuracy (percent) of the SNN readout after each ``t`` in ``timesteps``, from one run of max(T).

    Under torchrun each process evaluates its shard (see :func:`spikeconv.tasks.distributed.shard_batches`)
    and the correct counts are summed over processes.
    """
    steps = sorted({int(t) for t in timesteps})
    if not steps or steps[0] < 1:
        raise ValueError(f"timesteps must be positive integers, got {list(timesteps)}")
    correct = torch.zeros(len(steps), dtype=torch.long)
    total = 0
    index = torch.tensor([t - 1 for t in steps])
    device = _model_device(snn)
    for x, y in progress(loader, desc=desc, leave=False, disable=not is_main()):
        readout = simulate(snn, x.to(device), steps[-1], **simulate_kwargs)
        correct += (readout[index].argmax(-1).cpu() == y.unsqueeze(0)).sum(1)
        total += y.numel()
    counts = all_sum(torch.cat([correct, torch.tensor([total])]))
    correct, total = counts[:-1], int(counts[-1])
    if total == 0:
        raise ValueError("the evaluation loader yielded no samples")
    return {t: 100.0 * int(c) / total for t, c in zip(steps, correct)}


def _on(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` where it is on ``device``, else a copy moved there (the caller's module stays put)."""
    return module if _model_device(module) == device else copy.deepcopy(module).to(device)


def is_quantized(model: nn.Module) -> bool:
    """Whether ``model`` has QReLU activations; without, :func:`dequantized` is the model itself and its clip-only
    accuracy needs no second pass."""
    return any(isinstance(m, QReLU) for m in model.modules())


def dequantized(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every QReLU replaced by its unquantized clip ``min(max(x, 0), lambda^b)``."""
    clone = copy.deepcopy(model)
    for name, module in list(clone.named_modules()):
        if isinstance(module, QReLU):
            set_submodule(clone, name, nn.Hardtanh(0.0, module.bound.clamp(min=QReLU.min_bound).item()))
    return clone


EVENT_SAMPLES = 64  # images of the run that fixes an event-driven variant's paths


@dataclass(frozen=True)
class SNNVariant:
    """One SNN configuration of the accuracy table: neuron kind, S^max, weight bits (``None`` = float
    weights; ``b`` = ``ConversionConfig(weight_bits=b)``, integer arithmetic on spikes) and whether the float
    layers run event-driven (:func:`spikeconv.sim.event_driven`, paths fixed from one measured run)."""

    neuron: str  # "if" or "buffered"
    max_strength: int = 1
    weight_bits: int | None = None
    events: bool = False

    @property
    def key(self) -> str:
        bits = "" if self.weight_bits is None else f"/w{self.weight_bits}"
        return f"{self.neuron}/smax{self.max_strength}{bits}{'/events' if self.events else ''}"


def accuracy_table(
    model: nn.Module,
    loader: Iterable,
    example: Tensor,
    timesteps: Sequence[int],
    variants: Sequence[SNNVariant],
    *,
    conversion: ConversionConfig | None = None,
    calibration: Iterable[Tensor] | None = None,
    calibrate_for: int | None = None,
    calibration_passes: int = 2,
    warmup: Sequence[int] = (),
    warmup_rounds: int = 1,
    progress: Progress = _plain,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """ANN (clip only), quantized-ANN and SNN accuracies (percent) for every variant and T.

    Conversion runs on the CPU; the networks are evaluated on ``device`` (default: the model's).

    ``calibration`` batches set the bounds of plain ReLU activations (data-based normalization). With
    ``calibrate_for = T``, every variant is also evaluated after offset calibration for that T on the
    same batches (:func:`spikeconv.analysis.calibrate_offsets`), under the key ``"<variant>+cal<T>"``.
    Every ``rho`` in ``warmup`` adds the variant run with a warm-up of ``rho`` steps
    (:mod:`spikeconv.neuron.warmup`), read at the ``T >= rho``, under ``"<variant>+warm<rho>"``; with
    ``warmup_rounds = k > 1`` pre-runs, under ``"<variant>+warm<rho>x<k>"``.

    Returns ``{"quantized", "ann_accuracy", "qann_accuracy", "snn_accuracy": {variant key: {T: acc}}}``;
    ``quantized`` says whether the model has QReLU activations (without, both ANN accuracies are the model's).
    """
    base = conversion or ConversionConfig()
    run_on = _device(str(device)) if device is not None else _model_device(model)
    if _model_device(model).type != "cpu":
        model = copy.deepcopy(model).cpu()
    quantized = is_quantized(model)
    qann = evaluate_ann(_on(model, run_on), loader, progress=progress)
    result: dict[str, Any] = {
        "quantized": quantized,  # False: a plain ReLU model, whose two ANN accuracies are one
        "qann_accuracy": qann,
        "ann_accuracy": evaluate_ann(dequantized(model).to(run_on), loader, progress=progress) if quantized else qann,
        "snn_accuracy": {},
    }
    for variant in variants:
        if variant.neuron not in ("if", "buffered"):
            raise ValueError(f"neuron kind must be 'if' or 'buffered', got {variant.neuron!r}")
        cfg = ConversionConfig(**{**asdict(base), "signed": variant.neuron == "buffered",
                                  "max_strength": variant.max_strength,
                                  "weight_bits": variant.weight_bits or base.weight_bits})
        snn = convert(model, example.cpu(), cfg, calibration=calibration).to(run_on)
        if variant.events:  # paths fixed from a run on (up to 64) calibration images, else the example
            measured = next(iter(calibration))[:EVENT_SAMPLES] if calibration is not None else example
            snn = event_driven(snn, inputs=measured, timesteps=max(timesteps))
        result["snn_accuracy"][variant.key] = evaluate_snn(snn, loader, timesteps, progress=progress,
                                                           desc=f"SNN {variant.key}")
        if calibrate_for is not None:
            if calibration is None:
                raise ValueError("calibrate_for needs calibration batches (training inputs)")
            calibrated = calibrate_offsets(snn, [x.to(run_on) for x in calibration], calibrate_for,
                                           iterations=calibration_passes)
            key = f"{variant.key}+cal{calibrate_for}"
            result["snn_accuracy"][key] = evaluate_snn(calibrated, loader, timesteps, progress=progress,
                                                       desc=f"SNN {key}")
        for rho in warmup:
            steps = [t for t in timesteps if t >= rho]
            if not steps:
                raise ValueError(f"a warm-up of {rho} steps needs a T >= {rho} to read; the table has {list(timesteps)}")
            key = f"{variant.key}+warm{rho}" + (f"x{warmup_rounds}" if warmup_rounds > 1 else "")
            result["snn_accuracy"][key] = evaluate_snn(snn, loader, steps, progress=progress, desc=f"SNN {key}",
                                                       warmup=rho, warmup_rounds=warmup_rounds)
    return result
