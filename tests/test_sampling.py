"""Minibatch sampling and OHEM (rfcn_face.sampling)."""
import numpy as np
import pytest

from rfcn_face.config import Config
from rfcn_face.sampling import fg_quota, ohem_keep, ohem_labels, ohem_losses, smooth_l1, subsample_labels


# ------------------------------------------------------------------------------------------- references
def ohem_keep_reference(labels, loss, batch_size, fg_fraction, images, mode="ratio"):
    keep = [False] * len(labels)
    for img in sorted(set(images)):
        here = [i for i in range(len(labels)) if images[i] == img]
        if mode == "topk":       # R-FCN box_annotator_ohem: the B hardest labelled RoIs, any label
            chosen = sorted([i for i in here if labels[i] in (0, 1)], key=lambda i: (-loss[i], i))
            chosen = chosen if batch_size < 0 else chosen[:batch_size]
        else:
            fg = sorted([i for i in here if labels[i] == 1], key=lambda i: (-loss[i], i))
            bg = sorted([i for i in here if labels[i] == 0], key=lambda i: (-loss[i], i))
            if batch_size >= 0:
                fg = fg[:int(round(fg_fraction * batch_size))]
                bg = bg[:batch_size - len(fg)]
            chosen = fg + bg
        for i in chosen:
            keep[i] = True
    return np.array(keep)


def losses_reference(prob, pred, labels, targets, weights, sigma=1.0):
    cls, box = [], []
    for r in range(len(labels)):
        cls.append(-np.log(max(prob[r][labels[r]], 1e-14)) if labels[r] >= 0 else 0.0)
        total = 0.0
        for c in range(pred.shape[1]):
            d = abs(pred[r, c] - targets[r, c])
            total += weights[r, c] * (0.5 * sigma ** 2 * d * d if d < 1 / sigma ** 2 else d - 0.5 / sigma ** 2)
        box.append(total)
    return np.array(cls), np.array(box)


# ------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("mode", ["ratio", "topk"])
@pytest.mark.parametrize("seed", range(6))
def test_ohem_keep_matches_reference(seed, mode):
    rng = np.random.default_rng(seed)
    R = int(rng.integers(1, 400))
    labels = rng.choice([-1, 0, 0, 0, 1], R)
    loss = np.round(rng.random(R), 1)            # coarse values: many ties
    images = rng.integers(0, 3, R)
    B = int(rng.choice([-1, 8, 32, 128]))
    got = ohem_keep(labels, loss, B, 0.25, images, mode=mode)
    np.testing.assert_array_equal(got, ohem_keep_reference(labels, loss, B, 0.25, images.tolist(), mode))
    if mode == "ratio":                          # the default is the ratio reading
        np.testing.assert_array_equal(ohem_keep(labels, loss, B, 0.25, images), got)


