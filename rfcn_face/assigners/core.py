"""The matching core shared by the anchor-assignment strategies: max-IoU with thresholds (Sec. 3.1-3.2), HC(N)
(Sec. 4.4) and the lattice geometry that keeps them fast.

Label convention (everywhere in rfcn_face): ``1`` positive, ``0`` negative, ``-1`` ignore.

Rules, in the order they are applied (``Th = pos_iou``, ``Tl = neg_iou``)
-----------------------------------------------------------------------
* **Faces.** A face is *valid* when it is not flagged ignored and has a positive area. Ignored faces
  (WIDER invalid faces, ignore regions) never make a positive; degenerate valid faces simply match nothing.
* **Border.** With ``allowed_border >= 0`` an anchor is *inside* when
  ``x1 >= -b, y1 >= -b, x2 <= W + b, y2 <= H + b`` (``b = allowed_border``, ``H x W`` the image). Anchors
  not inside are labelled -1 and take no part in any rule below (they are never a face's best anchor nor one
  of its top-N). ``allowed_border < 0`` keeps every anchor (no border rule).
* **Negatives.** An inside anchor whose max IoU over the valid faces is ``< Tl`` is negative (0); an anchor
  with no valid face has max IoU 0.
* **Ignored faces.** A would-be negative anchor that *overlaps* an ignored face becomes -1. Overlap means
  ``IoU >= Tl`` (it would not have been a negative had the face been valid) or
  ``IoF >= ignore_iof`` where IoF = intersection / anchor area (at least that fraction of the anchor lies
  inside the ignored box; default 0.5). Positives are never downgraded by an ignored face.
* **Threshold positives** (a). An inside anchor with IoU ``>= Th`` with a valid face is positive and regresses
  to its max-IoU face (equal IoUs: lower face index). A face with such an anchor is *easy*; a valid face whose
  best IoU over the inside anchors is ``< Th`` is *hard* (Sec. 4.4). Threshold positives are never taken
  away by any other rule.
* **Without HC** (``hc_top_n = 0``): best anchor (b). A face also claims every inside anchor that reaches its
  best IoU (all exact ties, as the R-FCN / Faster R-CNN code does; only if that best IoU is > 0). An anchor
  claimed by several faces regresses to the claimant with the highest IoU; equal IoUs go to the lower face.
* **HC(N)** (c), Sec. 4.4 "the top N anchors with highest overlap with them are labeled as positive": the
  top-N replaces rule (b) (for easy faces (b) is inside (a) anyway). A hard face's *available* anchors are
  the inside anchors with IoU > 0 with it that are not threshold positives. All (hard face, available
  anchor) pairs are visited greedily in the order **IoU descending, then lower anchor index, then lower
  face index**; a face takes the anchor when it holds fewer than N anchors and the anchor is still free.
  When two hard faces want one anchor the higher IoU wins and the other face takes its next best. So each
  hard face ends with exactly ``min(N, #available)`` positives (:func:`hc_available`) unless other hard
  faces took some of its available anchors; it ends short only when every one of them went to another
  hard face. (On the packaged WIDER val faces with DC+16x3, HC(3/5/7): every hard face gets exactly N,
  ``benchmarks/bench_hc_exact_n.py``.)
* **Matched anchors per face** (the statistic of HAMBox Fig. 1(a)): the number of positive anchors that
  regress to that face after the rules above (0 for ignored faces).

The rule engine is :func:`match_anchors` (``hc_top_n = 0``: rules (a) + (b); ``> 0``: (a) + (c);
``best_anchor=False``: (a) only, HAMBox step one). ``anchors`` is an :class:`AnchorGrid` (fast path: only anchors
near each face are looked at, using the regular lattice) or a plain ``(N, 4)`` array. The strategies built on it
are the modules of this package (:mod:`rfcn_face.assigners`); everything here is shared by them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..anchors import AnchorSet, feature_size
from ..boxes import box_area, pairwise_iou

__all__ = ["AssignParams", "AssignResult", "AnchorGrid", "anchor_boxes_of", "overlap_pairs", "inside_anchors",
           "valid_faces", "valid_pairs", "rescore", "first_of_groups", "winner_per_anchor", "greedy_by_capacity",
           "greedy_top_n", "match_anchors", "hc_available"]


@dataclass(frozen=True)
class AssignParams:
    pos_iou: float = 0.5        # Th (Sec. 5.1)
    neg_iou: float = 0.3        # Tl
    allowed_border: int = 0     # -1: keep anchors crossing the border
    ignore_iof: float = 0.5     # anchor fraction inside an ignored face that makes the anchor ignored

    @classmethod
    def from_config(cls, cfg) -> "AssignParams":
        return cls(pos_iou=cfg.rpn.pos_iou, neg_iou=cfg.rpn.neg_iou, allowed_border=cfg.rpn.allowed_border,
                   ignore_iof=cfg.rpn.ignore_iof)


@dataclass
class AssignResult:
    labels: np.ndarray          # (N,) int32 in {1, 0, -1}
    gt_index: np.ndarray        # (N,) int64: face a positive anchor regresses to, -1 elsewhere
    max_iou: np.ndarray         # (N,) float64: max IoU over valid faces (0 for anchors not inside);
                                # on an AnchorGrid exact where >= Tl, possibly lower below Tl
    face_best_iou: np.ndarray   # (F,) float64: best IoU over inside anchors (0 for ignored faces)
    hard: np.ndarray            # (F,) bool: valid faces whose best IoU < Th
    matched: np.ndarray         # (F,) int64: positive anchors regressing to each face


@dataclass(frozen=True)
class AnchorGrid:
    """The tiled anchors of one ``height x width`` feature map of ``anchor_set`` (order of AnchorSet.tile)."""

    anchor_set: AnchorSet
    height: int
    width: int
    boxes: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "boxes", self.anchor_set.tile(self.height, self.width))

    @classmethod
    def for_image(cls, anchor_set: AnchorSet, image_height: int, image_width: int) -> "AnchorGrid":
        return cls(anchor_set, feature_size(image_height, anchor_set.stride),
                   feature_size(image_width, anchor_set.stride))

    def __len__(self):
        return len(self.boxes)

    def template_areas(self) -> np.ndarray:
        """(A,) area of each per-location anchor template."""
        _, sizes = self.anchor_set.templates()
        return sizes[:, 0] * sizes[:, 1]

    def candidates(self, boxes: np.ndarray, groups=None) -> tuple[np.ndarray, np.ndarray]:
        """(anchor, face) index pairs covering every anchor that may intersect each face (a superset, one
        location wider on each side), grouped by face in increasing order. ``groups`` (F, A) bool limits
        face ``f`` to the templates ``a`` where it is True."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        s, H, W = float(self.anchor_set.stride), self.height, self.width
        base = self.anchor_set.base()                       # (A, 4) anchors of location (0, 0)
        A = len(base)
        # anchor (x, a) spans [x*s + base_x1, x*s + base_x2): it meets [fx1, fx2) iff
        # (fx1 - base_x2) / s < x < (fx2 - base_x1) / s; floor/ceil keep one extra location each side.
        lo_x = np.floor((boxes[:, None, 0] - base[None, :, 2]) / s).astype(np.int64)
        hi_x = np.ceil((boxes[:, None, 2] - base[None, :, 0]) / s).astype(np.int64)
        lo_y = np.floor((boxes[:, None, 1] - base[None, :, 3]) / s).astype(np.int64)
        hi_y = np.ceil((boxes[:, None, 3] - base[None, :, 1]) / s).astype(np.int64)
        lo_x, hi_x = np.clip(lo_x, 0, W - 1), np.clip(hi_x, 0, W - 1)
        lo_y, hi_y = np.clip(lo_y, 0, H - 1), np.clip(hi_y, 0, H - 1)
        nx = np.clip(hi_x - lo_x + 1, 0, None).ravel()
        ny = np.clip(hi_y - lo_y + 1, 0, None).ravel()
        n = nx * ny                                          # (F*A,) group sizes, face-major
        if groups is not None:
            n = n * np.asarray(groups, dtype=bool).ravel()
        group = np.repeat(np.arange(len(n)), n)
        k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        x = lo_x.ravel()[group] + k % nx[group]
        y = lo_y.ravel()[group] + k // nx[group]
        anchor = (y * W + x) * A + group % A
        return anchor, group // A


