"""Anchor mining (rfcn_face.assigners: hambox, cleanliness, and the tail every strategy shares): HAMBox OAM + RAL
and noisy-anchor cleanliness. Literal matcher-style cases
(a handful of anchors and faces, literal regressed boxes / probabilities, literal labels / targets / weights),
the vectorised code against the slow reference on random images, the cold start, and the config knobs."""
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from rfcn_face.anchors import AnchorSet
from rfcn_face.assigners import (CLS_LOSSES, AnchorGrid, AssignParams, assign_hard_face_compensation, assign_max_iou,
                                 assigner_from_spec, build_assigner)
from rfcn_face.assigners.core import greedy_by_capacity
from rfcn_face.assigners.hambox import regressed_pairs
from rfcn_face.boxes import decode, encode, iou_matrix
from rfcn_face.config import RPN_CLS_LOSSES, Config, ConfigError, config_from_dict, load_config
from rfcn_face.sampling import RPNSampling, subsample_labels
from rfcn_face.testing.anchor_reference import mining_reference

from test_assign import random_faces

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
P = AssignParams(pos_iou=0.5, neg_iou=0.3, allowed_border=-1)      # Th 0.5, Tl 0.3, no border rule
HW = (100, 100)


def make(strategy="max_iou", cls_loss="softmax", params=P, batch_size=256, fg_fraction=0.5, **settings):
    """The strategy ``strategy`` with ``settings`` (its own, e.g. k / t for hambox) over the shared knobs."""
    return assigner_from_spec({"type": strategy, **settings}, params, RPNSampling(batch_size, fg_fraction), cls_loss)


def run(anchors, faces, pred, prob=None, ignore=None, batch_size=64, strategy="max_iou", cls_loss="softmax",
        iteration=None, **settings):
    """The targets of a literal case, checked against the slow reference first."""
    anchors = np.asarray(anchors, float)
    prob = np.full(len(anchors), 0.5) if prob is None else np.asarray(prob, float)
    a = make(strategy, cls_loss, batch_size=batch_size, **settings)
    faces = np.asarray(faces, float).reshape(-1, 4)
    out = a.targets(anchors, faces, ignore, HW, np.asarray(pred, float), prob, rng=np.random.default_rng(0),
                    iteration=iteration)
    ref = mining_reference(anchors, faces, ignore, HW, a, np.asarray(pred, float), prob, rng=np.random.default_rng(0),
                           iteration=iteration)
    check_same(out, ref)
    return out


INT_FIELDS = ("labels", "gt_index", "loss_labels", "compensated", "protected", "matched", "hard")
FLOAT_FIELDS = ("cls_target", "cls_weight", "bbox_target", "bbox_weight", "quality", "clean", "reweight",
                "face_best_iou")


def check_same(a, b):
    for f in INT_FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    for f in FLOAT_FIELDS:
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-9, atol=1e-12, err_msg=f)


# ------------------------------------------------------------------------------------------- HAMBox OAM
# The OAM mechanics with step one at R-FCN's Th = 0.5 (pos_iou=0.5; the default is the notes' 0.35, below):
# Face A = [0,0,10,10] has no anchor with IoU >= 0.5 (a0: 100/256 = 0.39, in the ignore band): M_A = 0.
# Face B = [50,50,66,66] has two threshold anchors (a5: 1.0, a6: 224/288 = 0.78): M_B = 2.
TH05 = dict(pos_iou=0.5)
FA, FB = [0, 0, 10, 10], [50, 50, 66, 66]
OAM_ANCHORS = [[0, 0, 16, 16], [20, 0, 36, 16], [40, 0, 56, 16], [60, 60, 76, 76], [80, 0, 96, 16],
               [50, 50, 66, 66], [52, 50, 68, 66], [80, 80, 96, 96], [0, 80, 16, 96]]
OAM_PRED = [[0, 0, 10, 10],      # a0 -> A, IoU 1
            [1, 0, 11, 10],      # a1 -> A, 90/110 = 9/11
            [2, 0, 12, 10],      # a2 -> A, 80/120 = 2/3 (4th best for A: not taken with K = 3)
            [0, 0, 10, 12],      # a3 -> A, 100/120 = 5/6
            [5, 0, 15, 10],      # a4 -> A, 50/150 = 1/3 < T
            [50, 50, 66, 66], [52, 50, 68, 66],   # the step-one positives of B
            [50, 50, 66, 66],    # a7 -> B, IoU 1
            [51, 50, 67, 66]]    # a8 -> B, 240/272 = 0.88 (B needs only K - M = 1)


def test_oam_outer_faces_get_exactly_k_minus_m():
    r = run(OAM_ANCHORS, [FA, FB], OAM_PRED, strategy="hambox", k=3, t=0.5, **TH05)
    # A (M = 0): 3 = K - M compensated, best first (a0 1.0, a3 5/6, a1 9/11), a2 (2/3) is left over; B (M = 2): 1
    assert r.compensated.astype(int).tolist() == [1, 1, 0, 1, 0, 0, 0, 1, 0]
    assert r.gt_index.tolist() == [0, 0, -1, 0, -1, 1, 1, 1, -1]
    assert r.matched.tolist() == [3, 3]
    np.testing.assert_allclose(r.quality, [1, 9 / 11, 0, 5 / 6, 0, 0, 0, 1, 0])
    # RAL: a2 and a8 are step-one negatives regressing onto a face with IoU >= 0.5 and not compensated:
    # not pushed to background (-1); a4 (1/3) stays a negative
    assert r.protected.astype(int).tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert r.labels.tolist() == [1, 1, -1, 1, 0, 1, 1, 1, -1]
    assert r.loss_labels.tolist() == [1, 1, -1, 1, 0, 1, 1, 1, -1]


