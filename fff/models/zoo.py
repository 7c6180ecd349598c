"""Reference architectures, hand-crafted and found by search, with random weights.

Every entry is built without downloading anything (``weights=None``), then given He (fan-in)
random weights (``fff.models.init``) so that its output depends on its input and parity checks
mean something: speed does not depend on the values of the weights.
``resolution`` is the input size each architecture was published at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from fff.models.init import variance_preserving

__all__ = ["ZOO", "ZooEntry"]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    make: Callable[[int], nn.Module]  # classes -> module
    resolution: int
    description: str
    source: str


def _torchvision(name: str, **options) -> Callable[[int], nn.Module]:
    def make(classes: int) -> nn.Module:
        import torchvision

        return variance_preserving(getattr(torchvision.models, name)(weights=None, num_classes=classes, **options))

    return make


def _darts(classes: int) -> nn.Module:
    from fff.models.darts import darts_v2

    return variance_preserving(darts_v2(num_classes=classes))


# googlenet and inception_v3: explicit init_weights, or torchvision warns about a changed default;
# no auxiliary classifiers, they only run in training.
_ENTRIES = [
    ("vgg16", _torchvision("vgg16"), 224, "VGG-16: plain 3x3 convolutions (hand-crafted, 2014)"),
    ("resnet18", _torchvision("resnet18"), 224, "ResNet-18: basic residual blocks (hand-crafted, 2015)"),
    ("resnet50", _torchvision("resnet50"), 224, "ResNet-50: bottleneck residual blocks (hand-crafted, 2015)"),
    ("resnext50_32x4d", _torchvision("resnext50_32x4d"), 224, "ResNeXt-50 32x4d: grouped bottlenecks (hand-crafted, 2017)"),
    ("densenet121", _torchvision("densenet121"), 224, "DenseNet-121: dense blocks (hand-crafted, 2017)"),
    ("squeezenet1_1", _torchvision("squeezenet1_1"), 224, "SqueezeNet 1.1: fire modules (hand-crafted, 2016)"),
    ("googlenet", _torchvision("googlenet", aux_logits=False, init_weights=True), 224,
     "GoogLeNet: Inception modules (hand-crafted, 2014)"),
    ("inception_v3", _torchvision("inception_v3", aux_logits=False, init_weights=True), 299,
     "Inception-V3: factorized Inception modules (hand-crafted, 2015)"),
    ("mobilenet_v2", _torchvision("mobilenet_v2"), 224, "MobileNet-V2: inverted residuals (hand-crafted, 2018)"),
    ("mobilenet_v3_large", _torchvision("mobilenet_v3_large"), 224,
     "MobileNet-V3 Large: inverted residuals with SE, h-swish (NAS + hand-tuned, 2019)"),
    ("shufflenet_v2_x1_0", _torchvision("shufflenet_v2_x1_0"), 224, "ShuffleNet-V2 1.0x: channel split and shuffle (hand-crafted, 2018)"),
    ("darts", _darts, 224, "DARTS-V2: cells found by differentiable architecture search (NAS, 2019)"),
    ("mnasnet1_0", _torchvision("mnasnet1_0"), 224, "MnasNet 1.0: platform-aware search (NAS, 2019)"),
    ("efficientnet_b0", _torchvision("efficientnet_b0"), 224, "EfficientNet-B0: MBConv with SE (NAS, 2019)"),
    ("regnet_y_400mf", _torchvision("regnet_y_400mf"), 224, "RegNetY-400MF: design-space search (2020)"),
]

ZOO: dict[str, ZooEntry] = {
    name: ZooEntry(name, make, resolution, description,
                   "fff.models.darts (DARTS-V2 genotype)" if name == "darts" else f"torchvision.models.{name}")
    for name, make, resolution, description in _ENTRIES
}
