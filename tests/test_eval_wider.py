"""WIDER FACE evaluator: MATLAB numerics, hand-built protocol cases, fast path vs the slow reference."""
import math

import numpy as np
import pytest

from rfcn_face.evaluation.voc import voc_ap
from rfcn_face.evaluation.wider import (
    SETTINGS, WiderGroundTruth, _reverse_segment_cummin, evaluate_wider, matlab_overlaps, matlab_round,
    normalise_scores, thresholds)
from rfcn_face.testing.synthetic_eval import random_predictions, synthetic_ground_truth
from rfcn_face.testing.wider_reference import evaluate_wider_reference

NAN = float("nan")


# ------------------------------------------------------------------------------------------------ VOC AP
def _voc_ap_loop(rec, prec):
    """VOCap written as the MATLAB loop; ``max`` ignores a NaN operand like MATLAB's."""
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 2, -1, -1):
        a, b = mpre[i], mpre[i + 1]
        mpre[i] = b if math.isnan(a) else (a if math.isnan(b) else max(a, b))
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def test_voc_ap_hand_values():
    assert voc_ap([0.5, 1.0], [1.0, 0.5]) == 0.75
    # envelope: the 0.2 precision at recall 0.4 is lifted to 0.6; the repeated recall adds nothing
    assert voc_ap([0.2, 0.4, 0.4, 0.8], [0.5, 1.0, 0.2, 0.6]) == pytest.approx(0.64, abs=1e-15)
    # NaN precision (no proposal) is ignored by the envelope, as MATLAB's max does
    assert voc_ap([0.0, 0.5, 1.0], [NAN, 1.0, 0.5]) == 0.75
    assert voc_ap([], []) == 0.0
    assert math.isnan(voc_ap([NAN, 0.5], [1.0, 1.0]))      # NaN recall (no faces) poisons the sum, as in MATLAB


def test_voc_ap_matches_loop_on_random_curves():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        rec = np.sort(np.round(rng.random(n), 2))
        prec = np.round(rng.random(n), 2)
        prec[rng.random(n) < 0.2] = np.nan
        assert voc_ap(rec, prec) == pytest.approx(_voc_ap_loop(rec, prec), abs=1e-12)


# ------------------------------------------------------------------------------------------------ numerics
def test_matlab_round_half_away_saturate_nan():
    v = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, 4.4, -4.4, 2.0 ** 40, -2.0 ** 40, NAN, np.inf]
    expect = [1, 2, 3, -1, -2, -3, 0, 4, -4, 2 ** 31 - 1, -2 ** 31, 0, 2 ** 31 - 1]
    np.testing.assert_array_equal(matlab_round(v), expect)


def test_overlap_plus_one_and_int32_rounding():
    gt = np.array([[0, 0, 9, 9]], dtype=float)           # x2 = 9 -> 10 px wide with the +1
    # +1 convention: inter 5*10 = 50, union 100 -> exactly 0.5 (36/81 without the +1)
    assert matlab_overlaps(gt, [[0, 0, 4, 9]])[0, 0] == 0.5
    # x2 = 4.4 -> int32 4 in the intersection; union round(100 + 5.4*10) - 50 = 104
    assert matlab_overlaps(gt, [[0, 0, 4.4, 9]])[0, 0] == 50 / 104
    # x2 = 4.5 -> int32 5 (half away from zero): inter 60, union round(100 + 55) - 60 = 95
    assert matlab_overlaps(gt, [[0, 0, 4.5, 9]])[0, 0] == 60 / 95
    # union rounding half away: aarea 100 + barea 4.5*11... pick barea = 54.5 -> round(154.5) = 155
    assert matlab_overlaps(gt, [[0, 0, 4.45, 9]])[0, 0] == 50 / (155 - 50)
    # disjoint / touching: non-positive intersection width -> 0
    assert matlab_overlaps(gt, [[10, 0, 5, 5]])[0, 0] == 0.0
    assert matlab_overlaps(gt, [[9, 0, 5, 5]])[0, 0] == pytest.approx(6 / (100 + 36 - 6))


