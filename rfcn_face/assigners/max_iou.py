"""``max_iou`` — the R-FCN / Faster R-CNN matching of the paper's baseline (Sec. 3.1, 5.1): IoU >= Th positive,
a face's best anchor(s) positive, max IoU < Tl negative (rules (a) and (b) of :mod:`rfcn_face.assigners.core`).
No settings: Th, Tl, the border and ignored-face rules are ``rpn.pos_iou`` / ``neg_iou`` / ``allowed_border`` /
``ignore_iof`` (:class:`~rfcn_face.assigners.core.AssignParams`), shared by every strategy."""
from __future__ import annotations

from .base import Assigner
from .core import AssignParams, AssignResult, match_anchors
from .registry import register

__all__ = ["MaxIoUAssigner", "assign_max_iou"]


def assign_max_iou(anchors, boxes, ignore, image_hw, params: AssignParams) -> AssignResult:
    """Sec. 3.1 / 5.1 matching: IoU >= Th or a face's best anchor -> 1, max IoU < Tl -> 0, else -1."""
    return match_anchors(anchors, boxes, ignore, image_hw, params, hc_top_n=0)


@register("max_iou")
class MaxIoUAssigner(Assigner):
    def assign(self, anchors, boxes, ignore, image_hw) -> AssignResult:
        return assign_max_iou(anchors, boxes, ignore, image_hw, self.params)