def anchor_boxes_of(anchors) -> np.ndarray:
    return anchors.boxes if isinstance(anchors, AnchorGrid) else np.asarray(anchors, dtype=np.float64).reshape(-1, 4)


def overlap_pairs(anchors, boxes, anchor_mask=None, groups=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ``(anchor, face, IoU)`` with IoU > 0, grouped by face (faces increasing; each anchor once per face).

    ``anchors`` is an :class:`AnchorGrid` (only lattice windows around each face are scored) or an (N, 4)
    array (every anchor is tested against each face). ``anchor_mask`` (N,) bool restricts the anchors;
    ``groups`` (F, A) bool restricts each face to some templates (grid only).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    abox = anchor_boxes_of(anchors)
    if len(boxes) == 0 or len(abox) == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e.copy(), np.zeros(0)
    if isinstance(anchors, AnchorGrid):
        cand_a, cand_f = anchors.candidates(boxes, groups)       # already grouped by face
    else:
        hit = ((boxes[:, None, 0] < abox[None, :, 2]) & (boxes[:, None, 2] > abox[None, :, 0])
               & (boxes[:, None, 1] < abox[None, :, 3]) & (boxes[:, None, 3] > abox[None, :, 1]))
        cand_f, cand_a = np.nonzero(hit)                          # face-major, anchors increasing
    if anchor_mask is not None:
        keep = anchor_mask[cand_a]
        cand_a, cand_f = cand_a[keep], cand_f[keep]
    iou = pairwise_iou(abox[cand_a], boxes[cand_f])
    pos = iou > 0
    return cand_a[pos], cand_f[pos], iou[pos]


def inside_anchors(anchor_boxes: np.ndarray, image_hw, allowed_border: float) -> np.ndarray:
    """Border rule: (N,) bool, True for anchors within ``allowed_border`` pixels of the image (all if < 0)."""
    if allowed_border < 0:
        return np.ones(len(anchor_boxes), dtype=bool)
    h, w = image_hw
    b = float(allowed_border)
    return ((anchor_boxes[:, 0] >= -b) & (anchor_boxes[:, 1] >= -b)
            & (anchor_boxes[:, 2] <= w + b) & (anchor_boxes[:, 3] <= h + b))


def valid_faces(boxes: np.ndarray, ignore) -> np.ndarray:
    ign = np.zeros(len(boxes), dtype=bool) if ignore is None else np.asarray(ignore).astype(bool).reshape(-1)
    if len(ign) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(ign)} ignore flags")
    return ~ign & (box_area(boxes) > 0) if len(boxes) else np.zeros(0, dtype=bool)


