"""Proposals over our anchor set and R-FCN proposal targets (rfcn_face.proposals)."""
import math

import numpy as np
import pytest

from rfcn_face.anchors import AnchorSet
from rfcn_face.proposals import proposal_targets
from rfcn_face.testing.proposal_reference import generate_proposals, mx_box_nms, pad_proposals
from rfcn_face.boxes import nms
from rfcn_face.testing.box_reference import decode_one


# ------------------------------------------------------------------------------------------- references
def iou_one(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def proposals_reference(anchors, scores, deltas, hw, pre, post, thresh, min_size, means, stds):
    h, w = hw
    cands = []
    for i in range(len(anchors)):
        b = decode_one(anchors[i], deltas[i], means, stds)
        b = [min(max(b[0], 0), w), min(max(b[1], 0), h), min(max(b[2], 0), w), min(max(b[3], 0), h)]
        if b[2] - b[0] >= min_size and b[3] - b[1] >= min_size and b[2] > b[0] and b[3] > b[1]:
            cands.append((-scores[i], i, b))
    cands.sort(key=lambda c: (c[0], c[1]))
    cands = cands[:pre] if pre > 0 else cands
    kept = []
    for c in cands:
        if all(iou_one(c[2], k[2]) <= thresh for k in kept):
            kept.append(c)
        if len(kept) == post:
            break
    return np.array([k[2] for k in kept]).reshape(-1, 4), np.array([k[1] for k in kept], dtype=np.int64)


def targets_reference(rois, gt, ignore, fg, bg_hi, bg_lo, iof_thr):
    all_rois = list(rois) + list(gt)
    labels, assigned = [], []
    for r in all_rois:
        best, arg = 0.0, -1
        for j, g in enumerate(gt):
            if ignore[j] or (g[2] - g[0]) * (g[3] - g[1]) <= 0:
                continue
            o = iou_one(r, g)
            if o > best:
                best, arg = o, j
        lab = 1 if best >= fg else (0 if bg_lo <= best < bg_hi else -1)
        if lab == 0:
            for j, g in enumerate(gt):
                if not ignore[j] or (g[2] - g[0]) * (g[3] - g[1]) <= 0:
                    continue
                inter = max(0, min(r[2], g[2]) - max(r[0], g[0])) * max(0, min(r[3], g[3]) - max(r[1], g[1]))
                area = (r[2] - r[0]) * (r[3] - r[1])
                if iou_one(r, g) >= bg_hi or (area > 0 and inter / area >= iof_thr):
                    lab = -1
        labels.append(lab)
        assigned.append(arg)
    for j in range(len(gt)):   # appended gt rows of ignored / degenerate faces
        g = gt[j]
        if ignore[j] or (g[2] - g[0]) * (g[3] - g[1]) <= 0:
            labels[len(rois) + j] = -1
    return np.array(labels), np.array(assigned)


# ------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("seed", range(4))
def test_generate_proposals_matches_reference(seed):
    rng = np.random.default_rng(seed)
    aset = AnchorSet(8, scales=(16, 32, 64), shifts="16x3")
    H, W = 6, 7
    anchors = aset.tile(H, W)
    N = len(anchors)
    scores = np.round(rng.random(N), 2)                   # ties on purpose
    deltas = rng.normal(scale=0.3, size=(N, 4))
    hw = (44.0, 53.0)
    kw = dict(pre_nms_top_n=int(rng.choice([0, 50, 200])), post_nms_top_n=int(rng.choice([10, 40])),
              nms_thresh=float(rng.choice([0.3, 0.7])), min_size=float(rng.choice([0, 4, 12])),
              means=(0.01, -0.02, 0.0, 0.1), stds=(0.1, 0.1, 0.2, 0.2))
    boxes, sc, idx = generate_proposals(anchors, scores, deltas, hw, **kw)
    ref_boxes, ref_idx = proposals_reference(anchors, scores, deltas, hw, kw["pre_nms_top_n"], kw["post_nms_top_n"],
                                             kw["nms_thresh"], kw["min_size"], kw["means"], kw["stds"])
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(boxes, ref_boxes, atol=1e-9)
    np.testing.assert_array_equal(sc, scores[idx])


def test_shifted_anchor_decodes_from_its_own_box():
    """Zero deltas return the anchor itself: a shifted anchor's proposal is the shifted box (Fig. 6)."""
    aset = AnchorSet(8, scales=(32,), shifts="16x3")
    anchors = aset.tile(4, 4)                              # 4 anchors per location: 32, then 16 right/down/diag
    scores = np.zeros(len(anchors))
    target = (1 * 4 + 2) * 4 + 3                           # location (x=2, y=1), the down-right 16-anchor
    scores[target] = 1.0
    boxes, _, idx = generate_proposals(anchors, scores, np.zeros((len(anchors), 4)), (32, 32),
                                       pre_nms_top_n=0, post_nms_top_n=1, nms_thresh=0.7)
    assert idx.tolist() == [target]
    np.testing.assert_allclose(boxes[0], [16 + 4 + 4 - 8, 8 + 4 + 4 - 8, 16 + 4 + 4 + 8, 8 + 4 + 4 + 8])


def test_mxnet_box_nms_agrees_with_numpy_nms():
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 200, (400, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (400, 2))], axis=1)
    scores = rng.random(400)
    order = np.argsort(-scores, kind="stable")
    for thresh in (0.3, 0.7):
        np.testing.assert_array_equal(order[mx_box_nms(boxes[order], scores[order], thresh, topk=400)],
                                      order[nms(boxes[order], scores[order], thresh)])
    anchors = np.concatenate([xy, xy + 20], axis=1)
    d = rng.normal(scale=0.2, size=(400, 4))
    kw = dict(pre_nms_top_n=300, post_nms_top_n=50, nms_thresh=0.7, min_size=2)
    np.testing.assert_array_equal(generate_proposals(anchors, scores, d, (250, 250), **kw)[2],
                                  generate_proposals(anchors, scores, d, (250, 250), nms_impl="mxnet", **kw)[2])


