"""``Custom(op_type='rfcn_proposal_target')``: R-FCN head targets (labels, box targets), gt boxes appended.

Inputs
    rois  (R, 5)     batch index, x1, y1, x2, y2 (e.g. the ``rfcn_proposal`` output)
    gt    (B, M, 5)  x1, y1, x2, y2, flag (0 face, 1 ignored face, -1 padding row)
Outputs (R + B*M rows; per image b: its RoIs in input order, then its M gt rows)
    rois         (R+B*M, 5)
    label        (R+B*M,)    1 face, 0 background, -1 ignore (padding / ignored gt rows are -1)
    bbox_target  (R+B*M, 4)  encoded with ``bbox_means`` / ``bbox_stds``
    bbox_weight  (R+B*M, 4)
Forward: :func:`rfcn_face.targets.proposal_target_numpy` (rules: :func:`rfcn_face.proposals.proposal_targets`). Backward gives zero gradients.
"""
from __future__ import annotations

import mxnet as mx

from rfcn_face.targets import proposal_target_numpy

from .base import NumpyOp, no_backward_dependency, parse_floats, seed_stream, string_kwargs

__all__ = ["proposal_target_kwargs", "ProposalTargetProp"]


def proposal_target_kwargs(cfg) -> dict:
    """Operator parameters from a Config: :meth:`rfcn_face.proposals.ProposalTargetParams.from_config` (with
    OHEM every RoI is kept, OHEM selects later; without it a random minibatch of ``rcnn.batch_size`` RoIs with
    ``rcnn.fg_fraction`` positives) and the seed."""
    from rfcn_face.proposals import ProposalTargetParams
    kw = string_kwargs(ProposalTargetParams.from_config(cfg))
    kw["bbox_means"], kw["bbox_stds"] = kw.pop("means"), kw.pop("stds")
    return dict(**kw, seed=str(cfg.train.seed))


class ProposalTargetOp(NumpyOp):
    def compute(self, in_data):
        return proposal_target_numpy(in_data[0].asnumpy(), in_data[1].asnumpy(), rng=seed_stream(self.p.seed), **self.p.kw)


@mx.operator.register("rfcn_proposal_target")
class ProposalTargetProp(mx.operator.CustomOpProp):
    """Parameters: ``fg_iou``, ``bg_iou_hi``, ``bg_iou_lo``, ``ignore_iof``, ``bbox_means``, ``bbox_stds``,
    ``batch_rois`` (-1 = keep all, as with OHEM), ``fg_fraction``, ``seed``."""

    def __init__(self, fg_iou="0.5", bg_iou_hi="0.5", bg_iou_lo="0.0", ignore_iof="0.5", bbox_means="0,0,0,0",
                 bbox_stds="0.1,0.1,0.2,0.2", batch_rois="-1", fg_fraction="0.25", seed="0"):
        super().__init__(need_top_grad=False)
        self.kw = dict(fg_iou=float(fg_iou), bg_iou_hi=float(bg_iou_hi), bg_iou_lo=float(bg_iou_lo),
                       ignore_iof=float(ignore_iof), means=parse_floats(bbox_means), stds=parse_floats(bbox_stds),
                       batch_rois=int(batch_rois), fg_fraction=float(fg_fraction))
        self.seed = int(seed)

    def list_arguments(self):
        return ["rois", "gt"]

    def list_outputs(self):
        return ["rois_out", "label", "bbox_target", "bbox_weight"]

    def infer_shape(self, in_shape):
        rois, gt = in_shape
        n = rois[0] + gt[0] * gt[1]
        return [rois, gt], [(n, 5), (n,), (n, 4), (n, 4)], []

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return no_backward_dependency(out_grad, in_data, out_data)

    def create_operator(self, ctx, shapes, dtypes):
        return ProposalTargetOp(self)
