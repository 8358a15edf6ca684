"""A registry of model builders, in the style of ``torchvision.models``.

Every builder takes keyword arguments only, among them ``activation``: a zero-argument factory of the
activation module (``nn.ReLU`` by default; ``lambda: QReLU(levels=8)`` for conversion-ready training).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a builder under ``name`` (names are unique)."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return wrap


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the registered model ``name``.

    Example:
        >>> build_model("lenet_mnist").__class__.__name__
        'Sequential'
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[name](**kwargs)


def list_models() -> list[str]:
    """Names of all registered models."""
    return sorted(_BUILDERS)