def test_overlap_matrix_matches_scalar_reference():
    from rfcn_face.testing.wider_reference import _ref_boxoverlap
    rng = np.random.default_rng(1)
    gt = np.concatenate([rng.integers(0, 60, (25, 2)), rng.integers(-2, 40, (25, 2))], axis=1).astype(float)
    pred = np.concatenate([rng.uniform(-5, 60, (40, 2)), rng.uniform(-1, 40, (40, 2))], axis=1)
    pred[::3] = np.round(pred[::3] * 2) / 2                  # many exact halves
    o = matlab_overlaps(gt, pred)
    gxyxy = np.concatenate([gt[:, :2], gt[:, :2] + gt[:, 2:]], axis=1)
    for h, p in enumerate(pred):
        ref = _ref_boxoverlap(gxyxy, (p[0], p[1], p[0] + p[2], p[1] + p[3]))
        np.testing.assert_array_equal(o[h], ref)


def _dense_best_reference(g, offsets, boxes, img, t):
    """Each prediction's best face by the whole IoU row (MATLAB max: first maximum), -1 below ``t``."""
    out = np.full(len(boxes), -1)
    for h, (b, i) in enumerate(zip(boxes, img)):
        o = matlab_overlaps(g[offsets[i]:offsets[i + 1]], b[None])[0]
        if len(o) and o[o.argmax()] >= t:
            out[h] = o.argmax()
    return out


def _random_boxes(rng, n, tiny):
    """x y w h with many tiny boxes (0-3 px, where the rounding decides) and exact halves."""
    xy = rng.uniform(-3, 60, (n, 2))
    wh = np.where(rng.random((n, 1)) < tiny, rng.uniform(0, 3, (n, 2)), rng.uniform(0, 30, (n, 2)))
    b = np.concatenate([xy, wh], axis=1)
    half = rng.random(n) < 0.5
    b[half] = np.round(b[half] * 2) / 2
    return b


@pytest.mark.parametrize("seed,t", [(0, 0.5), (1, 0.5), (2, 0.3), (3, 0.7), (4, 1.0), (5, 0.05)])
def test_best_faces_equals_dense_argmax(seed, t):
    """The candidate-pair matcher (band bound, chunks) == the dense per-image argmax on random crowded images,
    with faces near-copied by predictions so that IoUs fall on both sides of the threshold and ties occur."""
    from rfcn_face.evaluation.wider_match import best_faces
    rng = np.random.default_rng(seed)
    n_img = 30
    faces = [np.round(_random_boxes(rng, int(rng.integers(0, 40)), 0.3)) for _ in range(n_img)]
    faces[3] = np.zeros((1, 4))                                   # the dummy 0 0 0 0 row
    faces[4] = np.concatenate([faces[4], faces[4][:3]]) if len(faces[4]) else faces[4]   # duplicated faces: ties
    faces[5] = np.array([[1026, 474, -2, 23], [10, 10, 5, 5]], float)  # negative width: dense path for that image
    offsets = np.concatenate(([0], np.cumsum([len(f) for f in faces])))
    g = np.concatenate(faces)
    preds, img = [], []
    for i, f in enumerate(faces):
        k = int(rng.integers(0, 60))
        p = _random_boxes(rng, k, 0.3)
        near = rng.random(k) < 0.6
        if len(f) and near.any():
            src = f[rng.integers(0, len(f), near.sum())]
            p[near] = src + rng.normal(0, 0.6, (near.sum(), 4)) * np.maximum(src[:, [2, 3, 2, 3]], 1) * 0.2
            p[near, 2:] = np.abs(p[near, 2:])
            p[near] = np.where(rng.random((near.sum(), 1)) < 0.3, np.round(p[near] * 2) / 2, p[near])
        if i == 6 and k:
            p[0, 2] = np.nan                                      # a NaN box: dense path for that image
        preds.append(p)
        img.append(np.full(k, i))
    boxes, img = np.concatenate(preds), np.concatenate(img)
    got = best_faces(g, offsets, boxes, img, t)
    want = _dense_best_reference(g, offsets, boxes, img, t)
    np.testing.assert_array_equal(got, want)
    assert (want >= 0).sum() > 50 and (want < 0).sum() > 50


