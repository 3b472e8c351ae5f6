"""The R-FCN face detector of Sec. 5.1 with the stride reductions of Sec. 4.1 (Fig. 5) and shifted anchors.

Architectures (``model.arch``)
------------------------------
* ``baseline`` (Sec. 5.1): ResNet v1, res5 kept at stride 16 by dilation (R-FCN); the RPN runs on res5
  (not res4) with 6 square anchors {16, ..., 512}.
* ``BU`` (Fig. 5(a)): a stride-2 deconvolution on res5 (kernel 4, pad 1, one 4x4 filter per channel, no
  bias) initialised to a bilinear upsampler and learned. Its output (``2*ceil(x/16)``) is cropped to res3's
  size, ``ceil(x/8)``, the same size a stride-8 map has and :func:`rfcn_face.anchors.feature_size` assumes.
* ``BUS`` (Fig. 5(b)): BU, then 1x1 convs bring the upsampled res5 and res3 to 512 channels, element-wise sum,
  then a 3x3 conv of 512 channels with ReLU ("all the additional convolution layers have 512 output
  channels", Sec. 5.1).
* ``DC`` (Fig. 5(c)): no new layer; the stride-2 after res3 removed and the 3x3 filters of res4 / res5 dilated
  (2 / 4) in :mod:`symbols.resnet` (layout ``dc``).

The *detection feature* is res5 for baseline and DC, the upsampled res5 for BU and the fused map for BUS. Both
the RPN and the R-FCN head run on it, so the head's stride (the ``spatial_scale`` of PSROIPooling) equals the
RPN stride: 16 for baseline, 8 for BU / BUS / DC (Sec. 5.1: "the corresponding stride-8 feature").

RPN output layout (shifted anchors included)
--------------------------------------------
``A = cfg.anchor_set().num_per_location`` anchors per location, in the order of :mod:`rfcn_face.anchors`
(centred scales x ratios, then the shifted anchors in spec order).

* ``rpn_cls``: ``(N, 2*A, H, W)``, channel ``2*a + j`` is the score of anchor ``a`` for class ``j`` (0 =
  background, 1 = face): two logits per anchor, for a softmax over ``j`` (as R-FCN's RPN). NB: this is
  anchor-major; the legacy MXNet R-FCN symbol used class-major channels (``j*A + a``).
* ``rpn_bbox``: ``(N, 4*A, H, W)``, channel ``4*a + c`` is delta ``c`` (dx, dy, dw, dh) of anchor ``a``.

:func:`to_anchor_order` (numpy twin: :func:`rfcn_face.anchors.to_anchor_order_np`) reshapes either to
``(N, H*W*A, k)`` with row ``(y*W + x)*A + a`` — the row order of :meth:`rfcn_face.anchors.AnchorSet.tile`.

R-FCN head (Dai et al. 2016)
----------------------------
1x1 conv to 1024 + ReLU (``conv_new_1``), 1x1 convs to ``k*k*num_classes`` position-sensitive score maps
(``rfcn_cls``) and ``k*k*4`` class-agnostic box maps (``rfcn_bbox``), ``contrib.PSROIPooling`` (k = 7) and
average voting over the k x k bins. RoIs are ``(R, 5)`` rows ``(batch_index, x1, y1, x2, y2)`` in image pixels
with the project's box convention (no "+1"); PSROIPooling includes ``x2``/``y2`` (``+1``), so the head passes
``x2 - 1``, ``y2 - 1``.
"""
from __future__ import annotations

import warnings

import numpy as np
from mxnet import init as mx_init
from mxnet.gluon import HybridBlock, nn

from .resnet import ResNetV1, stage_channels

__all__ = ["RFCN", "RPNHead", "FacePriorBias", "PSROIHead", "BilinearUpsample", "UpsampleSkip", "build_detector",
           "bilinear_kernel", "to_anchor_order", "rpn_face_scores", "count_params",
           "new_layer_params", "RPN_CLS_PER_ANCHOR", "BOX_DIM", "RFCN_FIXED_PREFIXES"]

RFCN_FIXED_PREFIXES = ("conv1_", "bn_conv1_", "res2", "bn2")  # R-FCN: conv1 and res2 are not fine-tuned
RPN_CLS_PER_ANCHOR = 2  # background / face logits per anchor (softmax), anchor-major channels
BOX_DIM = 4


