"""``spikeconv run``'s choice between reusing a trained checkpoint and training, for every recipe.

Two rules keep a run from reporting the wrong model's numbers:

* a checkpoint is reused only if it was trained as the config describes (model, its options, activation,
  data set); otherwise the run stops and says how to train this config;
* an interrupted run resumes only from a training state written by the same settings (a fingerprint of
  the model spec and training options is kept beside the state); ``--retrain`` starts afresh.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from ..errors import CheckpointError, ConfigError
from .config import RunConfig
from .report import _say, write_json_atomic


def _activation(spec: dict[str, Any]) -> dict[str, Any]:
    act = dict(spec.get("activation", {}))
    kind = act.get("kind", "relu")
    return {"kind": kind} if kind == "relu" else {"kind": kind, "levels": int(act.get("levels", 8)),
                                                   "phi": float(act.get("phi", 0.0))}


def check_reuse(config: RunConfig, payload: dict[str, Any], source: str, path) -> None:
    """Raise :class:`ConfigError` if the checkpoint ``path`` was not trained as ``config`` says.

    The model name, data set, activation and every model option the config sets must agree (options the
    training added, such as a detector's fitted anchors, are not compared).
    """
    differences = []
    for key in ("model", "dataset"):
        if payload.get(key) != getattr(config, key):
            differences.append(f"{key} {payload.get(key)!r} (config: {getattr(config, key)!r})")
    if _activation(payload) != _activation(config.spec):
        differences.append(f"activation {_activation(payload)} (config: {_activation(config.spec)})")
    stored = payload.get("model_kwargs", {})
    for key, value in config.model_kwargs.items():
        if json.dumps(stored.get(key)) != json.dumps(value):
            differences.append(f"{key} = {stored.get(key)!r} (config: {value!r})")
    if differences:
        raise ConfigError(f"{path} was trained with {'; '.join(differences)}: it is not the model "
                          f"{source} describes; pass --retrain to train this config, or set train.output to "
                          "another file")


def _fingerprint(config: RunConfig) -> dict[str, Any]:
    """What a training state must have been written with to be resumed: model spec and training options,
    less the options a resumed run may change (:func:`spikeconv.tasks.train_state.free_option`)."""
    import dataclasses

    from ..tasks.train_state import free_options

    free = free_options(type(config.train))
    train = {k: v for k, v in dataclasses.asdict(config.train).items() if k not in free}
    return json.loads(json.dumps({"spec": config.spec, "train": train, "train_limit": config.train_limit,
                                  "erasing": config.erasing}, default=str))


def _same_settings(recorded: Any, config: RunConfig) -> bool:
    """Whether a recorded fingerprint matches ``config`` (free options in the record, e.g. from an older
    spikeconv that kept them, do not count)."""
    from ..tasks.train_state import free_options

    if not isinstance(recorded, dict) or not isinstance(recorded.get("train"), dict):
        return False
    free = free_options(type(config.train))
    recorded = {**recorded, "train": {k: v for k, v in recorded["train"].items() if k not in free}}
    return recorded == _fingerprint(config)


def prepare_state(config: RunConfig, retrain: bool) -> None:
    """Make ``config.state`` safe to resume from: with ``retrain`` an old state is removed; otherwise an
    existing state must be readable and written by the same settings, or the run stops naming the file."""
    import torch

    from ..tasks.distributed import barrier, is_main

    state, marker = config.state, config.state.with_name(config.state.name + ".json")
    if state.is_dir():
        raise ConfigError(f"train.state {state} is a directory; name a file (e.g. runs/NAME/state.pt)")
    if retrain:
        barrier()  # under torchrun every process has looked at the files before the main one removes them
        for old in (state, marker):
            if old.exists() and is_main():
                os.unlink(old)
    elif state.exists():
        try:
            torch.load(state, map_location="cpu", weights_only=True)
        except Exception as exc:  # any unreadable state is reported the same way
            raise CheckpointError(f"training state {state} is unreadable ({type(exc).__name__}: it may have been "
                                  "cut short); delete it or pass --retrain to start afresh") from exc
        try:
            recorded = json.loads(marker.read_text())
        except (OSError, ValueError):
            recorded = None
        if not _same_settings(recorded, config):
            raise ConfigError(f"training state {state} was written by a run with other settings (or by an older "
                              "spikeconv); pass --retrain to start afresh, or delete it")
        _say(f"resuming from {state}")
    if is_main():
        write_json_atomic(marker, _fingerprint(config))
    barrier()


def check_accepts(config: RunConfig) -> None:
    """Refuse, before training, a model that cannot take its data set's inputs (e.g. a 3-channel net on MNIST)."""
    import torch

    from ..tasks.checkpoint import build_from_spec
    from ..tasks.samples import input_shape

    shape = input_shape(config.spec)
    if shape is None:
        return
    model = build_from_spec(config.spec).eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, *shape))
    except RuntimeError as exc:
        raise ConfigError(f"model {config.model!r} does not take {config.dataset}'s inputs of shape {shape} "
                          f"({str(exc).splitlines()[0]}); pick a model (or in_channels) for this data set") from exc


def trained_model(config: RunConfig, source: str, retrain: bool,
                  train: Callable[[RunConfig], tuple[Any, dict[str, Any]]]) -> tuple[Any, dict[str, Any]]:
    """``(model, spec)``: the checkpoint ``config.output`` if it fits the config (and not ``retrain``), else
    ``train(config)`` with the config's outputs (moved out of the package for a packaged config).

    Before training: the outputs must be files, the model must take the data set's inputs, and the training
    state must be resumable (:func:`prepare_state`)."""
    from ..tasks.checkpoint import load_model

    reusable = config.trained_output()
    if reusable is not None and not retrain:
        model, payload = load_model(reusable)
        check_reuse(config, payload, source, reusable)
        _say(f"loaded trained model {reusable} (use --retrain to train again)")
        return model, payload
    config = config.for_training()
    if config.output.is_dir():
        raise ConfigError(f"train.output {config.output} is a directory; name a .pt file")
    check_accepts(config)
    prepare_state(config, retrain)
    model, spec = train(config)
    _say(f"saved {config.output}")
    return model, spec