@pytest.mark.parametrize("t", [0.5, 0.3, 0.7, 1.0])
def test_band_bound_holds_for_every_pair_reaching_the_threshold(t):
    """The lemma the matcher relies on (wider_match docstring): a face whose MATLAB IoU with a prediction reaches
    ``t`` has its centre within ``Lp (k/2 - 1) + 1/4`` of the prediction's "+1" span, per axis (k = (1+t)/t), on
    random near pairs of small boxes (where rounding and the "+1" matter most)."""
    from rfcn_face.evaluation.wider_match import _pair_overlaps, pred_geometry
    rng = np.random.default_rng(int(t * 10))
    n = 400_000
    g = np.concatenate([rng.integers(0, 20, (n, 2)), rng.integers(0, 12, (n, 2))], axis=1).astype(float)
    p = np.concatenate([g[:, :2] + rng.uniform(-6, 6, (n, 2)), rng.uniform(0, 14, (n, 2))], axis=1)
    close = rng.random(n) < 0.3                                  # near copies: pairs at high thresholds too
    p[close] = g[close] + rng.uniform(-0.7, 0.7, (close.sum(), 4))
    p[:, 2:] = np.abs(p[:, 2:])
    half = rng.random(n) < 0.5
    p[half] = np.round(p[half] * 2) / 2
    corners, barea = pred_geometry(p)
    ok = _pair_overlaps(g, np.arange(n), corners, barea, np.arange(n)) >= t
    k = (1 + t) / t
    for ax in (0, 1):
        m = g[:, ax] + (g[:, ax + 2] + 1) / 2
        c1, c2 = corners[:, ax], corners[:, ax + 2]
        dist = np.maximum(np.maximum(c1 - m, m - (c2 + 1)), 0)
        assert ok.sum() > 1000 and np.all(dist[ok] <= (c2 - c1 + 1)[ok] * (k / 2 - 1) + 0.25)
        assert np.any(dist[ok] > (c2 - c1 + 1)[ok] * (k / 2 - 1) - 1)    # and it is not loose by a pixel


def test_best_faces_hand_cases():
    from rfcn_face.evaluation.wider_match import best_faces
    gt = np.array([[0, 0, 9, 9], [100, 0, 9, 9], [100, 0, 9, 9]], float)   # faces 1 and 2 identical: tie
    offsets = np.array([0, 3])
    preds = np.array([[0, 0, 4, 9],        # IoU exactly 0.5 with face 0 (+1 convention): matched
                      [0, 0, 4.4, 9],      # 50 / 104 < 0.5: not matched
                      [100, 0, 9, 9],      # IoU 1 with faces 1 and 2: the first one
                      [5, 0, 9, 9],        # 50 / 150 with face 0: not matched
                      [0, 0, 0, 0]])       # 1 px box inside face 0: 1 / 100
    np.testing.assert_array_equal(best_faces(gt, offsets, preds, np.zeros(5, int), 0.5), [0, -1, 1, -1, -1])
    np.testing.assert_array_equal(best_faces(gt, offsets, preds, np.zeros(5, int), 0.3), [0, 0, 1, 0, -1])


