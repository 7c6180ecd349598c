"""The names a user can give, with one line each: design patterns, zoo models, other target kinds.

Plain data, no torch: ``fff-profile --list`` and ``fff-study --help`` read it without building
(or importing) anything heavy. ``fff.models.patterns`` and ``fff.models.zoo`` take their
descriptions and resolutions from here, so the listing cannot drift from what gets built.
"""

from __future__ import annotations

__all__ = ["PATTERN_DESCRIPTIONS", "ZOO_MODELS", "OTHER_TARGETS", "DEFAULT_TARGET", "list_targets"]

# Small enough for a quick `fff-profile` with no target: a second or two per backend.
DEFAULT_TARGET = "dw-bottleneck:depth=1,width=0.5,resolution=64"

PATTERN_DESCRIPTIONS: dict[str, str] = {
    "plain": "VGG-style: two 3x3 convolutions per block, no shortcut",
    "residual": "ResNet basic block: two 3x3 convolutions with an identity shortcut",
    "bottleneck": "ResNet bottleneck: 1x1 reduce, 3x3, 1x1 expand (4x), shortcut",
    "dw-separable": "MobileNet-V1: 3x3 depthwise then 1x1 pointwise convolution",
    "dw-bottleneck": "MobileNet-V2 inverted residual: 1x1 expand (6x), 3x3 depthwise, 1x1 linear",
    "grouped": "ResNeXt: bottleneck whose 3x3 is a grouped convolution (up to 32 groups)",
    "inception": "GoogLeNet Inception: four parallel branches concatenated",
    "dense": "DenseNet-BC: each layer (1x1, 3x3) sees all earlier layers' features",
    "se-mbconv": "EfficientNet MBConv: inverted residual with squeeze-excitation, SiLU",
    "shuffle": "ShuffleNet-V2 unit: channel split, 1x1-3x3dw-1x1 branch, channel shuffle",
    "transformer": "ViT encoder: 16x16 patch embedding, pre-norm blocks of LayerNorm, multi-head "
                   "self-attention, GELU MLP (2021)",
    "convnext": "ConvNeXt block: 7x7 depthwise, LayerNorm, inverted GELU MLP (4x), layer scale (2022)",
    "mobilevit": "MobileViT block: 3x3 and 1x1 convolutions, attention across 2x2-unfolded patches, "
                 "fold, fuse (hybrid, 2022)",
}

# name -> (published input resolution, description)
ZOO_MODELS: dict[str, tuple[int, str]] = {
    "vgg16": (224, "VGG-16: plain 3x3 convolutions (hand-crafted, 2014)"),
    "resnet18": (224, "ResNet-18: basic residual blocks (hand-crafted, 2015)"),
    "resnet50": (224, "ResNet-50: bottleneck residual blocks (hand-crafted, 2015)"),
    "resnext50_32x4d": (224, "ResNeXt-50 32x4d: grouped bottlenecks (hand-crafted, 2017)"),
    "densenet121": (224, "DenseNet-121: dense blocks (hand-crafted, 2017)"),
    "squeezenet1_1": (224, "SqueezeNet 1.1: fire modules (hand-crafted, 2016)"),
    "googlenet": (224, "GoogLeNet: Inception modules (hand-crafted, 2014)"),
    "inception_v3": (299, "Inception-V3: factorized Inception modules (hand-crafted, 2015)"),
    "mobilenet_v2": (224, "MobileNet-V2: inverted residuals (hand-crafted, 2018)"),
    "mobilenet_v3_large": (224, "MobileNet-V3 Large: inverted residuals with SE, h-swish (NAS + hand-tuned, 2019)"),
    "shufflenet_v2_x1_0": (224, "ShuffleNet-V2 1.0x: channel split and shuffle (hand-crafted, 2018)"),
    "darts": (224, "DARTS-V2: cells found by differentiable architecture search (NAS, 2019)"),
    "mnasnet1_0": (224, "MnasNet 1.0: platform-aware search (NAS, 2019)"),
    "efficientnet_b0": (224, "EfficientNet-B0: MBConv with SE (NAS, 2019)"),
    "regnet_y_400mf": (224, "RegNetY-400MF: design-space search (2020)"),
    # since 2021: attention, and convolutions redesigned after it
    "vit_b_16": (224, "ViT-B/16: transformer encoder on 16x16 patches, global attention (hand-crafted, 2021)"),
    "swin_t": (224, "Swin-T: shifted-window attention in four stages, patch merging (hand-crafted, 2021)"),
    "efficientnet_v2_s": (224, "EfficientNetV2-S: fused-MBConv and MBConv, training-aware search (NAS, 2021)"),
    "convnext_tiny": (224, "ConvNeXt-T: 7x7 depthwise, LayerNorm, GELU MLP blocks (hand-crafted, 2022)"),
    "maxvit_t": (224, "MaxViT-T: MBConv with block and grid attention (hybrid, 2022; resolution a multiple of 224)"),
}

OTHER_TARGETS: dict[str, str] = {
    "PATTERN:key=value,...": "a pattern with depth, width, resolution, batch, classes "
                             "(e.g. dw-bottleneck:depth=8,width=1.0,resolution=224)",
    "FILE.onnx, FILE.xml": "an ONNX or OpenVINO IR model (input shape from the file or --input-shape)",
    "module:function": "a Python function returning a torch.nn.Module, random weights from seed 0",
}


def list_targets() -> dict[str, dict[str, str]]:
    """Kind -> {name: one-line description}, for ``fff-profile --list``."""
    return {
        "patterns": dict(PATTERN_DESCRIPTIONS),
        "zoo": {name: f"{description}, {resolution} px" for name, (resolution, description) in ZOO_MODELS.items()},
        "other targets": dict(OTHER_TARGETS),
    }
