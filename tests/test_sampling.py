"""Minibatch sampling and OHEM (rfcn_face.sampling)."""
import numpy as np
import pytest

from rfcn_face.config import Config
from rfcn_face.sampling import fg_quota, ohem_keep, ohem_labels, ohem_losses, smooth_l1, subsample_labels


# ------------------------------------------------------------------------------------------- references
def ohem_keep_reference(labels, loss, batch_size, fg_fraction, images):
    keep = [False] * len(labels)
    for img in sorted(set(images)):
        fg = sorted([i for i in range(len(labels)) if images[i] == img and labels[i] == 1], key=lambda i: (-loss[i], i))
        bg = sorted([i for i in range(len(labels)) if images[i] == img and labels[i] == 0], key=lambda i: (-loss[i], i))
        fg = fg[:int(round(fg_fraction * batch_size))]
        bg = bg[:batch_size - len(fg)]
        for i in fg + bg:
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
@pytest.mark.parametrize("seed", range(6))
def test_ohem_keep_matches_reference(seed):
    rng = np.random.default_rng(seed)
    R = int(rng.integers(1, 400))
    labels = rng.choice([-1, 0, 0, 0, 1], R)
    loss = np.round(rng.random(R), 1)            # coarse values: many ties
    images = rng.integers(0, 3, R)
    B = int(rng.choice([8, 32, 128]))
    got = ohem_keep(labels, loss, B, 0.25, images)
    np.testing.assert_array_equal(got, ohem_keep_reference(labels, loss, B, 0.25, images.tolist()))


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
