"""The test path after the backbone, on the device: proposals -> R-FCN head -> decoded, clipped, thresholded
detections; the final NMS of the exported graph.

* :func:`head_rows` / :class:`HeadOutput` — face score = softmax(cls_score)[:, 1]; boxes decoded from the
  class-agnostic deltas with ``rcnn.bbox_means`` / ``bbox_stds`` (:func:`symbols.boxes.decode`), clipped to the
  image's ``im_info`` row; a row is kept when its RoI is a real proposal (score >= 0, not padding), ``score >
  test.score_thresh`` (strict, as R-FCN) and the box is not degenerate. Output (B*post, 5) rows ``score, x1, y1,
  x2, y2`` in the pixels of the network input, dropped rows all -1. Float64 (the dtype of the former host code).
* :class:`DetectionOutput` — :class:`symbols.proposal.ProposalBlock` (``mark_padding``: no duplicate RoI becomes a
  detection) + the network's PSROI head + :class:`HeadOutput`; what :class:`rfcn_face.detector.FaceDetector` runs
  per device and the exported ``detector`` graph contains.
* :func:`final_nms` — per image, NMS ``test.nms_thresh`` over those rows, best first (ties: lower row), the first
  ``rows`` kept, -1 after. The detector does this step (and the pyramid merge) on the host instead
  (:func:`rfcn_face.detector.merge_detections`), because a pyramid merges several sizes.
"""
from __future__ import annotations

from mxnet.gluon import HybridBlock

from .boxes import box_wh, clip_to_image, col, decode
from .nms import nms
from .ranking import order_key

__all__ = ["head_rows", "HeadOutput", "DetectionOutput", "detection_block", "final_nms"]


def head_rows(F, rois, roi_scores, cls_score, bbox_pred, im_info, *, post: int, means, stds, score_thresh: float):
    """Rows of the module docstring. ``rois`` (B*post, 5), ``roi_scores`` (B*post,) (-1 = padding),
    ``cls_score`` (B*post, 2), ``bbox_pred`` (B*post, 4), ``im_info`` (B, 3)."""
    f64 = "float64"
    score = col(F, F.softmax(F.cast(cls_score, dtype=f64), axis=-1), 1)                        # (R, 1)
    boxes = decode(F, F.slice_axis(F.cast(rois, dtype=f64), axis=1, begin=1, end=5), F.cast(bbox_pred, dtype=f64),
                   means, stds)
    boxes = F.reshape(clip_to_image(F, F.reshape(boxes, (-1, int(post), 4)), F.cast(im_info, dtype=f64)), (-1, 4))
    w, h = box_wh(F, boxes)
    ok = (F.reshape(F.cast(roi_scores, dtype=f64), (-1, 1)) >= 0) * (score > float(score_thresh)) * (w > 0) * (h > 0)
    rows = F.concat(score, boxes, dim=1)
    return F.where(F.broadcast_like(ok, rows), rows, -F.ones_like(rows))


class HeadOutput(HybridBlock):
    """:func:`head_rows` with the test knobs of a config (``post`` = ``test.rpn_post_nms_top_n``)."""

    def __init__(self, post: int, means, stds, score_thresh: float, **kw):
        super().__init__(prefix="", **kw)
        self.kw = dict(post=int(post), means=tuple(means), stds=tuple(stds), score_thresh=float(score_thresh))

    def hybrid_forward(self, F, rois, roi_scores, cls_score, bbox_pred, im_info):
        return head_rows(F, rois, roi_scores, cls_score, bbox_pred, im_info, **self.kw)


class DetectionOutput(HybridBlock):
    """``(rpn_cls, rpn_bbox, feature, im_info) -> rows (B*post, 5)`` (module docstring). ``head`` is the network's
    :class:`symbols.rfcn.PSROIHead` (shared, not copied); ``proposal`` a :class:`symbols.proposal.ProposalBlock`
    with ``mark_padding`` and float64 outputs; ``output`` a :class:`HeadOutput`. The children can be called one
    by one (the detector's per-stage timing does)."""

    def __init__(self, head, proposal, output: HeadOutput, **kw):
        super().__init__(prefix="", **kw)
        with self.name_scope():
            self.proposal, self.head, self.output = proposal, head, output

    def hybrid_forward(self, F, rpn_cls, rpn_bbox, feat, im_info):
        rois, scores = self.proposal(rpn_cls, rpn_bbox, im_info)
        cls, box = self.head(feat, F.cast(rois, dtype="float32"))
        return self.output(rois, scores, cls, box, im_info)


def detection_block(net, anchor_set, proposal_params, means, stds, score_thresh: float, nms_impl: str,
                    ctx=None) -> DetectionOutput:
    """The :class:`DetectionOutput` of ``net`` (an :class:`symbols.rfcn.RFCN`) with the test knobs: the proposal
    block over ``anchor_set`` (``mark_padding``, float64 outputs, its anchor constant initialised on ``ctx``), the
    network's head, :class:`HeadOutput`."""
    from .proposal import ProposalBlock
    if anchor_set.num_per_location != net.num_anchors:
        raise ValueError(f"the anchor set has {anchor_set.num_per_location} anchors per location, the network "
                         f"{net.num_anchors}")
    block = DetectionOutput(net.head, ProposalBlock(anchor_set, proposal_params, nms_impl, mark_padding=True,
                                                    dtype="float64"),
                            HeadOutput(proposal_params.post_nms_top_n, means, stds, score_thresh))
    block.proposal.initialize(ctx=ctx)
    return block


def final_nms(F, rows, *, post: int, nms_thresh: float, keep: int, impl: str = "box_nms"):
    """Per image NMS of :func:`head_rows`' (B*post, 5) rows -> (B*keep, 5) ``score, x1, y1, x2, y2``, best first
    (equal scores: lower row; :func:`symbols.ranking.order_key`), unused rows -1."""
    r = F.reshape(rows, (-1, int(post), 5))
    score = F.reshape(col(F, r, 0), (0, -1))
    key = F.expand_dims(order_key(F, score, score >= 0), axis=2)                             # -1 for dropped rows
    kept = nms(F, F.concat(key, F.slice_axis(r, axis=2, begin=1, end=5), col(F, r, 0), dim=2), impl,
               nms_thresh, -0.5, int(post), int(keep))
    kept = F.slice_axis(kept, axis=1, begin=0, end=int(keep))
    return F.reshape(F.concat(col(F, kept, 5), F.slice_axis(kept, axis=2, begin=1, end=5), dim=2), (-1, 5))
