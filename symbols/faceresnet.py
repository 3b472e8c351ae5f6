"""FaceResNet (FRN) of Qi, Liu & Su, Table 1 — the 27-conv residual face network NormFace uses.

Layout on a 112x96 (H x W) RGB crop normalised as (x - 127.5) / 128 (Sec. 3.1):

=========  ==============================  =======================
stage      layers                          output (C, H, W)
=========  ==============================  =======================
conv1      conv1a 3x3/32, conv1b 3x3/64    (64, 108, 92)
pool1b     2x2 max, stride 2               (64, 54, 46)
conv2_x    1 x [3x3/64, 3x3/64] residual   (64, 54, 46)
conv2      3x3/128                         (128, 52, 44)
pool2      2x2 max, stride 2               (128, 26, 22)
conv3_x    2 x [3x3/128, 3x3/128]          (128, 26, 22)
conv3      3x3/256                         (256, 24, 20)
pool3      2x2 max, stride 2               (256, 12, 10)
conv4_x    5 x [3x3/256, 3x3/256]          (256, 12, 10)
conv4      3x3/512                         (512, 10, 8)
pool4      2x2 max, stride 2               (512, 5, 4)
conv5_x    3 x [3x3/512, 3x3/512]          (512, 5, 4)
fc5        fully connected 512             (512,)
=========  ==============================  =======================

2 + 1 + 2x1 + 1 + 2x2 + 1 + 2x5 + 1 + 2x3 = 27 convolutions and one FC layer.

Padding follows the Caffe model of Wen et al. that NormFace copies: the plain (stage-entry) 3x3 convolutions
are unpadded, the 3x3 convolutions inside residual blocks are padded by 1 (identity shortcuts, no
projection), so each plain conv trims 2 pixels. Pass ``plain_padding=1`` for the "same" variant
(56x48 -> ... -> 7x6 before fc5). Every convolution is followed by a per-channel PReLU (He et al. 2015),
as in NormFace; there is no BatchNorm. ``width`` scales all channel counts (1.0 = the paper; smaller values
only for fast smoke runs on a CPU).
"""
from __future__ import annotations

from mxnet import init
from mxnet.gluon import HybridBlock, nn

__all__ = ["FRN_STAGES", "FaceResNet", "ResidualUnit", "normalize_pixels", "count_layers"]

# Table 1, one row per stage: (entry conv, its channels, residual stage after the 2x2/2 max pool, blocks).
# The first stage has two entry convs, conv1a 3x3/32 then conv1b 3x3/64.
FRN_STAGES = (("conv1b", 64, "conv2_x", 1), ("conv2", 128, "conv3_x", 2), ("conv3", 256, "conv4_x", 5),
              ("conv4", 512, "conv5_x", 3))
INPUT_SHAPE = (3, 112, 96)


def normalize_pixels(F, x):
    """Sec. 3.1: each pixel in [0, 255] -> (x - 127.5) / 128."""
    return (x - 127.5) / 128.0


def _conv(channels, padding, prefix, residual=False):
    # initialisation of the Caffe models (SphereFace / NormFace): Xavier for the stage-entry convolutions,
    # Gaussian std 0.01 inside residual branches, so every block starts close to the identity
    weight_init = init.Normal(0.01) if residual else init.Xavier()
    return nn.Conv2D(channels, 3, padding=padding, weight_initializer=weight_init, prefix=prefix)


def _prelu(prefix, channels):
    return nn.PReLU(alpha_initializer=init.Constant(0.25), in_channels=channels, prefix=prefix)


class ResidualUnit(HybridBlock):
    """x + PReLU(conv(PReLU(conv(x)))): two padded 3x3 convolutions with an identity shortcut."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv_a = _conv(channels, 1, "conv_a_", residual=True)
            self.relu_a = _prelu("relu_a_", channels)
            self.conv_b = _conv(channels, 1, "conv_b_", residual=True)
            self.relu_b = _prelu("relu_b_", channels)

    def hybrid_forward(self, F, x):
        return x + self.relu_b(self.conv_b(self.relu_a(self.conv_a(x))))


class FaceResNet(HybridBlock):
    """FRN (Table 1). ``forward(x)`` takes raw pixels (N, 3, 112, 96) in [0, 255] and returns fc5 (N, 512).

    Parameters
    ----------
    embedding : feature size of fc5 (512 in the paper).
    width : channel multiplier (1.0 = the paper).
    plain_padding : padding of the stage-entry 3x3 convolutions (0 = Caffe model, see module doc).
    normalize_input : apply (x - 127.5) / 128 inside the network (set False if the caller already did).
    """

    def __init__(self, embedding=512, width=1.0, plain_padding=0, normalize_input=True, **kwargs):
        super().__init__(**kwargs)
        self.normalize_input = normalize_input
        ch = lambda c: max(1, int(round(c * width)))  # noqa: E731
        self.stage_names = []
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="")
            for si, (entry, channels, name, blocks) in enumerate(FRN_STAGES):
                stage = nn.HybridSequential(prefix=name + "_")
                with stage.name_scope():
                    if si == 0:  # conv1a 3x3/32, conv1b 3x3/64
                        stage.add(_conv(ch(32), plain_padding, "conv1a_"), _prelu("relu1a_", ch(32)))
                        stage.add(_conv(ch(channels), plain_padding, "conv1b_"), _prelu("relu1b_", ch(channels)))
                    else:
                        stage.add(_conv(ch(channels), plain_padding, entry + "_"),
                                  _prelu("relu" + entry[4:] + "_", ch(channels)))
                    stage.add(nn.MaxPool2D(2, 2))
                    for b in range(blocks):
                        stage.add(ResidualUnit(ch(channels), prefix=f"res{b + 1}_"))
                self.features.add(stage)
                self.stage_names.append(name)
            self.fc5 = nn.Dense(embedding, weight_initializer=init.Xavier(), prefix="fc5_")

    def hybrid_forward(self, F, x):
        if self.normalize_input:
            x = normalize_pixels(F, x)
        return self.fc5(self.features(x))

    def stage_outputs(self, x):
        """[(name, output)] after each residual stage (conv2_x .. conv5_x, i.e. entry conv + pool + blocks),
        then ``fc5``; imperative mode."""
        if self.normalize_input:
            x = normalize_pixels(None, x)
        outs = []
        for name, stage in zip(self.stage_names, self.features):
            x = stage(x)
            outs.append((name, x))
        outs.append(("fc5", self.fc5(x)))
        return outs


def count_layers(net):
    """(number of Conv2D, number of Dense) blocks inside ``net``."""
    convs, dense = 0, 0

    def visit(block):
        nonlocal convs, dense
        if isinstance(block, nn.Conv2D):
            convs += 1
        elif isinstance(block, nn.Dense):
            dense += 1
        for child in block._children.values():
            visit(child)

    visit(net)
    return convs, dense
