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
them, written here only where it does not (VGG-style, MobileNet-V1, a strided Inception,
MobileViT).

The forms since 2021 keep the same conventions (depth = blocks per stage, width scales channels,
or the embedding width and the heads, resolution = input size):

- ``convnext`` runs on the skeleton: each stage opens with ConvNeXt's downsampling layer
  (LayerNorm, 2x2 stride-2 convolution) and stacks ``depth`` torchvision ``CNBlock``s (7x7
  depthwise, LayerNorm, 1x1 expand 4x, GELU, 1x1, layer scale).
- ``transformer`` is isotropic, as ViT is: no stem and no stages but a 16x16 stride-16 patch
  embedding, a class token and learned positions, then ``4 x depth`` torchvision ViT
  ``EncoderBlock``s (pre-norm: LayerNorm, multi-head self-attention, LayerNorm, MLP 4x with
  GELU; the same block count as the skeleton's four stages), a final LayerNorm and a linear
  classifier on the class token. The embedding is ``64 x round(6 x width)`` wide with 64 per head:
  width 0.5 is ViT-Ti/16 (192, 3 heads), 1.0 ViT-S/16 (384, 6 heads), 2.0 ViT-B/16 (768, 12
  heads); ``transformer:depth=3`` has ViT-S/16's twelve blocks. Its attention covers every patch,
  so its cost grows with the square of the patch count: (resolution / 16)^2 tokens.
- ``mobilevit`` (the mobile hybrid) runs on the skeleton: each stage opens with a MobileNet-V2
  inverted residual (expand 4x) that downsamples, as MobileViT's stages do, then ``depth``
  MobileViT blocks: 3x3 conv-BN-SiLU, 1x1 to the token width (the stage's channels), unfold into
  2x2 patches, one pre-norm transformer layer (4 heads) attending across patches at each of the
  four pixel positions, LayerNorm, fold, 1x1 conv-BN-SiLU back, concatenated with the block's
  input and fused by a 3x3 conv-BN-SiLU. Chosen over an EfficientFormer meta-block because one
  MobileViT block itself mixes convolution and attention, so the mix repeats in every stage;
  EfficientFormer confines attention to its last stage, and as a repeated block would be either a
  pooling (PoolFormer) block or a ViT block, nothing the other patterns lack.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import densenet, mobilenetv2, resnet, shufflenetv2
from torchvision.models._utils import _make_divisible
from torchvision.models.convnext import CNBlock, LayerNorm2d
from torchvision.models.efficientnet import MBConv, MBConvConfig
# torchvision.models.googlenet is the model function, not the module, once torchvision.models is imported
from torchvision.models.googlenet import Inception as GoogLeNetInception
from torchvision.models.vision_transformer import EncoderBlock, Encoder
from torchvision.ops import Conv2dNormActivation

from fff.models.init import variance_preserving
from fff.models.names import PATTERN_DESCRIPTIONS

__all__ = ["PATTERNS", "PatternNet", "TransformerNet", "Pattern", "PlainBlock", "DepthwiseSeparableBlock",
           "InceptionBlock", "MobileViTBlock", "pattern_network", "STAGE_CHANNELS", "STEM_CHANNELS", "PATCH_SIZE"]

STEM_CHANNELS = 32
STAGE_CHANNELS = (64, 128, 256, 512)
PATCH_SIZE = 16  # the transformer's patch embedding, ViT-*/16's
HEAD_WIDTH = 64  # the transformer's embedding width per attention head, ViT's
MLP_RATIO = 4  # every transformer and ConvNeXt MLP expands 4x


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


class MobileViTBlock(nn.Module):
    """MobileViT's block (Mehta and Rastegari, 2022): local 3x3 and 1x1 convolutions, global
    attention across 2x2 patches (each of the four pixel positions of a patch attends to the
    same position in every other patch), fold, 1x1 back to the channels, concatenated with the
    input and fused by a 3x3 convolution. Token width = channels; one transformer layer."""

    def __init__(self, channels: int, heads: int = 4, patch: int = 2):
        super().__init__()
        # A map the patch does not divide (the last stages of a small input) takes patch 1: one
        # pixel per patch, attention over every pixel. Set from the known map size when the
        # network is built (MobileViT.network), not from the input's shape at run time, where a
        # traced conversion would see a tensor.
        self.patch = patch
        self.local = nn.Sequential(Conv2dNormActivation(channels, channels, 3, activation_layer=nn.SiLU),
                                   nn.Conv2d(channels, channels, 1, bias=False))
        self.transformer = EncoderBlock(heads, channels, MLP_RATIO * channels, 0.0, 0.0)
        self.norm = nn.LayerNorm(channels)
        self.project = Conv2dNormActivation(channels, channels, 1, activation_layer=nn.SiLU)
        self.fuse = Conv2dNormActivation(2 * channels, channels, 3, activation_layer=nn.SiLU)

    def forward(self, x):
        n, c, h, w = x.shape
        p = self.patch
        y = self.local(x)
        # unfold: (N, C, H, W) -> (N * p * p, H/p * W/p, C), a sequence of patches per pixel position
        y = y.reshape(n, c, h // p, p, w // p, p).permute(0, 3, 5, 2, 4, 1).reshape(n * p * p, (h // p) * (w // p), c)
        y = self.norm(self.transformer(y))
        # fold: back to (N, C, H, W)
        y = y.reshape(n, p, p, h // p, w // p, c).permute(0, 5, 3, 1, 4, 2).reshape(n, c, h, w)
        return self.fuse(torch.cat([x, self.project(y)], dim=1))


class TransformerNet(nn.Module):
    """The ``transformer`` pattern: ViT, isotropic (module docstring for its conventions)."""

    def __init__(self, depth: int, width: float, classes: int, resolution: int):
        super().__init__()
        heads = max(1, round(6 * width))
        dim = HEAD_WIDTH * heads
        self.patch_embedding = nn.Conv2d(3, dim, PATCH_SIZE, stride=PATCH_SIZE)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        tokens = (resolution // PATCH_SIZE) ** 2 + 1
        # torchvision's encoder: learned positions, 4 x depth EncoderBlocks, the final LayerNorm
        self.encoder = Encoder(tokens, 4 * depth, heads, dim, MLP_RATIO * dim, 0.0, 0.0)
        self.classifier = nn.Linear(dim, classes)
        variance_preserving(self)

    def forward(self, x):
        patches = self.patch_embedding(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.class_token.expand(x.shape[0], -1, -1), patches], dim=1)
        return self.classifier(self.encoder(tokens)[:, 0])


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """ResNet's 1x1 shortcut projection, needed where the block changes shape."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(resnet.conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class Pattern:
    """A design pattern: how one block looks, and (by default) a stage as a stack of them on
    the shared skeleton."""

    name: str = ""
    description: str = ""

    def network(self, depth: int, width: float, classes: int, resolution: int) -> nn.Module:
        """The whole network; the skeleton unless the pattern has a shape of its own."""
        return PatternNet(self.name, depth, width, classes)

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


class Transformer(Pattern):
    name = "transformer"
    description = PATTERN_DESCRIPTIONS[name]

    def network(self, depth, width, classes, resolution):
        return TransformerNet(depth, width, classes, resolution)

    def block(self, in_channels, out_channels, stride):
        raise ValueError("the transformer pattern is isotropic: it has no skeleton blocks (use pattern_network)")


class ConvNeXt(Pattern):
    name = "convnext"
    description = PATTERN_DESCRIPTIONS[name]

    def block(self, in_channels, out_channels, stride):
        block = CNBlock(out_channels, layer_scale=1e-6, stochastic_depth_prob=0.0)
        if stride == 1 and in_channels == out_channels:
            return block
        # ConvNeXt's downsampling layer between stages, then the block
        return nn.Sequential(LayerNorm2d(in_channels), nn.Conv2d(in_channels, out_channels, 2, stride=stride), block)


class MobileViT(Pattern):
    name = "mobilevit"
    description = PATTERN_DESCRIPTIONS[name]

    def network(self, depth, width, classes, resolution):
        network = PatternNet(self.name, depth, width, classes)
        size = -(-resolution // 2)  # after the stride-2 stem (3x3, padding 1: ceil(n / 2))
        for stage in network.stages:
            size = -(-size // 2)  # each stage's inverted residual halves the map
            for block in stage:
                if isinstance(block, MobileViTBlock):
                    block.patch = 2 if size % 2 == 0 else 1
        return network

    def stage(self, in_channels, out_channels, depth):
        # MobileViT's stages: an inverted residual downsamples, then the MobileViT blocks
        blocks = [mobilenetv2.InvertedResidual(in_channels, out_channels, 2, expand_ratio=4)]
        blocks += [MobileViTBlock(out_channels) for _ in range(depth)]
        return nn.Sequential(*blocks), out_channels


PATTERNS: dict[str, Pattern] = {p.name: p for p in (
    Plain(), Residual(), Bottleneck(), DepthwiseSeparable(), DepthwiseBottleneck(), Grouped(), Inception(), Dense(),
    SqueezeExcitationMBConv(), Shuffle(), Transformer(), ConvNeXt(), MobileViT())}


def pattern_network(pattern: str, depth: int, width: float, classes: int, resolution: int) -> nn.Module:
    """The network of ``pattern`` (one of PATTERNS) with its parameters; random weights."""
    return PATTERNS[pattern].network(depth, width, classes, resolution)


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
