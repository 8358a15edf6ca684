"""Setting QReLU bounds from data, and optimizer parameter groups for them."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .qrelu import QReLU

#: Largest number of values handed to ``kthvalue`` per layer; beyond it a seeded subsample is used.
MAX_PERCENTILE_SAMPLES = 1 << 24


def percentile(values: Tensor, p: float, *, seed: int = 0) -> Tensor:
    """The ``p``-th percentile (0 < p <= 100) of ``values`` (nearest rank, like ``numpy`` 'lower').

    Large inputs are subsampled (seeded) to at most ``MAX_PERCENTILE_SAMPLES`` values.

    Example:
        >>> percentile(torch.arange(1.0, 101.0), 99.0).item()
        99.0
    """
    if not 0 < p <= 100:
        raise ValueError(f"percentile must lie in (0, 100], got {p!r}")
    flat = values.detach().reshape(-1).float()
    if flat.numel() == 0:
        raise ValueError("cannot take a percentile of no values; give calibration data with activity")
    if flat.numel() > MAX_PERCENTILE_SAMPLES:
        gen = torch.Generator().manual_seed(seed)
        flat = flat[torch.randint(flat.numel(), (MAX_PERCENTILE_SAMPLES,), generator=gen)]
    k = max(1, min(flat.numel(), int(round(p / 100.0 * flat.numel()))))
    return flat.kthvalue(k).values


@torch.no_grad()
def calibrate_bounds_(model: nn.Module, batches: Iterable[Tensor], *, p: float = 99.9,
                      batch_statistics: bool = False) -> dict[str, float]:
    """Set every QReLU's ``lambda^b`` to the ``p``-th percentile of its positive inputs over ``batches``.

    In place (hence the trailing underscore). Returns ``{module path: new bound}``. The model is run in
    eval mode, or with ``batch_statistics=True`` in train mode (each BatchNorm normalises with its batch's
    own statistics: the activations a training step sees, which is what an untrained network's bounds must
    cover; its running statistics and every other buffer are restored afterwards), and put back in its
    previous mode; the hooks are removed also after an exception.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), QReLU(levels=4))
        >>> bounds = calibrate_bounds_(net, [torch.randn(64, 2)], p=99.0)
        >>> sorted(bounds)
        ['1']
    """
    qrelus = {name: m for name, m in model.named_modules() if isinstance(m, QReLU)}
    if not qrelus:
        raise ValueError("the model has no QReLU modules to calibrate; build it with a QReLU activation")
    seen: dict[str, list[Tensor]] = {name: [] for name in qrelus}
    handles = []

    def make_hook(name: str):
        def hook(_module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            x = inputs[0].detach()
            seen[name].append(x[x > 0].float().cpu())

        return hook

    was_training = model.training
    buffers = [(b, b.clone()) for b in model.buffers()] if batch_statistics else []
    try:
        for name, module in qrelus.items():
            handles.append(module.register_forward_pre_hook(make_hook(name)))
        model.train(batch_statistics)
        count = 0
        for batch in batches:
            model(batch)
            count += 1
        if count == 0:
            raise ValueError("the calibration data yielded no batches; pass a non-empty iterable of inputs")
    finally:
        for handle in handles:
            handle.remove()
        for buffer, saved in buffers:
            buffer.copy_(saved)
        model.train(was_training)
    result = {}
    for name, module in qrelus.items():
        values = torch.cat(seen[name]) if seen[name] else torch.empty(0)
        bound = float(percentile(values, p)) if values.numel() else 1.0
        module.bound.fill_(max(bound, QReLU.min_bound))
        result[name] = module.bound.item()
    return result


def param_groups(
    model: nn.Module, *, lr: float, bound_lr: float, weight_decay: float = 0.0
) -> list[dict]:
    """Optimizer parameter groups: every QReLU bound in its own group with its own learning rate.

    Bounds get no weight decay. Paper 000 uses ``bound_lr`` = 0.02 (ResNet18) or 0.002 (VGG16).

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), QReLU())
        >>> groups = param_groups(net, lr=0.1, bound_lr=0.01)
        >>> [len(g["params"]) for g in groups], groups[1]["lr"]
        ([2, 1], 0.01)
    """
    bound_ids = {id(m.bound) for m in model.modules() if isinstance(m, QReLU)}
    bounds = [p for p in model.parameters() if id(p) in bound_ids]
    others = [p for p in model.parameters() if id(p) not in bound_ids]
    groups = [{"params": others, "lr": lr, "weight_decay": weight_decay}]
    if bounds:
        groups.append({"params": bounds, "lr": bound_lr, "weight_decay": 0.0})
    return groups