def test_oam_threshold_t_respected():
    # T = 0.85: only a0 (1.0) for A; a3 (5/6), a1 (9/11) are below T -> not compensated, but >= 0.5 -> protected
    r = run(OAM_ANCHORS, [FA, FB], OAM_PRED, strategy="hambox", k=3, t=0.85, **TH05)
    # B: a7 (1.0) and a8 (0.88) both reach T, but B takes only K - M = 1, the best
    assert r.compensated.astype(int).tolist() == [1, 0, 0, 0, 0, 0, 0, 1, 0]
    assert r.matched.tolist() == [1, 3]
    assert r.labels.tolist() == [1, -1, -1, -1, 0, 1, 1, 1, -1]
    assert r.protected.astype(int).tolist() == [0, 1, 1, 1, 0, 0, 0, 0, 1]
    # T = 0.3: a4 (1/3) is a candidate too, but A is full with its 3 best; a4 stays negative (1/3 < 0.5)
    r = run(OAM_ANCHORS, [FA, FB], OAM_PRED, strategy="hambox", k=5, t=0.3, **TH05)
    assert r.matched.tolist() == [5, 4]              # A: all 5 candidates (K - M = 5); B: a7, a8 (K - M = 3)
    assert r.compensated.astype(int).tolist() == [1, 1, 1, 1, 1, 0, 0, 1, 1]
    assert not r.protected.any()


def test_oam_anchor_wanted_by_two_faces_goes_to_higher_iou():
    # two outer faces A = [0,0,10,10] and C = [2,0,12,10]; the anchors are far away (negatives), their
    # regressed boxes land on both faces
    C = [2, 0, 12, 10]
    anchors = [[60, 60, 76, 76], [80, 60, 96, 76], [60, 80, 76, 96], [80, 80, 96, 96]]
    pred = [[0.5, 0, 10.5, 10],   # A 95/105 = 0.905, C 85/115 = 0.739 -> A
            [2, 0, 12, 10],       # C 1.0, A 2/3 -> C
            [3, 0, 13, 10],       # C 90/110 = 0.818, A 70/130 = 0.538 -> C
            [90, 90, 94, 94]]
    r = run(anchors, [FA, C], pred, strategy="hambox", k=2, t=0.5)
    # greedy: (1.0, a1, C), (0.905, a0, A), (0.818, a2, C); A's second choice a2 (0.538) is taken
    assert r.gt_index.tolist() == [0, 1, 1, -1]
    assert r.matched.tolist() == [1, 2]
    np.testing.assert_allclose(r.quality[:3], [95 / 105, 1.0, 90 / 110])
    # the same faces in the other order: the same anchors, relabelled
    s = run(anchors, [C, FA], pred, strategy="hambox", k=2, t=0.5)
    assert s.gt_index.tolist() == [1, 0, 0, -1]


def test_oam_step_one_has_no_best_anchor_rule_and_keeps_threshold_positives():
    # max_iou would give A its best anchor a0 (IoU 0.39); HAMBox step one does not (A is an outer face, M = 0)
    faces = np.array([FA, FB], float)
    m = assign_max_iou(np.array(OAM_ANCHORS, float), faces, None, HW, P)
    assert m.labels[0] == 1 and m.gt_index[0] == 0
    plan = make("hambox", k=3, **TH05).prepare(np.array(OAM_ANCHORS, float), faces, None, HW)
    assert plan.base.labels.tolist() == [-1, 0, 0, 0, 0, 1, 1, 0, 0] and plan.base.matched.tolist() == [0, 2]
    # at the notes' default 0.35, a0 (0.39) is a step-one positive of A: A is no longer an outer face
    plan = make("hambox", k=3).prepare(np.array(OAM_ANCHORS, float), faces, None, HW)
    assert plan.base.labels.tolist() == [1, 0, 0, 0, 0, 1, 1, 0, 0] and plan.base.matched.tolist() == [1, 2]
    assert plan.base.hard.tolist() == [False, False]
    # a best anchor below Tl reverts to a negative (a face of 4 px: best IoU 16/256)
    small = make("hambox", **TH05).prepare(np.array(OAM_ANCHORS, float), np.array([[1, 1, 5, 5]], float), None,
                                           HW)
    assert small.base.labels.tolist() == [0] * 9
    # ... unless it overlaps an ignored face (the ignored-face rule of rfcn_face.assigners.core)
    ign = make("hambox", **TH05).prepare(np.array(OAM_ANCHORS, float),
                                         np.array([[1, 1, 5, 5], [0, 0, 12, 12]], float), [False, True], HW)
    assert ign.base.labels[0] == -1
    # K = 1 < M: an easy face is never compensated, its threshold positives are never taken away
    r = run(OAM_ANCHORS, [FB], [[50, 50, 66, 66]] * 9, strategy="hambox", k=1)
    assert r.labels.tolist() == [-1, -1, -1, -1, -1, 1, 1, -1, -1] and not r.compensated.any()
    assert r.protected.sum() == 7                    # all the regressed boxes sit on B


def test_oam_ignored_faces_are_never_compensated():
    r = run(OAM_ANCHORS, [FA, FB], OAM_PRED, ignore=[True, False], strategy="hambox", k=3, **TH05)
    assert r.matched.tolist() == [0, 3] and not np.any(r.gt_index == 0)
    assert r.protected.astype(int).tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 1]   # regressing onto A does not count


def test_oam_needs_a_regressed_iou_above_t():
    # "IOU要大于阈值T": a regressed IoU exactly T does not compensate. A = [0,0,10,10]; a4's box [0,0,10,20] has
    # IoU 100/200 = 0.5 exactly, a3's [0,0,10,12] 5/6. With T = 0.5 only a3 is compensated; a4 is still >= 0.5, so RAL
    # keeps it out of the background (protected, -1), it is not a negative either.
    pred = [list(map(float, b)) for b in OAM_ANCHORS]
    pred[3], pred[4] = [0, 0, 10, 12], [0, 0, 10, 20]
    r = run(OAM_ANCHORS, [FA], pred, strategy="hambox", k=3, t=0.5, **TH05)
    assert r.compensated.astype(int).tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0]
    assert r.protected.astype(int).tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert r.labels.tolist() == [-1, 0, 0, 1, -1, 0, 0, 0, 0]
    # T just below 0.5: a4 is compensated too
    r = run(OAM_ANCHORS, [FA], pred, strategy="hambox", k=3, t=0.49, **TH05)
    assert r.compensated.astype(int).tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0] and not r.protected.any()


