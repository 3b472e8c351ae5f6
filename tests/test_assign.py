"""Anchor assignment (rfcn_face.assign): fast lattice path vs the slow reference, and hand-built cases."""
import zlib

import numpy as np
import pytest

from rfcn_face.anchors import AnchorSet
from rfcn_face.assign import (AnchorGrid, AssignParams, STRATEGIES, anchor_targets, assign_hard_face_compensation,
                              assign_max_iou, assign_reference, get_strategy, overlap_pairs)
from rfcn_face.boxes import decode, iou_matrix
from rfcn_face.config import Config, config_from_dict

FIELDS_EXACT = ("labels", "gt_index", "face_best_iou", "hard", "matched")


def random_faces(rng, n, h, w, lo=2.0, hi=120.0, ignore_frac=0.2, spill=0.0):
    """Faces of log-uniform size in [lo, hi], centres anywhere (spilling over the border by ``spill``)."""
    size = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    aspect = rng.uniform(0.7, 1.5, n)
    fw, fh = size, size * aspect
    cx = rng.uniform(-spill, w + spill, n)
    cy = rng.uniform(-spill, h + spill, n)
    boxes = np.stack([cx - fw / 2, cy - fh / 2, cx + fw / 2, cy + fh / 2], axis=1)
    if rng.random() < 0.5:   # integer-aligned boxes make exact IoU ties, which the tie rules must handle
        boxes = np.round(boxes)
    return boxes, rng.random(n) < ignore_frac


def check_same(fast, ref, neg_iou):
    for name in FIELDS_EXACT:
        np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=name)
    # max_iou is exact where it matters (>= Tl); below Tl the lattice path may skip pairs
    hi = ref.max_iou >= neg_iou
    np.testing.assert_array_equal(fast.max_iou[hi], ref.max_iou[hi])
    assert np.all(fast.max_iou[~hi] < neg_iou)
    assert np.all(fast.max_iou <= ref.max_iou)