def _normal(sigma=0.01):
    return mx_init.Normal(sigma)


def bilinear_kernel(size: int) -> np.ndarray:
    """(size, size) bilinear upsampling filter (as FCN's deconvolution initialisation)."""
    f = int(np.ceil(size / 2.0))
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    og = np.arange(size, dtype=np.float64)
    w1 = 1.0 - np.abs(og / f - c)
    return np.outer(w1, w1).astype(np.float32)


class _BilinearInit(mx_init.Initializer):
    """Every (in, out) filter of a grouped deconvolution set to :func:`bilinear_kernel`."""

    def _init_weight(self, _, arr):
        arr[:] = np.broadcast_to(bilinear_kernel(arr.shape[-1]), arr.shape)


def to_anchor_order(F, x, k: int):
    """``(N, A*k, H, W)`` -> ``(N, H*W*A, k)`` in the anchor order of :mod:`rfcn_face.anchors` (nd or sym);
    the numpy twin is :func:`rfcn_face.anchors.to_anchor_order_np`."""
    x = F.reshape(x, shape=(0, -4, -1, k, -2))      # (N, A, k, H, W)
    x = F.transpose(x, axes=(0, 3, 4, 1, 2))         # (N, H, W, A, k)
    return F.reshape(x, shape=(0, -1, k))


def rpn_face_scores(F, rpn_cls, dtype=None):
    """``(N, 2*A, H, W)`` logits -> ``(N, H*W*A)`` softmax face probabilities in anchor order (computed in
    ``dtype`` when given: the logits are cast after the reordering)."""
    logits = to_anchor_order(F, rpn_cls, RPN_CLS_PER_ANCHOR)
    prob = F.softmax(logits if dtype is None else F.cast(logits, dtype=dtype), axis=-1)
    return F.slice_axis(prob, axis=-1, begin=1, end=2).reshape((0, -1))


class BilinearUpsample(HybridBlock):
    """Fig. 5(a): stride-2 deconvolution initialised to a bilinear upsampler, learnable, cropped to ``like``.

    One 4x4 filter per channel (``num_group = channels``): a bilinear upsampler maps each channel to itself,
    which a grouped deconvolution expresses exactly with ``channels*16`` parameters (a full deconvolution
    would hold ``channels**2 * 16`` — 67 M for res5's 2048 channels — whose off-diagonal filters start at 0).
    """

    def __init__(self, channels: int, **kw):
        super().__init__(prefix="", **kw)
        with self.name_scope():
            self.deconv = nn.Conv2DTranspose(channels, 4, strides=2, padding=1, groups=channels, use_bias=False,
                                             in_channels=channels, weight_initializer=_BilinearInit(),
                                             prefix="upsample_res5_")

    def hybrid_forward(self, F, x, like):
        return F.slice_like(self.deconv(x), like, axes=(2, 3))


class UpsampleSkip(HybridBlock):
    """Fig. 5(b): BU on res5, 1x1 convs of both maps to ``channels``, element-wise sum, 3x3 conv + ReLU."""

    def __init__(self, res3_channels: int, res5_channels: int, channels: int = 512, **kw):
        super().__init__(prefix="", **kw)
        with self.name_scope():
            self.up = BilinearUpsample(res5_channels)
            self.lateral5 = nn.Conv2D(channels, 1, in_channels=res5_channels, weight_initializer=_normal(),
                                      prefix="bus_res5_1x1_")
            self.lateral3 = nn.Conv2D(channels, 1, in_channels=res3_channels, weight_initializer=_normal(),
                                      prefix="bus_res3_1x1_")
            self.fuse = nn.Conv2D(channels, 3, padding=1, in_channels=channels, weight_initializer=_normal(),
                                  prefix="bus_conv_3x3_")

    def hybrid_forward(self, F, res5, res3):
        up = self.up(res5, res3)
        return F.Activation(self.fuse(self.lateral5(up) + self.lateral3(res3)), act_type="relu")


