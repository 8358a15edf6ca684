"""Run configurations in TOML (see ``configs/*.toml``)."""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError, is_count
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
    packaged: bool = False  # read from the package by name: training writes under the current directory

    def for_training(self) -> RunConfig:
        """Where a training run of this config writes. A packaged config (``spikeconv run mnist``) never
        writes into the installed package: its checkpoint goes to ``./checkpoints/`` and its state to
        ``./runs/`` of the current directory; any other config writes where it says."""
        if not self.packaged:
            return self

        here = Path.cwd()
        return dataclasses.replace(self, output=here / "checkpoints" / self.output.name,
                                   state=here / "runs" / self.output.stem / "state.pt", packaged=False)

    def trained_output(self) -> Path | None:
        """The checkpoint a run of this config reuses, or ``None`` when there is none yet: for a packaged config
        a model trained from it in the current directory comes before the shipped one."""
        candidates = dict.fromkeys((self.for_training().output, self.output))
        return next((path for path in candidates if path.is_file()), None)

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


def find_config(source: str | Path) -> tuple[Path, bool]:
    """``(path, packaged)``: a config file, or the packaged config of that name (``"mnist"``)."""
    from ..models.shipped import packaged_config, shipped_names

    path = Path(source)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a run config (a .toml file or a packaged config name)")
    if path.suffix.lower() in MODEL_SUFFIXES or ".py:" in path.name:
        raise ConfigError(f"{path} is a model file, not a run config: this command reads a TOML config (e.g. "
                          f"'mnist'); 'spikeconv inspect {path}' reports what converts, 'spikeconv evaluate' "
                          "scores a spikeconv checkpoint")
    if path.is_file():
        return path, False
    packaged = packaged_config(str(source))
    if packaged is not None:
        return packaged, True
    raise ConfigError(f"config {source} does not exist; give a .toml file or a packaged config name: "
                      f"{', '.join(shipped_names('configs'))}")


def load_run_config(source: str | Path) -> RunConfig:
    """Parse a TOML run config, given as a file or by the name of a packaged config (``"mnist"``).

    Relative paths written in the config (``train.output``, ``train.state``, ``data.root``) are taken
    relative to the config file's folder; the training state defaults to ``runs/<output name>/state.pt``
    under the current directory.

    >>> load_run_config("mnist").output.name
    'mnist_lenet_qrelu.pt'
    """
    path, packaged = find_config(source)
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
    output = _relative_to(path, train.get("output", f"checkpoints/{model['name']}.pt"), "train.output")
    bits = evaluate.get("weight_bits", [])
    try:
        if not isinstance(bits, list):
            raise ValueError("not a list")
        for b in bits:
            check_weight_bits(b)
    except ValueError as exc:
        raise ConfigError(f"{path}: evaluate.weight_bits must be a list of integers from 2 to {MAX_BITS}, "
                          f"got {bits!r}") from exc
    neurons = evaluate.get("neurons", ["if", "buffered"])
    if not isinstance(neurons, list) or not neurons or not set(neurons) <= {"if", "buffered"}:
        raise ConfigError(f"{path}: evaluate.neurons must be a list of \"if\" and/or \"buffered\", got {neurons!r}")
    strengths = _positive_ints(path, evaluate, "max_strengths", [1, 2], "evaluate")
    if any(s & (s - 1) for s in strengths):
        raise ConfigError(f"{path}: evaluate.max_strengths must be powers of two (1, 2, 4, ...), got {strengths}")
    variants = tuple(SNNVariant(n, s, b) for b in [None, *bits] for n in neurons for s in strengths)
    timesteps = tuple(_positive_ints(path, evaluate, "timesteps", [1, 2, 4, 8, 16], "evaluate"))
    if not isinstance(model.get("kwargs", {}), dict):
        raise ConfigError(f"{path}: model.kwargs must be a table of the model's options, e.g. {{ width = 32 }}, "
                          f"got {model['kwargs']!r}")
    limits = {key: _positive_int(path, table, key, name) for name, table, key in
              (("evaluate", evaluate, "test_limit"), ("data", data, "train_limit"), ("evaluate", evaluate, "batch_size"))}
    return RunConfig(
        dataset=str(data["dataset"]), model=str(model["name"]),
        activation={"kind": model.get("activation", "qrelu"), "levels": int(model.get("levels", 8)),
                    "phi": float(model.get("phi", 0.0))},
        model_kwargs=dict(model.get("kwargs", {})), train=train_config, output=output,
        state=_relative_to(path, train["state"], "train.state") if "state" in train
        else Path("runs") / output.stem / "state.pt", timesteps=timesteps,
        variants=variants, eval_batch_size=limits["batch_size"] or 500,
        test_limit=limits["test_limit"], calibrate_for=_calibrate_for(path, evaluate), train_limit=limits["train_limit"], data_root=str(_relative_to(path, data["root"], "data.root")) if data.get("root") else None,
        erasing=bool(train.get("erasing", True)), recipe=chosen.name,
        splits=tuple(str(s) for s in evaluate.get("splits", [])), packaged=packaged,
    )


def _positive_int(path: Path, table: dict, key: str, name: str) -> int | None:
    """``table[key]`` as a positive integer (``None`` when absent)."""
    value = table.get(key)
    if value is not None and not is_count(value):
        raise ConfigError(f"{path}: {name}.{key} must be a positive integer, got {value!r}")
    return value


def _positive_ints(path: Path, table: dict, key: str, default: list[int], name: str) -> list[int]:
    """``table[key]`` as a non-empty list of positive integers."""
    values = table.get(key, default)
    if not isinstance(values, list) or not values or not all(is_count(v) for v in values):
        raise ConfigError(f"{path}: {name}.{key} must be a list of positive integers, got {values!r}")
    return values


def _relative_to(config: Path, value: Any, key: str) -> Path:
    """``value`` as a path; a relative one is taken relative to the config file's folder."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{config}: {key} must be a path string, got {value!r}")
    given = Path(value).expanduser()
    return given if given.is_absolute() else (config.parent / given).resolve()


def _calibrate_for(path, evaluate: dict[str, Any]) -> int | None:
    value = evaluate.get("calibrate_for")
    if value is None:
        return None
    if not is_count(value):
        raise ConfigError(f"{path}: evaluate.calibrate_for must be a positive integer T, got {value!r}")
    return value


def _load_config(args: argparse.Namespace) -> RunConfig:
    """The run config with the command line's ``--epochs``/``--stages``/``--seed`` overrides applied."""
    config = load_run_config(args.config)
    overrides = {k: getattr(args, k) for k in ("epochs", "stages", "seed") if getattr(args, k, None) is not None}
    unknown = [k for k in overrides if not hasattr(config.train, k)]
    if unknown:
        raise ConfigError(f"--{unknown[0]} does not apply to the {config.recipe!r} training recipe of {args.config}")
    if overrides:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, **overrides))
    if getattr(args, "limit", None):
        config = dataclasses.replace(config, test_limit=args.limit)
    return config


def _test_data(dataset: str, root: str | None, limit: int | None, batch_size: int):
    """``(test set, this process's loader of it, a 2-sample example batch)``; under torchrun each process
    gets its whole batches (:func:`spikeconv.tasks.distributed.shard_batches`)."""
    from ..data import make_dataset, make_loader
    from ..tasks.distributed import shard_batches

    test = make_dataset(dataset, "test", root=root, limit=limit)
    example = next(iter(make_loader(test, 2)))[0]
    return test, make_loader(shard_batches(test, batch_size), batch_size), example