def test_ohem_hand_built_ratio():
    # B = 8, fg_fraction 0.25 -> at most 2 positives, negatives fill to 8
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, -1])
    loss = np.array([0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.6, 0.05, 0.4, 0.01, 9.9])
    weights = np.ones((12, 4))
    lab, w = ohem_labels(labels, weights, loss, 8, 0.25)
    assert lab.tolist() == [-1, 1, 1, 0, 0, 0, 0, 0, -1, 0, -1, -1]
    assert w[:, 0].tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0]
    # a single positive: 1 + 7 hardest negatives
    labels1 = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    loss1 = np.array([0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    assert ohem_labels(labels1, np.ones((10, 4)), loss1, 8, 0.25)[0].tolist() == [1, -1, -1, 0, 0, 0, 0, 0, 0, 0]
    # selection is per image: each image gets its own batch
    img = np.array([0, 0, 0, 1, 1, 1])
    lab2 = np.array([1, 0, 0, 1, 0, 0])
    loss2 = np.array([1.0, 2.0, 3.0, 1.0, 3.0, 2.0])
    assert ohem_labels(lab2, np.ones((6, 4)), loss2, 2, 0.5, img)[0].tolist() == [1, -1, 0, 1, 0, -1]


def test_ohem_only_5_positives_both_modes():
    # 5 positives (idx 0..4, loss 0.1..0.5) and 40 negatives (idx 5..44, loss 1.00, 1.01, ..., 1.39); B = 32
    labels = np.array([1] * 5 + [0] * 40)
    loss = np.array([0.1, 0.2, 0.3, 0.4, 0.5] + [1.0 + 0.01 * k for k in range(40)])
    # ratio: quota round(0.25 * 32) = 8 > 5 -> all 5 positives + the 27 hardest negatives (idx 18..44)
    keep = ohem_keep(labels, loss, 32, 0.25, mode="ratio")
    assert np.flatnonzero(keep).tolist() == [0, 1, 2, 3, 4] + list(range(18, 45))
    # topk: the 32 highest losses are all negatives (>= 1.0 > 0.5): idx 13..44, no positive
    keep = ohem_keep(labels, loss, 32, 0.25, mode="topk")
    assert np.flatnonzero(keep).tolist() == list(range(13, 45))


def test_ohem_100_hard_positives_200_easy_negatives_both_modes():
    # positives idx 0..99 with loss 2.00 + i/100 (hardest last); negatives idx 100..299 all loss 0.5 (ties)
    labels = np.array([1] * 100 + [0] * 200)
    loss = np.array([2.0 + i / 100 for i in range(100)] + [0.5] * 200)
    weights = np.ones((300, 4))
    # ratio (Sec. 5.1, 1:3): the 32 hardest positives (idx 68..99) + 96 negatives (ties -> lower index: 100..195)
    lab, w = ohem_labels(labels, weights, loss, 128, 0.25, mode="ratio")
    assert np.flatnonzero(lab == 1).tolist() == list(range(68, 100))
    assert np.flatnonzero(lab == 0).tolist() == list(range(100, 196))
    assert (lab == -1).sum() == 300 - 128 and np.array_equal(w[:, 0], (lab >= 0).astype(float))
    # topk (R-FCN): the 128 highest losses: all 100 positives + 28 negatives (ties -> idx 100..127)
    lab, w = ohem_labels(labels, weights, loss, 128, 0.25, mode="topk")
    assert np.flatnonzero(lab == 1).tolist() == list(range(100))
    assert np.flatnonzero(lab == 0).tolist() == list(range(100, 128))
    assert np.array_equal(w[:, 0], (lab >= 0).astype(float))


def test_ohem_modes_multi_image_and_ignored_rois():
    # image 0: idx 0..4, image 1: idx 5..9; B = 3, fg_fraction 1/3 -> ratio quota 1 positive per image
    img = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    labels = np.array([1, 0, 0, 0, -1, 1, 1, 1, 0, 0])
    loss = np.array([0.2, 0.9, 0.1, 0.5, 9.9, 0.7, 0.8, 0.6, 0.1, 0.2])
    w = np.ones((10, 4))
    # ratio: img 0 -> positive 0, negatives 1 (0.9) and 3 (0.5); img 1 -> positive 6 (0.8), negatives 9, 8
    assert ohem_labels(labels, w, loss, 3, 1 / 3, img, mode="ratio")[0].tolist() == \
        [1, 0, -1, 0, -1, -1, 1, -1, 0, 0]
    # topk: img 0 -> 1 (0.9), 3 (0.5), 0 (0.2); the ignored RoI 4 (loss 9.9) is never kept;
    #       img 1 -> 6 (0.8), 5 (0.7), 7 (0.6): three positives, no negative
    lab, wt = ohem_labels(labels, w, loss, 3, 1 / 3, img, mode="topk")
    assert lab.tolist() == [1, 0, -1, 0, -1, 1, 1, 1, -1, -1]
    assert wt[:, 0].tolist() == [1, 1, 0, 1, 0, 1, 1, 1, 0, 0]
    # B < 0 keeps every labelled RoI in both modes
    for mode in ("ratio", "topk"):
        assert ohem_keep(labels, loss, -1, 0.25, img, mode=mode).tolist() == (labels >= 0).tolist()


def test_ohem_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown OHEM mode 'hardest'"):
        ohem_keep([1, 0], [0.1, 0.2], 2, 0.5, mode="hardest")
    with pytest.raises(ValueError, match="unknown OHEM mode"):
        ohem_labels([1, 0], np.ones((2, 4)), [0.1, 0.2], 2, 0.5, mode="TopK")


def test_ohem_paper_ratio_one_to_three():
    """Sec. 5.1: positives : negatives = 1 : 3 (rcnn.ohem_fg_fraction = 0.25, 128 RoIs per image)."""
    cfg = Config().rcnn
    assert (cfg.ohem_batch_size, cfg.ohem_fg_fraction) == (128, 0.25)
    rng = np.random.default_rng(0)
    labels = rng.choice([0, 1], 300)
    keep = ohem_keep(labels, rng.random(300), cfg.ohem_batch_size, cfg.ohem_fg_fraction)
    assert (keep & (labels == 1)).sum() == 32 and (keep & (labels == 0)).sum() == 96
    assert fg_quota(128, 0.25) * 3 == 128 - fg_quota(128, 0.25)


def test_ohem_losses_match_reference():
    rng = np.random.default_rng(1)
    R = 50
    logits = rng.normal(size=(R, 2))
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.choice([-1, 0, 1], R)
    pred, targets = rng.normal(size=(R, 4)) * 2, rng.normal(size=(R, 4))
    weights = (labels == 1)[:, None] * np.ones((R, 4))
    for sigma in (1.0, 3.0):
        cls, box = ohem_losses(prob, pred, labels, targets, weights, sigma)
        rc, rb = losses_reference(prob, pred, labels, targets, weights, sigma)
        np.testing.assert_allclose(cls, rc)
        np.testing.assert_allclose(box, rb)
    assert smooth_l1(np.array([0.5, -2.0])).tolist() == [0.125, 1.5]


def test_ohem_ranks_by_classification_plus_box_loss():
    # RoI 0 has the smaller classification loss but a large box loss -> it is the harder positive
    prob = np.array([[0.1, 0.9], [0.4, 0.6], [0.9, 0.1], [0.8, 0.2]])
    labels = np.array([1, 1, 0, 0])
    pred = np.array([[3.0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    w = np.array([[1.0] * 4, [1.0] * 4, [0.0] * 4, [0.0] * 4])
    cls, box = ohem_losses(prob, pred, labels, np.zeros((4, 4)), w)
    assert cls[0] < cls[1] and cls[0] + box[0] > cls[1] + box[1]
    lab, _ = ohem_labels(labels, w, cls + box, 4, 0.25)
    assert lab.tolist() == [1, -1, 0, 0]


def test_subsample_labels_quota_and_determinism():
    rng = np.random.default_rng(0)
    labels = rng.choice([-1, 0, 1], 5000, p=[0.2, 0.7, 0.1])
    out = subsample_labels(labels, 256, 0.5, np.random.default_rng(3))
    assert (out == 1).sum() == 128 and (out == 0).sum() == 128
    assert np.all(labels[out == 1] == 1) and np.all(labels[out == 0] == 0)     # a subset, same labels
    np.testing.assert_array_equal(out, subsample_labels(labels, 256, 0.5, np.random.default_rng(3)))
    assert not np.array_equal(out, subsample_labels(labels, 256, 0.5, np.random.default_rng(4)))
    # few positives: all kept, negatives fill the batch
    few = np.array([1, 1, 1] + [0] * 100 + [-1] * 5)
    out = subsample_labels(few, 20, 0.5, np.random.default_rng(0))
    assert (out == 1).sum() == 3 and (out == 0).sum() == 17 and (out[-5:] == -1).all()
    # batch_size < 0 keeps everything
    np.testing.assert_array_equal(subsample_labels(few, -1, 0.5, np.random.default_rng(0)), few)


def test_subsample_labels_is_uniform():
    """Each positive is drawn with the same probability (no positional bias)."""
    labels = np.array([1] * 20 + [0] * 20)
    rng = np.random.default_rng(0)
    counts = sum((subsample_labels(labels, 10, 0.5, rng) == 1).astype(int) for _ in range(2000))
    np.testing.assert_allclose(counts[:20] / 2000, 0.25, atol=0.05)