class FacePriorBias(mx_init.Initializer):
    """RetinaNet's prior-probability initialisation for the two-logit RPN classifier: the face logit (channel
    ``2a + 1``) starts at ``log(prior / (1 - prior))``, the background logit (``2a``) at 0, so with near-zero
    weights every anchor's softmax face probability starts at ``prior`` (``rpn.focal_prior``). Draws nothing."""

    def __init__(self, prior: float):
        super().__init__(prior=prior)
        if not 0.0 < prior < 1.0:
            raise ValueError(f"rpn.focal_prior must be in (0, 1), got {prior}")
        self.prior = float(prior)

    def _init_weight(self, _, arr):
        bias = np.zeros(arr.shape, np.float32)
        bias[1::RPN_CLS_PER_ANCHOR] = np.log(self.prior / (1.0 - self.prior))
        arr[:] = bias


class RPNHead(HybridBlock):
    """3x3 conv + ReLU, then 1x1 convs to ``2*A`` scores and ``4*A`` deltas (layout: module docstring).
    ``face_prior`` (the focal loss' ``rpn.focal_prior``) initialises the score bias with :class:`FacePriorBias`;
    None keeps it at 0 (R-FCN)."""

    def __init__(self, in_channels: int, num_anchors: int, channels: int = 512, face_prior=None, **kw):
        super().__init__(prefix="", **kw)
        self.num_anchors = num_anchors
        with self.name_scope():
            self.conv = nn.Conv2D(channels, 3, padding=1, in_channels=in_channels, weight_initializer=_normal(),
                                  prefix="rpn_conv_3x3_")
            self.cls = nn.Conv2D(RPN_CLS_PER_ANCHOR * num_anchors, 1, in_channels=channels,
                                 weight_initializer=_normal(), prefix="rpn_cls_score_",
                                 bias_initializer="zeros" if face_prior is None else FacePriorBias(face_prior))
            self.bbox = nn.Conv2D(BOX_DIM * num_anchors, 1, in_channels=channels, weight_initializer=_normal(),
                                  prefix="rpn_bbox_pred_")

    def hybrid_forward(self, F, x):
        h = F.Activation(self.conv(x), act_type="relu")
        return self.cls(h), self.bbox(h)


class PSROIHead(HybridBlock):
    """R-FCN head: ``forward(feature, rois) -> (cls_score (R, num_classes), bbox_pred (R, 4))``."""

    def __init__(self, in_channels: int, stride: int, channels: int = 1024, num_classes: int = 2, k: int = 7,
                 **kw):
        super().__init__(prefix="", **kw)
        self.stride, self.k, self.num_classes = stride, k, num_classes
        with self.name_scope():
            self.conv_new = nn.Conv2D(channels, 1, in_channels=in_channels, weight_initializer=_normal(),
                                      prefix="conv_new_1_")
            self.cls_maps = nn.Conv2D(k * k * num_classes, 1, in_channels=channels, weight_initializer=_normal(),
                                      prefix="rfcn_cls_")
            self.box_maps = nn.Conv2D(k * k * BOX_DIM, 1, in_channels=channels, weight_initializer=_normal(),
                                      prefix="rfcn_bbox_")

    def hybrid_forward(self, F, feat, rois):
        h = F.Activation(self.conv_new(feat), act_type="relu")
        # project boxes (no +1) -> PSROIPooling's inclusive x2 / y2
        rois = F.concat(F.slice_axis(rois, axis=1, begin=0, end=3),
                        F.slice_axis(rois, axis=1, begin=3, end=5) - 1.0, dim=1)
        kw = dict(spatial_scale=1.0 / self.stride, pooled_size=self.k, group_size=self.k)
        cls = F.contrib.PSROIPooling(self.cls_maps(h), rois, output_dim=self.num_classes, **kw)
        box = F.contrib.PSROIPooling(self.box_maps(h), rois, output_dim=BOX_DIM, **kw)
        # average voting over the k x k bins
        return F.mean(cls, axis=(2, 3)), F.mean(box, axis=(2, 3))