def test_normalise_scores_single_precision_and_degenerate():
    np.testing.assert_array_equal(normalise_scores(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    assert np.isnan(normalise_scores(np.array([0.7, 0.7]))).all()       # max == min: 0/0
    assert np.isnan(normalise_scores(np.array([5.0]))).all()
    # all zero: max starts at realmin('single') > 0, so every score normalises to 0 (not NaN)
    np.testing.assert_array_equal(normalise_scores(np.zeros(3)), [0.0, 0.0, 0.0])
    # single precision: 0.9989999999 becomes float32 0.99900001287..., which passes the 0.999 threshold
    n = normalise_scores(np.array([0.0, 1.0, 0.9989999999]))
    assert n[2] == float(np.float32(0.9989999999)) and n[2] >= thresholds()[0] > 0.9989999999


def test_thresholds():
    t = thresholds()
    assert len(t) == 1000 and t[0] == 0.999 and t[-1] == 0.0 and t[499] == 0.5


@pytest.mark.parametrize("thresh_num", [1000, 4, 7])
def test_first_threshold_equals_searchsorted(thresh_num):
    """The arithmetic threshold index == the plain search, on random scores and on every threshold and its
    float32 / float64 neighbours (where rounding could put the estimate one off)."""
    from rfcn_face.evaluation.wider import first_threshold
    rng = np.random.default_rng(thresh_num)
    thr = thresholds(thresh_num)
    near = np.concatenate([thr, np.nextafter(thr, 2), np.nextafter(thr, -1),
                           np.float32(thr).astype(float), np.nextafter(np.float32(thr), np.float32(2)).astype(float)])
    s = np.concatenate([rng.random(5000), np.float32(rng.random(5000)).astype(float), near,
                        [0.0, 1.0, -0.0, np.nan, -1e-300, 1e-300, np.nextafter(1.0, 2)]])
    want = thresh_num + 1 - np.searchsorted(thr[::-1], s, side="right")
    want[np.isnan(s)] = thresh_num + 1
    np.testing.assert_array_equal(first_threshold(s, thresh_num), want)


def test_reverse_segment_cummin_matches_loop():
    rng = np.random.default_rng(2)
    seg = np.sort(rng.integers(0, 30, 500))
    v = rng.integers(1, 1002, 500)
    out = _reverse_segment_cummin(v, seg, big=2004)
    for h in range(len(v)):
        same = np.flatnonzero((seg == seg[h]) & (np.arange(len(v)) >= h))
        assert out[h] == v[same].min()


# ------------------------------------------------------------------------------------------------ hand cases
def _gt(boxes_per_image, keep_per_image):
    n = len(boxes_per_image)
    keep = {s: [np.asarray(k, bool) for k in keep_per_image] for s in SETTINGS}
    return WiderGroundTruth(["0--E"] * n, [f"img{i}" for i in range(n)],
                            [np.asarray(b, float).reshape(-1, 4) for b in boxes_per_image], keep)


def _run(preds, gt, thresh_num=4):
    fast = evaluate_wider(preds, gt, thresh_num=thresh_num)
    ref = evaluate_wider_reference(preds, gt, thresh_num=thresh_num)
    for s in fast.ap:
        np.testing.assert_array_equal(fast.tp[s], ref.tp[s])
        np.testing.assert_array_equal(fast.proposals[s], ref.proposals[s])
        assert fast.ap[s] == ref.ap[s] or (math.isnan(fast.ap[s]) and math.isnan(ref.ap[s]))
    return fast


def test_ignored_face_drops_prediction_and_duplicates_are_fp():
    # A kept, B not kept. Thresholds (thresh_num=4): 0.75, 0.5, 0.25, 0
    gt = _gt([[[0, 0, 20, 20], [100, 0, 20, 20]]], [[True, False]])
    preds = [np.array([[100, 0, 20, 20, 1.0],     # best face B, not kept -> dropped (neither TP nor FP)
                       [0, 0, 20, 20, 0.6],       # A -> TP
                       [300, 300, 10, 10, 0.3],   # IoU 0 -> FP
                       [1, 1, 20, 20, 0.0]])]     # A again (IoU 0.82) -> FP (duplicate)
    r = _run(preds, gt)
    np.testing.assert_array_equal(r.tp["easy"], [0, 1, 1, 1])
    np.testing.assert_array_equal(r.proposals["easy"], [0, 1, 2, 3])
    assert math.isnan(r.precision["easy"][0])             # 0/0 where no proposal passes
    np.testing.assert_array_equal(r.precision["easy"][1:], [1.0, 0.5, 1 / 3])
    np.testing.assert_array_equal(r.recall["easy"], [0, 1, 1, 1])
    assert r.faces["easy"] == 1 and r.ap["easy"] == 1.0


def test_tie_goes_to_first_face():
    box = [0, 0, 10, 10]
    far = [200, 200, 10, 10, 0.0]
    # identical faces; the first is not kept: both predictions pick it and are dropped
    r = _run([np.array([box + [1.0], box + [0.6], far])], _gt([[box, box]], [[False, True]]))
    np.testing.assert_array_equal(r.tp["hard"], [0, 0, 0, 0])
    np.testing.assert_array_equal(r.proposals["hard"], [0, 0, 0, 1])
    assert r.ap["hard"] == 0.0
    # the first is kept: TP for the first prediction; the second ties to the same face again -> FP
    r = _run([np.array([box + [1.0], box + [0.6], far])], _gt([[box, box]], [[True, True]]))
    np.testing.assert_array_equal(r.tp["hard"], [1, 1, 1, 1])
    np.testing.assert_array_equal(r.proposals["hard"], [1, 2, 2, 3])
    assert r.ap["hard"] == 0.5                             # recall never exceeds 1/2


def test_iou_below_half_is_fp_and_plus_one_decides():
    gt = _gt([[[0, 0, 9, 9]]], [[True]])
    far = [60, 60, 5, 5, 0.0]                             # a second score, so that max != min
    r = _run([np.array([[0, 0, 4, 9, 1.0], far])], gt)    # IoU exactly 0.5 with the +1 -> TP
    np.testing.assert_array_equal(r.tp["easy"], [1, 1, 1, 1])
    r = _run([np.array([[0, 0, 4.4, 9, 1.0], [0, 0, 4.4, 9, 0.0]])], gt)   # 50/104 < 0.5 -> FP
    np.testing.assert_array_equal(r.tp["easy"], [0, 0, 0, 0])
    np.testing.assert_array_equal(r.proposals["easy"], [1, 1, 1, 2])


def test_sorting_negative_scores_and_single_precision():
    face = [0, 0, 20, 20]
    gt = _gt([[face]], [[True]])
    # file order: low score first. The official reader sorts by score, so the 0.9 box is the TP and the
    # 0.2 box the duplicate; at 0.75 only one proposal passes (file-order semantics would count two).
    preds = [np.array([face + [0.2], face + [0.9], face + [1.0 - 1e-9], face + [-0.1]])]
    r = _run(preds, gt)
    # scores >= 0 only: min 0.2 and max ~1 -> normalised 0, ~0.875, 1 (the -0.1 box is dropped entirely)
    np.testing.assert_array_equal(r.proposals["easy"], [2, 2, 2, 3])
    np.testing.assert_array_equal(r.tp["easy"], [1, 1, 1, 1])
    # float32 normalisation: 0.9989999999 passes the first of 1000 thresholds (0.999); in double it would not
    preds = [np.array([face + [0.9989999999], [50, 50, 5, 5, 1.0], [80, 80, 5, 5, 0.0]])]
    r = _run(preds, gt, thresh_num=1000)
    assert r.tp["easy"][0] == 1 and r.proposals["easy"][0] == 2


def test_images_without_faces_or_predictions():
    face = [0, 0, 20, 20]
    gt = _gt([[face], [], [face, [40, 0, 20, 20]]], [[True], [], [True, True]])
    preds = {("0--E", "img0"): np.array([face + [1.0]]),
             ("0--E", "img1"): np.array([[5, 5, 10, 10, 0.9], [9, 9, 9, 9, 0.8]]),   # no faces: never counted
             }                                                                       # img2: no file at all
    r = _run(preds, gt)
    np.testing.assert_array_equal(r.tp["medium"], [1, 1, 1, 1])
    np.testing.assert_array_equal(r.proposals["medium"], [1, 1, 1, 1])
    assert r.faces["medium"] == 3                          # the faces of img2 still count for recall
    np.testing.assert_array_equal(r.recall["medium"], [1 / 3] * 4)
    assert r.ap["medium"] == 1 / 3


def test_degenerate_scores():
    face = [0, 0, 20, 20]
    gt = _gt([[face]], [[True]])
    r = _run([np.array([face + [0.7], [50, 50, 5, 5, 0.7]])], gt)     # max == min: every score NaN
    assert np.isnan(r.precision["easy"]).all() and (r.recall["easy"] == 0).all() and r.ap["easy"] == 0.0
    r = _run([np.array([face + [0.0], [50, 50, 5, 5, 0.0]])], gt)     # all 0: they pass only at 0
    np.testing.assert_array_equal(r.tp["easy"], [0, 0, 0, 1])
    np.testing.assert_array_equal(r.proposals["easy"], [0, 0, 0, 2])
    r = _run([None], gt)                                                # empty submission
    assert r.ap["easy"] == 0.0 and r.num_predictions == 0


# ------------------------------------------------------------------------------------------------ random
@pytest.mark.parametrize("seed,decimals", [(0, None), (1, 1), (2, 0)])
def test_fast_equals_reference_on_synthetic(seed, decimals):
    rng = np.random.default_rng(seed)
    gt = synthetic_ground_truth(rng, num_images=40, max_faces=25)
    preds = random_predictions(gt, rng, mean_per_image=25, decimals=decimals, missing_fraction=0.1)
    fast = evaluate_wider(preds, gt)
    ref = evaluate_wider_reference(preds, gt)
    for s in SETTINGS:
        np.testing.assert_array_equal(fast.tp[s], ref.tp[s])
        np.testing.assert_array_equal(fast.proposals[s], ref.proposals[s])
        assert fast.faces[s] == ref.faces[s] == gt.count_faces(s)
        assert abs(fast.ap[s] - ref.ap[s]) <= 1e-12
        assert fast.tp[s][-1] > 0                          # matches happen


def test_fast_equals_reference_with_scores_outside_unit_interval():
    rng = np.random.default_rng(5)
    gt = synthetic_ground_truth(rng, num_images=20, max_faces=15)
    preds = random_predictions(gt, rng, mean_per_image=15)
    for k in preds:
        preds[k][:, 4] = preds[k][:, 4] * 40 - 8              # logits: negatives are dropped, max > 1
    fast = evaluate_wider(preds, gt)
    ref = evaluate_wider_reference(preds, gt)
    for s in SETTINGS:
        np.testing.assert_array_equal(fast.tp[s], ref.tp[s])
        np.testing.assert_array_equal(fast.proposals[s], ref.proposals[s])


@pytest.mark.parametrize("big", [np.inf, 1e39])
def test_fast_equals_reference_with_scores_beyond_single_precision(big):
    """Scores that are infinite in single precision normalise to NaN (inf / inf) and every other score to 0:
    the NaN ones still count wherever a later prediction of their image passes (the official loop), which the
    evaluator handles in score order."""
    rng = np.random.default_rng(6)
    gt = synthetic_ground_truth(rng, num_images=20, max_faces=15)
    preds = random_predictions(gt, rng, mean_per_image=15)
    for k in list(preds)[::3]:
        preds[k][::4, 4] = big
    fast, ref = evaluate_wider(preds, gt), evaluate_wider_reference(preds, gt)
    for s in SETTINGS:
        np.testing.assert_array_equal(fast.tp[s], ref.tp[s])
        np.testing.assert_array_equal(fast.proposals[s], ref.proposals[s])
        assert fast.proposals[s][-1] > 0


# ------------------------------------------------------------------------------------------------ synthfaces
def test_cli_wider_on_embedded_synthetic_set(tmp_path, capsys):
    """``evaluate wider`` on the ground truth of the embedded synthetic set (rfcn_face.datasets.synthfaces):
    the ground truth itself as the submission gives AP 1 in every setting (every kept face matched by its
    own box, unkept ones dropped); a jittered submission gives the reference's APs."""
    import json
    from rfcn_face.__main__ import main
    from rfcn_face.datasets.synthfaces import generate_synthfaces
    from rfcn_face.evaluation.submission import write_submission
    root = generate_synthfaces(tmp_path / "synth", num_train=0, num_val=12)
    gt = WiderGroundTruth.load(root / "ground_truth")
    assert len(gt) == 12 and gt.count_faces("hard") > gt.count_faces("easy") > 0
    rng = np.random.default_rng(0)
    perfect = {k: np.concatenate([b[:, :2], b[:, :2] + b[:, 2:], rng.random((len(b), 1))], axis=1)
               for k, b in zip(gt.keys(), gt.boxes)}
    write_submission(perfect, tmp_path / "perfect", gt.keys())
    assert main(["evaluate", "wider", "--pred", str(tmp_path / "perfect"), "--gt", str(root / "ground_truth"),
                 "--json", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["hard"] == 1.0
    assert "Hard   Val AP: 1.0000" in capsys.readouterr().out
    preds = random_predictions(gt, rng, mean_per_image=30, decimals=1, missing_fraction=0.0)
    write_submission({k: np.concatenate([p[:, :2], p[:, :2] + p[:, 2:4], p[:, 4:]], axis=1)
                      for k, p in preds.items()}, tmp_path / "noisy", gt.keys())
    assert main(["evaluate", "wider", "--pred", str(tmp_path / "noisy"), "--gt", str(root / "ground_truth"),
                 "--json", str(tmp_path / "n.json")]) == 0
    from rfcn_face.evaluation.submission import read_submission
    ref = evaluate_wider_reference(read_submission(tmp_path / "noisy", gt.keys())[0], gt)
    js = json.loads((tmp_path / "n.json").read_text())
    assert [js[s] for s in SETTINGS] == [ref.ap[s] for s in SETTINGS]
    assert 0 < js["hard"] < 1


def test_result_json_round_trip_is_exact():
    """What a test run writes (``wider_eval.json``) reads back as the same result (demo / reproduce read it)."""
    import json

    from rfcn_face.evaluation.wider import WiderResult
    rng = np.random.default_rng(3)
    gt = synthetic_ground_truth(rng, num_images=20)
    r = evaluate_wider(random_predictions(gt, rng), gt)
    back = WiderResult.from_json(json.loads(json.dumps(r.to_json())))
    assert back.ap == r.ap and back.faces == r.faces and back.num_predictions == r.num_predictions
    np.testing.assert_array_equal(back.thresholds, r.thresholds)
    for s in r.ap:
        for got, want in ((back.precision, r.precision), (back.recall, r.recall), (back.tp, r.tp),
                          (back.proposals, r.proposals)):
            np.testing.assert_array_equal(got[s], want[s])     # NaN precision (no proposal) included


@pytest.mark.parametrize("chunk,pairs", [(1 << 14, 1 << 19), (7, 40)])
def test_matcher_and_evaluation_on_empty_all_ignored_and_huge_images(chunk, pairs, monkeypatch):
    """The banded matcher in chunks (also tiny chunks and pair budgets, so that crowded chunks split) == the dense
    argmax, and evaluate_wider == the per-prediction reference, on images without faces but with predictions,
    images whose faces no setting keeps, and huge images (coordinates beyond 2^16: beyond the global small-box
    test, inside the band bound's domain) beside ordinary ones."""
    from rfcn_face.evaluation import wider_match as WM
    from rfcn_face.evaluation.wider import flat_predictions
    monkeypatch.setattr(WM, "_CHUNK", chunk)
    monkeypatch.setattr(WM, "_PAIRS", pairs)
    rng = np.random.default_rng(21)
    gt = synthetic_ground_truth(rng, num_images=24, max_faces=25)
    boxes = [b.copy() for b in gt.boxes]
    keep = {s: [m.copy() for m in gt.keep[s]] for s in SETTINGS}
    boxes[2] = np.zeros((0, 4))                                          # no face at all
    for s in SETTINGS:
        keep[s][2] = np.zeros(0, bool)
        keep[s][7] = np.zeros(len(boxes[7]), bool)                       # every face ignored
    for i, scale in ((9, 2.0 ** 7), (10, 2.0 ** 6)):                     # huge images: x y up to ~2^17
        boxes[i] = np.round(boxes[i] * scale)
    gt2 = WiderGroundTruth(gt.events, gt.names, boxes, keep)
    preds = random_predictions(gt2, rng, mean_per_image=40, decimals=1, missing_fraction=0.0)
    k2 = gt2.keys()[2]
    preds[k2] = np.c_[rng.uniform(0, 300, (12, 2)), rng.uniform(5, 50, (12, 2)), rng.random(12)]
    assert len(gt2.boxes[7]) and max(b.max() for b in gt2.boxes[9:11] if len(b)) > 2.0 ** 16
    rows, img = flat_predictions(preds, gt2)
    odd = WM._odd_images(gt2.flat_boxes, gt2.face_offsets, rows[:, :4], img, len(gt2))
    assert not odd[9] and not odd[10]                                    # the band path, not the dense fallback
    got = WM.best_faces(gt2.flat_boxes, gt2.face_offsets, rows[:, :4], img, 0.5)
    want = _dense_best_reference(gt2.flat_boxes, gt2.face_offsets, rows[:, :4], img, 0.5)
    np.testing.assert_array_equal(got, want)
    assert (want[np.isin(img, [9, 10])] >= 0).sum() > 10               # the huge images do match
    fast, ref = evaluate_wider(preds, gt2), evaluate_wider_reference(preds, gt2)
    for s in SETTINGS:
        np.testing.assert_array_equal(fast.tp[s], ref.tp[s])
        np.testing.assert_array_equal(fast.proposals[s], ref.proposals[s])
        assert fast.ap[s] == ref.ap[s]
