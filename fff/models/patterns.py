"""Macro-architecture design patterns on one shared skeleton, so the pattern is the only variable.

Skeleton (``PatternNet``)::

    stem      3x3 conv, stride 2, 32*width channels (conv-BN-ReLU)
    stage 1   `depth` blocks, the first with stride 2, 64*width channels
    stage 2   `depth` blocks, the first with stride 2, 128*width channels
    stage 3   `depth` blocks, the first with stride 2, 256*width channels
    stage 4   `depth` blocks, the first with stride 2, 512*width channels
    head      global average pool, linear classifier

Channel counts are rounded to multiples of 8 (torchvision's ``_make_divisible``), which every
pattern's grouping and channel splitting accepts. The network downsamples 32x, so its input
must be at least 32 pixels wide (``fff.models.spec.MIN_RESOLUTION``).

A pattern supplies ``block(in_channels, out_channels, stride)``; the stage builder stacks them.
Only ``dense`` builds its stages differently (a transition that downsamples, then ``depth``
densely connected layers, DenseNet-BC style), so its channels grow within a stage and its cost
grows quadratically with depth rather than linearly. Blocks come from torchvision where it has
them, written here only where it does not (VGG-style, MobileNet-V1, a strided Inception).
"""

from __future__ import annotations

from torch import nn
from torchvision.models import densenet, mobilenetv2, resnet, shufflenetv2
from torchvision.models._utils import _make_divisible
from torchvision.models.efficientnet import MBConv, MBConvConfig
# torchvision.models.googlenet is the model function, not the module, once torchvision.models is imported
from torchvision.models.googlenet import Inception as GoogLeNetInception
from torchvision.ops import Conv2dNormActivation

from fff.models.init import variance_preserving
from fff.models.names import PATTERN_DESCRIPTIONS

__all__ = ["PATTERNS", "PatternNet", "Pattern", "PlainBlock", "DepthwiseSeparableBlock", "InceptionBlock",
           "STAGE_CHANNELS", "STEM_CHANNELS"]

STEM_CHANNELS = 32
STAGE_CHANNELS = (64, 128, 256, 512)


def channels(base: int, width: float) -> int:
    return _make_divisible(base * width, 8)


class PlainBlock(nn.Sequential):
    """VGG-style: two 3x3 conv-BN-ReLU, no shortcut (the residual block minus its shortcut)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__(
            Conv2dNormActivation(in_channels, out_channels, 3, stride=stride),
            Conv2dNormActivation(out_channels, out_channels, 3),
        )


class DepthwiseSeparableBlock(nn.Sequential):
    """MobileNet-V1: 3x3 depthwise conv-BN-ReLU, then 1x1 pointwise conv-BN-ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__(
            Conv2dNormActivation(in_channels, in_channels, 3, stride=stride, groups=in_channels),
            Conv2dNormActivation(in_channels, out_channels, 1),
        )


class InceptionBlock(nn.Sequential):
    """GoogLeNet's Inception module (1x1 | 1x1-3x3 | 1x1-3x3 | pool-1x1, concatenated), with the
    3x3 stride-2 max-pool GoogLeNet puts between its groups when the block downsamples.

    Branch widths keep inception-3a's proportions: 1/4, 1/2, 1/8, 1/8 of the output.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        wide, narrow = out_channels // 2, out_channels // 8
        single = out_channels - wide - 2 * narrow
        # Padded rather than GoogLeNet's ceil_mode: same output size, and OpenVINO refuses an
        # unpadded 3x3 window over the 2x2 maps that small inputs leave in the last stage.
        layers = [nn.MaxPool2d(3, stride=2, padding=1)] if stride == 2 else []
        layers.append(GoogLeNetInception(in_channels, single, max(1, wide * 3 // 4), wide, max(1, narrow // 2), narrow,
                                          narrow))
        super().__init__(*layers)


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """ResNet's 1x1 shortcut projection, needed where the block changes shape."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(resnet.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class Pattern:
    """A design pattern: how one block looks, and (by default) a stage as a stack of them."""

    name: str = ""
    description: str = ""

    def block(self, in_channels: int, out_channels: int, stride: int) -> nn.Module:
        raise NotImplementedError

    def stage(self, in_channels: int, out_channels: int, depth: int) -> tuple[nn.Module, int]:
        """``depth`` blocks, the first downsampling; returns the stage and its output channels."""
        blocks = [self.block(in_channels, out_channels, 2)]
        blocks += [self.block(out_channels, out_channels, 1) for _ in range(depth - 1)]
        return nn.Sequential(*blocks), out_channels


