"""Slow, obvious references of the RPN anchor-assignment strategies (:mod:`rfcn_face.assigners`: max-IoU and
HC(N); HAMBox OAM and cleanliness, which read predictions), for the tests and benchmarks."""
from dataclasses import replace

import numpy as np

from ..assigners import AnchorTargets, Assigner, AssignParams, AssignResult
from ..assigners.core import anchor_boxes_of, inside_anchors
from ..assigners.hambox import RAL_IOU
from ..boxes import box_area, encode, iou_matrix
from ..sampling import subsample_labels

__all__ = ["assign_reference", "mining_reference"]


# --------------------------------------------------------------------------------------------------------
# Reference implementation: slow and obvious (one dense IoU column per face over all anchors, HC(N) as an
# explicit greedy loop over sorted pairs). Used by the tests and the benchmarks to check the fast path.
# --------------------------------------------------------------------------------------------------------
def assign_reference(anchors, boxes, ignore, image_hw, params: AssignParams, hc_top_n: int = 0) -> AssignResult:
    abox = anchor_boxes_of(anchors)
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
    hard_overlaps = {}                               # hard face -> [(IoU, anchor)] of its anchors with IoU > 0
    for f in valid:                                  # faces in increasing index
        col = iou_matrix(abox, boxes[f])[:, 0]
        col[~inside] = 0.0
        max_iou = np.maximum(max_iou, col)
        best = face_best[f] = col.max() if N else 0.0
        # claims (a) IoU >= Th and, without HC, (b) every anchor reaching the face's best IoU (> 0)
        wants = col >= params.pos_iou
        if hc_top_n <= 0 and best > 0:
            wants |= col == best
        for a in np.flatnonzero(wants):
            if col[a] > claim_iou[a]:               # strict: an equal IoU keeps the earlier (lower) face
                claim_iou[a], claim_face[a] = col[a], f
        if best < params.pos_iou:
            hard_overlaps[f] = [(col[a], a) for a in np.flatnonzero(col > 0)]
    if hc_top_n > 0:
        # (c) HC(N), Sec. 4.4: greedy over every (hard face, anchor) pair whose anchor is not a threshold
        # positive, IoU descending, then lower anchor index, then lower face index; the face takes the anchor
        # while it holds fewer than N and the anchor is free.
        threshold_positive = claim_face >= 0
        pairs = [(o, a, f) for f, overlaps in hard_overlaps.items() for o, a in overlaps
                 if not threshold_positive[a]]
        pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
        count = {f: 0 for f in hard_overlaps}
        for _, a, f in pairs:
            if count[f] < hc_top_n and claim_face[a] < 0:
                claim_face[a] = f
                count[f] += 1
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
    hard_mask = np.array([f in hard_overlaps for f in range(F)], dtype=bool)
    return AssignResult(labels, gt_index, max_iou, face_best, hard_mask, matched)


# --------------------------------------------------------------------------------------------------------
# Reference: slow and obvious (dense IoU columns per face, the greedy as a literal loop, per-anchor loops).
# It shares only assign_reference (the HC / max-IoU rules) and subsample_labels with the code.
# --------------------------------------------------------------------------------------------------------
def _overlaps_ignored(anchor, boxes, ign, params: AssignParams) -> bool:
    """The ignored-face rule for one anchor: IoU >= Tl or IoF >= ignore_iof with a (non-degenerate) ignored face."""
    for g in range(len(boxes)):
        if ign[g] and (boxes[g, 2] - boxes[g, 0]) > 0 and (boxes[g, 3] - boxes[g, 1]) > 0:
            iou = iou_matrix(anchor[None], boxes[g:g + 1])[0, 0]
            iw = min(anchor[2], boxes[g, 2]) - max(anchor[0], boxes[g, 0])
            ih = min(anchor[3], boxes[g, 3]) - max(anchor[1], boxes[g, 1])
            iof = iw * ih / box_area(anchor[None])[0] if iw > 0 and ih > 0 else 0.0
            if iw > 0 and ih > 0 and (iou >= params.neg_iou or iof >= params.ignore_iof):
                return True
    return False


