"""``Custom(op_type='rfcn_proposal')``: RPN proposals decoded over our anchor set (shifted anchors included).

``contrib.Proposal`` builds its own scales x ratios anchors and cannot know shifted anchors, so this operator
decodes :meth:`rfcn_face.anchors.AnchorSet.tile` itself (forward: :func:`rfcn_face.targets.proposal_numpy`).

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

from rfcn_face.targets import proposal_numpy

from .base import (NumpyOp, anchor_set_from_kwargs, anchor_set_kwargs, no_backward_dependency, parse_floats,
                   string_kwargs)

__all__ = ["proposal_kwargs", "ProposalProp"]


def proposal_kwargs(cfg, train: bool = True) -> dict:
    """Operator parameters from a Config: the anchor set and :meth:`rfcn_face.proposals.ProposalParams.from_config`
    (``rpn.*`` top-N for training, ``test.rpn_*`` top-N for testing)."""
    from rfcn_face.proposals import ProposalParams
    return dict(**anchor_set_kwargs(cfg.anchor_set()), **string_kwargs(ProposalParams.from_config(cfg, train)))


class ProposalOp(NumpyOp):
    def compute(self, in_data):
        p = self.p
        return proposal_numpy(in_data[0].asnumpy(), in_data[1].asnumpy(), in_data[2].asnumpy(), p.anchor_set,
                              pre_nms_top_n=p.pre_nms_top_n, post_nms_top_n=p.post_nms_top_n,
                              nms_thresh=p.nms_thresh, min_size=p.min_size, means=p.means, stds=p.stds,
                              nms_impl=p.nms_impl)


@mx.operator.register("rfcn_proposal")
class ProposalProp(mx.operator.CustomOpProp):
    """Parameters: ``stride``, ``scales``, ``ratios``, ``shifts`` (left out: the baseline anchor set), ``pre_nms_top_n``, ``post_nms_top_n``,
    ``nms_thresh``, ``min_size``, ``bbox_means``, ``bbox_stds``, ``nms_impl`` ("numpy" | "mxnet")."""

    def __init__(self, stride=None, scales=None, ratios=None, shifts=None, pre_nms_top_n="6000",
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
