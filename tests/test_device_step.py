"""The training step on the device (rfcn_face.train_step, symbols.train_loss): one image's losses equal the numpy
reference chain (proposals, proposal targets, head, OHEM, losses) on random maps, and a step of the default
strategy reads nothing back between the first forward and the backward on two CPU contexts (box_nms forced, the
GPU's NMS), while a strategy that reads predictions reads each image's RPN maps once."""
import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from mxnet import autograd  # noqa: E402
from mxnet.ndarray import NDArray  # noqa: E402

from rfcn_face.config import load_config  # noqa: E402
from rfcn_face.proposals import ProposalParams, ProposalTargetParams  # noqa: E402
from rfcn_face.sampling import OHEMParams, smooth_l1  # noqa: E402
from rfcn_face.targets import face_softmax, ohem_numpy, proposal_target_numpy  # noqa: E402
from rfcn_face.testing.proposal_reference import proposals_reference  # noqa: E402
from rfcn_face.train import DetectorTraining, TrainOptions  # noqa: E402

from test_train import FINAL, ROOT, smoke_cfg  # noqa: E402

HAMBOX = str(ROOT / "experiments" / "mining" / "final_hambox.yaml")


# ------------------------------------------------------------------------------------------------ losses
def reference_losses(cfg, net, data, gt, im_info, label, bbox_target, bbox_weight):
    """The R-FCN losses of one image the slow way: numpy proposals, proposal targets and OHEM around the network's
    maps and head, the loss formulas written out in numpy (float64)."""
    rpn_cls, rpn_bbox, feat = net(mx.nd.array(data))
    cls_np, bbox_np = rpn_cls.asnumpy(), rpn_bbox.asnumpy()
    rois, _ = proposals_reference(cls_np, bbox_np, im_info, cfg.anchor_set(), ProposalParams.from_config(cfg))
    rois_t, rlab, rtgt, rw = proposal_target_numpy(rois, gt, rng=np.random.default_rng(0),
                                                   **ProposalTargetParams.from_config(cfg).kwargs())
    cls_score, bbox_pred = (x.asnumpy() for x in net.head(feat, mx.nd.array(rois_t)))
    o = OHEMParams.from_config(cfg)
    z = cls_score.astype(np.float64)
    prob = np.exp(z - z.max(1, keepdims=True))
    prob /= prob.sum(1, keepdims=True)
    rlab, rw = ohem_numpy(prob, bbox_pred, rlab, rtgt, rw, rois_t, batch_size=o.batch_size,
                          fg_fraction=o.fg_fraction, mode=o.mode)
    A = cfg.anchor_set().num_per_location
    logits = cls_np.reshape(A, 2, -1).transpose(2, 0, 1).reshape(-1, 2).astype(np.float64)   # anchor order
    deltas = bbox_np.reshape(A, 4, -1).transpose(2, 0, 1).reshape(-1, 4).astype(np.float64)

    def ce(lg, lab):
        lp = lg - lg.max(1, keepdims=True)
        lp -= np.log(np.exp(lp).sum(1, keepdims=True))
        ok = lab >= 0
        return -lp[np.flatnonzero(ok), lab[ok].astype(int)].sum() / max(ok.sum(), 1)
    return np.array([ce(logits, label), (bbox_weight * smooth_l1(deltas - bbox_target, 3.0)).sum() / cfg.rpn.batch_size,
                     ce(cls_score.astype(np.float64), rlab),
                     (rw * smooth_l1(bbox_pred.astype(np.float64) - rtgt, 1.0)).sum() / o.rois_per_image])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_device_losses_equal_the_numpy_reference_chain(seed):
    from symbols.rfcn import build_detector
    from symbols.train_loss import DetectorLoss
    from symbols.proposal import ProposalBlock
    cfg = smoke_cfg()
    rng = np.random.default_rng(seed)
    net = build_detector(cfg)
    net.initialize(mx.init.Normal(0.01))   # the RPN layers' own init scale: no degenerate (zero-width) proposals
    h, w = 96, 112
    data = rng.normal(size=(1, 3, h, w)).astype(np.float32)
    xy = rng.uniform(0, 80, (6, 2))
    gt = np.concatenate([xy, xy + rng.uniform(3, 30, (6, 2)), np.array([[0, 0, 0, 1, 0, -1]]).T], 1)[None]
    gt[0, -1, :4] = 0
    im_info = np.array([[h, w, 1.0]])
    A = cfg.anchor_set().num_per_location
    N = (h // 8) * (w // 8) * A
    label = rng.choice([-1.0, 0.0, 1.0], N, p=[0.8, 0.15, 0.05])
    bbox_target = rng.normal(0, 0.3, (N, 4))
    bbox_weight = np.repeat((label == 1)[:, None], 4, 1).astype(float)
    ref = reference_losses(cfg, net, data, gt, im_info, label, bbox_target, bbox_weight)
    block = ProposalBlock(cfg.anchor_set(), ProposalParams.from_config(cfg), "numpy")
    block.initialize()
    loss = DetectorLoss(net.head, block, ProposalTargetParams.from_config(cfg), OHEMParams.from_config(cfg),
                        cfg.rpn.batch_size)
    loss.hybridize()
    rpn_cls, rpn_bbox, feat = net(mx.nd.array(data))
    total, stats = loss(rpn_cls, rpn_bbox, feat, mx.nd.array(im_info), mx.nd.array(gt), mx.nd.array(label),
                        mx.nd.array(bbox_target), mx.nd.array(bbox_weight))
    got = stats.asnumpy()
    np.testing.assert_allclose(got[:4], ref, rtol=2e-5, atol=1e-6)
    assert total.asnumpy()[0] == pytest.approx(got[:4].sum(), rel=1e-6)
    assert got[5] == (label >= 0).sum() and got[4] <= got[5]           # rpn correct / counted anchors


# ------------------------------------------------------------------------------------------------ no read-back
def count_reads(monkeypatch, run):
    """Device -> host reads (``asnumpy`` / ``asscalar`` / ``wait_to_read``) per window from the first forward of a
    step (``DetectorStep.forward_backward`` entered) to its backward (``autograd.backward`` called)."""
    from rfcn_face.train_step import DetectorStep
    windows, state = [], {"open": False}

    def counting(name):
        real = getattr(NDArray, name)

        def f(self, *a, **k):
            if state["open"]:
                windows[-1][name] = windows[-1].get(name, 0) + 1
            return real(self, *a, **k)
        monkeypatch.setattr(NDArray, name, f)
    for name in ("asnumpy", "asscalar", "wait_to_read"):
        counting(name)
    real_fb, real_backward = DetectorStep.forward_backward, autograd.backward

    def fb(self, device_samples, iteration=None):
        windows.append({})
        state["open"] = True
        try:
            return real_fb(self, device_samples, iteration)
        finally:
            state["open"] = False

    def backward(*a, **k):
        state["open"] = False
        return real_backward(*a, **k)
    monkeypatch.setattr(DetectorStep, "forward_backward", fb)
    monkeypatch.setattr(autograd, "backward", backward)
    run()
    return windows


def test_no_read_back_between_forward_and_backward_on_two_contexts(tmp_path, monkeypatch):
    t = DetectorTraining(smoke_cfg(), TrainOptions(out=str(tmp_path / "r"), contexts=[mx.cpu(0), mx.cpu(1)],
                                                   max_iters=3, progress=False, nms_impl="box_nms"))
    windows = count_reads(monkeypatch, t.run)
    assert t.step.proposal.nms_impl == "box_nms" and len(windows) == 3
    assert windows == [{}, {}, {}]                             # 0 reads in every step


def test_a_strategy_that_reads_predictions_reads_each_images_maps_once(tmp_path, monkeypatch):
    """The positive control of the count above: hambox's host step reads rpn_cls and rpn_bbox of each image."""
    cfg = load_config(HAMBOX, preset="smoke", overrides=["train.max_size=128"])
    t = DetectorTraining(cfg, TrainOptions(out=str(tmp_path / "r"), contexts=[mx.cpu(0), mx.cpu(1)], max_iters=2,
                                           progress=False, nms_impl="box_nms"))
    windows = count_reads(monkeypatch, t.run)
    assert windows == [{"asnumpy": 4}] * 2                     # 2 images x (rpn_cls, rpn_bbox)
    assert all(r["mining"] > 0 for r in t.timer.rows)