def test_hambox_warmup_keeps_step_one_until_iteration_w():
    kw = dict(strategy="hambox", k=3, t=0.5, warmup=100, **TH05)
    step = make("hambox", **TH05).prepare(np.array(OAM_ANCHORS, float), np.array([FA, FB], float), None, HW).base
    for it in (0, 99):                       # warm-up: the targets are step one alone (no OAM, no RAL)
        r = run(OAM_ANCHORS, [FA, FB], OAM_PRED, iteration=it, **kw)
        assert not r.compensated.any() and not r.protected.any()
        np.testing.assert_array_equal(r.labels, step.labels)
        assert r.matched.tolist() == [0, 2]
    for it in (100, None):                   # from iteration W on (and when the caller cannot tell): OAM + RAL
        r = run(OAM_ANCHORS, [FA, FB], OAM_PRED, iteration=it, **kw)
        assert r.compensated.astype(int).tolist() == [1, 1, 0, 1, 0, 0, 0, 1, 0] and r.matched.tolist() == [3, 3]


# ------------------------------------------------------------------------------------------- RAL, both forms
# A hand-built image for the one normalisation of rfcn_face.assigners.base, with the defaults (step one at 0.35,
# K = 3, T = 0.5): an outer face A, a face B with two step-one positives, known regressed IoUs.
#   A = [0,0,8,8]:    a0 (IoU 64/256 = 0.25 < Tl) is a step-one negative -> M_A = 0 (outer face)
#   B = [40,40,56,56]: a1 (1.0) and a2 (192/320 = 0.6) are step-one positives -> M_B = 2; a7 (1/3) is in the
#                      band [Tl, 0.35) -> -1
RA, RB = [0, 0, 8, 8], [40, 40, 56, 56]
RAL_ANCHORS = [[0, 0, 16, 16], [40, 40, 56, 56], [44, 40, 60, 56], [70, 0, 86, 16], [0, 70, 16, 86],
               [70, 70, 86, 86], [20, 0, 36, 16], [48, 40, 64, 56], [80, 80, 96, 96]]
RAL_PRED = [[0, 0, 8, 8],        # a0 -> A, IoU 1
            [40, 40, 56, 56], [44, 40, 60, 56],      # a1, a2: step-one positives of B (never compensated)
            [0, 0, 8, 10],       # a3 -> A, 64/80 = 0.8
            [0, 0, 10, 10],      # a4 -> A, 0.64: A is full (3 better ones) -> protected, not compensated
            [40, 40, 56, 56],    # a5 -> B, 1.0: B needs K - M = 1
            [1, 0, 9, 8],        # a6 -> A, 56/72 = 7/9
            [41, 40, 57, 56],    # a7 -> B, 240/272: B is full; a7 was -1 in step one and stays -1
            [80, 80, 96, 96]]    # a8: a plain negative
RAL_F = {0: 1.0, 3: 0.8, 5: 1.0, 6: 7 / 9}               # the compensated anchors (psi) and their F_a


def test_ral_image_labels():
    r = run(RAL_ANCHORS, [RA, RB], RAL_PRED, strategy="hambox", k=3)
    assert r.labels.tolist() == [1, 1, 1, 1, -1, 1, 1, -1, 0]
    assert r.gt_index.tolist() == [0, 1, 1, 0, -1, 1, 0, -1, -1]
    assert r.compensated.astype(int).tolist() == [1, 0, 0, 1, 0, 1, 1, 0, 0]
    assert r.protected.astype(int).tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0]
    assert r.matched.tolist() == [3, 3]
    np.testing.assert_allclose(r.quality, [1.0, 0, 0, 0.8, 0, 1.0, 7 / 9, 0, 0])
    np.testing.assert_array_equal(r.cls_target, [1, 1, 1, 1, 0, 1, 1, 0, 0])
    pos = np.flatnonzero(r.bbox_weight[:, 0] > 0)        # every positive regresses to its face
    assert pos.tolist() == [0, 1, 2, 3, 5, 6]
    np.testing.assert_allclose(decode(np.array(RAL_ANCHORS, float)[pos], r.bbox_target[pos]),
                               np.array([RA, RB], float)[r.gt_index[pos]], atol=1e-9)


def test_ral_weights_sampled_softmax():
    """Form (b), rpn.cls_loss: softmax: the minibatch S is drawn from the step-one labels ({a1, a2} positive, a8
    negative; a4 protected, a7 in the band: neither), psi = {a0, a3, a5, a6} always kept; one mean over S and psi
    (Z = |S| + |psi|), a compensated anchor counting F_a."""
    r = run(RAL_ANCHORS, [RA, RB], RAL_PRED, strategy="hambox", k=3, cls_loss="softmax", batch_size=64)
    assert r.loss_labels.tolist() == [1, 1, 1, 1, -1, 1, 1, -1, 0]
    z = 3 + 4
    np.testing.assert_allclose(r.cls_weight, [1 / z, 1 / z, 1 / z, 0.8 / z, 0, 1 / z, 7 / 9 / z, 0, 1 / z])
    np.testing.assert_array_equal(r.bbox_weight[:, 0], [1, 1, 1, 1, 0, 1, 1, 0, 0])   # sampled positives + psi
    assert not r.mean_over_labels
    # B = 2 (quota 1 positive): one of a1 / a2 is drawn with a8; psi is kept on top, Z = 2 + 4
    r = run(RAL_ANCHORS, [RA, RB], RAL_PRED, strategy="hambox", k=3, cls_loss="softmax", batch_size=2)
    drawn = [a for a in (1, 2) if r.loss_labels[a] == 1]
    assert len(drawn) == 1 and r.loss_labels[3 - drawn[0]] == -1 and r.loss_labels[8] == 0
    w = np.zeros(9)
    w[[drawn[0], 8]] = 1 / 6
    for a, f in RAL_F.items():
        w[a] = f / 6
    np.testing.assert_allclose(r.cls_weight, w)
    box = np.zeros(9)
    box[[drawn[0], 0, 3, 5, 6]] = 1                                   # the undrawn positive does not regress
    np.testing.assert_array_equal(r.bbox_weight[:, 0], box)