def mining_reference(anchors, boxes, ignore, image_hw, assigner: Assigner, pred_boxes=None, face_prob=None, *,
                     rng: np.random.Generator, iteration=None) -> AnchorTargets:
    """What ``assigner.targets(...)`` must return, for the four built-in strategies (read from ``assigner.name``
    and its settings, thresholds, minibatch and loss), both loss forms (``rpn.cls_loss``)."""
    params, s, cls_loss = assigner.params, assigner.settings, assigner.cls_loss
    batch_size, fg_fraction = assigner.sampling.batch_size, assigner.sampling.fg_fraction
    means, stds = assigner.means, assigner.stds
    abox = anchor_boxes_of(anchors)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    N, F = len(abox), len(boxes)
    ign = np.zeros(F, dtype=bool) if ignore is None else np.asarray(ignore).astype(bool).reshape(-1)
    valid = [f for f in range(F) if not ign[f] and (boxes[f, 2] - boxes[f, 0]) > 0 and (boxes[f, 3] - boxes[f, 1]) > 0]
    inside = inside_anchors(abox, image_hw, params.allowed_border)
    strategy = assigner.name
    step_params = replace(params, pos_iou=s.pos_iou) if strategy == "hambox" else params
    ref = assign_reference(anchors, boxes, ignore, image_hw, step_params,
                           hc_top_n=s.top_n if strategy == "hc" else 0)
    labels, gt_index = ref.labels.astype(np.int32).copy(), ref.gt_index.copy()
    compensated, protected = np.zeros(N, dtype=bool), np.zeros(N, dtype=bool)
    quality, clean, reweight, target = np.zeros(N), np.zeros(N), np.ones(N), np.zeros(N)
    cols = {f: np.where(inside, iou_matrix(abox, boxes[f])[:, 0], 0.0) for f in valid}
    if strategy == "hambox":
        for a in range(N):                       # step one: no best-anchor claims
            if labels[a] == 1 and ref.max_iou[a] < s.pos_iou:
                gt_index[a] = -1
                bad = _overlaps_ignored(abox[a], boxes, ign, params)
                labels[a] = 0 if ref.max_iou[a] < params.neg_iou and not bad else -1
        step = labels.copy()
        if iteration is None or iteration >= s.warmup:          # OAM + RAL after the warm-up
            M = {f: int(np.sum((labels == 1) & (gt_index == f))) for f in valid}
            reg = {f: np.where(inside, iou_matrix(pred_boxes, boxes[f])[:, 0], 0.0) for f in valid}
            pairs = [(reg[f][a], a, f) for f in valid for a in range(N)
                     if reg[f][a] > s.t and step[a] != 1 and M[f] < s.k]
            pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
            count = {f: 0 for f in valid}
            for iou, a, f in pairs:
                if count[f] < s.k - M[f] and not compensated[a]:
                    compensated[a], labels[a], gt_index[a], quality[a] = True, 1, f, iou
                    count[f] += 1
            for a in range(N):
                best = max([reg[f][a] for f in valid], default=0.0)
                if step[a] == 0 and not compensated[a] and best >= RAL_IOU:
                    protected[a], labels[a] = True, -1
        target[labels == 1] = 1.0
    elif strategy == "cleanliness":
        owner = {}
        for f in valid:
            col = cols[f]
            cand = sorted((a for a in range(N) if col[a] > 0), key=lambda a: (-col[a], a))[:s.top_n]
            for a in cand:
                if a not in owner or col[a] > cols[owner[a]][a]:       # equal IoU keeps the lower face
                    owner[a] = f
        if s.negatives == "all":                 # Alg. 1 line 6: every other inside anchor, but ignored faces
            labels = np.array([0 if inside[a] and not _overlaps_ignored(abox[a], boxes, ign, params) else -1
                               for a in range(N)], dtype=np.int32)
        else:
            labels = np.where(ref.labels == 0, 0, -1).astype(np.int32)
        gt_index = np.full(N, -1, dtype=np.int64)
        al = s.alpha
        rs = {}
        for a, f in owner.items():
            labels[a], gt_index[a] = 1, f
            loc = iou_matrix(pred_boxes[a], boxes[f])[0, 0]
            cls_c = min(max(float(face_prob[a]), 0.0), 1.0)
            clean[a] = target[a] = al * loc + (1 - al) * cls_c
            quality[a] = loc
            rs[a] = (al / (1 - min(loc, s.clamp)) + (1 - al) / (1 - min(cls_c, s.clamp))) ** s.gamma
        total = sum(rs.values())
        for a in rs:
            reweight[a] = rs[a] * len(rs) / total
    else:
        target[labels == 1] = 1.0
    # the loss (rfcn_face.assigners.base): the sampled softmax or the dense focal form
    n_com = int(compensated.sum())
    sample_from = np.where(compensated, -1, labels)
    if cls_loss == "softmax":
        sampled = subsample_labels(sample_from, batch_size, fg_fraction, rng)
        in_S = sampled >= 0
        z = z_psi = in_S.sum() + n_com
        in_box = [(sampled[a] == 1) or compensated[a] for a in range(N)]
        z_box = batch_size
    else:
        in_S = sample_from >= 0
        z = z_box = max((labels == 1).sum(), batch_size)       # the positives, never fewer than B
        z_psi = max(n_com, batch_size)
        in_box = [labels[a] == 1 for a in range(N)]
    weight = np.zeros(N)
    bbox_target, bbox_weight = np.zeros((N, 4)), np.zeros((N, 4))
    for a in range(N):
        rho = reweight[a] if labels[a] == 1 else 1.0
        if compensated[a]:
            weight[a] = quality[a] / max(z_psi, 1)                     # RAL: F_a / Z_psi
        elif in_S[a]:
            weight[a] = rho / max(z, 1)
        if in_box[a]:
            bbox_target[a] = encode(abox[a:a + 1], boxes[gt_index[a]:gt_index[a] + 1], means, stds)[0]
            bbox_weight[a] = (1.0 if compensated[a] else rho) * batch_size / max(z_box, 1)
    loss_labels = np.where(in_S | compensated, labels, -1).astype(np.int32)
    target[loss_labels < 0] = 0.0
    matched = np.array([int(np.sum((labels == 1) & (gt_index == f))) for f in range(F)], dtype=np.int64)
    return AnchorTargets(labels, gt_index, ref.max_iou, ref.face_best_iou, ref.hard, matched, loss_labels, target,
                         weight, bbox_target, bbox_weight, compensated, protected, quality, clean, reweight,
                         mean_over_labels=cls_loss == "softmax" and strategy in ("max_iou", "hc"))