_EPS = 1e-9  # slack on the IoU bounds below, so that float rounding can never skip a pair that matters


def _iou_bound(face_areas: np.ndarray, template_areas: np.ndarray) -> np.ndarray:
    """(F, A) upper bound of the IoU of a face with any anchor of a template: smaller area / larger area."""
    fa, ta = face_areas[:, None], template_areas[None, :]
    return np.minimum(fa, ta) / np.maximum(fa, ta)


def ignored_overlap(anchors, abox, ign_boxes, inside, neg_iou, ignore_iof) -> np.ndarray:
    """(N,) bool: inside anchors overlapping an ignored face (IoU >= neg_iou or IoF >= ignore_iof)."""
    out = np.zeros(len(abox), dtype=bool)
    groups = None
    if isinstance(anchors, AnchorGrid):   # skip templates that can reach neither threshold
        fa, ta = box_area(ign_boxes)[:, None], anchors.template_areas()[None, :]
        groups = ((_iou_bound(fa[:, 0], ta[0]) >= neg_iou - _EPS)
                  | (np.minimum(1.0, fa / ta) >= ignore_iof - _EPS))
    ai, fi, iou = overlap_pairs(anchors, ign_boxes, inside, groups)
    if len(ai) == 0:
        return out
    a, g = abox[ai], ign_boxes[fi]
    inter = (np.minimum(a[:, 2], g[:, 2]) - np.maximum(a[:, 0], g[:, 0])) * \
            (np.minimum(a[:, 3], g[:, 3]) - np.maximum(a[:, 1], g[:, 1]))   # > 0: pairs intersect
    iof = inter / box_area(a)
    out[ai[(iou >= neg_iou) | (iof >= ignore_iof)]] = True
    return out


