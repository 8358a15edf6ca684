"""Registered model builders with an injected activation factory (models import only torch)."""

from . import classification, detection, fast  # noqa: F401  (registers the builders)
from .classification import VGG, BasicBlock, ResNet, xavier_init_
from .detection import TinyYOLO, kmeans_anchors
from .fast import FastNet, whitening_init_
from .registry import build_model, list_models, register_model

__all__ = ["VGG", "BasicBlock", "FastNet", "ResNet", "TinyYOLO", "build_model", "kmeans_anchors", "list_models", "register_model", "whitening_init_", "xavier_init_"]
