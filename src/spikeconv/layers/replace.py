"""Module replacement by dotted path: the one helper every transform of the package uses."""

from __future__ import annotations

from torch import nn


def set_submodule(root: nn.Module, path: str, new: nn.Module) -> None:
    """Replace the submodule at dotted ``path`` of ``root`` by ``new`` (``path`` names an existing module).

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        >>> set_submodule(net, "1", nn.Identity())
        >>> type(net[1]).__name__
        'Identity'
    """
    parent_path, _, attr = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    setattr(parent, attr, new)