def valid_pairs(anchors, boxes, inside, params: AssignParams):
    """:func:`overlap_pairs` of the valid faces, plus ``skipped`` (F,): an upper bound of the IoU of every pair
    left out (``-inf`` where none is).

    On an :class:`AnchorGrid` a face first skips the templates whose IoU bound (smaller area / larger area) is
    below ``min(Tl, its largest bound)``: those pairs have IoU < Tl, so they can neither be a threshold
    positive nor change a negative. :func:`match_anchors` rescores a face with every template (:func:`rescore`)
    whenever a skipped pair could still change its best anchor or its HC(N) anchors. Consequently ``max_iou``
    is exact where it is >= Tl and may be lower than the true value below Tl.
    """
    F = len(boxes)
    if not isinstance(anchors, AnchorGrid) or F == 0:
        return (*overlap_pairs(anchors, boxes, inside), np.full(F, -np.inf))
    u = _iou_bound(box_area(boxes), anchors.template_areas())
    keep = u >= np.minimum(params.neg_iou, u.max(axis=1, keepdims=True)) - _EPS
    ai, fi, iou = overlap_pairs(anchors, boxes, inside, keep)
    skipped = np.where(keep, -np.inf, u + _EPS).max(axis=1)
    return ai, fi, iou, skipped


def rescore(anchors, boxes, inside, pairs, redo: np.ndarray):
    """``pairs`` with the faces ``redo`` scored against every template (their ``skipped`` becomes -inf)."""
    ai, fi, iou, skipped = pairs
    ra, rf, ri = overlap_pairs(anchors, boxes[redo], inside)
    rest = ~np.isin(fi, redo)
    ai, fi, iou = (np.concatenate([ai[rest], ra]), np.concatenate([fi[rest], redo[rf]]),
                   np.concatenate([iou[rest], ri]))
    order = np.argsort(fi, kind="stable")
    skipped = skipped.copy()
    skipped[redo] = -np.inf
    return ai[order], fi[order], iou[order], skipped


def first_of_groups(group: np.ndarray) -> np.ndarray:
    """(P,) bool: True at the first element of each run of equal values of a sorted ``group``."""
    return np.r_[True, group[1:] != group[:-1]] if len(group) else np.zeros(0, dtype=bool)


def winner_per_anchor(ai, fi, iou) -> np.ndarray:
    """Indices of the pairs that win their anchor: highest IoU, then lower face index."""
    o = np.lexsort((fi, -iou, ai))
    return o[first_of_groups(ai[o])]


