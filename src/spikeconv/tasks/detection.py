"""Training of YOLO detectors (paper 000, section C): GIoU loss, multi-step learning rate decayed by 0.1 at
60% and 80% of training, QReLU bounds learned at the same rate as the weights, checkpoint every epoch with
exact resume, DistributedDataParallel under ``torchrun``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data.detection import collate
from ..quant import QReLU, calibrate_bounds_, param_groups
from .classification import Progress, _device, _plain
from .distributed import all_sum, barrier, is_main, rank_and_size
from .train_state import check_positive_ints, distributed, epoch_loader, free_option, resume_, save_state
from .yolo import LossWeights, layout, yolo_loss


@dataclass(frozen=True)
class DetectionTrainConfig:
    """Options of :func:`train_detector`.

    Paper 000 trains at 416 x 416, batch 64, initial lr 1e-3 decayed by 0.1 at 60% and 80% of the
    iterations. ``optimizer``: ``"adamw"`` (default: converges in a few hundred epochs on a small set on a
    CPU) or ``"sgd"`` (momentum 0.937, nesterov). ``warmup_epochs``: linear warm-up of the learning rate.
    ``batch_size`` is global (divided among ``torchrun`` processes). ``init``: a spikeconv checkpoint whose
    weights start the training (e.g. the same detector trained with ReLU, whose missing QReLU bounds are
    then calibrated from data): float pre-training followed by quantization-aware fine-tuning.
    """

    epochs: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 5e-4
    milestones: tuple[float, ...] = (0.6, 0.8)
    gamma: float = 0.1
    warmup_epochs: int = 3
    seed: int = 0
    calibration_percentile: float = 99.9
    calibration_batches: int = 2
    workers: int = free_option(0)
    device: str = free_option("auto")
    amp: bool = True
    init: str | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"train.optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        check_positive_ints(self, ("epochs", "batch_size", "calibration_batches"))
        if not self.lr > 0 or not all(0 < m < 1 for m in self.milestones):
            raise ValueError("train.lr must be > 0 and train.milestones fractions in (0, 1)")
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))

    def lr_factor(self, epoch: float) -> float:
        """The learning-rate multiplier at (fractional) ``epoch``: warm-up, then ``gamma^k`` after k milestones."""
        if epoch < self.warmup_epochs:
            return (epoch + 1) / (self.warmup_epochs + 1)
        return self.gamma ** sum(epoch >= m * self.epochs for m in self.milestones)


def _load_init(model: nn.Module, path: str) -> bool:
    """Load the weights of checkpoint ``path`` into ``model``; returns whether QReLU bounds were missing
    from it (they are then calibrated). Anything else missing or extra is an error."""
    from .checkpoint import load_checkpoint

    result = model.load_state_dict(load_checkpoint(path)["state_dict"], strict=False)
    bounds = {f"{name}.bound" for name, m in model.named_modules() if isinstance(m, QReLU)}
    other = [k for k in result.missing_keys if k not in bounds]
    if other or result.unexpected_keys:
        raise ValueError(f"train.init {path} does not fit this model (missing {other[:3]}, unexpected "
                         f"{result.unexpected_keys[:3]}); it must hold the same architecture")
    return bool(result.missing_keys)


def train_detector(model: nn.Module, train_set: Dataset, config: DetectionTrainConfig, *,
                   state_path: str | os.PathLike | None = None, progress: Progress = _plain,
                   on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
    """Train a :class:`~spikeconv.models.detection.TinyYOLO` on letterboxed samples (module docstring).

    QReLU bounds start at the ``calibration_percentile`` of their inputs on the first batches and are then
    learned with the weights. With ``state_path`` the whole state is written after every epoch and a
    restarted run resumes from it; epoch ``e`` shuffles and augments with seed ``seed + e``, so the resumed
    run ends with the same weights as an uninterrupted one. Returns the per-epoch history.
    """
    torch.manual_seed(config.seed)
    device = _device(config.device)
    model.to(device)
    world = rank_and_size()[1]
    if config.batch_size % world:
        raise ValueError(f"train.batch_size {config.batch_size} must be divisible by the {world} processes")
    local_batch = min(config.batch_size // world, len(train_set))
    groups = param_groups(model, lr=config.lr, bound_lr=config.lr, weight_decay=config.weight_decay)
    optimizer = (torch.optim.AdamW(groups, lr=config.lr) if config.optimizer == "adamw"
                 else torch.optim.SGD(groups, lr=config.lr, momentum=0.937, nesterov=True))
    steps_per_epoch = max(len(epoch_loader(train_set, config, local_batch, 0, collate)), 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: config.lr_factor(step / steps_per_epoch))
    size = train_set[0][0].shape[-2:]
    lay = layout(model, *size)
    history: list[dict[str, float]] = []
    start_epoch = 0
    resumed = resume_(state_path, model, optimizer, scheduler)
    if resumed is not None:
        start_epoch, history = resumed
    else:  # a fresh run: bounds the init checkpoint does not provide (all of them from scratch) from data
        needs_bounds = _load_init(model, config.init) if config.init else True
        if needs_bounds and any(isinstance(m, QReLU) for m in model.modules()):
            loader = DataLoader(train_set, batch_size=local_batch, shuffle=True, collate_fn=collate,
                                generator=torch.Generator().manual_seed(config.seed))
            batches = [x.to(device) for (x, _), _ in zip(loader, range(config.calibration_batches))]
            calibrate_bounds_(model, batches, p=config.calibration_percentile)
    net = distributed(model, device)
    for epoch in range(start_epoch, config.epochs):
        torch.manual_seed(config.seed + epoch)
        net.train()
        sums = torch.zeros(5, dtype=torch.float64)
        for x, targets in progress(epoch_loader(train_set, config, local_batch, epoch, collate), desc=f"epoch {epoch + 1}/{config.epochs}",
                                   leave=False, disable=not is_main()):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp and device.type == "cuda"):
                output = net(x.to(device, non_blocking=True))
            loss, parts = yolo_loss(output, targets, lay, model.num_anchors, LossWeights())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training diverged at epoch {epoch + 1} (loss {loss.item()}); lower train.lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            scheduler.step()
            sums += torch.tensor([x.shape[0], float(loss) * x.shape[0], parts["box"] * x.shape[0],
                                  parts["obj"] * x.shape[0], parts["cls"] * x.shape[0]], dtype=torch.float64)
        sums = all_sum(sums)
        n = max(float(sums[0]), 1.0)
        record = {"epoch": epoch + 1, "loss": float(sums[1] / n), "box": float(sums[2] / n),
                  "obj": float(sums[3] / n), "cls": float(sums[4] / n), "lr": optimizer.param_groups[0]["lr"]}
        history.append(record)
        save_state(state_path, model, optimizer, scheduler, epoch + 1, history)
        barrier()
        if on_epoch is not None:
            on_epoch(epoch + 1, record)
    model.eval()
    return history


def with_fitted_anchors(spec: dict, model: nn.Module, train_set) -> dict:
    """``spec`` with ``model_kwargs["anchors"]`` from k-means on ``train_set``'s boxes (as many anchors per
    scale as ``model`` has), unless the spec gives anchors already. Deterministic (seeded k-means)."""
    from ..data.detection import box_sizes
    from ..models.detection import kmeans_anchors

    if "anchors" in spec.get("model_kwargs", {}):
        return spec
    scales, per_scale = model.anchors.shape[:2]
    fitted = kmeans_anchors(box_sizes(train_set), scales * per_scale)
    anchors = [[[round(float(v), 2) for v in pair] for pair in fitted[k * per_scale:(k + 1) * per_scale]]
               for k in range(scales)]
    return {**spec, "model_kwargs": {**spec.get("model_kwargs", {}), "anchors": anchors}}