def test_pad_proposals():
    b, s = pad_proposals(np.array([[0, 0, 1, 1], [2, 2, 3, 3.0]]), np.array([0.9, 0.8]), 5, (10, 10))
    assert b[:, 0].tolist() == [0, 2, 0, 2, 0] and s.tolist() == [0.9, 0.8, 0.9, 0.8, 0.9]
    b, s = pad_proposals(np.zeros((0, 4)), np.zeros(0), 2, (10, 20))
    assert b.tolist() == [[0, 0, 20, 10]] * 2 and s.tolist() == [0, 0]


@pytest.mark.parametrize("case", ["mixed", "no_faces", "all_ignored", "huge", "tiny", "hundreds"])
def test_proposal_targets_match_reference(case):
    rng = np.random.default_rng(len(case))
    n = {"no_faces": 0, "hundreds": 200, "tiny": 30}.get(case, 15)
    lo, hi = {"tiny": (2, 8), "huge": (300, 600)}.get(case, (4, 100))
    size = rng.uniform(lo, hi, (n, 2))
    xy = rng.uniform(-20, 200, (n, 2))
    gt = np.concatenate([xy, xy + size], axis=1)
    ignore = rng.random(n) < (1.0 if case == "all_ignored" else 0.2)
    # RoIs: jittered copies of the faces plus random boxes (and a degenerate one)
    jit = gt[rng.integers(0, max(n, 1), 60) % max(n, 1)] + rng.normal(scale=3, size=(60, 4)) if n else np.zeros((0, 4))
    xy = rng.uniform(0, 200, (80, 2))
    rand = np.concatenate([xy, xy + rng.uniform(2, 80, (80, 2))], axis=1)
    rois = np.concatenate([jit, rand, [[5, 5, 5, 9]]])
    rois[:, 2:] = np.maximum(rois[:, 2:], rois[:, :2])
    means, stds = (0.0, 0.0, 0.0, 0.0), (0.1, 0.1, 0.2, 0.2)
    all_rois, labels, targets, weights = proposal_targets(rois, gt, ignore, fg_iou=0.5, bg_iou_hi=0.5, bg_iou_lo=0.1,
                                                          ignore_iof=0.5, means=means, stds=stds)
    ref_labels, ref_arg = targets_reference(rois, gt, ignore, 0.5, 0.5, 0.1, 0.5)
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(all_rois, np.concatenate([rois, gt]))
    fg = np.flatnonzero(labels == 1)
    for i in fg:   # box targets: the encoded max-IoU face, weight 1
        a, g = all_rois[i], gt[ref_arg[i]]
        aw, ah, gw, gh = a[2] - a[0], a[3] - a[1], g[2] - g[0], g[3] - g[1]
        t = [((g[0] + gw / 2) - (a[0] + aw / 2)) / aw / 0.1, ((g[1] + gh / 2) - (a[1] + ah / 2)) / ah / 0.1,
             math.log(gw / aw) / 0.2, math.log(gh / ah) / 0.2]
        np.testing.assert_allclose(targets[i], t, atol=1e-9)
    assert np.all(weights[fg] == 1) and np.all(weights[labels != 1] == 0)
    if case == "mixed":
        assert len(fg) > 5 and (labels == 0).sum() > 5


def test_proposal_targets_hand_built():
    gt = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [80, 80, 90, 90.0]])
    ignore = np.array([False, True, False])
    rois = np.array([[0, 0, 10, 12],      # IoU 10/12 with face 0 -> 1
                     [5, 0, 15, 10],      # IoU 1/3 -> background
                     [50, 50, 60, 62],    # near the ignored face (IoU 0.83) -> -1
                     [52, 52, 54, 54],    # inside the ignored face (IoF 1) -> -1
                     [100, 100, 120, 120]])  # nothing -> background
    _, labels, targets, w = proposal_targets(rois, gt, ignore, fg_iou=0.5, bg_iou_hi=0.5, bg_iou_lo=0.0,
                                             means=(0, 0, 0, 0), stds=(1, 1, 1, 1))
    assert labels.tolist() == [1, 0, -1, -1, 0, 1, -1, 1]
    np.testing.assert_allclose(targets[0], [0, -1 / 12, 0, math.log(10 / 12)], atol=1e-12)
    assert w.sum() == 12
    # random minibatch: at most round(0.25 * 4) = 1 positive, the rest negatives, others -1
    _, lab, _, w2 = proposal_targets(rois, gt, ignore, batch_rois=4, fg_fraction=0.25, rng=np.random.default_rng(0))
    assert (lab == 1).sum() == 1 and (lab == 0).sum() == 2 and w2.sum() == 4
