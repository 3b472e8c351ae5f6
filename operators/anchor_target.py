"""``Custom(op_type='rfcn_anchor_target')``: RPN training targets over our anchor set (shifted anchors, HC(N)).

Inputs
    rpn_cls  (B, k*A, H, W)  any RPN map (only its H, W are read; A = anchors per location)
    gt       (B, M, 5)       x1, y1, x2, y2, flag  (flag 0 = face, 1 = ignored face, -1 = padding row)
    im_info  (B, 3)          image height, width, scale
Outputs (anchor order of :meth:`rfcn_face.anchors.AnchorSet.tile`, i.e. ``symbols.rfcn.to_anchor_order``)
    label        (B, H*W*A)     1 / 0 / -1 after minibatch sampling
    bbox_target  (B, H*W*A, 4)  encoded faces of the positives
    bbox_weight  (B, H*W*A, 4)  1 for sampled positives
    matched      (B, M)         positive anchors per face before sampling (HAMBox Fig. 1 statistic)
Forward: :func:`rfcn_face.targets.anchor_target_numpy` with the named strategy of :mod:`rfcn_face.assigners`. Parameters are plain strings / numbers (see
:class:`AnchorTargetProp`); backward gives zero gradients. The minibatch sampling draws from
:func:`operators.base.seed_stream` (``seed`` parameter), which advances across calls.
"""
from __future__ import annotations

import mxnet as mx

from rfcn_face.targets import anchor_target_numpy

from .base import (NumpyOp, anchor_set_from_kwargs, assign_kwargs, assign_params_from_kwargs, assigner_from_kwargs,
                   no_backward_dependency, seed_stream)

__all__ = ["anchor_target_kwargs", "AnchorTargetProp"]


def anchor_target_kwargs(cfg) -> dict:
    """Operator parameters (plain strings) from a :class:`rfcn_face.config.Config`: the anchor set, the strategy
    with its settings, the shared thresholds and the RPN minibatch (:func:`operators.base.assign_kwargs`). A strategy
    that reads the network's predictions (``rpn.assign.type: hambox | cleanliness``) or the focal loss is an error
    here: they need ``rfcn_mining_target`` (:func:`operators.mining.mining_target_kwargs`)."""
    from rfcn_face.assigners import build_assigner
    a = build_assigner(cfg)
    if a.needs_predictions or a.cls_loss != "softmax":
        raise ValueError(f"rfcn_anchor_target computes prediction-free targets for the softmax RPN loss; "
                         f"rpn.assign.type {a.name!r} with rpn.cls_loss {a.cls_loss!r} needs the rfcn_mining_target "
                         "operator (operators.mining.mining_target_kwargs)")
    return assign_kwargs(cfg)


class AnchorTargetOp(NumpyOp):
    def compute(self, in_data):
        p = self.p
        out = anchor_target_numpy(in_data[0].shape[2:], in_data[1].asnumpy(), in_data[2].asnumpy(), p.anchor_set,
                                  p.assigner, rng=seed_stream(p.seed))
        return out[0], out[3], out[4], out[5]


@mx.operator.register("rfcn_anchor_target")
class AnchorTargetProp(mx.operator.CustomOpProp):
    """Parameters (strings, as MXNet passes them): ``stride``, ``scales`` ("16,32,..."), ``ratios``, ``shifts``
    ("16x3") — left out: the baseline anchor set —, ``pos_iou``, ``neg_iou``, ``allowed_border``, ``ignore_iof``,
    ``strategy`` (a name of :data:`rfcn_face.assigners.ASSIGNERS` that needs no prediction; default ``max_iou``)
    and that strategy's settings by name (e.g. ``top_n="5"`` for ``hc``), ``batch_size``, ``fg_fraction``,
    ``seed``, ``bbox_means``, ``bbox_stds``."""

    def __init__(self, stride=None, scales=None, ratios=None, shifts=None, pos_iou="0.5", neg_iou="0.3",
                 allowed_border="0", ignore_iof="0.5", strategy="max_iou", batch_size="256", fg_fraction="0.5",
                 seed="0", bbox_means="0,0,0,0", bbox_stds="1,1,1,1", **settings):
        super().__init__(need_top_grad=False)
        self.anchor_set = anchor_set_from_kwargs(stride, scales, ratios, shifts)
        self.params = assign_params_from_kwargs(pos_iou, neg_iou, allowed_border, ignore_iof)
        self.assigner = assigner_from_kwargs(strategy, settings, self.params, batch_size, fg_fraction,
                                             bbox_means=bbox_means, bbox_stds=bbox_stds)
        if self.assigner.needs_predictions:
            raise ValueError(f"rfcn_anchor_target: strategy {strategy!r} reads the predictions; use "
                             "rfcn_mining_target")
        self.seed = int(seed)

    def list_arguments(self):
        return ["rpn_cls", "gt", "im_info"]

    def list_outputs(self):
        return ["label", "bbox_target", "bbox_weight", "matched"]

    def infer_shape(self, in_shape):
        cls, gt, info = in_shape
        A = self.anchor_set.num_per_location
        if cls[1] % A:
            raise ValueError(f"rpn_cls has {cls[1]} channels, not a multiple of {A} anchors per location")
        B, n = cls[0], cls[2] * cls[3] * A
        return [cls, gt, info], [(B, n), (B, n, 4), (B, n, 4), (B, gt[1])], []

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return no_backward_dependency(out_grad, in_data, out_data)

    def create_operator(self, ctx, shapes, dtypes):
        return AnchorTargetOp(self)
