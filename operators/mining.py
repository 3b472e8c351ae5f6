"""``Custom(op_type='rfcn_mining_target')``: RPN targets that read this iteration's predictions (HAMBox OAM + RAL,
noisy-anchor cleanliness), or any other strategy of :mod:`rfcn_face.assigners` in the same output format.

Inputs
    rpn_bbox      (B, 4*A, H, W)  RPN deltas (channel ``4a + c``, as ``symbols.rfcn``); decoded over our anchors
    rpn_cls_prob  (B, H*W*A)      face probabilities in anchor order (``symbols.rfcn.rpn_face_scores``)
    gt            (B, M, 5)       x1, y1, x2, y2, flag  (flag 0 = face, 1 = ignored face, -1 = padding row)
    im_info       (B, 3)          image height, width, scale
Outputs (anchor order of :meth:`rfcn_face.anchors.AnchorSet.tile`)
    label        (B, H*W*A)     1 / 0 for the anchors in the classification loss, -1 elsewhere
    cls_target   (B, H*W*A)     float targets t (soft labels for cleanliness)
    cls_weight   (B, H*W*A)     w, normalisation folded in: L_cls = sum w * l(logits, t)
    bbox_target  (B, H*W*A, 4)  encoded faces
    bbox_weight  (B, H*W*A, 4)  v: L_box = sum v * smoothL1_3 / rpn.batch_size
    matched      (B, M)         positive anchors per face before sampling (compensated ones included)
Forward: :func:`rfcn_face.targets.anchor_target_numpy` with the named strategy of :mod:`rfcn_face.assigners`; backward gives zero gradients (the targets are
constants of the loss: no gradient through c or the IoU weights). Sampling draws from
:func:`operators.base.seed_stream` (``seed``), which advances across calls.
"""
from __future__ import annotations

import mxnet as mx

from rfcn_face.targets import anchor_target_numpy

from .base import (NumpyOp, anchor_set_from_kwargs, assign_kwargs, assign_params_from_kwargs, assigner_from_kwargs,
                   no_backward_dependency, seed_stream)

__all__ = ["mining_target_kwargs", "MiningTargetProp"]


def mining_target_kwargs(cfg) -> dict:
    """Operator parameters (plain strings) from a :class:`rfcn_face.config.Config`: the anchor set, the strategy with
    its settings, the shared thresholds and the RPN minibatch (:func:`operators.base.assign_kwargs`), and
    ``rpn.cls_loss``."""
    return dict(**assign_kwargs(cfg), cls_loss=str(cfg.rpn.cls_loss))


class MiningTargetOp(NumpyOp):
    def compute(self, in_data):
        p = self.p
        bbox = in_data[0]
        return anchor_target_numpy(bbox.shape[2:], in_data[2].asnumpy(), in_data[3].asnumpy(), p.anchor_set,
                                   p.assigner, rng=seed_stream(p.seed), rpn_bbox=bbox.asnumpy(),
                                   face_prob=in_data[1].asnumpy())


@mx.operator.register("rfcn_mining_target")
class MiningTargetProp(mx.operator.CustomOpProp):
    """Parameters (strings): the anchor set (``stride``, ``scales``, ``ratios``, ``shifts``), ``pos_iou``,
    ``neg_iou``, ``allowed_border``, ``ignore_iof``, ``strategy`` (any name of
    :data:`rfcn_face.assigners.ASSIGNERS`; default ``max_iou``) and that strategy's settings by name (``k``,
    ``t``, ``pos_iou``, ``warmup`` for hambox — no iteration reaches the op, so a warm-up is over; ``top_n``,
    ``alpha``, ``gamma``, ``clamp``, ``negatives`` for cleanliness; ``top_n`` for hc),
    ``cls_loss`` (softmax | focal), ``batch_size``, ``fg_fraction``, ``seed``, ``bbox_means``, ``bbox_stds``."""

    def __init__(self, stride=None, scales=None, ratios=None, shifts=None, pos_iou="0.5", neg_iou="0.3",
                 allowed_border="0", ignore_iof="0.5", strategy="max_iou", cls_loss="softmax", batch_size="256",
                 fg_fraction="0.5", seed="0", bbox_means="0,0,0,0", bbox_stds="1,1,1,1", **settings):
        super().__init__(need_top_grad=False)
        self.anchor_set = anchor_set_from_kwargs(stride, scales, ratios, shifts)
        self.params = assign_params_from_kwargs(pos_iou, neg_iou, allowed_border, ignore_iof)
        self.assigner = assigner_from_kwargs(strategy, settings, self.params, batch_size, fg_fraction, cls_loss,
                                             bbox_means, bbox_stds)
        self.seed = int(seed)

    def list_arguments(self):
        return ["rpn_bbox", "rpn_cls_prob", "gt", "im_info"]

    def list_outputs(self):
        return ["label", "cls_target", "cls_weight", "bbox_target", "bbox_weight", "matched"]

    def infer_shape(self, in_shape):
        bbox, prob, gt, info = in_shape
        A = self.anchor_set.num_per_location
        if bbox[1] != 4 * A:
            raise ValueError(f"rpn_bbox has {bbox[1]} channels, expected 4 x {A} anchors per location")
        B, n = bbox[0], bbox[2] * bbox[3] * A
        return [bbox, (B, n), gt, info], [(B, n), (B, n), (B, n), (B, n, 4), (B, n, 4), (B, gt[1])], []

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return no_backward_dependency(out_grad, in_data, out_data)

    def create_operator(self, ctx, shapes, dtypes):
        return MiningTargetOp(self)
