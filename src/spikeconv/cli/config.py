"""Run configurations in TOML (see ``configs/*.toml``)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..layers.grid import MAX_BITS, check_weight_bits
from ..tasks.classification import SNNVariant
from ..tasks.recipes import recipe


@dataclass(frozen=True)
class RunConfig:
    """A whole job: data, model, training, and the SNN evaluation grid."""

    dataset: str
    model: str
    activation: dict[str, Any]
    model_kwargs: dict[str, Any]
    train: Any  # the recipe's options: TrainConfig or FastTrainConfig
    output: Path
    state: Path
    timesteps: tuple[int, ...] = (1, 2, 4, 8, 16)
    variants: tuple[SNNVariant, ...] = field(default_factory=tuple)
    eval_batch_size: int = 500
    test_limit: int | None = None
    calibrate_for: int | None = None
    train_limit: int | None = None
    data_root: str | None = None
    erasing: bool = True
    recipe: str = "standard"
    splits: tuple[str, ...] = ()

    @property
    def spec(self) -> dict[str, Any]:
        """The part of the config a checkpoint stores to rebuild the model."""
        return {"model": self.model, "model_kwargs": dict(self.model_kwargs),
                "activation": dict(self.activation), "dataset": self.dataset}


def _table(raw: dict, name: str) -> dict:
    value = raw.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


#: the keys each table of a run config may hold ([train] also takes its recipe's options)
TABLE_KEYS = {
    "data": {"dataset", "root", "train_limit"},
    "model": {"name", "activation", "levels", "phi", "kwargs"},
    "evaluate": {"timesteps", "neurons", "max_strengths", "batch_size", "weight_bits", "calibrate_for", "test_limit",
                 "splits"},
}


def _check_keys(path: Path, table: str, given: dict, known: set[str]) -> None:
    """Refuse unknown keys, naming the closest known one (a typo must not be ignored silently)."""
    import difflib

    for key in sorted(set(given) - known):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {sorted(known)}"
        raise ConfigError(f"{path}: unknown key {key!r} in [{table}]{hint}")


#: suffixes of model files (checkpoints and the user formats), which a command reading a config refuses by name
MODEL_SUFFIXES = (".pt", ".pth", ".onnx", ".pt2", ".keras", ".h5", ".hdf5", ".nir")


def load_run_config(path: str | Path) -> RunConfig:
    """Parse a TOML run config; relative output paths are taken relative to the current directory."""
    path = Path(path)
    if path.suffix.lower() in MODEL_SUFFIXES or ".py:" in path.name:
        raise ConfigError(f"{path} is a model file, not a run config: this command reads a TOML config (see "
                          f"configs/); 'spikeconv inspect {path}' reports what converts, 'spikeconv evaluate' "
                          "scores a spikeconv checkpoint")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; see configs/ for examples")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    unknown_tables = set(raw) - {"data", "model", "train", "evaluate"}
    if unknown_tables:
        raise ConfigError(f"{path}: unknown table(s) {sorted(unknown_tables)}; a run config has [data], [model], "
                          "[train] and [evaluate]")
    data, model, train, evaluate = (_table(raw, k) for k in ("data", "model", "train", "evaluate"))
    for table, given in (("data", data), ("model", model), ("evaluate", evaluate)):
        _check_keys(path, table, given, TABLE_KEYS[table])
    try:
        chosen = recipe(str(train.get("recipe", "standard")))
    except ValueError as exc:
        raise ConfigError(f"{path}: train.{exc}") from exc
    known = {f.name for f in fields(chosen.config_type)}
    train_options = {k: v for k, v in train.items() if k in known}
    try:
        _check_keys(path, "train", train, known | {"output", "state", "erasing", "recipe"})
    except ConfigError as exc:
        raise ConfigError(f"{exc} (options of the {chosen.name!r} recipe)") from None
    try:
        train_config = chosen.config_type(**train_options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if "dataset" not in data or "name" not in model:
        raise ConfigError(f"{path} needs [data] dataset = ... and [model] name = ...")
    output = Path(train.get("output", f"checkpoints/{model['name']}.pt"))
    bits = evaluate.get("weight_bits", [])
    try:
        if not isinstance(bits, list):
            raise ValueError("not a list")
        for b in bits:
            check_weight_bits(b)
    except ValueError as exc:
        raise ConfigError(f"{path}: evaluate.weight_bits must be a list of integers from 2 to {MAX_BITS}, "
                          f"got {bits!r}") from exc
    variants = tuple(SNNVariant(n, int(s), b) for b in [None, *bits] for n in evaluate.get("neurons", ["if", "buffered"])
                     for s in evaluate.get("max_strengths", [1, 2]))
    timesteps = tuple(int(t) for t in evaluate.get("timesteps", [1, 2, 4, 8, 16]))
    if not timesteps or min(timesteps) < 1:
        raise ConfigError(f"{path}: evaluate.timesteps must be positive integers")
    return RunConfig(
        dataset=str(data["dataset"]), model=str(model["name"]),
        activation={"kind": model.get("activation", "qrelu"), "levels": int(model.get("levels", 8)),
                    "phi": float(model.get("phi", 0.0))},
        model_kwargs=dict(model.get("kwargs", {})), train=train_config, output=output,
        state=Path(train.get("state", f"runs/{output.stem}/state.pt")), timesteps=timesteps,
        variants=variants, eval_batch_size=int(evaluate.get("batch_size", 500)),
        test_limit=evaluate.get("test_limit") or None, calibrate_for=_calibrate_for(path, evaluate), train_limit=data.get("train_limit") or None, data_root=data.get("root") or None,
        erasing=bool(train.get("erasing", True)), recipe=chosen.name,
        splits=tuple(str(s) for s in evaluate.get("splits", [])),
    )


def _calibrate_for(path, evaluate: dict[str, Any]) -> int | None:
    value = evaluate.get("calibrate_for")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{path}: evaluate.calibrate_for must be a positive integer T, got {value!r}")
    return value
