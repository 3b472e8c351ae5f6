"""ResNet v1 backbone (He et al. 2016) as used by the MXNet R-FCN code, built with loops.

Parameter names follow the Caffe / MXNet ``resnet_v1_101`` checkpoint the R-FCN code starts from
(``conv1_weight``, ``bn_conv1_gamma``, ``res4b22_branch2b_weight``, ``bn5a_branch1_running_mean`` ...), so an
exported detector reads like the legacy symbol, and the weight loader (:mod:`symbols.weights`) maps names
one to one. Convolutions have no bias; every BatchNorm uses its global statistics (frozen, as R-FCN trains
with one image per GPU).

Stage layouts (stride and dilation of res2..res5, see :func:`stage_layout`)
---------------------------------------------------------------------------
* ``imagenet``: strides 4, 8, 16, 32 — the classification network (used to check imported weights).
* ``rfcn`` (baseline, BU, BUS): res5's stride-2 removed and its 3x3 filters dilated by 2, so res5 stays at
  stride 16 as in R-FCN.
* ``dc`` (Sec. 4.1, Fig. 5(c), Sec. 5.1 "DC"): also the stride-2 step right after res3 removed; every 3x3 of
  res4 dilated by 2 and every 3x3 of res5 by 4, so res4 and res5 run at stride 8. The dilation keeps each
  filter's taps at the image-space spacing of the original network (res4 taps 16 px apart, res5 taps 32 px
  apart), i.e. the receptive fields are preserved (Sec. 4.1, Fig. S2: the dilated filters "fill the holes").
  1x1 filters are not dilated. No parameter is added or removed.

Where the stride-2 sits: ResNet v1 (Caffe, GluonCV ``resnet*_v1`` bottleneck) strides the first 1x1 of a
stage (``branch2a``) and the 1x1 shortcut; ``v1b`` (GluonCV ``resnet*_v1b``) strides the 3x3 instead
(``stride_in_3x3=True``). Basic blocks (depth 18/34) always stride their first 3x3. When a stride is removed,
a 3x3 filter that used to carry that stride sees the previous, finer grid and keeps the previous stage's
dilation; all the other 3x3 filters of the stage take the stage's dilation.
"""
from __future__ import annotations

from mxnet.gluon import HybridBlock, nn

__all__ = ["DEPTHS", "STAGE_CHANNELS", "stage_channels", "stage_layout", "block_names", "ResNetV1", "BasicBlockV1",
           "BottleneckV1", "backbone_feature_strides"]

# depth -> (block type, blocks per stage res2..res5)
DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
# output channels of res2..res5
STAGE_CHANNELS = {"basic": (64, 128, 256, 512), "bottleneck": (256, 512, 1024, 2048)}
STEM_CHANNELS = 64


def stage_channels(depth: int, width: float = 1.0):
    """``(stem, res2, res3, res4, res5)`` output channels; ``width`` scales every one (1.0 = the ImageNet
    networks; a narrower net only makes sense from random init, e.g. the CPU demo)."""
    kind, _ = DEPTHS[depth]
    scale = lambda c: max(8, int(round(c * width)))  # noqa: E731
    return (scale(STEM_CHANNELS),) + tuple(scale(c) for c in STAGE_CHANNELS[kind])

_LAYOUTS = {
    #            strides res2..res5   dilations res2..res5
    "imagenet": ((1, 2, 2, 2), (1, 1, 1, 1)),
    "rfcn": ((1, 2, 2, 1), (1, 1, 1, 2)),
    "dc": ((1, 2, 1, 1), (1, 1, 2, 4)),
}


def stage_layout(name: str):
    """``(strides, dilations)`` of res2..res5 for a layout name (``imagenet`` | ``rfcn`` | ``dc``)."""
    if name not in _LAYOUTS:
        raise ValueError(f"unknown ResNet layout {name!r}; expected one of {', '.join(_LAYOUTS)}")
    return _LAYOUTS[name]


def backbone_feature_strides(layout: str):
    """Feature strides of res2..res5 (the stem reduces by 4 before res2)."""
    strides, _ = stage_layout(layout)
    out, s = [], 4
    for st in strides:
        s *= st
        out.append(s)
    return tuple(out)


def block_names(depth: int):
    """Caffe block names per stage, e.g. depth 101: ``[['2a','2b','2c'], ['3a','3b1',..,'3b3'], ...]``.

    The MSRA ResNet-101/152 models number the blocks of res3 and res4 (``b1, b2, ...``); the others use
    letters.
    """
    _, counts = DEPTHS[depth]
    names = []
    for stage, n in zip((2, 3, 4, 5), counts):
        numbered = depth in (101, 152) and stage in (3, 4)
        if numbered:
            names.append([f"{stage}a"] + [f"{stage}b{i}" for i in range(1, n)])
        else:
            names.append([f"{stage}{chr(ord('a') + i)}" for i in range(n)])
    return names


def _bn(name: str, channels: int):
    return nn.BatchNorm(epsilon=1e-5, use_global_stats=True, in_channels=channels, prefix=f"bn{name}_")