class RFCN(HybridBlock):
    """R-FCN detector.

    ``forward(images) -> (rpn_cls, rpn_bbox, feature)`` runs backbone + (BU/BUS) + RPN (mode 1: training with
    the target operators, or proposals); ``head(feature, rois) -> (cls_score, bbox_pred)`` is the R-FCN head
    (mode 2). ``rpn(images)`` returns only the two RPN maps.
    """

    def __init__(self, arch="baseline", depth=101, num_anchors=6, psroi_k=7, num_classes=2, rpn_channels=512,
                 head_channels=1024, stride_reduction_channels=512, stride_in_3x3=False, width=1.0,
                 rpn_face_prior=None, **kw):
        super().__init__(prefix="", **kw)
        from rfcn_face.config import rpn_stride
        self.arch, self.depth, self.num_anchors = arch, depth, num_anchors
        self.stride = rpn_stride(arch)
        _, _, c3, _, c5 = stage_channels(depth, width)
        with self.name_scope():
            self.backbone = ResNetV1(depth, "dc" if arch == "DC" else "rfcn", stride_in_3x3=stride_in_3x3,
                                     width=width)
            if arch == "BU":
                self.enlarge = BilinearUpsample(c5)
                feat_ch = c5
            elif arch == "BUS":
                self.enlarge = UpsampleSkip(c3, c5, stride_reduction_channels)
                feat_ch = stride_reduction_channels
            else:
                self.enlarge = None
                feat_ch = c5
            self.rpn_head = RPNHead(feat_ch, num_anchors, rpn_channels, face_prior=rpn_face_prior)
            self.head = PSROIHead(feat_ch, self.stride, head_channels, num_classes, psroi_k)
        self.feature_channels = feat_ch

    def forward(self, x):
        # the head's parameters are not part of this graph (they run in ``head``): silence Gluon's notice
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Parameter .* is not used by any computation")
            return super().forward(x)

    def hybrid_forward(self, F, x):
        _, res3, _, res5 = self.backbone(x)
        # detection feature: res5 (baseline, DC), upsampled res5 (BU), fused with res3 (BUS)
        feat = res5 if self.enlarge is None else self.enlarge(res5, res3)
        cls, bbox = self.rpn_head(feat)
        return cls, bbox, feat

    def rpn(self, x):
        """Backbone + RPN only: ``(rpn_cls (N, 2A, H, W), rpn_bbox (N, 4A, H, W))``."""
        cls, bbox, _ = self(x)
        return cls, bbox

    def freeze_fixed_params(self, mode: str = "rfcn"):
        """Stop gradients where the MXNet R-FCN code fixes parameters (``mode="rfcn"``): conv1, res2 and every
        BatchNorm gamma / beta of the backbone (its BatchNorms already use global statistics); ``"bn"`` fixes
        only the BatchNorms (a backbone trained from random init), ``"none"`` nothing. Returns the names."""
        if mode not in ("rfcn", "bn", "none"):
            raise ValueError(f"freeze mode must be rfcn, bn or none, got {mode!r}")
        names = []
        for p in self.backbone.collect_params().values():
            bn = p.name.endswith(("_gamma", "_beta"))
            if (mode == "rfcn" and (bn or p.name.startswith(RFCN_FIXED_PREFIXES))) or (mode == "bn" and bn):
                p.grad_req = "null"
                names.append(p.name)
        return names

    def new_layers(self):
        """The blocks that are not in an ImageNet checkpoint (RPN, R-FCN head, BU / BUS layers)."""
        return [b for b in (self.enlarge, self.rpn_head, self.head) if b is not None]


def count_params(block) -> int:
    """Number of parameter values (BatchNorm running statistics excluded, frozen ones included); shapes must be
    known (every layer here declares its input channels)."""
    total = 0
    for p in block.collect_params().values():
        if p.name.endswith(("running_mean", "running_var")):
            continue
        total += int(np.prod(p.shape))
    return total


def new_layer_params(net: RFCN) -> int:
    return sum(count_params(b) for b in net.new_layers())


def build_detector(cfg, stride_in_3x3: bool = False) -> RFCN:
    """The detector a :class:`rfcn_face.config.Config` describes (not initialised; call ``.initialize()`` or
    :func:`symbols.weights.init_detector`). With ``rpn.cls_loss: focal`` the RPN face logit starts at the prior
    ``rpn.focal_prior`` (:class:`FacePriorBias`); the softmax RPN keeps R-FCN's zero bias."""
    m = cfg.model
    prior = cfg.rpn.focal_prior if cfg.rpn.cls_loss == "focal" else None
    return RFCN(arch=m.arch, depth=m.depth, num_anchors=cfg.anchor_set().num_per_location, psroi_k=m.psroi_k,
                num_classes=m.num_classes, rpn_channels=m.rpn_channels, head_channels=m.head_channels,
                stride_reduction_channels=m.stride_reduction_channels, stride_in_3x3=stride_in_3x3, width=m.width,
                rpn_face_prior=prior)
