"""Proposal targets and OHEM on the device (symbols.proposal_target, symbols.ohem) against the numpy functions
(rfcn_face.targets.proposal_target_numpy / ohem_numpy) on random batches of two images with ignored faces and
padding rows, and on the literal cases of tests/test_proposals.py and tests/test_sampling.py; the keyed RoI
sampler (rfcn_face.sampling.subsample_labels_keyed) by hand."""
import math

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from rfcn_face.proposals import ProposalTargetParams, proposal_targets as np_proposal_targets  # noqa: E402
from rfcn_face.sampling import ohem_losses as np_ohem_losses, sampling_keys, subsample_labels_keyed  # noqa: E402
from rfcn_face.targets import ohem_numpy, proposal_target_numpy  # noqa: E402
from symbols.ohem import ohem_select  # noqa: E402
from symbols.proposal_target import proposal_targets  # noqa: E402

nd = mx.nd


# ------------------------------------------------------------------------------------------------ keyed sampler
def test_keyed_sampler_literal():
    labels = np.array([1, 1, 1, 0, 0, 0, -1])
    keys = np.array([5, 1, 3, 0, 6, 2, 4], np.float32)
    # batch 4, fg 0.5 -> the 2 positives with the smallest keys (idx 1: 1, idx 2: 3), then 2 negatives (3: 0, 5: 2)
    assert subsample_labels_keyed(labels, 4, 0.5, keys).tolist() == [-1, 1, 1, 0, -1, 0, -1]
    # few positives: the batch fills with negatives; quota 0 -> only negatives
    assert subsample_labels_keyed([1, 0, 0, 0, 0], 3, 0.5, [9, 4, 3, 2, 1]).tolist() == [1, -1, -1, 0, 0]
    assert subsample_labels_keyed([1, 0, 0, 0, 0], 3, 0.0, [9, 4, 3, 2, 1]).tolist() == [-1, -1, 0, 0, 0]
    # equal keys: lower index first; batch < 0 keeps everything
    assert subsample_labels_keyed([0, 0, 0, 0], 2, 0.5, [1, 0, 1, 0]).tolist() == [-1, 0, -1, 0]
    assert subsample_labels_keyed([0, 0, 0, 0], 1, 0.5, [1, 1, 1, 1]).tolist() == [0, -1, -1, -1]
    assert subsample_labels_keyed(labels, -1, 0.5, keys).tolist() == labels.tolist()
    with pytest.raises(ValueError, match="3 sampling keys for 7 labels"):
        subsample_labels_keyed(labels, 4, 0.5, keys[:3])


def test_sampling_keys_are_a_keyed_permutation():
    a = sampling_keys(np.random.default_rng([0, 4, 1, 7]), 300)
    assert a.dtype == np.float32 and sorted(a.tolist()) == list(range(300))
    np.testing.assert_array_equal(a, sampling_keys(np.random.default_rng([0, 4, 1, 7]), 300))
    assert not np.array_equal(a, sampling_keys(np.random.default_rng([0, 4, 1, 8]), 300))


def test_keyed_minibatch_of_proposal_targets_literal():
    """tests/test_proposals.py's hand-built image with keys instead of a Generator: labels before sampling
    [1, 0, -1, -1, 0, 1, -1, 1]; batch 4, fg 0.25 -> the positive with the smallest key (row 7), both negatives."""
    gt = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [80, 80, 90, 90.0]])
    ignore = np.array([False, True, False])
    rois = np.array([[0, 0, 10, 12], [5, 0, 15, 10], [50, 50, 60, 62], [52, 52, 54, 54], [100, 100, 120, 120]])
    keys = np.array([7, 6, 5, 4, 3, 2, 1, 0], np.float32)
    _, lab, _, w = np_proposal_targets(rois, gt, ignore, batch_rois=4, fg_fraction=0.25, keys=keys)
    assert lab.tolist() == [-1, 0, -1, -1, 0, -1, -1, 1] and w.sum() == 4
    got = _device_targets(rois, np.concatenate([gt, ignore[:, None]], 1)[None], keys[None],
                          ProposalTargetParams(batch_rois=4, fg_fraction=0.25, stds=(1, 1, 1, 1)))
    assert got[1].tolist() == [-1, 0, -1, -1, 0, -1, -1, 1]


