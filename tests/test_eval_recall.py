"""Recall per face scale: the vectorised function against a per-face loop, and literal cases."""
import math

import numpy as np
import pytest

from rfcn_face.evaluation.recall import SCALE_EDGES, recall_by_scale, scale_group_labels
from rfcn_face.evaluation.wider import WiderGroundTruth
from rfcn_face.testing.synthetic_eval import random_predictions, synthetic_ground_truth


def slow_recall(preds, gt, setting, edges, thresh, min_score):
    hit = [0] * (len(edges) - 1)
    tot = [0] * (len(edges) - 1)
    for key, boxes, keep in zip(gt.keys(), gt.boxes, gt.keep[setting]):
        for (x, y, w, h), k in zip(boxes, keep):
            if not k:
                continue
            s = math.sqrt(max(w, 0) * max(h, 0))
            g = max(i for i in range(len(edges) - 1) if edges[i] <= s) if s < edges[-1] else len(edges) - 2
            tot[g] += 1
            best = 0.0
            for px, py, pw, ph, sc in preds.get(key, np.zeros((0, 5))):
                if sc < min_score:
                    continue
                iw = min(x + w, px + pw) - max(x, px)
                ih = min(y + h, py + ph) - max(y, py)
                inter = max(iw, 0) * max(ih, 0)
                union = w * h + pw * ph - inter
                best = max(best, inter / union if union > 0 else 0.0)
            hit[g] += best >= thresh
    return np.array(hit), np.array(tot)


@pytest.mark.parametrize("seed, min_score", [(0, -np.inf), (1, 0.5), (2, 0.9)])
def test_matches_a_per_face_loop(seed, min_score):
    rng = np.random.default_rng(seed)
    gt = synthetic_ground_truth(rng, num_images=25, max_faces=12)
    preds = random_predictions(gt, rng, mean_per_image=15, jitter=0.2)
    for setting in ("easy", "hard"):
        r = recall_by_scale(preds, gt, setting, min_score=min_score)
        hit, tot = slow_recall(preds, gt, setting, SCALE_EDGES, 0.5, min_score)
        np.testing.assert_array_equal(r.recalled, hit)
        np.testing.assert_array_equal(r.faces, tot)


def test_literal_groups_and_below():
    # faces: 4x4 (group [0,8)), 10x10 ([8,16)), 40x40 ([32,64)); detections hit the 4x4 and the 40x40 only
    gt = WiderGroundTruth(["e"], ["a"], [np.array([[0, 0, 4, 4], [20, 20, 10, 10], [50, 50, 40, 40]], float)],
                          {"hard": [np.array([True, True, True])]})
    preds = {("e", "a"): np.array([[0, 0, 4, 4, 0.9], [51, 51, 40, 40, 0.8], [20, 20, 3, 3, 0.7]])}
    r = recall_by_scale(preds, gt)
    assert r.groups == ["[0,8)", "[8,16)", "[16,32)", "[32,64)", "[64,inf)"] == scale_group_labels()
    np.testing.assert_array_equal(r.faces, [1, 1, 0, 1, 0])
    np.testing.assert_array_equal(r.recalled, [1, 0, 0, 1, 0])
    assert r.below(16) == 0.5
    assert r.to_json()["recall"] == [1.0, 0.0, None, 1.0, None]
    assert recall_by_scale(preds, gt, min_score=0.85).recalled.tolist() == [1, 0, 0, 0, 0]


def test_below_uses_the_edges_the_result_was_computed_with():
    from rfcn_face.evaluation.recall import RecallByScale
    r = RecallByScale(["[0,10)", "[10,20)", "[20,inf)"], np.array([1, 3, 5]), np.array([4, 4, 5]),
                      (0.0, 10.0, 20.0, float("inf")))
    assert r.below(10) == 1 / 4 and r.below(20) == 4 / 8
    with pytest.raises(ValueError, match="16 px is not a group edge"):
        r.below(16)                                   # an edge of the default groups, not of these
