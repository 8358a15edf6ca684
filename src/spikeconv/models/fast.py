"""A CIFAR-10 network built to train to >= 93% in about an hour of a 2-core CPU and to convert exactly.

The shape follows the fast-training literature (a fixed 2x2 patch-whitening stem, three blocks of two 3x3
convolutions at widths 64 / 256 / 256, max-pooling, a bias-free linear head), rearranged so that every
operation is an ordinary conversion rule: each convolution is followed by BatchNorm (folded) and the
activation, and every max-pool sits on the activation's output, where the SNN pools spikes exactly
(``ConversionConfig(maxpool="count")``: the output count equals the largest input count at every step).
The training recipe that goes with it is :mod:`spikeconv.tasks.fast`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from .registry import register_model

Activation = Callable[[], nn.Module]


class FastNet(nn.Module):
    """``whiten(2x2)-BN-act -> [conv-BN-act -> maxpool2 -> conv-BN-act] x 3 -> maxpool3 -> linear``.

    ``whiten`` is a 2x2 convolution (valid padding, 32 -> 31 pixels) whose weights
    :func:`whitening_init_` sets from the training images and the training recipe freezes; the BatchNorm
    after it brings its channels, whose scales differ by 20x, to one range before the first quantizer.
    With ``stem_activation=False`` the whitened image goes straight into the first convolution (no
    quantizer between them; the SNN computes both convolutions on the analog input). With
    ``stem_norm=False`` the whitening convolution has a bias instead of a BatchNorm: its channels keep their
    whitened scales (``e / (e + eps)`` of variance for eigenvalue ``e``, so the noisiest patch directions stay
    small) instead of being brought to unit variance.
    """

    def __init__(self, *, activation: Activation, num_classes: int = 10, in_channels: int = 3,
                 widths: tuple[int, int, int] = (64, 256, 256), whiten_width: int = 24,
                 stem_activation: bool = True, stem_norm: bool = True) -> None:
        super().__init__()
        if whiten_width % 2:
            raise ValueError(f"whiten_width must be even (eigenvectors and their negatives), got {whiten_width}")
        self.whiten = nn.Conv2d(in_channels, whiten_width, 2, padding=0, bias=not stem_norm)
        self.whiten_bn = nn.BatchNorm2d(whiten_width) if stem_norm else nn.Identity()
        self.act0 = activation() if stem_activation else nn.Identity()
        blocks: list[nn.Module] = []
        cin = whiten_width
        for width in widths:
            blocks += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), activation(),
                       nn.MaxPool2d(2),
                       nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), activation()]
            cin = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.MaxPool2d(3)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(cin, num_classes, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.whiten:
                _dirac_init_(m)

    @property
    def stem_bias(self) -> nn.Parameter:
        """The stem's bias (the BatchNorm's, or the whitening convolution's without one)."""
        return self.whiten.bias if self.whiten.bias is not None else self.whiten_bn.bias

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.flatten(self.pool(self.blocks(self.act0(self.whiten_bn(self.whiten(x)))))))


def _dirac_init_(conv: nn.Conv2d) -> None:
    """Default init, then the first ``min(in, out)`` filters made identities (eases early training)."""
    with torch.no_grad():
        n = min(conv.in_channels, conv.out_channels)
        torch.nn.init.dirac_(conv.weight[:n])


@torch.no_grad()
def whitening_init_(conv: nn.Conv2d, images: Tensor, eps: float = 5e-4) -> None:
    """Set a 2x2 ``conv`` to whiten the patches of ``images`` (float ``[N, C, H, W]``, normalised).

    With the patch covariance ``Sigma = V diag(e) V^T``, the filters are ``V^T / sqrt(e + eps)`` and
    their negatives (so that a ReLU keeps both signs); the bias is set to zero.
    """
    c, kh, kw = conv.in_channels, *conv.kernel_size
    half = conv.out_channels // 2
    patches = images.unfold(2, kh, 1).unfold(3, kw, 1).transpose(1, 3).reshape(-1, c * kh * kw).double()
    patches = patches - patches.mean(0)
    cov = patches.T @ patches / len(patches)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    order = eigenvalues.flip(0)[:half], eigenvectors.T.flip(0)[:half]
    filters = order[1] / torch.sqrt(order[0] + eps)[:, None]
    filters = filters.reshape(half, c, kh, kw)  # patches are flattened in the conv weight's (c, kh, kw) order
    conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight.dtype))
    if conv.bias is not None:
        conv.bias.zero_()


@register_model("fastnet_cifar")
def fastnet_cifar(*, activation: Activation = nn.ReLU, num_classes: int = 10, in_channels: int = 3,
                  widths: tuple[int, int, int] = (64, 256, 256), stem_activation: bool = True,
                  stem_norm: bool = True) -> FastNet:
    """The fast CIFAR-10 network (:class:`FastNet`), widths 64 / 256 / 256 by default."""
    return FastNet(activation=activation, num_classes=num_classes, in_channels=in_channels, widths=tuple(widths),
                   stem_activation=stem_activation, stem_norm=stem_norm)