# ------------------------------------------------------------------------------------------------ proposal targets
def _device_targets(rois, gt, keys, params):
    """rois (B, R, 4) or (R, 4) for one image; gt (B, M, 5)."""
    rois = np.asarray(rois, np.float32).reshape(len(gt), -1, 4)
    B, R = rois.shape[:2]
    r5 = np.concatenate([np.repeat(np.arange(B, dtype=np.float32), R)[:, None], rois.reshape(-1, 4)], 1)
    k = None if keys is None else nd.array(keys)
    out = proposal_targets(nd, nd.array(r5), nd.array(np.asarray(gt, np.float32)), k, rois_per_image=R,
                           params=params)
    return [o.asnumpy() for o in out]


def test_device_targets_hand_built():
    """tests/test_proposals.py::test_proposal_targets_hand_built on the device: the same literal labels and target."""
    gt = np.array([[0, 0, 10, 10, 0], [50, 50, 60, 60, 1], [80, 80, 90, 90, 0], [0, 0, 0, 0, -1.0]])  # + padding
    rois = np.array([[0, 0, 10, 12], [5, 0, 15, 10], [50, 50, 60, 62], [52, 52, 54, 54], [100, 100, 120, 120]])
    r, labels, targets, w = _device_targets(rois, gt[None], None, ProposalTargetParams(stds=(1, 1, 1, 1)))
    assert labels.tolist() == [1, 0, -1, -1, 0, 1, -1, 1, -1]
    np.testing.assert_allclose(targets[0], [0, -1 / 12, 0, math.log(10 / 12)], atol=1e-6)
    assert w.sum() == 12 and r[:, 0].tolist() == [0] * 9 and r[5:, 1:].tolist() == gt[:, :4].tolist()