def greedy_by_capacity(ai, fi, iou, capacity) -> np.ndarray:
    """(P,) bool, the pairs taken when all pairs are visited IoU descending, then lower anchor, then lower face,
    and a face takes its anchor while it holds fewer than ``capacity[face]`` and the anchor is free.

    ``capacity`` is one number per face index (HC(N): N for every hard face; HAMBox OAM: K - M_f). Deferred
    acceptance, vectorised: faces propose their next best pairs up to their capacity, anchors keep their best
    proposal; both sides rank pairs by one global order, so the stable assignment is unique and equals the
    greedy visit (tested against an explicit loop)."""
    P = len(ai)
    taken = np.zeros(P, dtype=bool)
    capacity = np.asarray(capacity, dtype=np.int64)
    if P == 0:
        return taken
    prio = np.empty(P, dtype=np.int64)
    prio[np.lexsort((fi, ai, -iou))] = np.arange(P)
    order = np.lexsort((prio, fi))
    a_s, p_s, f_s = ai[order], prio[order], fi[order]
    starts = np.flatnonzero(first_of_groups(f_s))
    counts = np.diff(np.r_[starts, P])
    cap = np.maximum(capacity[f_s[starts]], 0)
    slot = np.repeat(np.arange(len(starts)), counts)
    rank = np.arange(P) - starts[slot]
    proposed = np.zeros(len(starts), dtype=np.int64)
    have = np.zeros(len(starts), dtype=np.int64)
    held = np.zeros(P, dtype=bool)
    while True:
        need = np.where(proposed < counts, cap - have, 0)
        if not np.any(need > 0):
            break
        upto = np.minimum(proposed + need, counts)
        cand = np.flatnonzero(held | ((rank >= proposed[slot]) & (rank < upto[slot])))
        proposed = upto
        o = np.lexsort((p_s[cand], a_s[cand]))
        held[:] = False
        held[cand[o][first_of_groups(a_s[cand][o])]] = True
        have = np.bincount(slot[held], minlength=len(starts))
    taken[order[held]] = True
    return taken


def greedy_top_n(ai, fi, iou, n: int) -> np.ndarray:
    """HC(N) assignment of hard faces (Sec. 4.4): (P,) bool, the pairs taken. Definition (what
    :func:`rfcn_face.testing.anchor_reference.assign_reference` runs literally): visit all pairs in the order
    IoU descending, then lower anchor index, then lower face index; a pair is taken when its face has fewer
    than ``n`` anchors and its anchor is still free (:func:`greedy_by_capacity` with capacity ``n`` for every
    face)."""
    if len(ai) == 0 or n <= 0:
        return np.zeros(len(ai), dtype=bool)
    return greedy_by_capacity(ai, fi, iou, np.full(int(fi.max()) + 1, int(n), dtype=np.int64))


def _match(ai, fl, iou, num_anchors: int, num_faces: int, params: AssignParams, hc_top_n: int,
           best_anchor: bool = True):
    """All positive rules on the pairs of the valid faces (local face indices ``fl``); ``best_anchor=False``
    leaves out rule (b) (HAMBox step one: threshold claims only).

    Returns ``max_iou (N,), face_best (F,), claim_face (N,) local face or -1, taken (P,) bool`` where
    ``taken`` marks the pairs that became positives.
    """
    max_iou = np.zeros(num_anchors)
    face_best = np.zeros(num_faces)
    taken = np.zeros(len(ai), dtype=bool)
    if len(ai):
        top = winner_per_anchor(ai, fl, iou)                   # each anchor's max-IoU face
        max_iou[ai[top]] = iou[top]
        o = np.lexsort((-iou, fl))
        first = o[first_of_groups(fl[o])]
        face_best[fl[first]] = iou[first]
    hard = face_best < params.pos_iou
    thr = iou >= params.pos_iou                                 # (a) threshold claims
    if hc_top_n <= 0:
        claim = thr | (iou == face_best[fl]) if best_anchor else thr   # (b) best anchor(s), all exact ties
        idx = np.flatnonzero(claim)
        taken[idx[winner_per_anchor(ai[idx], fl[idx], iou[idx])]] = True
    else:
        idx = np.flatnonzero(thr)
        taken[idx[winner_per_anchor(ai[idx], fl[idx], iou[idx])]] = True
        thr_pos = np.zeros(num_anchors, dtype=bool)
        thr_pos[ai[idx]] = True
        cand = np.flatnonzero(hard[fl] & ~thr_pos[ai])          # (c) HC(N): hard faces, free anchors
        taken[cand[greedy_top_n(ai[cand], fl[cand], iou[cand], hc_top_n)]] = True
    claim_face = np.full(num_anchors, -1, dtype=np.int64)
    claim_face[ai[taken]] = fl[taken]
    return max_iou, face_best, claim_face, taken


