"""Reference architectures, hand-crafted and found by search, with random weights.

Every entry is built without downloading anything (``weights=None``), then given He (fan-in)
random weights (``fff.models.init``) so that its output depends on its input and parity checks
mean something: speed does not depend on the values of the weights.
``resolution`` is the input size each architecture was published at; ``make`` takes the one asked
for, since some build for one (ViT's learned positions, MaxViT's partitions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from fff.models.init import variance_preserving
from fff.models.names import ZOO_MODELS

__all__ = ["ZOO", "ZooEntry"]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    make: Callable[[int, int], nn.Module]  # (classes, resolution) -> module
    resolution: int
    description: str
    source: str


def _torchvision(name: str, sized_by: str | None = None, **options) -> Callable[[int, int], nn.Module]:
    """``sized_by``: the option that tells the model its input size (``image_size``, ``input_size``)."""
    def make(classes: int, resolution: int) -> nn.Module:
        import torchvision

        if sized_by == "image_size":
            options["image_size"] = resolution
        elif sized_by == "input_size":
            options["input_size"] = (resolution, resolution)
        return variance_preserving(getattr(torchvision.models, name)(weights=None, num_classes=classes, **options))

    return make


def _darts(classes: int, resolution: int) -> nn.Module:
    from fff.models.darts import darts_v2

    return variance_preserving(darts_v2(num_classes=classes))


# googlenet and inception_v3: explicit init_weights, or torchvision warns about a changed default;
# no auxiliary classifiers, they only run in training.
_MAKERS = {
    "vgg16": _torchvision("vgg16"),
    "resnet18": _torchvision("resnet18"),
    "resnet50": _torchvision("resnet50"),
    "resnext50_32x4d": _torchvision("resnext50_32x4d"),
    "densenet121": _torchvision("densenet121"),
    "squeezenet1_1": _torchvision("squeezenet1_1"),
    "googlenet": _torchvision("googlenet", aux_logits=False, init_weights=True),
    "inception_v3": _torchvision("inception_v3", aux_logits=False, init_weights=True),
    "mobilenet_v2": _torchvision("mobilenet_v2"),
    "mobilenet_v3_large": _torchvision("mobilenet_v3_large"),
    "shufflenet_v2_x1_0": _torchvision("shufflenet_v2_x1_0"),
    "darts": _darts,
    "mnasnet1_0": _torchvision("mnasnet1_0"),
    "efficientnet_b0": _torchvision("efficientnet_b0"),
    "regnet_y_400mf": _torchvision("regnet_y_400mf"),
    "vit_b_16": _torchvision("vit_b_16", sized_by="image_size"),  # learned positions for its patch count
    "swin_t": _torchvision("swin_t"),
    "efficientnet_v2_s": _torchvision("efficientnet_v2_s"),
    "convnext_tiny": _torchvision("convnext_tiny"),  # layer scale 1, not 1e-6 (fff.models.init)
    "maxvit_t": _torchvision("maxvit_t", sized_by="input_size"),  # attention partitions of its map sizes
}

ZOO: dict[str, ZooEntry] = {
    name: ZooEntry(name, _MAKERS[name], resolution, description,
                   "fff.models.darts (DARTS-V2 genotype)" if name == "darts" else f"torchvision.models.{name}")
    for name, (resolution, description) in ZOO_MODELS.items()  # names, resolutions, descriptions: fff.models.names
}
