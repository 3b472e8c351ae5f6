"""``Custom(op_type='rfcn_ohem')``: online hard example mining over the R-FCN RoIs (Sec. 5.1, 1:3).

Inputs
    cls_prob     (R, C)    softmax probabilities of the head
    bbox_pred    (R, 4k)
    label        (R,)      1 / 0 / -1 (from ``rfcn_proposal_target``)
    bbox_target  (R, 4k)
    bbox_weight  (R, 4k)
    rois         (R, 5)    only the batch index column is read (selection is per image)
Outputs
    label_ohem        (R,)    -1 for RoIs not selected
    bbox_weight_ohem  (R, 4k) zero for RoIs not selected
Forward: :func:`rfcn_face.targets.ohem_numpy`. Per image the RoIs are ranked by their current loss
(cross-entropy + smooth L1, :func:`rfcn_face.sampling.ohem_losses`) and :func:`rfcn_face.sampling.ohem_keep`
keeps, with ``mode=ratio``, at most ``round(fg_fraction * batch_size)`` hardest positives plus the hardest
negatives up to ``batch_size``; with ``mode=topk`` the ``batch_size`` hardest RoIs whatever their label.
Backward gives zero gradients.
"""
from __future__ import annotations

import mxnet as mx

from rfcn_face.targets import ohem_numpy

from .base import NumpyOp, no_backward_dependency

__all__ = ["ohem_kwargs", "OHEMProp"]


def ohem_kwargs(cfg) -> dict:
    """Operator parameters from a Config (:meth:`rfcn_face.sampling.OHEMParams.from_config`):
    ``rcnn.ohem_batch_size``, ``rcnn.ohem_fg_fraction`` (Sec. 5.1) and ``rcnn.ohem_mode``."""
    from rfcn_face.sampling import OHEMParams
    o = OHEMParams.from_config(cfg)
    return dict(batch_size=str(o.batch_size), fg_fraction=str(o.fg_fraction), mode=o.mode)


class OHEMOp(NumpyOp):
    def compute(self, in_data):
        return ohem_numpy(*[x.asnumpy() for x in in_data], batch_size=self.p.batch_size,
                          fg_fraction=self.p.fg_fraction, sigma=self.p.sigma, mode=self.p.mode)


@mx.operator.register("rfcn_ohem")
class OHEMProp(mx.operator.CustomOpProp):
    """Parameters: ``batch_size`` (rcnn.ohem_batch_size), ``fg_fraction`` (rcnn.ohem_fg_fraction), ``sigma``,
    ``mode`` (rcnn.ohem_mode: ``ratio`` = the paper's 1:3, ``topk`` = R-FCN's top-B whatever the label)."""

    def __init__(self, batch_size="128", fg_fraction="0.25", sigma="1.0", mode="ratio"):
        super().__init__(need_top_grad=False)
        self.batch_size, self.fg_fraction, self.sigma = int(batch_size), float(fg_fraction), float(sigma)
        self.mode = str(mode)

    def list_arguments(self):
        return ["cls_prob", "bbox_pred", "label", "bbox_target", "bbox_weight", "rois"]

    def list_outputs(self):
        return ["label_ohem", "bbox_weight_ohem"]

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[2], in_shape[4]], []

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return no_backward_dependency(out_grad, in_data, out_data)

    def create_operator(self, ctx, shapes, dtypes):
        return OHEMOp(self)
