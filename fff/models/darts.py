"""DARTS-V2, the ImageNet network found by differentiable architecture search.

Liu, Simonyan, Yang, "DARTS: Differentiable Architecture Search" (ICLR 2019). No maintained
library ships it, so it is built here from the published genotype, following the authors'
``NetworkImageNet`` (quark0/darts, cnn/model.py, operations.py, genotypes.py): C=48 initial
channels, 14 cells, reduction cells at 1/3 and 2/3 of the depth, the two ImageNet stems. Published
size: 4.7M parameters and 574M multiply-adds at 224x224. This build has 4,718,752 parameters;
FlopCounterMode counts 530M multiply-adds (convolutions and classifier; batch norm, ReLU and
pooling would add ~11M more), so the published count includes something it does not.

Two departures, neither changing the function at 224 px: the auxiliary head (training only) is
left out, and the final 7x7 average pool is adaptive, so that other resolutions that are
multiples of 32 also run (a factorized reduce needs an even feature map).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DARTS_V2", "DartsImageNet", "darts_v2"]

# (operation, input state) pairs, two per intermediate node; states 0 and 1 are the cell's inputs.
DARTS_V2 = {
    "normal": [("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
               ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
               ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    "reduce_concat": [2, 3, 4, 5],
}


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel_size, stride, padding):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, kernel_size, stride, padding, bias=False),
                         nn.BatchNorm2d(c_out))


class DilConv(nn.Sequential):
    def __init__(self, c_in, c_out, kernel_size, stride, padding, dilation):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride, padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )


class SepConv(nn.Sequential):
    """Two depthwise-separable convolutions in a row, as DARTS defines sep_conv."""

    def __init__(self, c_in, c_out, kernel_size, stride, padding):
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, padding, dilation=1),
            DilConv(c_in, c_out, kernel_size, 1, padding, dilation=1),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing every other pixel: two offset stride-2 1x1 convs."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


OPERATIONS = {
    "max_pool_3x3": lambda c, stride: nn.MaxPool2d(3, stride=stride, padding=1),
    "skip_connect": lambda c, stride: nn.Identity() if stride == 1 else FactorizedReduce(c, c),
    "sep_conv_3x3": lambda c, stride: SepConv(c, c, 3, stride, 1),
    "dil_conv_3x3": lambda c, stride: DilConv(c, c, 3, stride, 2, dilation=2),
}


class Cell(nn.Module):
    def __init__(self, genotype, c_prev_prev, c_prev, c, reduction, reduction_prev):
        super().__init__()
        self.preprocess0 = FactorizedReduce(c_prev_prev, c) if reduction_prev else ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        edges = genotype["reduce" if reduction else "normal"]
        self.concat = list(genotype["reduce_concat" if reduction else "normal_concat"])
        self.multiplier = len(self.concat)
        # Only edges leaving the cell's inputs (states 0 and 1) change resolution in a reduction cell.
        self.ops = nn.ModuleList(OPERATIONS[name](c, 2 if reduction and index < 2 else 1) for name, index in edges)
        self.indices = [index for _, index in edges]

    def forward(self, s0, s1):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self.ops) // 2):
            first, second = 2 * node, 2 * node + 1
            states.append(self.ops[first](states[self.indices[first]]) + self.ops[second](states[self.indices[second]]))
        return torch.cat([states[i] for i in self.concat], dim=1)


class DartsImageNet(nn.Module):
    def __init__(self, genotype=DARTS_V2, channels: int = 48, layers: int = 14, classes: int = 1000):
        super().__init__()
        c = channels
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, c // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
        )
        self.stem1 = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
                                   nn.BatchNorm2d(c))
        c_prev_prev, c_prev, c_curr = c, c, c
        self.cells = nn.ModuleList()
        reduction_prev = True  # stem1 halved the resolution after stem0, so the first cell's s0 needs reducing
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c_curr *= 2
            cell = Cell(genotype, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, classes)

    def forward(self, x):
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(s1).flatten(1))


def darts_v2(num_classes: int = 1000) -> DartsImageNet:
    return DartsImageNet(DARTS_V2, channels=48, layers=14, classes=num_classes)