def test_ral_weights_dense_focal():
    """Form (a), rpn.cls_loss: focal: every labelled anchor (no sampling); the ordinary term over
    Z = max(N_pos, B) with N_pos = 6 positives (psi included), psi over max(N_com, B) with N_com = 4; the box term
    over every positive, divided by the same Z (v = B / Z, the loss divides by B)."""
    # B = 1: the papers' per-image counts, 1/N_pos and F_a/N_com (HAMBox's RAL equation)
    r = run(RAL_ANCHORS, [RA, RB], RAL_PRED, strategy="hambox", k=3, cls_loss="focal", batch_size=1)
    assert r.loss_labels.tolist() == [1, 1, 1, 1, -1, 1, 1, -1, 0]
    np.testing.assert_allclose(r.cls_weight, [1 / 4, 1 / 6, 1 / 6, 0.8 / 4, 0, 1 / 4, 7 / 9 / 4, 0, 1 / 6])
    np.testing.assert_allclose(r.bbox_weight[:, 0], np.array([1, 1, 1, 1, 0, 1, 1, 0, 0]) / 6)
    # B = 64 > both counts: every anchor's weight is divided by B (never more than a sampled anchor weighs)
    r = run(RAL_ANCHORS, [RA, RB], RAL_PRED, strategy="hambox", k=3, cls_loss="focal", batch_size=64)
    assert r.loss_labels.tolist() == [1, 1, 1, 1, -1, 1, 1, -1, 0]
    np.testing.assert_allclose(r.cls_weight, np.array([1, 1, 1, 0.8, 0, 1, 7 / 9, 0, 1]) / 64)
    np.testing.assert_allclose(r.bbox_weight[:, 0], [1, 1, 1, 1, 0, 1, 1, 0, 0])
    # warm-up: step one alone, the two step-one positives and the three negatives a0, a3, a4 (a5 / a6 are negatives
    # too: far from both faces), dense: N_pos = 2
    r = run(RAL_ANCHORS, [RA, RB], RAL_PRED, strategy="hambox", k=3, cls_loss="focal", batch_size=1, warmup=10,
            iteration=3)
    assert r.loss_labels.tolist() == [0, 1, 1, 0, 0, 0, 0, -1, 0]
    np.testing.assert_allclose(r.cls_weight, np.array([1, 1, 1, 1, 1, 1, 1, 0, 1]) / 2)


# ------------------------------------------------------------------------------------------- cleanliness
# Face [0,0,16,16]; a0 IoU 1, a1 192/320 = 0.6, a2 128/384 = 1/3, a3 / a4 far away. N = 2: A_pos = {a0, a1}.
CL_ANCHORS = [[0, 0, 16, 16], [4, 0, 20, 16], [8, 0, 24, 16], [60, 60, 76, 76], [80, 80, 96, 96]]
CL_PRED = [[0, 0, 16, 16],    # loc 1.0 -> clamped to 0.99: f = 100
           [0, 0, 16, 20],    # loc 256/320 = 0.8: f = 5
           [8, 0, 24, 16], [60, 60, 76, 76], [80, 80, 96, 96]]
CL_PROB = [0.8, 0.5, 0.3, 0.1, 0.2]


def test_cleanliness_soft_labels_reweighting_and_clamp():
    r = run(CL_ANCHORS, [[0, 0, 16, 16]], CL_PRED, CL_PROB, strategy="cleanliness", top_n=2)
    # Eq. 3: c = 0.75 loc + 0.25 cls
    np.testing.assert_allclose(r.clean, [0.75 * 1.0 + 0.25 * 0.8, 0.75 * 0.8 + 0.25 * 0.5, 0, 0, 0])
    # Eq. 4: r = 0.75 f(loc) + 0.25 f(cls), f(x) = 1/(1 - min(x, 0.99)): 76.25 and 4.25, then mean 1 over A_pos
    r0, r1 = 0.75 * 100 + 0.25 * 5, 0.75 * 5 + 0.25 * 2
    np.testing.assert_allclose(r.reweight, [2 * r0 / (r0 + r1), 2 * r1 / (r0 + r1), 1, 1, 1])
    assert r.reweight[:2].mean() == pytest.approx(1.0)
    # Alg. 1 line 6: every anchor outside A_pos is a negative, a2 (IoU 1/3 >= Tl, outside the top-2) too
    assert r.labels.tolist() == [1, 1, 0, 0, 0] and r.loss_labels.tolist() == [1, 1, 0, 0, 0]
    np.testing.assert_allclose(r.cls_target, [0.95, 0.725, 0, 0, 0])
    # softmax: everything fits the minibatch, one mean over the 5 anchors (Eq. 5 with r on A_pos)
    np.testing.assert_allclose(r.cls_weight, np.array([r.reweight[0], r.reweight[1], 1, 1, 1]) / 5)
    np.testing.assert_allclose(r.bbox_weight[:, 0], [r.reweight[0], r.reweight[1], 0, 0, 0])          # Eq. 6
    np.testing.assert_allclose(r.quality[:2], [1.0, 0.8])
    # the earlier reading (negatives: threshold): a2 is ignored, the mean is over 4
    t = run(CL_ANCHORS, [[0, 0, 16, 16]], CL_PRED, CL_PROB, strategy="cleanliness", top_n=2, negatives="threshold")
    assert t.labels.tolist() == [1, 1, -1, 0, 0]
    np.testing.assert_allclose(t.cls_weight, np.array([r.reweight[0], r.reweight[1], 0, 1, 1]) / 4)
    # a perfect box and a probability of 1 stay finite (the clamp), gamma sharpens the weights
    g = run(CL_ANCHORS, [[0, 0, 16, 16]], CL_PRED, [1.0, 1.0, 0, 0, 0], strategy="cleanliness", top_n=2,
            gamma=2.0, clamp=0.9)
    a, b = (0.75 * 10 + 0.25 * 10) ** 2, (0.75 * 5 + 0.25 * 10) ** 2
    np.testing.assert_allclose(g.reweight[:2], [2 * a / (a + b), 2 * b / (a + b)])
    assert np.all(np.isfinite(g.cls_weight)) and g.clean[0] == pytest.approx(1.0)


