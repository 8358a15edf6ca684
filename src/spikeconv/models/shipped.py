"""The trained checkpoints and example run configs that ship inside the package, found by name.

They live in ``spikeconv/checkpoints/*.pt`` and ``spikeconv/configs/*.toml`` (package data; in a source
checkout the top-level ``checkpoints`` and ``configs`` are links to them), so an installed spikeconv finds
them from any directory:

>>> shipped_checkpoint("mnist_lenet_qrelu").name
'mnist_lenet_qrelu.pt'
>>> packaged_config("mnist").name
'mnist.toml'
>>> packaged_config("no_such_config") is None
True
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
CHECKPOINTS = PACKAGE / "checkpoints"
CONFIGS = PACKAGE / "configs"


def _named(folder: Path, name: str, suffix: str) -> Path | None:
    """``folder/name`` or ``folder/name + suffix`` if ``name`` is a bare name (no directory) of a file there."""
    if not name or Path(name).name != name:
        return None
    for candidate in (folder / name, folder / f"{name}{suffix}"):
        if candidate.suffix == suffix and candidate.is_file():
            return candidate
    return None


def shipped_checkpoint(name: str) -> Path | None:
    """The shipped checkpoint called ``name`` (with or without ``.pt``), or ``None``."""
    return _named(CHECKPOINTS, name, ".pt")


def packaged_config(name: str) -> Path | None:
    """The packaged run config called ``name`` (with or without ``.toml``), or ``None``."""
    return _named(CONFIGS, name, ".toml")


def shipped_names(kind: str) -> list[str]:
    """The names of the shipped ``"checkpoints"`` or packaged ``"configs"``."""
    folder, suffix = {"checkpoints": (CHECKPOINTS, ".pt"), "configs": (CONFIGS, ".toml")}[kind]
    return sorted(p.stem for p in folder.glob(f"*{suffix}"))

