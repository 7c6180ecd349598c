"""Random weights that keep the signal alive through depth.

With batch norm in eval mode (an identity at random weights, its running statistics being 0
and 1) PyTorch's default convolution init shrinks activations layer by layer, and some
torchvision inits (GoogLeNet's truncated normal, std 0.01) shrink them by ~10x per layer: the
output becomes the classifier's bias alone, every backend agrees on a constant, and parity
checks prove nothing. He (fan-in) weights keep activations at the input's scale instead.
The values of the weights do not change how long an inference takes (activations here never
get near the subnormal range, which would).

Layer scales (ConvNeXt's per-channel ``layer_scale``, initialised to 1e-6 for training) are set to
1: at 1e-6 every block's branch adds a millionth of itself to the shortcut, the network is an
identity at random weights, and parity could not see a block computed wrongly.
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
            if layer.bias is not None:  # Swin's patch merging and MaxViT have linear layers without one
                nn.init.zeros_(layer.bias)
        scale = getattr(layer, "layer_scale", None)
        if isinstance(scale, nn.Parameter):
            nn.init.ones_(scale)
    return module
