"""``Custom(op_type='rfcn_nms')``: ``contrib.box_nms``'s input / output layout with the numpy greedy NMS.

MXNet's CPU ``box_nms`` is several times slower than :func:`rfcn_face.boxes.nms` on a proposal set
(``docs/operators.md``), so on a CPU context :mod:`symbols.nms` runs this operator in its place (forward:
:func:`rfcn_face.boxes.nms_rows`).

Input
    data  (..., N, K)  rows with a score at ``score_index`` and ``x1 y1 x2 y2`` from ``coord_start``
Output
    out   (..., N, K)  per leading index: the kept rows, best first, then rows of -1 (as box_nms)
Parameters: ``overlap_thresh``, ``valid_thresh`` (a row takes part when its score is greater), ``topk`` (only the
best topk rows take part; <= 0 all), ``coord_start``, ``score_index`` (box_nms's meaning), ``max_output`` (stop
after that many kept rows, the rest -1; <= 0 keeps every survivor). Backward gives zero gradients.
"""
from __future__ import annotations

import mxnet as mx

from rfcn_face.boxes import nms_rows

from .base import NumpyOp, no_backward_dependency

__all__ = ["NMSProp"]


class NMSOp(NumpyOp):
    def compute(self, in_data):
        p = self.p
        return (nms_rows(in_data[0].asnumpy(), p.overlap_thresh, p.valid_thresh, p.topk, p.max_output,
                         p.coord_start, p.score_index),)


@mx.operator.register("rfcn_nms")
class NMSProp(mx.operator.CustomOpProp):
    def __init__(self, overlap_thresh="0.5", valid_thresh="0", topk="-1", max_output="-1", coord_start="2",
                 score_index="1"):
        super().__init__(need_top_grad=False)
        self.overlap_thresh, self.valid_thresh = float(overlap_thresh), float(valid_thresh)
        self.topk, self.max_output = int(topk), int(max_output)
        self.coord_start, self.score_index = int(coord_start), int(score_index)

    def list_arguments(self):
        return ["data"]

    def list_outputs(self):
        return ["out"]

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[0]], []

    def infer_type(self, in_type):
        return in_type, [in_type[0]], []

    def declare_backward_dependency(self, out_grad, in_data, out_data):
        return no_backward_dependency(out_grad, in_data, out_data)

    def create_operator(self, ctx, shapes, dtypes):
        return NMSOp(self)