def test_cleanliness_top_n_shared_anchor_goes_to_higher_iou():
    # B = [6,0,22,16]: a1 IoU 224/288 = 0.78 > 0.6 with A -> a1 is B's; A keeps only a0 (no refill, Alg. 1)
    r = run(CL_ANCHORS, [[0, 0, 16, 16], [6, 0, 22, 16]], CL_PRED, CL_PROB, strategy="cleanliness", top_n=2)
    assert r.gt_index.tolist() == [0, 1, 1, -1, -1] and r.matched.tolist() == [1, 2]
    # the top-N ranks by IoU before refinement: a2 (0.78 with B, tie with a1 -> both) although its box is bad
    assert r.labels.tolist() == [1, 1, 1, 0, 0]
    np.testing.assert_allclose(r.quality, [1.0, iou_matrix(np.array([CL_PRED[1]], float),
                                                           np.array([[6, 0, 22, 16]], float))[0, 0],
                                           224 / 288, 0, 0])


def test_cleanliness_top_n_needs_overlap_and_respects_n():
    # a 3-px face overlaps only a0: A_pos = {a0} even with N = 30
    r = run(CL_ANCHORS, [[0.5, 1, 3.5, 4]], CL_PRED, CL_PROB, strategy="cleanliness", top_n=30)
    assert r.labels.tolist() == [1, 0, 0, 0, 0] and r.reweight[0] == 1.0     # a single anchor: mean 1 -> 1
    # N = 1 on the big face: only a0; a1 (IoU 0.6 >= Th, outside the top-1) is a negative (Alg. 1), or ignored
    # with negatives: threshold
    r = run(CL_ANCHORS, [[0, 0, 16, 16]], CL_PRED, CL_PROB, strategy="cleanliness", top_n=1)
    assert r.labels.tolist() == [1, 0, 0, 0, 0]
    r = run(CL_ANCHORS, [[0, 0, 16, 16]], CL_PRED, CL_PROB, strategy="cleanliness", top_n=1, negatives="threshold")
    assert r.labels.tolist() == [1, -1, -1, 0, 0]


def test_cleanliness_negatives_keep_the_ignored_face_rule():
    # an ignored face over a3 / a4's corner: with negatives: all they are -1 all the same (IoF >= 0.5), a2 is a
    # negative; an anchor outside the image (border rule 0) is -1
    params = AssignParams(allowed_border=0)
    a = make("cleanliness", params=params, top_n=2)
    faces = np.array([[0, 0, 16, 16], [58, 58, 100, 100]], float)
    anchors = np.array(CL_ANCHORS + [[90, 90, 106, 106]], float)
    r = a.targets(anchors, faces, [False, True], HW, np.array(CL_PRED + [[90, 90, 106, 106]], float),
                  np.array(CL_PROB + [0.5]), rng=np.random.default_rng(0))
    assert r.labels.tolist() == [1, 1, 0, -1, -1, -1]


# ------------------------------------------------------------------------------------------- max_iou / hc
def test_max_iou_and_hc_targets_are_the_assignment_sampled_with_weights_one_over_n():
    """A strategy that reads no prediction: its targets are its assignment, one subsample_labels draw with the
    image's Generator, the encoded faces of the sampled positives and R-FCN's mean over the sampled anchors."""
    rng = np.random.default_rng(4)
    h, w = 128, 128
    grid = AnchorGrid.for_image(AnchorSet(8, shifts="16x3"), h, w)
    boxes, ign = random_faces(rng, 30, h, w, lo=3, hi=60)
    p = AssignParams()
    for spec, res in ((dict(strategy="max_iou"), assign_max_iou(grid, boxes, ign, (h, w), p)),
                      (dict(strategy="hc", top_n=5), assign_hard_face_compensation(grid, boxes, ign, (h, w), p, 5))):
        a = make(params=p, batch_size=128, **spec)
        r = a.targets(grid, boxes, ign, (h, w), rng=np.random.default_rng(9))
        lab = subsample_labels(res.labels, 128, 0.5, np.random.default_rng(9))
        np.testing.assert_array_equal(r.loss_labels, lab)
        np.testing.assert_array_equal(r.labels, res.labels)
        np.testing.assert_array_equal(r.matched, res.matched)
        pos = np.flatnonzero(lab == 1)
        np.testing.assert_array_equal(r.bbox_target[pos], encode(grid.boxes[pos], boxes[res.gt_index[pos]]))
        np.testing.assert_array_equal(r.bbox_weight, np.repeat((lab == 1)[:, None], 4, 1).astype(float))
        n = (lab >= 0).sum()
        assert n == 128 and r.mean_over_labels
        np.testing.assert_array_equal(r.cls_weight, np.where(lab >= 0, 1.0 / n, 0.0))   # today's mean
        np.testing.assert_array_equal(r.cls_target, (lab == 1).astype(float))
        # the targets are complete in the loader: prepare() finished them with the same Generator
        plan = a.prepare(grid, boxes, ign, (h, w), rng=np.random.default_rng(9))
        np.testing.assert_array_equal(plan.targets.loss_labels, lab)
        assert a.finish(plan) is plan.targets