def _incomplete(fl, iou, taken, face_best, skipped, params: AssignParams, hc_top_n: int) -> np.ndarray:
    """Faces whose skipped pairs (IoU <= ``skipped``) could still change the answer (see :func:`match_anchors`)."""
    F = len(face_best)
    ok = face_best > skipped                                    # best anchor and hard flag are exact
    if hc_top_n > 0:
        hard = face_best < params.pos_iou
        count = np.bincount(fl[taken], minlength=F)
        low = np.full(F, np.inf)
        np.minimum.at(low, fl[taken], iou[taken])
        ok &= ~hard | ((count >= hc_top_n) & (low > skipped))   # N anchors, each better than any skipped
    return np.flatnonzero(~ok & (skipped > -np.inf))


def match_anchors(anchors, boxes, ignore, image_hw, params: AssignParams, hc_top_n: int = 0,
                  best_anchor: bool = True) -> AssignResult:
    """Every rule of the module docstring on one image: ``hc_top_n > 0`` replaces the best-anchor rule (b) by HC(N)
    (c); ``best_anchor=False`` leaves (b) out (threshold claims only)."""
    abox = anchor_boxes_of(anchors)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    N, F = len(abox), len(boxes)
    valid = valid_faces(boxes, ignore)
    inside = inside_anchors(abox, image_hw, params.allowed_border)
    vid = np.flatnonzero(valid)
    pairs = valid_pairs(anchors, boxes[vid], inside, params)
    # Lattice path: a face whose best anchor, or whose HC anchors (N of them, each better than every skipped
    # pair), are settled cannot be changed by its skipped pairs: in the greedy order they come after the
    # face is full, so they are passed over and change nothing else. Other faces are rescored with every
    # template and the matching rerun, until none is left (usually zero or one round).
    while True:
        ai, fl, iou, skipped = pairs
        max_iou, best, claim, taken = _match(ai, fl, iou, N, len(vid), params, hc_top_n, best_anchor)
        redo = _incomplete(fl, iou, taken, best, skipped, params, hc_top_n)
        if not redo.size:
            break
        pairs = rescore(anchors, boxes[vid], inside, pairs, redo)
    face_best = np.zeros(F)
    face_best[vid] = best
    hard = valid & (face_best < params.pos_iou)

    labels = np.full(N, -1, dtype=np.int32)
    labels[inside & (max_iou < params.neg_iou)] = 0
    ign = np.flatnonzero(~valid & (box_area(boxes) > 0)) if F else np.zeros(0, dtype=np.int64)
    if len(ign):   # ignored faces turn overlapping would-be negatives into -1
        labels[(labels == 0) & ignored_overlap(anchors, abox, boxes[ign], inside, params.neg_iou,
                                                params.ignore_iof)] = -1
    pos = claim >= 0
    labels[pos] = 1
    gt_index = np.where(pos, vid[np.maximum(claim, 0)] if len(vid) else -1, -1)
    matched = np.bincount(gt_index[pos], minlength=F).astype(np.int64)
    return AssignResult(labels, gt_index, max_iou, face_best, hard, matched)


def hc_available(anchors, boxes, ignore, image_hw, params: AssignParams) -> np.ndarray:
    """(F,) per face, the anchors HC(N) may give it (Sec. 4.4): inside anchors with IoU > 0 with the face that
    are not threshold positives (IoU >= Th with any valid face). 0 for ignored and degenerate faces.

    Computed independently of the assignment (every template scored), for tests and benchmarks: a hard face
    gets exactly N when this is >= N and no other hard face took its anchors.
    """
    abox = anchor_boxes_of(anchors)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    valid = valid_faces(boxes, ignore)
    out = np.zeros(len(boxes), dtype=np.int64)
    vid = np.flatnonzero(valid)
    ai, fl, iou = overlap_pairs(anchors, boxes[vid], inside_anchors(abox, image_hw, params.allowed_border))
    thr = np.zeros(len(abox), dtype=bool)
    thr[ai[iou >= params.pos_iou]] = True
    out[vid] = np.bincount(fl[~thr[ai]], minlength=len(vid))
    return out