SCENARIOS = {
    "mixed": dict(n=25, lo=2, hi=150),
    "no_faces": dict(n=0),
    "all_ignored": dict(n=12, ignore_frac=1.0),
    "larger_than_image": dict(n=4, lo=250, hi=600, spill=60),
    "tiny_2_8px": dict(n=40, lo=2, hi=8),
    "hundreds": dict(n=300, lo=3, hi=40),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("aset,border,hc", [
    (AnchorSet(8, shifts="16x3"), 0, 0),
    (AnchorSet(8, shifts="16x3"), -1, 5),
    (AnchorSet(16), 16, 3),
    (AnchorSet(8, scales=(16, 32, 64), ratios=(1.0, 1.5), shifts="16x3&32x1"), 0, 2),
])
def test_fast_matches_reference(scenario, aset, border, hc):
    rng = np.random.default_rng(zlib.crc32(f"{scenario}{aset}{border}{hc}".encode()))
    h, w = 200, 232
    opts = dict(SCENARIOS[scenario])
    boxes, ignore = random_faces(rng, opts.pop("n"), h, w, **opts)
    grid = AnchorGrid.for_image(aset, h, w)
    params = AssignParams(pos_iou=0.5, neg_iou=0.3, allowed_border=border, hc_top_n=hc)
    ref = assign_reference(grid, boxes, ignore, (h, w), params, hc_top_n=hc)
    check_same(get_strategy(params.strategy)(grid, boxes, ignore, (h, w), params), ref, 0.3)
    # the plain-array path (no lattice) gives the same answer
    check_same(get_strategy(params.strategy)(grid.boxes, boxes, ignore, (h, w), params), ref, 0.3)


def test_scenarios_exercise_their_cases():
    """The random scenarios really contain what their names say (so the comparisons above mean something)."""
    rng = np.random.default_rng(3)
    grid = AnchorGrid.for_image(AnchorSet(8, shifts="16x3"), 200, 232)
    p = AssignParams(hc_top_n=5)
    boxes, ign = random_faces(rng, 300, 200, 232, lo=3, hi=40)
    r = assign_hard_face_compensation(grid, boxes, ign, (200, 232), p)
    assert r.hard.sum() > 10 and (r.labels == 1).sum() > 300 and (r.labels == -1).sum() > 0
    boxes, ign = random_faces(rng, 40, 200, 232, lo=2, hi=8)
    assert np.all(assign_max_iou(grid, boxes, ign, (200, 232), p).hard[~ign])


def test_overlap_pairs_lattice_equals_dense():
    rng = np.random.default_rng(0)
    aset = AnchorSet(8, shifts="16x3")
    grid = AnchorGrid.for_image(aset, 120, 100)
    boxes, _ = random_faces(rng, 30, 120, 100, lo=2, hi=300, spill=50)
    ai, fi, iou = overlap_pairs(grid, boxes)
    dense = iou_matrix(grid.boxes, boxes)
    da, df = np.nonzero(dense > 0)
    got = sorted(zip(fi.tolist(), ai.tolist()))
    assert got == sorted(zip(df.tolist(), da.tolist()))
    np.testing.assert_array_equal(iou, dense[ai, fi])


# ---------------------------------------------------------------------------- hand-built, literal labels
# Four 16x16 anchors; image 100x100, no border rule.
ANCHORS = np.array([[0, 0, 16, 16], [4, 0, 20, 16], [8, 0, 24, 16], [50, 50, 66, 66]], dtype=float)
F0 = [6, 4, 14, 12]     # IoU 0.25, 0.25, 48/272, 0   -> hard face, best anchors a0 and a1 (tie)
F1 = [10, 4, 18, 12]    # IoU 48/272, 0.25, 0.25, 0   -> hard face, best anchors a1 and a2 (tie)
P = AssignParams(pos_iou=0.5, neg_iou=0.3, allowed_border=-1)


def _assign(fn, faces, ignore=None, hc=0, anchors=ANCHORS, params=P):
    params = AssignParams(params.pos_iou, params.neg_iou, params.allowed_border, params.ignore_iof, hc)
    out = fn(anchors, np.array(faces, dtype=float).reshape(-1, 4), ignore, (100, 100), params)
    ref = assign_reference(anchors, np.array(faces, dtype=float).reshape(-1, 4), ignore, (100, 100), params,
                           hc_top_n=hc if fn is assign_hard_face_compensation else 0)
    check_same(out, ref, params.neg_iou)
    return out


def test_best_anchor_rule_keeps_all_ties():
    r = _assign(assign_max_iou, [F0])
    assert r.labels.tolist() == [1, 1, 0, 0]
    assert r.gt_index.tolist() == [0, 0, -1, -1]
    assert r.matched.tolist() == [2] and r.hard.tolist() == [True]
    np.testing.assert_allclose(r.face_best_iou, [0.25])


@pytest.mark.parametrize("n,labels,matched", [(1, [1, 1, 0, 0], [2]), (2, [1, 1, 0, 0], [2]),
                                              (3, [1, 1, 1, 0], [3]), (10, [1, 1, 1, 0], [3])])
def test_hc_top_n_single_face(n, labels, matched):
    r = _assign(assign_hard_face_compensation, [F0], hc=n)
    assert r.labels.tolist() == labels and r.matched.tolist() == matched


def test_hc_conflict_goes_to_highest_iou_then_lowest_face():
    # max-IoU: a1 is best for both faces with IoU 0.25 each -> tie -> face 0
    r = _assign(assign_max_iou, [F0, F1])
    assert r.labels.tolist() == [1, 1, 1, 0]
    assert r.gt_index.tolist() == [0, 0, 1, -1]
    assert r.matched.tolist() == [2, 1]
    # HC(3): both faces want a0, a1, a2. a0: 0.25 (F0) > 0.18 (F1) -> F0; a2: 0.25 (F1) > 0.18 (F0) -> F1;
    # a1: 0.25 each -> F0. Face order swapped: a1 goes to the new face 0 (old F1).
    r = _assign(assign_hard_face_compensation, [F0, F1], hc=3)
    assert r.gt_index.tolist() == [0, 0, 1, -1] and r.matched.tolist() == [2, 1]
    r = _assign(assign_hard_face_compensation, [F1, F0], hc=3)
    assert r.gt_index.tolist() == [1, 0, 0, -1] and r.matched.tolist() == [2, 1]


def test_hc_does_not_touch_easy_faces():
    easy = [0, 0, 16, 16]                       # IoU 1 with a0, 0.6 with a1, 1/3 with a2
    r0 = _assign(assign_max_iou, [easy])
    r5 = _assign(assign_hard_face_compensation, [easy], hc=5)
    assert r0.labels.tolist() == r5.labels.tolist() == [1, 1, -1, 0]
    assert r5.hard.tolist() == [False] and r5.matched.tolist() == [2]


def test_threshold_claim_beats_hard_face_with_lower_iou():
    # face E equals a2 (IoUs 1/3, 0.6, 1 with a0, a1, a2); hard face F0 wants a0 and a1 (0.25 each).
    # a1: E claims it at 0.6 >= Th and beats F0's 0.25; a0: E does not claim it (1/3 < Th) -> F0.
    easy_on_a2 = [8, 0, 24, 16]
    r = _assign(assign_hard_face_compensation, [F0, easy_on_a2], hc=2)
    assert r.labels.tolist() == [1, 1, 1, 0]
    assert r.gt_index.tolist() == [0, 1, 1, -1]
    assert r.matched.tolist() == [1, 2]


def test_ignored_faces_make_no_positive_and_ignore_overlapping_anchors():
    # ignored face equal to a3 -> a3 would be a positive, but is ignored instead
    r = _assign(assign_max_iou, [F0, [50, 50, 66, 66]], ignore=[False, True])
    assert r.labels.tolist() == [1, 1, 0, -1] and r.matched.tolist() == [2, 0]
    # IoF rule: ignored box covering exactly half of a3 (IoF 0.5, IoU 0.5) -> ignored; a quarter -> negative
    r = _assign(assign_max_iou, [[58, 50, 66, 66]], ignore=[True])
    assert r.labels.tolist() == [0, 0, 0, -1]
    r = _assign(assign_max_iou, [[58, 58, 200, 200]], ignore=[True])   # IoF 0.25, IoU tiny
    assert r.labels.tolist() == [0, 0, 0, 0]
    # a big ignore region (IoU small, IoF 1) ignores everything inside it
    r = _assign(assign_max_iou, [[-10, -10, 30, 30]], ignore=[True])
    assert r.labels.tolist() == [-1, -1, -1, 0]
    # a positive is never downgraded by an ignored face
    r = _assign(assign_max_iou, [[0, 0, 16, 16], [0, 0, 16, 16]], ignore=[False, True])
    assert r.labels.tolist() == [1, 1, -1, 0]


def test_all_faces_ignored_and_no_faces():
    # tiny ignored faces (IoF 0.25, IoU <= 0.25 with the 16-px anchors) do not ignore the anchors
    r = _assign(assign_hard_face_compensation, [F0, F1], ignore=[True, True], hc=3)
    assert r.labels.tolist() == [0, 0, 0, 0] and r.matched.tolist() == [0, 0]
    assert r.hard.tolist() == [False, False]
    r = _assign(assign_hard_face_compensation, np.zeros((0, 4)), hc=3)
    assert r.labels.tolist() == [0, 0, 0, 0] and r.matched.shape == (0,)


def test_border_rule():
    grid = AnchorGrid.for_image(AnchorSet(8, scales=(16,)), 32, 32)   # 4x4 locations, anchors 16 px
    face = np.array([[0.0, 0.0, 12.0, 12.0]])
    r = assign_max_iou(grid, face, None, (32, 32), AssignParams(allowed_border=0))
    # location (0, 0) anchor spans [-4, 12): it crosses the border -> -1 under allowed_border=0
    assert r.labels[0] == -1 and r.labels.reshape(4, 4)[1:3, 1:3].min() >= 0
    assert np.all(r.labels.reshape(4, 4)[0, :] == -1) and np.all(r.labels.reshape(4, 4)[:, 3] == -1)
    assert r.gt_index[5] == 0                       # best inside anchor [4, 4, 20, 20]
    r = assign_max_iou(grid, face, None, (32, 32), AssignParams(allowed_border=4))
    assert r.labels[0] == 1 and r.labels[15] == 0       # [20, 20, 36, 36] is inside with a 4-px border
    r = assign_max_iou(grid, face, None, (32, 32), AssignParams(allowed_border=-1))
    assert r.labels[0] == 1


def test_degenerate_face_matches_nothing():
    r = _assign(assign_max_iou, [[5, 5, 5, 9]])
    assert r.labels.tolist() == [0, 0, 0, 0] and r.matched.tolist() == [0]


def test_strategies_share_a_signature_and_config():
    assert set(STRATEGIES) == {"max_iou", "hc"}
    with pytest.raises(ValueError, match="unknown anchor assignment strategy"):
        get_strategy("hambox")
    p = AssignParams.from_config(config_from_dict({"train": {"hard_face_compensation": 5}}))
    assert (p.pos_iou, p.neg_iou, p.hc_top_n, p.strategy) == (0.5, 0.3, 5, "hc")   # Sec. 5.1: Th = 0.5
    assert AssignParams.from_config(Config()).strategy == "max_iou"


def test_anchor_targets_sampling_and_box_targets():
    rng = np.random.default_rng(7)
    h, w = 256, 256
    grid = AnchorGrid.for_image(AnchorSet(8, shifts="16x3"), h, w)
    boxes, ignore = random_faces(rng, 80, h, w, lo=4, hi=60, ignore_frac=0.1)
    p = AssignParams(hc_top_n=3)
    lab, tgt, wgt, res = anchor_targets(grid, boxes, ignore, (h, w), p, batch_size=256, fg_fraction=0.5,
                                        rng=np.random.default_rng(1))
    assert (res.labels == 1).sum() > 128                          # enough positives to be subsampled
    assert (lab == 1).sum() == 128 and (lab == 0).sum() == 128
    assert np.all(res.labels[lab == 1] == 1) and np.all(res.labels[lab == 0] == 0)
    pos = np.flatnonzero(lab == 1)
    np.testing.assert_allclose(decode(grid.boxes[pos], tgt[pos]), boxes[res.gt_index[pos]], atol=1e-9)
    assert np.all(wgt[pos] == 1) and np.all(wgt[lab != 1] == 0) and np.all(tgt[lab != 1] == 0)
    again = anchor_targets(grid, boxes, ignore, (h, w), p, batch_size=256, fg_fraction=0.5,
                           rng=np.random.default_rng(1))
    np.testing.assert_array_equal(again[0], lab)


def test_matched_counts_grow_with_anchor_density():
    """The per-face statistic of HAMBox Fig. 1(a) responds to the anchor layout: halving the stride (Sec. 4.1)
    matches more anchors per face."""
    rng = np.random.default_rng(5)
    boxes, _ = random_faces(rng, 60, 400, 400, lo=30, hi=90, ignore_frac=0)
    means = []
    for stride in (16, 8):     # the same faces, denser anchors -> more matches per face
        grid = AnchorGrid.for_image(AnchorSet(stride, scales=(64,)), 400, 400)
        means.append(assign_max_iou(grid, boxes, None, (400, 400), AssignParams(allowed_border=-1)).matched.mean())
    assert means[1] > 2 * means[0]
