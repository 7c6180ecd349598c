"""Random weights that keep the signal alive through depth.

With batch norm in eval mode (an identity at random weights, its running statistics being 0
and 1) PyTorch's default convolution init shrinks activations layer by layer, and some
torchvision inits (GoogLeNet's truncated normal, std 0.01) shrink them by ~10x per layer: the
output becomes the classifier's bias alone, every backend agrees on a constant, and parity
checks prove nothing. He (fan-in) weights keep activations at the input's scale instead.
The values of the weights do not change how long an inference takes (activations here never
get near the subnormal range, which would).
"""

from torch import nn

__all__ = ["variance_preserving"]


def variance_preserving(module: nn.Module) -> nn.Module:
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, 0, 0.01)
            nn.init.zeros_(layer.bias)
    return module