def _random_batch(rng, B=2, R=60, M=12):
    gt = np.zeros((B, M, 5))
    rois = np.zeros((B, R, 4))
    for b in range(B):
        n = int(rng.integers(0, M + 1))
        size = rng.uniform(4, 80, (n, 2))
        xy = rng.uniform(-10, 200, (n, 2))
        gt[b, :n, :4] = np.concatenate([xy, xy + size], 1)
        gt[b, :n, 4] = rng.random(n) < 0.25                               # ignored faces
        if n > 2:
            gt[b, 0, 2] = gt[b, 0, 0]                                     # a degenerate face
            gt[b, 1] = gt[b, 2]                                           # a duplicated face (equal IoUs)
        gt[b, n:] = [0, 0, 0, 0, -1]                                      # padding rows
        jit = gt[b, rng.integers(0, max(n, 1), R // 2), :4] + rng.normal(0, 4, (R // 2, 4)) if n else \
            rng.uniform(0, 100, (R // 2, 4))
        xy = rng.uniform(0, 200, (R - R // 2, 2))
        rois[b] = np.concatenate([jit, np.concatenate([xy, xy + rng.uniform(1, 90, xy.shape)], 1)])
        rois[b, :, 2:] = np.maximum(rois[b, :, 2:], rois[b, :, :2])
        rois[b, -3:] = rois[b, :3]                                        # duplicated RoIs (cyclic padding)
    return rois.astype(np.float32), gt.astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_device_targets_equal_numpy_on_random_batches(seed):
    rng = np.random.default_rng(seed)
    rois, gt = _random_batch(rng)
    B, R, M = rois.shape[0], rois.shape[1], gt.shape[1]
    r5 = np.concatenate([np.repeat(np.arange(B), R)[:, None], rois.reshape(-1, 4)], 1)
    keys = np.stack([sampling_keys(np.random.default_rng([seed, b]), R + M) for b in range(B)])
    for batch_rois, fg_iou, lo in ((-1, 0.5, 0.0), (32, 0.5, 0.1), (16, 0.6, 0.0)):
        params = ProposalTargetParams(fg_iou=fg_iou, bg_iou_lo=lo, batch_rois=batch_rois, fg_fraction=0.25)
        ref = proposal_target_numpy(r5, gt, keys=keys, **params.kwargs())
        got = _device_targets(rois, gt, keys, params)
        np.testing.assert_array_equal(got[0], ref[0].astype(np.float32))
        np.testing.assert_array_equal(got[1], ref[1])
        np.testing.assert_allclose(got[2], ref[2], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got[3], ref[3])
        assert (ref[1] == 1).sum() > 3 and (ref[1] == 0).sum() > 3
        if batch_rois > 0:
            for b in range(B):
                lab = ref[1][b * (R + M):(b + 1) * (R + M)]
                assert (lab == 1).sum() <= round(0.25 * batch_rois) and (lab >= 0).sum() <= batch_rois


def test_device_targets_in_a_hybridized_block():
    from mxnet.gluon import HybridBlock

    class Targets(HybridBlock):
        def hybrid_forward(self, F, rois, gt, keys):
            return proposal_targets(F, rois, gt, keys, rois_per_image=60, params=ProposalTargetParams(batch_rois=24))
    rng = np.random.default_rng(11)
    rois, gt = _random_batch(rng)
    r5 = np.concatenate([np.repeat(np.arange(2), 60)[:, None], rois.reshape(-1, 4)], 1).astype(np.float32)
    keys = np.stack([sampling_keys(rng, 72) for _ in range(2)])
    blk = Targets()
    blk.hybridize()
    got = [o.asnumpy() for o in blk(nd.array(r5), nd.array(gt), nd.array(keys))]
    ref = proposal_target_numpy(r5, gt, keys=keys, **ProposalTargetParams(batch_rois=24).kwargs())
    np.testing.assert_array_equal(got[1], ref[1])
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ OHEM
def _device_ohem(cls, box, labels, targets, weights, B, batch_size, fg_fraction, mode):
    out = ohem_select(nd, nd.array(cls), nd.array(box), nd.array(labels), nd.array(targets), nd.array(weights),
                      num_images=B, batch_size=batch_size, fg_fraction=fg_fraction, mode=mode)
    return [o.asnumpy() for o in out]


@pytest.mark.parametrize("mode", ["ratio", "topk"])
@pytest.mark.parametrize("seed", range(5))
def test_device_ohem_equals_numpy_on_random_batches(seed, mode):
    rng = np.random.default_rng(seed)
    B, n = 2, int(rng.integers(20, 200))
    R = B * n
    cls = rng.normal(0, 2, (R, 2)).astype(np.float32)
    box = rng.normal(0, 0.5, (R, 4)).astype(np.float32)
    labels = rng.choice([-1, 0, 0, 0, 1], R).astype(np.float32)
    targets = rng.normal(0, 0.5, (R, 4)).astype(np.float32)
    weights = np.repeat((labels == 1)[:, None], 4, 1).astype(np.float32)
    dup = rng.integers(0, R, 15)                                          # exact ties: duplicated RoIs
    for a in (cls, box, labels, targets, weights):
        a[(dup + 1) % R] = a[dup]
    rois = np.repeat(np.arange(B), n)[:, None].astype(np.float32)
    prob = nd.softmax(nd.array(cls), axis=-1).asnumpy()
    for batch_size in (-1, 8, 32, 128):
        ref = ohem_numpy(prob, box, labels, targets, weights, rois, batch_size=batch_size, fg_fraction=0.25,
                         mode=mode)
        got = _device_ohem(cls, box, labels, targets, weights, B, batch_size, 0.25, mode)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_array_equal(got[1], ref[1])


def test_device_ohem_losses_equal_numpy():
    from symbols.ohem import ohem_losses
    rng = np.random.default_rng(4)
    cls, box = rng.normal(0, 3, (50, 2)), rng.normal(0, 2, (50, 4))
    labels = rng.choice([-1, 0, 1], 50)
    targets, weights = rng.normal(0, 1, (50, 4)), rng.random((50, 4))
    z = np.exp(cls - cls.max(1, keepdims=True))
    c, b = np_ohem_losses(z / z.sum(1, keepdims=True), box, labels, targets, weights)
    got = ohem_losses(nd, nd.array(cls, dtype="float64"), nd.array(box, dtype="float64"), nd.array(labels),
                      nd.array(targets, dtype="float64"), nd.array(weights, dtype="float64")).asnumpy()
    np.testing.assert_allclose(got, c + b, rtol=1e-12, atol=1e-12)


def _logits_for_losses(labels, loss):
    """Head outputs whose OHEM loss is log 2 + loss for labelled RoIs: logits (0, 0), one box delta d with
    smooth_l1(d) = loss (0.5 d^2 below 0.5, d - 0.5 above)."""
    loss = np.asarray(loss, np.float64)
    d = np.where(loss < 0.5, np.sqrt(2 * loss), loss + 0.5)
    box = np.zeros((len(loss), 4))
    box[:, 0] = d
    weights = np.zeros((len(loss), 4))
    weights[:, 0] = 1
    return np.zeros((len(loss), 2)), box, np.zeros((len(loss), 4)), weights


def _device_ohem_literal(labels, loss, batch_size, fg_fraction, images, mode):
    cls, box, targets, weights = _logits_for_losses(labels, loss)
    lab, w = _device_ohem(cls, box, np.asarray(labels, np.float32), targets, weights, images, batch_size,
                          fg_fraction, mode)
    return lab.astype(int).tolist(), w[:, 0].tolist()


def test_device_ohem_literal_cases():
    """The literal cases of tests/test_sampling.py, run through the device OHEM."""
    labels = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, -1]
    loss = [0.1, 0.9, 0.5, 0.3, 0.8, 0.2, 0.7, 0.6, 0.05, 0.4, 0.01, 9.9]
    lab, w = _device_ohem_literal(labels, loss, 8, 0.25, 1, "ratio")
    assert lab == [-1, 1, 1, 0, 0, 0, 0, 0, -1, 0, -1, -1] and w == [0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0]
    lab, _ = _device_ohem_literal([1] + [0] * 9, [0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 8, 0.25, 1, "ratio")
    assert lab == [1, -1, -1, 0, 0, 0, 0, 0, 0, 0]
    lab, _ = _device_ohem_literal([1, 0, 0, 1, 0, 0], [1.0, 2.0, 3.0, 1.0, 3.0, 2.0], 2, 0.5, 2, "ratio")
    assert lab == [1, -1, 0, 1, 0, -1]                                    # per image
    # 5 positives + 40 negatives, B = 32: ratio keeps all 5 + negatives 18..44; topk only negatives 13..44
    labels5 = [1] * 5 + [0] * 40
    loss5 = [0.1, 0.2, 0.3, 0.4, 0.5] + [1.0 + 0.01 * k for k in range(40)]
    lab, _ = _device_ohem_literal(labels5, loss5, 32, 0.25, 1, "ratio")
    assert [i for i, v in enumerate(lab) if v >= 0] == [0, 1, 2, 3, 4] + list(range(18, 45))
    lab, _ = _device_ohem_literal(labels5, loss5, 32, 0.25, 1, "topk")
    assert [i for i, v in enumerate(lab) if v >= 0] == list(range(13, 45))
    # 100 hard positives + 200 easy negatives with equal losses, B = 128 (ties -> lower index)
    labels3 = [1] * 100 + [0] * 200
    loss3 = [2.0 + i / 100 for i in range(100)] + [0.5] * 200
    lab, w = _device_ohem_literal(labels3, loss3, 128, 0.25, 1, "ratio")
    lab = np.array(lab)
    assert np.flatnonzero(lab == 1).tolist() == list(range(68, 100))
    assert np.flatnonzero(lab == 0).tolist() == list(range(100, 196)) and sum(w) == 128
    lab, _ = _device_ohem_literal(labels3, loss3, 128, 0.25, 1, "topk")
    lab = np.array(lab)
    assert np.flatnonzero(lab == 1).tolist() == list(range(100))
    assert np.flatnonzero(lab == 0).tolist() == list(range(100, 128))
    # two images, ignored RoI never kept, B < 0 keeps every labelled RoI
    labels2 = [1, 0, 0, 0, -1, 1, 1, 1, 0, 0]
    loss2 = [0.2, 0.9, 0.1, 0.5, 9.9, 0.7, 0.8, 0.6, 0.1, 0.2]
    assert _device_ohem_literal(labels2, loss2, 3, 1 / 3, 2, "ratio")[0] == [1, 0, -1, 0, -1, -1, 1, -1, 0, 0]
    assert _device_ohem_literal(labels2, loss2, 3, 1 / 3, 2, "topk")[0] == [1, 0, -1, 0, -1, 1, 1, 1, -1, -1]
    for mode in ("ratio", "topk"):
        assert _device_ohem_literal(labels2, loss2, -1, 0.25, 2, mode)[0] == labels2
    with pytest.raises(ValueError, match="unknown OHEM mode 'hardest'"):
        _device_ohem_literal(labels2, loss2, 3, 0.25, 2, "hardest")