def _conv(name: str, channels: int, in_channels: int, kernel: int, stride: int = 1, dilation: int = 1):
    pad = dilation * (kernel // 2)
    return nn.Conv2D(channels, kernel, strides=stride, padding=pad, dilation=dilation, use_bias=False,
                     in_channels=in_channels, prefix=f"res{name}_")


class _Block(HybridBlock):
    def _shortcut(self, name, in_channels, channels, stride):
        if stride != 1 or in_channels != channels:
            self.branch1 = _conv(f"{name}_branch1", channels, in_channels, 1, stride)
            self.bn_branch1 = _bn(f"{name}_branch1", channels)
        else:
            self.branch1 = None

    def _residual(self, F, x, y):
        if self.branch1 is not None:
            x = self.bn_branch1(self.branch1(x))
        return F.Activation(x + y, act_type="relu")


class BasicBlockV1(_Block):
    """Two 3x3 convs (``branch2a`` carries the stride) plus the shortcut (``branch1``)."""

    def __init__(self, name, in_channels, channels, stride=1, dilation=1, first_dilation=1, **kw):
        super().__init__(prefix="", **kw)
        with self.name_scope():
            self.branch2a = _conv(f"{name}_branch2a", channels, in_channels, 3, stride, first_dilation)
            self.bn2a = _bn(f"{name}_branch2a", channels)
            self.branch2b = _conv(f"{name}_branch2b", channels, channels, 3, 1, dilation)
            self.bn2b = _bn(f"{name}_branch2b", channels)
            self._shortcut(name, in_channels, channels, stride)

    def hybrid_forward(self, F, x):
        y = F.Activation(self.bn2a(self.branch2a(x)), act_type="relu")
        y = self.bn2b(self.branch2b(y))
        return self._residual(F, x, y)


class BottleneckV1(_Block):
    """1x1 (``branch2a``) -> 3x3 (``branch2b``) -> 1x1 (``branch2c``) plus the shortcut (``branch1``)."""

    def __init__(self, name, in_channels, channels, stride=1, dilation=1, first_dilation=1,
                 stride_in_3x3=False, **kw):
        super().__init__(prefix="", **kw)
        mid = channels // 4
        s1, s3 = (1, stride) if stride_in_3x3 else (stride, 1)
        d3 = first_dilation if stride_in_3x3 else dilation
        with self.name_scope():
            self.branch2a = _conv(f"{name}_branch2a", mid, in_channels, 1, s1)
            self.bn2a = _bn(f"{name}_branch2a", mid)
            self.branch2b = _conv(f"{name}_branch2b", mid, mid, 3, s3, d3)
            self.bn2b = _bn(f"{name}_branch2b", mid)
            self.branch2c = _conv(f"{name}_branch2c", channels, mid, 1)
            self.bn2c = _bn(f"{name}_branch2c", channels)
            self._shortcut(name, in_channels, channels, stride)

    def hybrid_forward(self, F, x):
        y = F.Activation(self.bn2a(self.branch2a(x)), act_type="relu")
        y = F.Activation(self.bn2b(self.branch2b(y)), act_type="relu")
        y = self.bn2c(self.branch2c(y))
        return self._residual(F, x, y)


class ResNetV1(HybridBlock):
    """ResNet v1 trunk; ``forward(x)`` returns ``(res2, res3, res4, res5)``.

    Parameters
    ----------
    depth : 18, 34, 50, 101 or 152.
    layout : ``imagenet`` | ``rfcn`` | ``dc`` (see the module docstring).
    stride_in_3x3 : bottleneck blocks stride their 3x3 (GluonCV v1b) instead of their first 1x1 (v1, Caffe).
    width : channel multiplier of every stage (:func:`stage_channels`; 1.0 = ImageNet ResNet).
    """

    def __init__(self, depth=101, layout="rfcn", stride_in_3x3=False, width=1.0, **kw):
        super().__init__(prefix="", **kw)
        if depth not in DEPTHS:
            raise ValueError(f"unsupported ResNet depth {depth}; expected one of {sorted(DEPTHS)}")
        self.depth, self.layout, self.stride_in_3x3, self.width = depth, layout, stride_in_3x3, float(width)
        kind, _ = DEPTHS[depth]
        stem, *channels = stage_channels(depth, width)
        self.channels = tuple(channels)
        strides, dilations = stage_layout(layout)
        # The 3x3 that carries a stage's stride: basic blocks always, bottlenecks only in v1b.
        stride_conv_is_3x3 = kind == "basic" or stride_in_3x3
        with self.name_scope():
            self.conv1 = nn.Conv2D(stem, 7, strides=2, padding=3, use_bias=False, in_channels=3, prefix="conv1_")
            self.bn_conv1 = nn.BatchNorm(epsilon=1e-5, use_global_stats=True, in_channels=stem, prefix="bn_conv1_")
            self.pool1 = nn.MaxPool2D(3, 2, 1)
            self.stages = []
            in_ch, prev_dil = stem, 1
            for i, names in enumerate(block_names(depth)):
                stage = nn.HybridSequential(prefix="")
                with stage.name_scope():
                    for j, name in enumerate(names):
                        first = j == 0
                        stride = strides[i] if first else 1
                        first_dil = prev_dil if (first and stride_conv_is_3x3) else dilations[i]
                        kwargs = dict(stride=stride, dilation=dilations[i], first_dilation=first_dil)
                        if kind == "basic":
                            blk = BasicBlockV1(name, in_ch, self.channels[i], **kwargs)
                        else:
                            blk = BottleneckV1(name, in_ch, self.channels[i], stride_in_3x3=stride_in_3x3,
                                               **kwargs)
                        stage.add(blk)
                        in_ch = self.channels[i]
                self.register_child(stage, f"res{i + 2}")
                self.stages.append(stage)
                prev_dil = dilations[i]

    @property
    def feature_strides(self):
        return backbone_feature_strides(self.layout)

    def hybrid_forward(self, F, x):
        x = F.Activation(self.bn_conv1(self.conv1(x)), act_type="relu")
        x = self.pool1(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return tuple(outs)
