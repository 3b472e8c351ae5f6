"""``Custom(op_type='rfcn_proposal')``: RPN proposals decoded over our anchor set (shifted anchors included).

``contrib.Proposal`` builds its own scales x ratios anchors and cannot know shifted anchors, so this operator
decodes :meth:`rfcn_face.anchors.AnchorSet.tile` itself (:func:`rfcn_face.proposals.generate_proposals`).

Inputs
    rpn_cls   (B, 2*A, H, W)  RPN logits, channel ``2*a + j`` (j = 0 background, 1 face), as symbols.rfcn
    rpn_bbox  (B, 4*A, H, W)  deltas, channel ``4*a + c``
    im_info   (B, 3)          image height, width, scale
Outputs
    rois    (B*post_nms_top_n, 5)  batch index, x1, y1, x2, y2 (cyclically padded when fewer survive NMS)
    scores  (B*post_nms_top_n,)    face probability of each RoI
Backward gives zero gradients (proposals are not differentiated, as in R-FCN).
"""
from __future__ import annotations

import mxnet as mx
import numpy as np

from rfcn_face.anchors import AnchorSet
from rfcn_face.proposals import generate_proposals, pad_proposals
from symbols.rfcn import to_anchor_order_np

from .anchor_target import (NumpyOp, anchor_set_from_kwargs, anchor_set_kwargs, cached_grid, no_backward_dependency,
                            parse_floats)

__all__ = ["proposal_numpy", "proposal_kwargs", "face_probabilities", "ProposalProp"]


def face_probabilities(rpn_cls: np.ndarray) -> np.ndarray:
    """(B, 2A, H, W) logits -> (B, H*W*A) softmax face probabilities in anchor order."""
    logits = to_anchor_order_np(np.asarray(rpn_cls, dtype=np.float64), 2)
    logits = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return e[..., 1] / e.sum(axis=-1)


def proposal_numpy(rpn_cls, rpn_bbox, im_info, anchor_set: AnchorSet, *, pre_nms_top_n: int, post_nms_top_n: int,
                   nms_thresh: float, min_size: float, means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0),
                   nms_impl: str = "numpy"):
    """The operator's forward on numpy arrays: one :func:`generate_proposals` per image, padded."""
    rpn_cls, rpn_bbox = np.asarray(rpn_cls), np.asarray(rpn_bbox)
    B, _, H, W = rpn_cls.shape
    im_info = np.asarray(im_info, dtype=np.float64).reshape(B, -1)
    anchors = cached_grid(anchor_set, H, W).boxes
    probs, deltas = face_probabilities(rpn_cls), to_anchor_order_np(np.asarray(rpn_bbox, np.float64), 4)
    rois, scores = np.zeros((B * post_nms_top_n, 5)), np.zeros(B * post_nms_top_n)
    for b in range(B):
        hw = (im_info[b, 0], im_info[b, 1])
        boxes, sc, _ = generate_proposals(anchors, probs[b], deltas[b], hw, pre_nms_top_n=pre_nms_top_n,
                                          post_nms_top_n=post_nms_top_n, nms_thresh=nms_thresh,
                                          min_size=min_size, means=means, stds=stds, nms_impl=nms_impl)
        boxes, sc = pad_proposals(boxes, sc, post_nms_top_n, hw)
        rows = slice(b * post_nms_top_n, (b + 1) * post_nms_top_n)
        rois[rows, 0], rois[rows, 1:], scores[rows] = b, boxes, sc
    return rois, scores


def proposal_kwargs(cfg, train: bool = True) -> dict:
    """Operator parameters from a Config: ``rpn.*`` top-N for training, ``test.rpn_*`` top-N for testing."""
    a = cfg.anchor_set()
    pre, post = ((cfg.rpn.pre_nms_top_n, cfg.rpn.post_nms_top_n) if train
                 else (cfg.test.rpn_pre_nms_top_n, cfg.test.rpn_post_nms_top_n))
    return dict(**anchor_set_kwargs(a),
                pre_nms_top_n=str(pre), post_nms_top_n=str(post), nms_thresh=str(cfg.rpn.nms_thresh),
                min_size=str(cfg.rpn.min_size))


class ProposalOp(NumpyOp):
    def compute(self, in_data):
        p = self.p
        return proposal_numpy(in_data[0].asnumpy(), in_data[1].asnumpy(), in_data[2].asnumpy(), p.anchor_set,
                              pre_nms_top_n=p.pre_nms_top_n, post_nms_top_n=p.post_nms_top_n,
                              nms_thresh=p.nms_thresh, min_size=p.min_size, means=p.means, stds=p.stds,
                              nms_impl=p.nms_impl)


@mx.operator.register("rfcn_proposal")
class ProposalProp(mx.operator.CustomOpProp):
    """Parameters: ``stride``, ``scales``, ``ratios``, ``shifts``, ``pre_nms_top_n``, ``post_nms_top_n``,
    ``nms_thresh``, ``min_size``, ``bbox_means``, ``bbox_stds``, ``nms_impl`` ("numpy" | "mxnet")."""

    def __init__(self, stride="16", scales="16,32,64,128,256,512", ratios="1", shifts="", pre_nms_top_n="6000",
                 post_nms_top_n="300", nms_thresh="0.7", min_size="0", bbox_means="0,0,0,0", bbox_stds="1,1,1,1",
                 nms_impl="numpy"):
        super().__init__(need_top_grad=False)
        self.anchor_set = anchor_set_from_kwargs(stride, scales, ratios, shifts)
        self.pre_nms_top_n, self.post_nms_top_n = int(pre_nms_top_n), int(post_nms_top_n)
        self.nms_thresh, self.min_size = float(nms_thresh), float(min_size)
        self.means, self.stds = parse_floats(bbox_means), parse_floats(bbox_stds)
        self.nms_impl = str(nms_impl)
        if self.post_nms_top_n <= 0:
            raise ValueError("rfcn_proposal needs post_nms_top_n > 0 (fixed output shape)")

    def list_arguments(self):
        return ["rpn_cls", "rpn_bbox", "im_info"]

    def list_outputs(self):
        return ["rois", "scores"]

    def infer_shape(self, in_shape):
        cls, bbox, info = in_shape
        A = self.anchor_set.num_per_location
        if cls[1] != 2 * A or bbox[1] != 4 * A:
            raise ValueError(f"rfcn_proposal expects {2 * A} / {4 * A} channels, got {cls[1]} / {bbox[1]}")
        n = cls[0] * self.post_nms_top_n
        return [cls, bbox, info], [(n, 5), (n,)], []

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return no_backward_dependency(out_grad, in_data, out_data)

    def create_operator(self, ctx, shapes, dtypes):
        return ProposalOp(self)
