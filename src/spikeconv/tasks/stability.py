"""Performance stability (paper 000, appendix A.5, Table 2): the same recipe trained from N seeds.

For each seed ``s`` the model is built and trained afresh (``train.seed = s``), converted, and evaluated;
the study reports, over the runs, the mean and the sample standard deviation (``n - 1`` in the
denominator) of the quantized-ANN accuracy, the SNN accuracy at ``T`` and their difference
``SNN - ANN``, as Table 2 does.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from torch.utils.data import Dataset

from ..convert import ConversionConfig, convert
from .classification import Progress, TrainConfig, _plain, evaluate_ann, evaluate_snn, train_classifier


def summarize(values: list[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for a single value).

    Example:
        >>> summarize([1.0, 2.0, 3.0])
        {'mean': 2.0, 'std': 1.0}
    """
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def stability_study(
    build: Callable[[], nn.Module],
    train_set: Dataset,
    test_loader: Iterable,
    example: Tensor,
    train: TrainConfig,
    *,
    runs: int,
    train_fn: Callable[..., Any] = train_classifier,
    timesteps: int = 8,
    conversion: ConversionConfig | None = None,
    state_dir: str | Path | None = None,
    progress: Progress = _plain,
    on_run: Callable[[dict[str, Any]], None] | None = None,
    first: nn.Module | None = None,
    earlier: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train ``runs`` models from seeds ``train.seed, train.seed + 1, ...`` and summarise them (Table 2).

    ``train_fn`` is the recipe's training function (:mod:`spikeconv.tasks.recipes`) and ``train`` its options.

    ``state_dir`` keeps each run's training state (``seed<s>.pt``) so an interrupted study resumes.
    ``first``, a model already trained by this recipe with seed ``train.seed`` (a shipped checkpoint), is
    evaluated as the first run instead of being trained again. ``earlier`` holds rows of the same study run
    before (other seeds, e.g. on another machine); they are pooled into the summary ahead of the new runs.
    Returns ``{"runs": [{seed, ann_accuracy, snn_accuracy, difference[, train_seconds]}, ...], "ann_accuracy": {mean,
    std}, "snn_accuracy": {...}, "difference": {...}, "timesteps": T}``.
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs}")
    conversion = conversion or ConversionConfig()
    rows = list(earlier or [])
    seeds = [row["seed"] for row in rows] + [train.seed + index for index in range(runs)]
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise ValueError(f"seed {repeated[0]} would be run twice: the earlier results already hold it; start the "
                         "new runs at another seed")
    for index in range(runs):
        seed = train.seed + index
        history: list = []
        if index == 0 and first is not None:
            model = first
        else:
            model = build()
            state = Path(state_dir) / f"seed{seed}.pt" if state_dir is not None else None
            history = train_fn(model, train_set, dataclasses.replace(train, seed=seed), state_path=state,
                               progress=progress) or []
        ann = evaluate_ann(model, test_loader, progress=progress)
        snn = evaluate_snn(convert(model, example, conversion), test_loader, [timesteps], progress=progress)[timesteps]
        row = {"seed": seed, "ann_accuracy": ann, "snn_accuracy": snn, "difference": snn - ann}
        if history and all("seconds" in record for record in history):  # the epochs' step loops, resumed ones included
            row["train_seconds"] = sum(record["seconds"] for record in history)
        rows.append(row)
        if on_run is not None:
            on_run(row)
    result: dict[str, Any] = {"timesteps": timesteps, "runs": rows}
    for key in ("ann_accuracy", "snn_accuracy", "difference"):
        result[key] = summarize([r[key] for r in rows])
    return result
