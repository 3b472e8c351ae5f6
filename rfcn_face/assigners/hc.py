"""``hc`` — hard face compensation HC(N), Sec. 4.4: threshold positives, then each hard face (best IoU < Th) takes
its top-N free anchors (rule (c) of :mod:`rfcn_face.assigners.core`: greedy over all hard-face pairs, exactly
``min(N, available)`` per hard face unless other hard faces overlap them better). Setting: ``top_n`` = N
(Table 1 rows 12-14: 3, 5, 7; Final: 5)."""
from __future__ import annotations

from dataclasses import dataclass

from .base import setting
from .core import AssignParams, AssignResult, match_anchors
from .max_iou import MaxIoUAssigner
from .registry import register

__all__ = ["HCAssigner", "HCSettings", "assign_hard_face_compensation"]


@dataclass(frozen=True)
class HCSettings:
    top_n: int = setting(5, lo=1)      # HC(N), Sec. 4.4


def assign_hard_face_compensation(anchors, boxes, ignore, image_hw, params: AssignParams,
                                  top_n: int) -> AssignResult:
    """HC(N), Sec. 4.4 (see the module docstring); ``top_n = 0`` is :func:`~rfcn_face.assigners.max_iou.assign_max_iou`."""
    return match_anchors(anchors, boxes, ignore, image_hw, params, hc_top_n=int(top_n))


@register("hc")
class HCAssigner(MaxIoUAssigner):
    Settings = HCSettings

    def assign(self, anchors, boxes, ignore, image_hw) -> AssignResult:
        return assign_hard_face_compensation(anchors, boxes, ignore, image_hw, self.params, self.settings.top_n)