class Plain(Pattern):
    name = "plain"
    description = PATTERN_DESCRIPTIONS[name]

    def block(self, in_channels, out_channels, stride):
        return PlainBlock(in_channels, out_channels, stride)


class Residual(Pattern):
    name = "residual"
    description = PATTERN_DESCRIPTIONS[name]

    def block(self, in_channels, out_channels, stride):
        return resnet.BasicBlock(in_channels, out_channels, stride, _projection(in_channels, out_channels, stride))


class Bottleneck(Pattern):
    name = "bottleneck"
    description = PATTERN_DESCRIPTIONS[name]

    def block(self, in_channels, out_channels, stride):
        planes = out_channels // resnet.Bottleneck.expansion
        return resnet.Bottleneck(in_channels, planes, stride, _projection(in_channels, out_channels, stride))


class Grouped(Pattern):
    name = "grouped"
    description = PATTERN_DESCRIPTIONS[name]

    def block(self, in_channels, out_channels, stride):
        planes = out_channels // resnet.Bottleneck.expansion
        inner = 2 * planes  # ResNeXt-50 32x4d: the grouped 3x3 is twice as wide as a ResNet-50 bottleneck
        # Powers of two only, so that Bottleneck's int(planes * base_width / 64) * groups is exact.
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if inner % g == 0 and inner // g >= 4 or g == 1)
        return resnet.Bottleneck(in_channels, planes, stride, _projection(in_channels, out_channels, stride),
                                 groups=groups, base_width=128 // groups)


class DepthwiseSeparable(Pattern):
    name = "dw-separable"
    description = PATTERN_DESCRIPTIONS[name]

    def block(self, in_channels, out_channels, stride):
        return DepthwiseSeparableBlock(in_channels, out_channels, stride)


class DepthwiseBottleneck(Pattern):
    name = "dw-bottleneck"
    description = PATTERN_DESCRIPTIONS[name]

    def block(self, in_channels, out_channels, stride):
        return mobilenetv2.InvertedResidual(in_channels, out_channels, stride, expand_ratio=6)


class Inception(Pattern):
    name = "inception"
    description = PATTERN_DESCRIPTIONS[name]

    def block(self, in_channels, out_channels, stride):
        return InceptionBlock(in_channels, out_channels, stride)


class Dense(Pattern):
    name = "dense"
    description = PATTERN_DESCRIPTIONS[name]

    def stage(self, in_channels, out_channels, depth):
        growth_rate = out_channels // 4
        stage = nn.Sequential(
            densenet._Transition(in_channels, out_channels),
            densenet._DenseBlock(depth, out_channels, bn_size=4, growth_rate=growth_rate, drop_rate=0.0),
        )
        return stage, out_channels + depth * growth_rate


class SqueezeExcitationMBConv(Pattern):
    name = "se-mbconv"
    description = PATTERN_DESCRIPTIONS[name]

    def block(self, in_channels, out_channels, stride):
        config = MBConvConfig(expand_ratio=6, kernel=3, stride=stride, input_channels=in_channels,
                              out_channels=out_channels, num_layers=1)
        return MBConv(config, stochastic_depth_prob=0.0, norm_layer=nn.BatchNorm2d)


class Shuffle(Pattern):
    name = "shuffle"
    description = PATTERN_DESCRIPTIONS[name]

    def block(self, in_channels, out_channels, stride):
        return shufflenetv2.InvertedResidual(in_channels, out_channels, stride)


PATTERNS: dict[str, Pattern] = {p.name: p for p in (
    Plain(), Residual(), Bottleneck(), DepthwiseSeparable(), DepthwiseBottleneck(), Grouped(), Inception(), Dense(),
    SqueezeExcitationMBConv(), Shuffle())}


class PatternNet(nn.Module):
    """The shared skeleton (module docstring) built from one pattern."""

    def __init__(self, pattern: str, depth: int, width: float, classes: int):
        super().__init__()
        chosen = PATTERNS[pattern]
        in_channels = channels(STEM_CHANNELS, width)
        self.stem = Conv2dNormActivation(3, in_channels, 3, stride=2)
        stages = []
        for base in STAGE_CHANNELS:
            stage, in_channels = chosen.stage(in_channels, channels(base, width), depth)
            stages.append(stage)
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, classes)
        variance_preserving(self)

    def forward(self, x):
        return self.classifier(self.pool(self.stages(self.stem(x))).flatten(1))
