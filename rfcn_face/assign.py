"""Anchor label assignment on numpy arrays: max-IoU with thresholds (Sec. 3.1-3.2) and HC(N) (Sec. 4.4).

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
* **Positives (claims).** A valid face *claims* an inside anchor when (a) their IoU ``>= Th``, or (b) the
  anchor reaches the face's best IoU over inside anchors (all exact ties; only if that best IoU is > 0), or
  (c) HC(N) only: the face is *hard* (best IoU ``< Th``) and the anchor is among its top-N anchors by IoU
  (IoU > 0, ties broken by lower anchor index, so exactly ``min(N, #anchors with IoU > 0)`` anchors).
  Every claimed anchor is positive.
* **Several faces claiming one anchor.** The anchor regresses to the claiming face with the highest IoU;
  equal IoUs go to the lower face index. (For threshold claims this is the anchor's max-IoU face.) So a hard
  face may end with fewer than N anchors when a neighbour overlaps its anchors better.
* **Matched anchors per face** (the statistic of HAMBox Fig. 1(a)): the number of positive anchors that
  regress to that face after the rule above (0 for ignored faces).

All strategies share one signature ``f(anchors, boxes, ignore, image_hw, params) -> AssignResult`` where
``anchors`` is an :class:`AnchorGrid` (fast path: only anchors near each face are looked at, using the
regular lattice) or a plain ``(N, 4)`` array. :data:`STRATEGIES` maps names to them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anchors import AnchorSet, feature_size
from .boxes import box_area, encode, iou_matrix
from .sampling import subsample_labels

__all__ = [
    "AssignParams", "AssignResult", "AnchorGrid", "overlap_pairs", "inside_anchors", "assign_max_iou",
    "assign_hard_face_compensation", "STRATEGIES", "get_strategy", "box_targets", "anchor_targets", "assign_reference",
]


@dataclass(frozen=True)
class AssignParams:
    pos_iou: float = 0.5        # Th (Sec. 5.1)
    neg_iou: float = 0.3        # Tl
    allowed_border: int = 0     # -1: keep anchors crossing the border
    ignore_iof: float = 0.5     # anchor fraction inside an ignored face that makes the anchor ignored
    hc_top_n: int = 0           # HC(N), Sec. 4.4 (only read by assign_hard_face_compensation)

    @classmethod
    def from_config(cls, cfg) -> "AssignParams":
        return cls(pos_iou=cfg.rpn.pos_iou, neg_iou=cfg.rpn.neg_iou, allowed_border=cfg.rpn.allowed_border,
                   ignore_iof=cfg.rpn.ignore_iof, hc_top_n=cfg.train.hard_face_compensation)

    @property
    def strategy(self) -> str:
        return "hc" if self.hc_top_n > 0 else "max_iou"


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


def _as_anchor_boxes(anchors) -> np.ndarray:
    return anchors.boxes if isinstance(anchors, AnchorGrid) else np.asarray(anchors, dtype=np.float64).reshape(-1, 4)


def overlap_pairs(anchors, boxes, anchor_mask=None, groups=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ``(anchor, face, IoU)`` with IoU > 0, grouped by face (faces increasing; each anchor once per face).

    ``anchors`` is an :class:`AnchorGrid` (only lattice windows around each face are scored) or an (N, 4)
    array (every anchor is tested against each face). ``anchor_mask`` (N,) bool restricts the anchors;
    ``groups`` (F, A) bool restricts each face to some templates (grid only).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    abox = _as_anchor_boxes(anchors)
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
    starts = np.searchsorted(cand_f, np.arange(len(boxes) + 1))
    iou = np.empty(len(cand_a))
    for f0, f1 in _face_chunks(np.diff(starts)):   # one small dense iou_matrix per chunk of faces
        a, b = starts[f0], starts[f1]
        if b > a:
            block = iou_matrix(abox[cand_a[a:b]], boxes[f0:f1])
            iou[a:b] = block[np.arange(b - a), cand_f[a:b] - f0]
    pos = iou > 0
    return cand_a[pos], cand_f[pos], iou[pos]


def _face_chunks(counts: np.ndarray, budget: int = 1 << 15):
    """Consecutive face ranges ``[f0, f1)`` whose (candidates x faces) dense block stays under ``budget``."""
    f0, total = 0, 0
    for f, c in enumerate(counts.tolist()):
        if f > f0 and (total + c) * (f - f0 + 1) > budget:
            yield f0, f
            f0, total = f, 0
        total += c
    if len(counts) > f0:
        yield f0, len(counts)


def inside_anchors(anchor_boxes: np.ndarray, image_hw, allowed_border: float) -> np.ndarray:
    """Border rule: (N,) bool, True for anchors within ``allowed_border`` pixels of the image (all if < 0)."""
    if allowed_border < 0:
        return np.ones(len(anchor_boxes), dtype=bool)
    h, w = image_hw
    b = float(allowed_border)
    return ((anchor_boxes[:, 0] >= -b) & (anchor_boxes[:, 1] >= -b)
            & (anchor_boxes[:, 2] <= w + b) & (anchor_boxes[:, 3] <= h + b))


def _valid_faces(boxes: np.ndarray, ignore) -> np.ndarray:
    ign = np.zeros(len(boxes), dtype=bool) if ignore is None else np.asarray(ignore).astype(bool).reshape(-1)
    if len(ign) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(ign)} ignore flags")
    return ~ign & (box_area(boxes) > 0) if len(boxes) else np.zeros(0, dtype=bool)


_EPS = 1e-9  # slack on the IoU bounds below, so that float rounding can never skip a pair that matters


def _iou_bound(face_areas: np.ndarray, template_areas: np.ndarray) -> np.ndarray:
    """(F, A) upper bound of the IoU of a face with any anchor of a template: smaller area / larger area."""
    fa, ta = face_areas[:, None], template_areas[None, :]
    return np.minimum(fa, ta) / np.maximum(fa, ta)


def _face_slices(fi: np.ndarray, num_faces: int):
    """``(f, start, end)`` of each non-empty face group of pairs grouped by face."""
    starts = np.searchsorted(fi, np.arange(num_faces + 1))
    for f in np.flatnonzero(np.diff(starts)):
        yield int(f), int(starts[f]), int(starts[f + 1])


def _valid_pairs(anchors, boxes, inside, params: AssignParams, top_k: int):
    """:func:`overlap_pairs` of the valid faces, exact for every rule of :func:`_assign`.

    On an :class:`AnchorGrid` a face first skips the templates whose IoU bound is below
    ``min(Tl, its largest bound)`` (their IoUs cannot change a label). A face is rescored with every template
    when a skipped pair could still be its best anchor or among its top-k (k = HC's N for hard faces).
    Consequently ``max_iou`` is exact where it is >= Tl and may be lower than the true value below Tl.
    """
    if not isinstance(anchors, AnchorGrid) or len(boxes) == 0:
        return overlap_pairs(anchors, boxes, inside)
    F = len(boxes)
    u = _iou_bound(box_area(boxes), anchors.template_areas())
    keep = u >= np.minimum(params.neg_iou, u.max(axis=1, keepdims=True)) - _EPS
    ai, fi, iou = overlap_pairs(anchors, boxes, inside, keep)
    skipped = np.where(keep, -np.inf, u + _EPS).max(axis=1)      # (F,) IoU bound of the skipped pairs
    kth = np.zeros(F)                                            # k-th best kept IoU (0: fewer than k)
    for f, a, b in _face_slices(fi, F):
        o = iou[a:b]
        k = 1 if o.max() >= params.pos_iou else max(top_k, 1)
        if len(o) >= k:
            kth[f] = np.partition(o, len(o) - k)[len(o) - k]
    redo = np.flatnonzero(kth <= skipped)
    if redo.size:
        ra, rf, ri = overlap_pairs(anchors, boxes[redo], inside)
        rest = ~np.isin(fi, redo)
        ai, fi, iou = (np.concatenate([ai[rest], ra]), np.concatenate([fi[rest], redo[rf]]),
                       np.concatenate([iou[rest], ri]))
        order = np.argsort(fi, kind="stable")
        ai, fi, iou = ai[order], fi[order], iou[order]
    return ai, fi, iou


def _ignored_overlap(anchors, abox, ign_boxes, inside, neg_iou, ignore_iof) -> np.ndarray:
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


def _assign(anchors, boxes, ignore, image_hw, params: AssignParams, hc_top_n: int) -> AssignResult:
    abox = _as_anchor_boxes(anchors)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    N, F = len(abox), len(boxes)
    valid = _valid_faces(boxes, ignore)
    inside = inside_anchors(abox, image_hw, params.allowed_border)
    max_iou = np.zeros(N)
    face_best = np.zeros(F)
    claim_iou = np.full(N, -1.0)
    claim_face = np.full(N, -1, dtype=np.int64)

    vid = np.flatnonzero(valid)
    ai, fl, iou = _valid_pairs(anchors, boxes[vid], inside, params, hc_top_n)
    # faces in increasing index; "strictly greater" keeps the lower face on equal IoU
    for j, s, e in _face_slices(fl, len(vid)):
        a, o, f = ai[s:e], iou[s:e], vid[j]
        up = o > max_iou[a]
        max_iou[a[up]] = o[up]
        face_best[f] = best = o.max()
        # claims: (a) IoU >= Th, (b) the face's best anchor(s), (c) HC(N): top-N of a hard face (Sec. 4.4)
        want = (o >= params.pos_iou) | (o == best)
        if hc_top_n > 0 and best < params.pos_iou:
            want[np.lexsort((a, -o))[:hc_top_n]] = True
        a, o = a[want], o[want]
        up = o > claim_iou[a]
        claim_iou[a[up]] = o[up]
        claim_face[a[up]] = f
    hard = valid & (face_best < params.pos_iou)

    labels = np.full(N, -1, dtype=np.int32)
    labels[inside & (max_iou < params.neg_iou)] = 0
    ign = np.flatnonzero(~valid & (box_area(boxes) > 0)) if F else np.zeros(0, dtype=np.int64)
    if len(ign):   # ignored faces turn overlapping would-be negatives into -1
        labels[(labels == 0) & _ignored_overlap(anchors, abox, boxes[ign], inside, params.neg_iou,
                                                 params.ignore_iof)] = -1
    pos = claim_face >= 0
    labels[pos] = 1
    gt_index = np.where(pos, claim_face, -1)
    matched = np.bincount(claim_face[pos], minlength=F).astype(np.int64)
    return AssignResult(labels, gt_index, max_iou, face_best, hard, matched)


def assign_max_iou(anchors, boxes, ignore, image_hw, params: AssignParams) -> AssignResult:
    """Sec. 3.1 / 5.1 matching: IoU >= Th or a face's best anchor -> 1, max IoU < Tl -> 0, else -1."""
    return _assign(anchors, boxes, ignore, image_hw, params, hc_top_n=0)


def assign_hard_face_compensation(anchors, boxes, ignore, image_hw, params: AssignParams) -> AssignResult:
    """HC(N), Sec. 4.4: max-IoU matching, then each hard face (best IoU < Th) gets its top-N anchors."""
    return _assign(anchors, boxes, ignore, image_hw, params, hc_top_n=int(params.hc_top_n))


STRATEGIES = {"max_iou": assign_max_iou, "hc": assign_hard_face_compensation}


def get_strategy(name: str):
    if name not in STRATEGIES:
        raise ValueError(f"unknown anchor assignment strategy {name!r}; known: {', '.join(STRATEGIES)}")
    return STRATEGIES[name]


def box_targets(anchor_boxes, boxes, labels, gt_index, means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0)):
    """Regression targets ``(N, 4)`` and weights ``(N, 4)``: encoded face of each positive, zeros elsewhere."""
    anchor_boxes = np.asarray(anchor_boxes, dtype=np.float64).reshape(-1, 4)
    targets = np.zeros((len(anchor_boxes), 4))
    weights = np.zeros((len(anchor_boxes), 4))
    pos = np.flatnonzero(labels == 1)
    if len(pos):
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        targets[pos] = encode(anchor_boxes[pos], boxes[gt_index[pos]], means, stds)
        weights[pos] = 1.0
    return targets, weights