# ------------------------------------------------------------------------------------------- random: fast == ref
def random_case(seed, strategy, cls_loss, hc=0):
    rng = np.random.default_rng(zlib.crc32(f"{seed}{strategy}{cls_loss}".encode()))
    h, w = 96, 112
    grid = AnchorGrid.for_image(AnchorSet(8, scales=(16, 32, 64), shifts="16x3"), h, w)
    boxes, ign = random_faces(rng, int(rng.integers(0, 25)), h, w, lo=2, hi=60, ignore_frac=0.15,
                              clusters=int(rng.integers(0, 3)))
    N = len(grid)
    pred = decode(grid.boxes, rng.normal(0, 0.15, (N, 4)))
    if len(boxes):                 # some anchors regress onto faces: compensation, protection, conflicts
        pick = rng.random(N) < 0.08
        pred[pick] = boxes[rng.integers(0, len(boxes), pick.sum())] + rng.normal(0, 1.5, (pick.sum(), 4))
    if seed % 2:
        pred = np.round(pred)      # exact IoU ties
    prob = rng.random(N)
    prob[rng.random(N) < 0.02] = 1.0
    params = AssignParams(allowed_border=[0, -1, 4][seed % 3])
    top_n = int(rng.integers(1, 12))
    settings = {"hambox": dict(k=1 + seed % 6, t=[0.4, 0.5, 0.6][seed % 3], pos_iou=[0.35, 0.5, 0.3, 0.6][seed % 4],
                               warmup=[0, 0, 10][seed % 3]),
                "cleanliness": dict(top_n=top_n, gamma=[1.0, 0.5, 2.0][seed % 3],
                                    negatives=["all", "threshold"][seed % 2]), "hc": dict(top_n=hc)}
    iteration = [None, 5, 20, 5][seed % 4]       # seed 5: warm-up 10 still on at iteration 5; seeds 2, 8: over
    a = make(strategy, cls_loss, params, int(rng.choice([1, 16, 64, 256])), **settings.get(strategy, {}))
    fast = a.targets(grid, boxes, ign, (h, w), pred, prob, rng=np.random.default_rng(5), iteration=iteration)
    ref = mining_reference(grid, boxes, ign, (h, w), a, pred, prob, rng=np.random.default_rng(5), iteration=iteration)
    return fast, ref


@pytest.mark.parametrize("strategy,cls_loss,hc", [("hambox", "softmax", 0), ("hambox", "focal", 0),
                                                  ("cleanliness", "softmax", 0), ("cleanliness", "focal", 0),
                                                  ("max_iou", "focal", 0), ("hc", "softmax", 3)])
def test_vectorised_equals_reference_on_random_images(strategy, cls_loss, hc):
    seen = np.zeros(4)
    for seed in range(10):
        fast, ref = random_case(seed, strategy, cls_loss, hc)
        check_same(fast, ref)
        seen += [fast.compensated.sum(), fast.protected.sum(), (fast.labels == 1).sum(), (fast.loss_labels >= 0).sum()]
        w = fast.cls_weight
        assert np.all(w >= 0) and np.all((w > 0) == (fast.loss_labels >= 0))
    assert seen[2] > 100 and seen[3] > 150
    if strategy == "hambox":       # the random images really exercise OAM and RAL
        assert seen[0] > 50 and seen[1] > 50


