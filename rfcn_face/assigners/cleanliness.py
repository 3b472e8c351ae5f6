"""``cleanliness`` — the noisy-anchor soft labels and re-weighting of Li et al., CVPR 2020 (Alg. 1, Eq. 3-6;
``../shared/papers/noisy-anchors.md``).

* **A_pos** (prediction-free, the loader): the top-N inside anchors of each valid face by IoU *before* refinement
  (IoU > 0; equal IoUs: lower anchor index); an anchor in the top-N of several faces belongs to the one with the
  highest IoU (then the lower face index).
* **A_neg** (``negatives``): ``all`` (default, Alg. 1 line 6 "A_neg <- B - A_pos") — every other inside anchor is a
  negative (c = 0, r = 1), but for the anchors overlapping an ignored face (-1: the project's rule, WIDER's ignored
  faces have no counterpart in Alg. 1); ``threshold`` (this project's earlier reading) — only anchors whose max IoU
  is < Tl (and that overlap no ignored face) are negatives, the rest -1: with one stride and dense anchors a large
  face has hundreds of anchors above Th outside its top-N, which ``all`` trains to background.
* **Cleanliness** (after the forward pass), for ``a`` in ``A_pos`` with face g: ``loc_a`` = IoU(regressed box, g),
  ``cls_c`` = predicted face probability, ``c = alpha * loc_a + (1 - alpha) * cls_c`` (Eq. 3, the soft label),
  ``r = (alpha * f(loc_a) + (1 - alpha) * f(cls_c))^gamma`` with ``f(x) = 1 / (1 - min(x, clamp))`` (Eq. 4),
  normalised to mean 1 over ``A_pos``; r weighs both the classification and the box loss of ``a`` (Eq. 5-6). Every
  other anchor has c = 0, r = 1.

The loss form is the shared ``rpn.cls_loss`` (:mod:`rfcn_face.assigners.base`): ``focal`` is the paper's (every
labelled anchor, A_pos not subsampled, normalised by max(|A_pos|, rpn.batch_size); the face logit starts at
``rpn.focal_prior``, so cls_c starts small as the paper's cold-start remark assumes), ``softmax`` the R-FCN
minibatch (A_pos subsampled to ``rpn.fg_fraction`` of ``rpn.batch_size``). The earlier reading is
``{type: cleanliness, negatives: threshold}`` with ``rpn.cls_loss: softmax``.

Settings: ``top_n`` (N, Table 4(b)), ``alpha`` (Table 4(c) best 0.75), ``gamma`` (Eq. 4, "fixed to 1"), ``clamp``
(how x -> 1 is handled in f: the paper does not say; our choice 0.99), ``negatives``. Cold start: regressed boxes
= anchors, so c = alpha IoU + (1 - alpha) cls_c, with cls_c ~ the prior (focal) or ~0.5 (softmax); r is finite.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..boxes import box_area, pairwise_iou
from .base import Assigner, AnchorPlan, Mined, setting
from .core import (AssignParams, AssignResult, anchor_boxes_of, first_of_groups, ignored_overlap, inside_anchors,
                   match_anchors, rescore, valid_faces, valid_pairs)
from .registry import register

__all__ = ["CleanlinessAssigner", "CleanlinessSettings", "top_n_pairs", "NEGATIVES"]

NEGATIVES = ("all", "threshold")      # rpn.assign.negatives of cleanliness


@dataclass(frozen=True)
class CleanlinessSettings:
    top_n: int = setting(30, lo=1)                             # |A_pos| per face, Table 4(b)
    alpha: float = setting(0.75, lo=0.0, hi=1.0)               # Eq. 3-4, Table 4(c) best
    gamma: float = setting(1.0, lo=0.0)                        # Eq. 4, Table 4(a)
    clamp: float = setting(0.99, lo=0.0, hi=1.0, lo_open=True, hi_open=True)   # f(x) = 1 / (1 - min(x, clamp))
    negatives: str = setting("all", choices=NEGATIVES)         # A_neg: Alg. 1 (all) | max IoU < Tl (threshold)


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
        """A_pos (Alg. 1 lines 2-5) as the positives, A_neg (``negatives``) as the negatives, -1 elsewhere."""
        p = self.params
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        abox = anchor_boxes_of(anchors)
        r0 = match_anchors(anchors, boxes, ignore, image_hw, p, hc_top_n=0)
        valid = valid_faces(boxes, ignore)
        vid = np.flatnonzero(valid)
        inside = inside_anchors(abox, image_hw, p.allowed_border)
        ai, fl, iou = top_n_pairs(anchors, boxes[vid], inside, int(self.settings.top_n), p)
        o = np.lexsort((fl, -iou, ai))                     # an anchor in several top-N: highest IoU, lower face
        win = o[first_of_groups(ai[o])]
        pa, pf = ai[win], vid[fl[win]]
        if self.settings.negatives == "all":               # Alg. 1 line 6: every other (inside) anchor
            labels = np.where(inside, 0, -1).astype(np.int32)
            ign = np.flatnonzero(~valid & (box_area(boxes) > 0)) if len(boxes) else np.zeros(0, dtype=np.int64)
            if len(ign):
                labels[ignored_overlap(anchors, abox, boxes[ign], inside, p.neg_iou, p.ignore_iof)] = -1
        else:                                              # max IoU < Tl, no ignored-face overlap
            labels = np.where(r0.labels == 0, 0, -1).astype(np.int32)
        labels[pa] = 1
        gt_index = np.full(len(abox), -1, dtype=np.int64)
        gt_index[pa] = pf
        matched = np.bincount(pf, minlength=len(boxes)).astype(np.int64)
        return AssignResult(labels, gt_index, r0.max_iou, r0.face_best_iou, r0.hard, matched)

    def mine(self, plan: AnchorPlan, pred_boxes, face_prob, iteration=None) -> Mined:
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