def anchor_targets(anchors, boxes, ignore, image_hw, params: AssignParams, *, batch_size: int = 256,
                   fg_fraction: float = 0.5, rng: np.random.Generator | None = None, strategy: str | None = None,
                   means=(0.0, 0.0, 0.0, 0.0), stds=(1.0, 1.0, 1.0, 1.0)):
    """RPN training targets of one image: assign (``strategy``, default ``params.strategy``), sample the
    minibatch (:func:`rfcn_face.sampling.subsample_labels`), encode the positives.

    Returns ``(labels (N,), bbox_targets (N, 4), bbox_weights (N, 4), result)`` where ``result`` is the
    :class:`AssignResult` before sampling (its ``matched`` counts are per face, before sampling).
    """
    result = get_strategy(strategy or params.strategy)(anchors, boxes, ignore, image_hw, params)
    rng = np.random.default_rng(0) if rng is None else rng
    labels = subsample_labels(result.labels, batch_size, fg_fraction, rng)
    targets, weights = box_targets(_as_anchor_boxes(anchors), boxes, labels, result.gt_index, means, stds)
    return labels, targets, weights, result


# --------------------------------------------------------------------------------------------------------
# Reference implementation: slow and obvious (one dense IoU column per face over all anchors). Used by the
# tests and the benchmark to check the fast path; not for training.
# --------------------------------------------------------------------------------------------------------
def assign_reference(anchors, boxes, ignore, image_hw, params: AssignParams, hc_top_n: int = 0) -> AssignResult:
    abox = _as_anchor_boxes(anchors)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    N, F = len(abox), len(boxes)
    ign = np.zeros(F, dtype=bool) if ignore is None else np.asarray(ignore).astype(bool).reshape(-1)
    h, w = image_hw
    b = params.allowed_border
    if b < 0:
        inside = np.ones(N, dtype=bool)
    else:
        inside = np.array([x1 >= -b and y1 >= -b and x2 <= w + b and y2 <= h + b for x1, y1, x2, y2 in abox],
                          dtype=bool)
    area = lambda bx: max(bx[2] - bx[0], 0.0) * max(bx[3] - bx[1], 0.0)  # noqa: E731
    valid = [f for f in range(F) if not ign[f] and area(boxes[f]) > 0]
    max_iou = np.zeros(N)
    face_best = np.zeros(F)
    claim_iou = np.full(N, -1.0)
    claim_face = np.full(N, -1, dtype=np.int64)
    for f in valid:
        col = iou_matrix(abox, boxes[f])[:, 0]
        col[~inside] = 0.0
        max_iou = np.maximum(max_iou, col)
        best = col.max() if N else 0.0
        face_best[f] = best
        wants = col >= params.pos_iou
        if best > 0:
            wants |= col == best
            if hc_top_n > 0 and best < params.pos_iou:
                order = np.lexsort((np.arange(N), -col))      # IoU desc, then lower anchor index
                top = [a for a in order[:hc_top_n] if col[a] > 0]
                wants[top] = True
        wants &= col > 0
        for a in np.flatnonzero(wants):
            if col[a] > claim_iou[a]:          # strict: an equal IoU keeps the earlier (lower) face
                claim_iou[a], claim_face[a] = col[a], f
    ignored = [g for g in range(F) if ign[g] and area(boxes[g]) > 0]
    labels = np.full(N, -1, dtype=np.int32)
    for a in range(N):
        if not inside[a]:
            continue
        if claim_face[a] >= 0:
            labels[a] = 1
            continue
        if max_iou[a] >= params.neg_iou:
            continue
        overlaps_ignored = False
        for g in ignored:
            ix = min(abox[a, 2], boxes[g, 2]) - max(abox[a, 0], boxes[g, 0])
            iy = min(abox[a, 3], boxes[g, 3]) - max(abox[a, 1], boxes[g, 1])
            if ix <= 0 or iy <= 0:
                continue
            inter = ix * iy
            iou = inter / (area(abox[a]) + area(boxes[g]) - inter)
            if iou >= params.neg_iou or inter / area(abox[a]) >= params.ignore_iof:
                overlaps_ignored = True
        labels[a] = -1 if overlaps_ignored else 0
    gt_index = np.where(labels == 1, claim_face, -1)
    matched = np.array([int(np.sum(gt_index == f)) for f in range(F)], dtype=np.int64)
    hard = np.array([f in valid and face_best[f] < params.pos_iou for f in range(F)], dtype=bool)
    return AssignResult(labels, gt_index, max_iou, face_best, hard, matched)
