"""``cleanliness`` — the noisy-anchor soft labels and re-weighting of Li et al., CVPR 2020 (Alg. 1, Eq. 3-6;
``../shared/papers/noisy-anchors.md``).

* **A_pos** (prediction-free, the loader): the top-N inside anchors of each valid face by IoU *before* refinement
  (IoU > 0; equal IoUs: lower anchor index); an anchor in the top-N of several faces belongs to the one with the
  highest IoU (then the lower face index). Labels outside ``A_pos`` follow the project's negative rule: max IoU < Tl
  (and not overlapping an ignored face) is a negative, everything else is -1 — Alg. 1 makes *every* other anchor a
  negative, but with one stride and dense anchors a large face has hundreds of anchors above Th outside its top-N,
  and training those to background would contradict their soft-labelled neighbours.
* **Cleanliness** (after the forward pass), for ``a`` in ``A_pos`` with face g: ``loc_a`` = IoU(regressed box, g),
  ``cls_c`` = predicted face probability, ``c = alpha * loc_a + (1 - alpha) * cls_c`` (Eq. 3, the soft label),
  ``r = (alpha * f(loc_a) + (1 - alpha) * f(cls_c))^gamma`` with ``f(x) = 1 / (1 - min(x, clamp))`` (Eq. 4),
  normalised to mean 1 over ``A_pos``; r weighs both the classification and the box loss of ``a`` (Eq. 5-6). Every
  other anchor has c = 0, r = 1.

Settings: ``top_n`` (N, Table 4(b)), ``alpha`` (Table 4(c) best 0.75), ``gamma`` (Eq. 4, Table 4(a)), ``clamp``
(how x -> 1 is handled in f: the paper does not say; our choice 0.99). Cold start: face probabilities ~0.5 give
``c = alpha IoU + (1 - alpha) / 2`` and finite r.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..boxes import pairwise_iou
from .base import Assigner, AnchorPlan, Mined, setting
from .core import AssignResult, first_of_groups, match_anchors, rescore, valid_faces, inside_anchors, \
    anchor_boxes_of, valid_pairs
from .registry import register

__all__ = ["CleanlinessAssigner", "CleanlinessSettings", "top_n_pairs"]


@dataclass(frozen=True)
class CleanlinessSettings:
    top_n: int = setting(30, lo=1)                             # |A_pos| per face, Table 4(b)
    alpha: float = setting(0.75, lo=0.0, hi=1.0)               # Eq. 3-4, Table 4(c) best
    gamma: float = setting(1.0, lo=0.0)                        # Eq. 4, Table 4(a)
    clamp: float = setting(0.99, lo=0.0, hi=1.0, lo_open=True, hi_open=True)   # f(x) = 1 / (1 - min(x, clamp))


def top_n_pairs(anchors, boxes, inside, n: int, params: AssignParams):
    """Noisy anchors Alg. 1 lines 2-5 over the valid ``boxes``: each face's top-``n`` inside anchors by IoU
    (IoU > 0, equal IoUs: lower anchor). On an :class:`~rfcn_face.assigners.core.AnchorGrid` the pairs come from
    :func:`~rfcn_face.assigners.core.valid_pairs` (templates whose IoU bound is below ``min(Tl, the face's best bound)``
    skipped); a face whose n-th IoU does not beat that bound is rescored with every template
    (:func:`~rfcn_face.assigners.core.rescore`), so the result is exact. Returns ``(anchor, face, iou)`` pairs."""
    F = len(boxes)
    e = np.zeros(0, dtype=np.int64)
    if F == 0 or n <= 0:
        return e, e.copy(), np.zeros(0)

    def top(ai, fi, iou):
        o = np.lexsort((ai, -iou, fi))
        ai, fi, iou = ai[o], fi[o], iou[o]
        starts = np.searchsorted(fi, np.arange(F))
        rank = np.arange(len(fi)) - starts[fi]
        k = rank < n
        return ai[k], fi[k], iou[k]

    ai, fi, iou, skipped = valid_pairs(anchors, boxes, inside, params)
    ai, fi, iou = top(ai, fi, iou)
    count = np.bincount(fi, minlength=F)
    low = np.full(F, np.inf)
    np.minimum.at(low, fi, iou)
    redo = np.flatnonzero((skipped > -np.inf) & ~((count >= n) & (low > skipped)))
    if len(redo):
        ai, fi, iou, _ = rescore(anchors, boxes, inside, (ai, fi, iou, skipped), redo)
        ai, fi, iou = top(ai, fi, iou)
    return ai, fi, iou


@register("cleanliness")
class CleanlinessAssigner(Assigner):
    Settings = CleanlinessSettings
    needs_predictions = True
    reweights = True

    def assign(self, anchors, boxes, ignore, image_hw) -> AssignResult:
        """A_pos (Alg. 1 lines 2-5) as the positives, the max-IoU negatives, -1 elsewhere."""
        p = self.params
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        abox = anchor_boxes_of(anchors)
        r0 = match_anchors(anchors, boxes, ignore, image_hw, p, hc_top_n=0)
        vid = np.flatnonzero(valid_faces(boxes, ignore))
        ai, fl, iou = top_n_pairs(anchors, boxes[vid], inside_anchors(abox, image_hw, p.allowed_border),
                                  int(self.settings.top_n), p)
        o = np.lexsort((fl, -iou, ai))                     # an anchor in several top-N: highest IoU, lower face
        win = o[first_of_groups(ai[o])]
        pa, pf = ai[win], vid[fl[win]]
        labels = np.where(r0.labels == 0, 0, -1).astype(np.int32)
        labels[pa] = 1
        gt_index = np.full(len(abox), -1, dtype=np.int64)
        gt_index[pa] = pf
        matched = np.bincount(pf, minlength=len(boxes)).astype(np.int64)
        return AssignResult(labels, gt_index, r0.max_iou, r0.face_best_iou, r0.hard, matched)

    def mine(self, plan: AnchorPlan, pred_boxes, face_prob) -> Mined:
        s, m = self.settings, Mined.unchanged(plan.base)
        a = np.flatnonzero(plan.base.labels == 1)                           # A_pos, anchors increasing
        loc = pairwise_iou(pred_boxes[a], plan.boxes[plan.base.gt_index[a]])
        cls_c = np.clip(face_prob[a], 0.0, 1.0)
        al = float(s.alpha)
        c = al * loc + (1.0 - al) * cls_c                                   # Eq. 3
        f = lambda x: 1.0 / (1.0 - np.minimum(x, s.clamp))                # noqa: E731  f(x) = 1/(1-x), clamped
        r = (al * f(loc) + (1.0 - al) * f(cls_c)) ** float(s.gamma)         # Eq. 4
        if len(r):
            r = r * (len(r) / r.sum())                                      # mean 1 over A_pos
        m.target = np.zeros(len(m.labels))
        m.quality[a], m.clean[a], m.reweight[a], m.target[a] = loc, c, r, c
        return m
