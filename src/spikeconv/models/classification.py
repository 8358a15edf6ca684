"""Classification networks in the style of paper 000, section C.

Pooling is replaced by strided convolutions, BatchNorm sits between each conv and its activation (and
is folded at conversion), residual blocks add through :class:`~spikeconv.layers.WAdd`, weights start
from Xavier initialisation, and the activation is injected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor, nn

from ..layers import WAdd
from .registry import register_model

Activation = Callable[[], nn.Module]


def xavier_init_(model: nn.Module) -> nn.Module:
    """Xavier-uniform weights and zero biases for every conv/linear; BN to identity. Returns ``model``."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def conv_bn_act(cin: int, cout: int, activation: Activation, *, stride: int = 1, kernel: int = 3) -> list[nn.Module]:
    """``Conv(k, stride, same padding, no bias) -> BatchNorm -> activation``."""
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout), activation()]


@register_model("lenet_mnist")
def lenet_mnist(*, activation: Activation = nn.ReLU, num_classes: int = 10, in_channels: int = 1,
                width: int = 16) -> nn.Sequential:
    """LeNet-style MNIST net: conv5x5(w) - conv3x3/2(2w) - conv3x3/2(2w) - fc128 - fc10 (strided, BN)."""
    w = width
    layers = [
        *conv_bn_act(in_channels, w, activation, kernel=5),
        *conv_bn_act(w, 2 * w, activation, stride=2),
        *conv_bn_act(2 * w, 2 * w, activation, stride=2),
        nn.Flatten(),
        nn.Linear(2 * w * 7 * 7, 128, bias=False),
        nn.BatchNorm1d(128),
        activation(),
        nn.Dropout(0.2),
        nn.Linear(128, num_classes),
    ]
    return xavier_init_(nn.Sequential(*layers))