def test_regressed_pairs_equal_dense_iou():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n, f = int(rng.integers(1, 300)), int(rng.integers(1, 25))
        size = np.exp(rng.uniform(np.log(0.5), np.log(100), n))
        c = rng.uniform(-20, 220, (n, 2))
        pb = np.concatenate([c - size[:, None] / 2 * rng.uniform(0.6, 1.4, (n, 2)),
                             c + size[:, None] / 2 * rng.uniform(0.6, 1.4, (n, 2))], 1)
        fs, fc = np.exp(rng.uniform(0, np.log(80), f)), rng.uniform(0, 200, (f, 2))
        fb = np.concatenate([fc - fs[:, None] / 2, fc + fs[:, None] / 2 * rng.uniform(0.7, 1.5, (f, 1))], 1)
        k = rng.integers(0, f, n // 2)
        pb[:n // 2] = fb[k] + rng.normal(0, 1.5, (n // 2, 4))           # many high IoUs
        if trial % 3 == 0:
            pb = np.round(pb)
        pb[0] = [5, 5, 5, 9]                                             # degenerate and exploding boxes
        pb[min(1, n - 1)] = [-1e9, -1e9, 1e9, 1e9]
        mask = rng.random(n) < 0.9
        for tau in (0.3, 0.5, 0.7):
            ai, fi, iou = regressed_pairs(pb, fb, tau, mask)
            dense = iou_matrix(pb, fb)
            dense[~mask] = 0
            da, df = np.nonzero(dense >= tau)
            assert sorted(zip(fi.tolist(), ai.tolist())) == sorted(zip(df.tolist(), da.tolist()))
            np.testing.assert_allclose(iou, dense[ai, fi])


def test_capacity_greedy_equals_explicit_loop():
    def loop(ai, fi, iou, cap):
        taken, used, count = np.zeros(len(ai), dtype=bool), set(), {}
        for p in sorted(range(len(ai)), key=lambda p: (-iou[p], ai[p], fi[p])):
            if count.get(fi[p], 0) < cap[fi[p]] and ai[p] not in used:
                taken[p], count[fi[p]] = True, count.get(fi[p], 0) + 1
                used.add(ai[p])
        return taken
    for seed in range(20):
        rng = np.random.default_rng(seed)
        F, A = int(rng.integers(1, 30)), int(rng.integers(1, 60))
        pairs = np.array(sorted({(int(f), int(a)) for f, a in zip(rng.integers(0, F, 400), rng.integers(0, A, 400))}))
        fi, ai = pairs[:, 0], pairs[:, 1]
        iou = rng.integers(1, 6, len(ai)) / 10.0                         # coarse: many ties
        cap = rng.integers(0, 6, F)
        np.testing.assert_array_equal(greedy_by_capacity(ai, fi, iou, cap), loop(ai, fi, iou, cap))


# ------------------------------------------------------------------------------------------- cold start
def test_cold_start_is_finite_and_sensible():
    """Iteration 0: deltas ~0 (regressed boxes = anchors), probabilities ~0.5."""
    rng = np.random.default_rng(1)
    h, w = 160, 160
    grid = AnchorGrid.for_image(AnchorSet(8, shifts="16x3"), h, w)
    boxes, ign = random_faces(rng, 40, h, w, lo=2, hi=80)
    N = len(grid)
    pred, prob = decode(grid.boxes, np.zeros((N, 4))), np.full(N, 0.5)
    p = AssignParams()
    g = np.random.default_rng(0)                 # one Generator for the whole test, drawn in this order
    for loss in CLS_LOSSES:
        hb = make("hambox", loss, p).targets(grid, boxes, ign, (h, w), pred, prob, rng=g)
        # T = 0.5 > the step-one 0.35: an anchor whose own box exceeds T is already a step-one positive: no
        # compensation, no protected negative (negatives have IoU < Tl); the targets are plain threshold matching
        step = make("hambox", params=p).prepare(grid, boxes, ign, (h, w)).base
        assert not hb.compensated.any() and not hb.protected.any()
        np.testing.assert_array_equal(hb.labels, step.labels)
        # T = 0.3 below the step-one threshold 0.35: faces short of K take anchors with IoU in (0.3, 0.35), as a
        # lower threshold would
        lo = make("hambox", loss, p, t=0.3).targets(grid, boxes, ign, (h, w), pred, prob, rng=g)
        assert lo.compensated.sum() > 0 and np.all(lo.quality[lo.compensated] > 0.3)
        assert np.all((lo.max_iou[lo.compensated] > 0.3) & (lo.max_iou[lo.compensated] < 0.35))
        cl = make("cleanliness", loss, p).targets(grid, boxes, ign, (h, w), pred, prob, rng=g)
        pos = cl.labels == 1
        # c = 0.75 IoU + 0.125: an approximation of the anchor IoU, as the paper says
        true_iou = iou_matrix(grid.boxes[pos], boxes)[np.arange(pos.sum()), cl.gt_index[pos]]
        np.testing.assert_allclose(cl.clean[pos], 0.75 * true_iou + 0.125)
        assert cl.reweight[pos].mean() == pytest.approx(1.0)
        for r in (hb, lo, cl):
            for a in (r.cls_target, r.cls_weight, r.bbox_target, r.bbox_weight):
                assert np.all(np.isfinite(a))
            assert np.all((r.cls_target >= 0) & (r.cls_target <= 1))
            assert r.cls_weight.sum() > 0 and (r.loss_labels == 1).sum() > 0


def test_finish_needs_predictions_for_mining_strategies():
    plan = make("hambox").prepare(np.array(OAM_ANCHORS, float), np.array([FA], float), None, HW)
    assert plan.targets is None                   # nothing sampled before the forward pass
    with pytest.raises(ValueError, match="reads the predictions"):
        make("hambox").finish(plan, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown anchor assignment strategy"):
        make("oam")
    with pytest.raises(ValueError, match="unknown RPN classification loss"):
        make("hambox", "bce")


# ------------------------------------------------------------------------------------------- config
def test_config_knobs_and_strategy_settings():
    assert RPN_CLS_LOSSES == CLS_LOSSES
    d = config_from_dict({"rpn": {"assign": {"type": "cleanliness"}}})
    # the papers' values: noisy anchors N = 30 (Table 4(b)), alpha 0.75 (Table 4(c)), gamma 1, Alg. 1's negatives;
    # HAMBox step one at the notes' 0.35, no warm-up
    assert d.rpn.assign == {"type": "cleanliness", "top_n": 30, "alpha": 0.75, "gamma": 1.0, "clamp": 0.99,
                            "negatives": "all"}
    assert load_config(overrides=["rpn.assign.type=hambox"]).rpn.assign == {"type": "hambox", "k": 5, "t": 0.5,
                                                                            "pos_iou": 0.35, "warmup": 0}
    assert (Config().rpn.focal_prior, Config().rpn.focal_alpha, Config().rpn.focal_gamma) == (0.01, 0.25, 2.0)
    assert Config().rpn.assign == {"type": "max_iou"} and Config().rpn.cls_loss == "softmax"
    final = load_config(EXPERIMENTS / "table1" / "13_final.yaml")
    assert final.rpn.assign == {"type": "hc", "top_n": 5}                       # Table 1 row 13: HC(5)
    c = config_from_dict({"rpn": {"assign": {"type": "cleanliness", "top_n": 40}, "cls_loss": "focal"}})
    a = build_assigner(c)
    assert (a.name, a.cls_loss, a.settings.top_n, a.settings.alpha) == ("cleanliness", "focal", 40, 0.75)
    # a layer that names another strategy starts its settings afresh (they belong to the strategy)
    assert load_config(EXPERIMENTS / "table1" / "13_final.yaml", overrides=["rpn.assign.type=max_iou"]).rpn.assign \
        == {"type": "max_iou"}


@pytest.mark.parametrize("overrides,message", [
    (["rpn.assign.type=hc", "rpn.assign.top_n=0"], "rpn.assign.top_n must be in [1, inf], got 0"),
    (["rpn.assign.type=max_iou", "rpn.assign.top_n=5"], "rpn.assign.top_n is not a setting of strategy 'max_iou' "
                                                        "(its settings: none)"),
    (["rpn.assign.type=hambox", "rpn.assign.top_n=3"], "rpn.assign.top_n is not a setting of strategy 'hambox' "
                                                       "(its settings: k, pos_iou, t, warmup)"),
    (["rpn.assign.type=oam"], "rpn.assign.type: unknown anchor assignment strategy 'oam'; known: cleanliness, hambox,"
                              " hc, "),
    (["rpn.cls_loss=bce"], "rpn.cls_loss must be one of softmax, focal"),
    (["rpn.assign.type=hambox", "rpn.assign.k=0"], "rpn.assign.k must be in [1, inf]"),
    (["rpn.assign.type=hambox", "rpn.assign.t=0"], "rpn.assign.t must be in (0.0, 1.0)"),
    (["rpn.assign.type=hambox", "rpn.assign.t=1"], "rpn.assign.t must be in (0.0, 1.0)"),
    (["rpn.assign.type=hambox", "rpn.assign.warmup=-1"], "rpn.assign.warmup must be in [0, inf]"),
    (["rpn.assign.type=hambox", "rpn.assign.pos_iou=0.25"], "rpn.assign.pos_iou (0.25) of strategy 'hambox' must be "
                                                            ">= rpn.neg_iou (0.3)"),
    (["rpn.neg_iou=0.4", "rpn.assign.type=hambox"], "rpn.assign.pos_iou (0.35) of strategy 'hambox' must be >= "
                                                    "rpn.neg_iou (0.4)"),
    (["rpn.assign.type=cleanliness", "rpn.assign.negatives=some"], "rpn.assign.negatives must be one of all, "
                                                                    "threshold, got 'some'"),
    (["rpn.focal_prior=0"], "rpn.focal_prior must be in (0.0, 1.0)"),
    (["rpn.focal_prior=1"], "rpn.focal_prior must be in (0.0, 1.0)"),
    (["rpn.assign.type=hambox", "rpn.assign.k=2.5"], "rpn.assign.k must be an integer"),
    (["rpn.assign.type=cleanliness", "rpn.assign.alpha=1.5"], "rpn.assign.alpha must be in [0.0, 1.0]"),
    (["rpn.assign.type=cleanliness", "rpn.assign.gamma=-1"], "rpn.assign.gamma must be in"),
    (["rpn.assign.type=cleanliness", "rpn.assign.top_n=0"], "rpn.assign.top_n must be in"),
    (["rpn.assign.type=cleanliness", "rpn.assign.clamp=1"], "rpn.assign.clamp must be in (0.0, 1.0)"),
    (["rpn.focal_alpha=2"], "rpn.focal_alpha must be in"),
    (["rpn.focal_gamma=-0.5"], "rpn.focal_gamma must be in"),
    (["rpn.assign=hambox"], "'hambox' is the old spelling; a strategy and its settings are one mapping now: write "
                            "rpn: {assign: {type: hambox}}"),
    (["train.hard_face_compensation=5"], "config key 'train.hard_face_compensation' was replaced: write rpn: "
                                         "{assign: {type: hc, top_n: N}}"),
    (["rpn.hambox_k=3"], "config key 'rpn.hambox_k' was replaced: write rpn: {assign: {type: hambox, k: K}}"),
    (["rpn.clean_top_n=3"], "write rpn: {assign: {type: cleanliness, top_n: N}}"),
])
def test_config_validation_names_the_layer(overrides, message):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=overrides)
    assert str(e.value).startswith(f"--set {overrides[-1]}: ") and message in str(e.value), str(e.value)


def test_old_keys_in_a_yaml_give_the_new_spelling(tmp_path):
    row = tmp_path / "row.yaml"
    row.write_text("train: {shift_jitter: true, hard_face_compensation: 5}\n")
    with pytest.raises(ConfigError, match=r"row\.yaml: config key 'train\.hard_face_compensation' was replaced: "
                                          r"write rpn: \{assign: \{type: hc, top_n: N\}\}"):
        load_config(row)
    row.write_text("rpn: {assign: cleanliness, clean_top_n: 8}\n")
    with pytest.raises(ConfigError, match=r"row\.yaml: rpn\.assign: 'cleanliness' is the old spelling"):
        load_config(row)


def test_a_row_naming_another_strategy_drops_the_base_rows_settings(tmp_path):
    row = tmp_path / "row.yaml"
    row.write_text("_BASE_: %s\nrpn: {assign: {type: hambox, k: 3}}\n" % (EXPERIMENTS / "table1" / "13_final.yaml"))
    assert load_config(row).rpn.assign == {"type": "hambox", "k": 3, "t": 0.5, "pos_iou": 0.35,
                                           "warmup": 0}                                # HC(5)'s top_n is gone
    row.write_text("_BASE_: %s\nrpn: {assign: {k: 3}}\n" % (EXPERIMENTS / "table1" / "13_final.yaml"))
    with pytest.raises(ConfigError, match=r"row\.yaml: rpn\.assign\.k is not a setting of strategy 'hc'"):
        load_config(row)                                      # no type: the base row's strategy (hc) is kept


def test_mining_rows():
    rows = {p.stem: p for p in (EXPERIMENTS / "mining").glob("*.yaml")}
    assert {"final_hambox", "final_cleanliness", "baseline_hambox", "baseline_cleanliness", "final_hambox_sampled",
            "baseline_hambox_sampled", "final_cleanliness_threshold", "baseline_cleanliness_threshold",
            "baseline_focal", "final_focal"} <= set(rows)
    grid = set()
    for name, path in rows.items():
        data = yaml.safe_load(path.read_text())
        # a Table 1 row, or a mining row that derives from one (the variants, the K x T grid)
        table1, chain = path, []
        while table1.parent.name == "mining":
            base = yaml.safe_load(table1.read_text())["_BASE_"]
            chain.append(base)
            table1 = (table1.parent / base).resolve()
        assert table1.name in ("13_final.yaml", "01_baseline.yaml"), (name, chain)
        assert name.startswith("final" if table1.name == "13_final.yaml" else "baseline"), name
        base = load_config(table1, preset="smoke")
        c = load_config(path, preset="smoke")
        assert c.name == name
        # only the RPN assignment and its loss differ from the Table 1 row
        for section in ("model", "anchors", "train", "rcnn", "test", "data"):
            assert getattr(c, section) == getattr(base, section), (name, section)
        assert set(data) <= {"_BASE_", "name", "description", "rpn"} and set(data["rpn"]) <= {"assign", "cls_loss"}
        assert {k: v for k, v in vars(c.rpn).items() if k not in ("assign", "cls_loss")} == \
            {k: v for k, v in vars(base.rpn).items() if k not in ("assign", "cls_loss")}
        if name.endswith("_focal"):         # the loss-form controls: the Table 1 row's matching, only the loss changes
            assert c.rpn.assign == base.rpn.assign and base.rpn.cls_loss == "softmax" and c.rpn.cls_loss == "focal"
            continue
        assert c.rpn.assign["type"] in ("hambox", "cleanliness") and c.rpn.assign["type"] in name
        # the papers' forms are the rows' defaults; the variants say what they change in their name
        assert c.rpn.cls_loss == ("softmax" if name.endswith(("_sampled", "_threshold")) else "focal"), name
        if c.rpn.assign["type"] == "cleanliness":
            assert c.rpn.assign["negatives"] == ("threshold" if name.endswith("_threshold") else "all"), name
        if name.startswith("final_hambox_k"):
            grid.add((c.rpn.assign["k"], c.rpn.assign["t"]))
    assert len({k for k, _ in grid}) >= 2 and len({t for _, t in grid}) >= 2       # a K x T grid
    assert {(k, t) for k in {k for k, _ in grid} for t in {t for _, t in grid}} == grid