@register_model("cnn_maxpool_mnist")
def cnn_maxpool_mnist(*, activation: Activation = nn.ReLU, num_classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """A plain CNN as users train it (paper 004's MNIST net style): conv-ReLU-maxpool twice, two linear
    layers, biases, no BatchNorm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, 5, padding=2), activation(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), activation(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), activation(), nn.Dropout(0.2), nn.Linear(128, num_classes),
    )


@register_model("vgg_relu_cifar")
def vgg_relu_cifar(*, activation: Activation = nn.ReLU, num_classes: int = 10, in_channels: int = 3,
                   width: int = 32) -> nn.Sequential:
    """A VGG-style ReLU net with max-pooling and biases, as users train it (for the paper 004 path)."""
    w = width
    return nn.Sequential(
        nn.Conv2d(in_channels, w, 3, padding=1), nn.BatchNorm2d(w), activation(),
        nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), activation(), nn.MaxPool2d(2),
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), activation(),
        nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), activation(), nn.MaxPool2d(2),
        nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), activation(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * w * 16, 10 if num_classes == 10 else num_classes),
    )


@register_model("cnn_relu_bn_cifar")
def cnn_relu_bn_cifar(*, activation: Activation = nn.ReLU, num_classes: int = 10, in_channels: int = 3,
                      width: int = 32) -> nn.Sequential:
    """The CNN of Keras tutorials: ``Conv -> ReLU -> BatchNorm`` twice, then ``MaxPool -> Dropout``, in three
    stages of width w, 2w, 4w; a ``Dense -> ReLU -> BatchNorm -> Dropout`` head. Every BatchNorm follows its
    activation (the usual order in Keras code): the converter moves each one through the max-pool
    and folds it into the next layer."""
    w, layers, channels = width, [], in_channels
    for stage in (w, 2 * w, 4 * w):
        for _ in range(2):
            layers += [nn.Conv2d(channels, stage, 3, padding=1), activation(), nn.BatchNorm2d(stage)]
            channels = stage
        layers += [nn.MaxPool2d(2), nn.Dropout(0.2)]
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(4 * w * 16, 128), activation(), nn.BatchNorm1d(128),
                         nn.Dropout(0.3), nn.Linear(128, num_classes))


def vgg_features(plan: Sequence[int | str], activation: Activation, in_channels: int) -> tuple[list[nn.Module], int]:
    """VGG body from a plan: an int is a 3x3 conv with that width; ``"S"`` makes the next conv stride 2."""
    layers: list[nn.Module] = []
    channels, stride = in_channels, 1
    for item in plan:
        if item == "S":
            stride = 2
            continue
        layers += conv_bn_act(channels, int(item), activation, stride=stride)
        channels, stride = int(item), 1
    return layers, channels


class VGG(nn.Module):
    """VGG with strided convolutions instead of max-pooling and a linear (or small MLP) classifier."""

    def __init__(self, plan: Sequence[int | str], *, activation: Activation, num_classes: int, in_channels: int,
                 hidden: int = 0, pool_to: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        layers, channels = vgg_features(plan, activation, in_channels)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(pool_to)
        self.flatten = nn.Flatten()
        width = channels * pool_to * pool_to
        head: list[nn.Module] = []
        if hidden:
            head += [nn.Linear(width, hidden, bias=False), nn.BatchNorm1d(hidden), activation(), nn.Dropout(dropout)]
            width = hidden
        head.append(nn.Linear(width, num_classes))
        self.classifier = nn.Sequential(*head)
        xavier_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.flatten(self.pool(self.features(x))))


@register_model("vgg_cifar_small")
def vgg_cifar_small(*, activation: Activation = nn.ReLU, num_classes: int = 10, in_channels: int = 3,
                    width: int = 32) -> VGG:
    """A VGG-style CIFAR net small enough to train on a CPU: 3 stages of 2 convs, width w, 2w, 4w."""
    w = width
    plan = [w, w, "S", 2 * w, 2 * w, "S", 4 * w, 4 * w, "S", 4 * w]
    return VGG(plan, activation=activation, num_classes=num_classes, in_channels=in_channels)


@register_model("vgg16_cifar")
def vgg16_cifar(*, activation: Activation = nn.ReLU, num_classes: int = 10, in_channels: int = 3) -> VGG:
    """VGG16 (13 convs) for 32x32 inputs; each max-pool of the original replaced by a stride-2 conv."""
    plan = [64, 64, "S", 128, 128, "S", 256, 256, 256, "S", 512, 512, 512, "S", 512, 512, 512]
    return VGG(plan, activation=activation, num_classes=num_classes, in_channels=in_channels)


@register_model("vgg16_imagenet")
def vgg16_imagenet(*, activation: Activation = nn.ReLU, num_classes: int = 1000, in_channels: int = 3) -> VGG:
    """VGG16 for 224x224 inputs with strided convs, BN, and the 4096-4096 classifier on a 7x7 map."""
    plan = ["S", 64, 64, "S", 128, 128, "S", 256, 256, 256, "S", 512, 512, 512, "S", 512, 512, 512]
    model = VGG(plan, activation=activation, num_classes=num_classes, in_channels=in_channels, hidden=4096,
                pool_to=7, dropout=0.5)
    return model


class BasicBlock(nn.Module):
    """ResNet basic block whose residual add is a :class:`WAdd` followed by its own activation."""

    def __init__(self, cin: int, cout: int, stride: int, activation: Activation) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = activation()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        self.add = WAdd()
        self.act2 = activation()

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(self.add(out, self.shortcut(x)))


class ResNet(nn.Module):
    """ResNet with basic blocks; ``stem="cifar"`` (3x3 conv) or ``"imagenet"`` (7x7/2 conv, then a
    stride-2 conv in place of the max-pool)."""

    def __init__(self, blocks: Sequence[int], *, activation: Activation, num_classes: int, in_channels: int,
                 stem: str = "cifar", width: int = 64) -> None:
        super().__init__()
        if stem == "cifar":
            self.stem = nn.Sequential(*conv_bn_act(in_channels, width, activation))
        elif stem == "imagenet":
            self.stem = nn.Sequential(*conv_bn_act(in_channels, width, activation, stride=2, kernel=7),
                                      *conv_bn_act(width, width, activation, stride=2))
        else:
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        stages = []
        cin = width
        for k, count in enumerate(blocks):
            cout = width * 2**k
            for b in range(count):
                stages.append(BasicBlock(cin, cout, 2 if (b == 0 and k > 0) else 1, activation))
                cin = cout
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes)
        xavier_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(self.pool(self.layers(self.stem(x)))))


@register_model("resnet18_cifar")
def resnet18_cifar(*, activation: Activation = nn.ReLU, num_classes: int = 10, in_channels: int = 3,
                   width: int = 64) -> ResNet:
    """ResNet18 for 32x32 inputs (3x3 stem, four stages of two basic blocks)."""
    return ResNet([2, 2, 2, 2], activation=activation, num_classes=num_classes, in_channels=in_channels,
                  stem="cifar", width=width)


@register_model("resnet18_imagenet")
def resnet18_imagenet(*, activation: Activation = nn.ReLU, num_classes: int = 1000, in_channels: int = 3) -> ResNet:
    """ResNet18 for 224x224 inputs (7x7/2 stem and a stride-2 conv instead of max-pooling)."""
    return ResNet([2, 2, 2, 2], activation=activation, num_classes=num_classes, in_channels=in_channels,
                  stem="imagenet")


@register_model("resnet_tiny")
def resnet_tiny(*, activation: Activation = nn.ReLU, num_classes: int = 10, in_channels: int = 3,
                width: int = 16) -> ResNet:
    """A two-stage, one-block-per-stage ResNet for tests and quick experiments."""
    return ResNet([1, 1], activation=activation, num_classes=num_classes, in_channels=in_channels,
                  stem="cifar", width=width)
