"""The generic RPN classification loss (soft labels, weights, focal) and the mining operator: values against
the formulas, finite-difference gradients on mx.nd, no gradient through targets / weights, the max-IoU
normalisation equal to today's mean, and the CustomOp (forward = numpy, backward = zeros, in a graph)."""
from dataclasses import asdict

import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import HybridBlock

import operators.mining  # noqa: F401  (registers rfcn_mining_target)
from operators.base import reset_seed_streams
from operators.mining import MiningTargetProp, mining_target_kwargs
from rfcn_face.anchors import AnchorSet
from rfcn_face.assigners import AssignParams, assigner_from_spec
from rfcn_face.config import load_config
from rfcn_face.sampling import RPNSampling
from rfcn_face.targets import anchor_target_numpy
from symbols.detection_losses import label_accuracy, rpn_classification_loss, softmax_cross_entropy

F64 = "float64"


def np_loss(logits, t, w, kind, alpha=0.25, gamma=2.0):
    z = logits - logits.max(axis=1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p0, p1 = np.exp(lp[:, 0]), np.exp(lp[:, 1])
    if kind == "softmax":
        loss = -(t * lp[:, 1] + (1 - t) * lp[:, 0])
    else:
        loss = -(alpha * t * p0 ** gamma * lp[:, 1] + (1 - alpha) * (1 - t) * p1 ** gamma * lp[:, 0])
    return float(np.sum(w * loss))


def inputs(seed, n=9):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.5, (n, 2))
    t = rng.random(n)
    t[:3] = [0.0, 1.0, 1.0]                                   # hard labels among the soft ones
    w = rng.random(n) / n
    w[3] = 0.0                                                # an anchor outside the loss
    return logits, t, w


@pytest.mark.parametrize("kind,alpha,gamma", [("softmax", 0.25, 2.0), ("focal", 0.25, 2.0), ("focal", 0.6, 0.5),
                                              ("focal", 0.5, 0.0)])
def test_value_and_finite_difference_gradient(kind, alpha, gamma):
    logits, t, w = inputs(1)
    x = mx.nd.array(logits, dtype=F64)
    x.attach_grad()
    tt, ww = mx.nd.array(t, dtype=F64), mx.nd.array(w, dtype=F64)
    tt.attach_grad()
    ww.attach_grad()
    with mx.autograd.record():
        loss = rpn_classification_loss(mx.nd, x, tt, ww, kind, alpha, gamma)
    loss.backward()
    assert loss.asscalar() == pytest.approx(np_loss(logits, t, w, kind, alpha, gamma), rel=1e-12)
    eps, num = 1e-6, np.zeros_like(logits)
    for i in np.ndindex(*logits.shape):
        up, dn = logits.copy(), logits.copy()
        up[i] += eps
        dn[i] -= eps
        num[i] = (np_loss(up, t, w, kind, alpha, gamma) - np_loss(dn, t, w, kind, alpha, gamma)) / (2 * eps)
    np.testing.assert_allclose(x.grad.asnumpy(), num, rtol=1e-6, atol=1e-10)
    assert np.all(x.grad.asnumpy()[3] == 0)                   # weight 0: no gradient
    # no gradient through the targets (c) and the weights (r, IoU weights): they are constants
    assert np.all(tt.grad.asnumpy() == 0) and np.all(ww.grad.asnumpy() == 0)


def test_soft_label_gradient_vanishes_where_the_prediction_equals_the_target():
    # softmax CE against [1 - c, c]: d/dz1 = w (p - c); zero when p = c
    c = np.array([0.2, 0.5, 0.95])
    logits = np.stack([np.zeros(3), np.log(c / (1 - c))], axis=1)
    x = mx.nd.array(logits, dtype=F64)
    x.attach_grad()
    with mx.autograd.record():
        loss = rpn_classification_loss(mx.nd, x, mx.nd.array(c, dtype=F64), mx.nd.ones(3, dtype=F64))
    loss.backward()
    np.testing.assert_allclose(x.grad.asnumpy(), 0, atol=1e-12)
    # and the loss there is the entropy of the soft label, not 0
    assert loss.asscalar() == pytest.approx(float(-np.sum(c * np.log(c) + (1 - c) * np.log(1 - c))))


def test_focal_reduces_to_cross_entropy_and_down_weights_easy_anchors():
    logits, t, w = inputs(2)
    t = (t > 0.5).astype(float)
    args = [mx.nd.array(a, dtype=F64) for a in (logits, t, w)]
    ce = rpn_classification_loss(mx.nd, *args, kind="softmax").asscalar()
    assert rpn_classification_loss(mx.nd, *args, kind="focal", alpha=0.5, gamma=0.0).asscalar() == \
        pytest.approx(0.5 * ce, rel=1e-12)
    easy = mx.nd.array([[-6.0, 6.0]], dtype=F64)              # a confident, correct positive
    one = mx.nd.ones(1, dtype=F64)
    assert rpn_classification_loss(mx.nd, easy, one, one, "focal", 0.25, 2.0).asscalar() < \
        1e-4 * rpn_classification_loss(mx.nd, easy, one, one, "softmax").asscalar()
    with pytest.raises(ValueError, match="unknown RPN classification loss"):
        rpn_classification_loss(mx.nd, *args, kind="bce")


def test_weights_one_over_n_are_todays_mean_over_the_sampled_anchors():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (50, 2)).astype(np.float32)
    labels = rng.choice([-1, 0, 1], 50).astype(np.float32)
    n = (labels >= 0).sum()
    x1, x2 = mx.nd.array(logits), mx.nd.array(logits)
    x1.attach_grad()
    x2.attach_grad()
    with mx.autograd.record():
        today, ok, valid = softmax_cross_entropy(mx.nd, x1, mx.nd.array(labels))
        generic = rpn_classification_loss(mx.nd, x2, mx.nd.array(np.maximum(labels, 0)),
                                          mx.nd.array((labels >= 0) / n))
    today.backward()
    generic.backward()
    assert generic.asscalar() == pytest.approx(today.asscalar(), rel=1e-6)
    np.testing.assert_allclose(x2.grad.asnumpy(), x1.grad.asnumpy(), rtol=1e-5, atol=1e-8)
    ok2, valid2 = label_accuracy(mx.nd, x2, mx.nd.array(labels))
    assert (ok2.asscalar(), valid2.asscalar()) == (ok.asscalar(), valid.asscalar())


def test_loss_works_on_symbols():
    x, t, w = mx.sym.var("x"), mx.sym.var("t"), mx.sym.var("w")
    for kind in ("softmax", "focal"):
        out = rpn_classification_loss(mx.sym, x, t, w, kind)
        logits, tv, wv = inputs(4)
        ex = out.bind(mx.cpu(), {"x": mx.nd.array(logits, dtype=F64), "t": mx.nd.array(tv, dtype=F64),
                                 "w": mx.nd.array(wv, dtype=F64)})
        assert ex.forward()[0].asscalar() == pytest.approx(np_loss(logits, tv, wv, kind), rel=1e-10)


# ------------------------------------------------------------------------------------------------ operator
ASET = AnchorSet(8, scales=(16, 32, 64), shifts="16x3")       # 6 anchors per location
KW = dict(stride="8", scales="16,32,64", ratios="1", shifts="16x3", pos_iou="0.5", neg_iou="0.3",
          allowed_border="0", ignore_iof="0.5", cls_loss="softmax", batch_size="64", fg_fraction="0.5", seed="3",
          bbox_means="0,0,0,0", bbox_stds="1,1,1,1")
SETTINGS = {"hambox": dict(k="5", t="0.4"), "cleanliness": dict(alpha="0.75", gamma="1.0", top_n="8", clamp="0.99"),
            "max_iou": {}}


def op_inputs(seed, B=2, H=8, W=8):
    rng = np.random.default_rng(seed)
    A = ASET.num_per_location
    gt = np.zeros((B, 5, 5), np.float32)
    for b in range(B):
        xy = rng.uniform(0, 50, (5, 2))
        wh = rng.uniform(4, 30, (5, 2))
        gt[b, :, :4] = np.concatenate([xy, xy + wh], 1)
        gt[b, :, 4] = [0, 0, 0, 1, -1]
    return {"rpn_bbox": (0.1 * rng.normal(size=(B, 4 * A, H, W))).astype(np.float32),
            "rpn_cls_prob": rng.random((B, H * W * A)).astype(np.float32), "gt": gt,
            "im_info": np.array([[64, 64, 1]] * B, np.float32)}


@pytest.mark.parametrize("strategy", ["hambox", "cleanliness", "max_iou"])
def test_operator_forward_equals_numpy_and_backward_is_zero(strategy):
    x = op_inputs(5)
    kw = dict(KW, strategy=strategy, **SETTINGS[strategy])
    spec = {"type": strategy, **{k: float(v) if "." in v else int(v) for k, v in SETTINGS[strategy].items()}}
    assigner = assigner_from_spec(spec, AssignParams(0.5, 0.3, 0, 0.5), RPNSampling(64, 0.5))
    H, W = x["rpn_bbox"].shape[2:]
    expected = anchor_target_numpy((H, W), x["gt"], x["im_info"], ASET, assigner, rng=np.random.default_rng(3),
                                   rpn_bbox=x["rpn_bbox"], face_prob=x["rpn_cls_prob"])
    arrays = [mx.nd.array(v) for v in x.values()]
    for a in arrays:
        a.attach_grad()
        a.grad[:] = 7.0
    reset_seed_streams()
    with mx.autograd.record():
        outs = mx.nd.Custom(*arrays, op_type="rfcn_mining_target", **kw)
    assert len(outs) == 6
    for o, e in zip(outs, expected):
        np.testing.assert_allclose(o.asnumpy(), np.asarray(e, np.float32).reshape(o.shape), rtol=1e-5, atol=1e-6)
    mx.autograd.backward(outs)
    for a in arrays:
        assert np.all(a.grad.asnumpy() == 0)
    lab, w = expected[0], expected[2]
    assert (lab == 1).sum() > 0 and (lab == 0).sum() > 0 and np.all((w > 0) == (lab >= 0))


class _Net(HybridBlock):
    """A conv RPN on a random image: face probabilities via symbols.rfcn.rpn_face_scores, the mining op, the
    generic loss. The loss gradient reaches the convs only through the logits (no gradient through c / w)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.cls = mx.gluon.nn.Conv2D(12, 3, padding=1, strides=8)
            self.box = mx.gluon.nn.Conv2D(24, 3, padding=1, strides=8)

    def hybrid_forward(self, F, img, gt, info):
        from symbols.rfcn import rpn_face_scores, to_anchor_order
        cls, box = self.cls(img), self.box(img)
        prob = rpn_face_scores(F, cls)
        lab, t, w, bt, bw, matched = F.Custom(box, prob, gt, info, op_type="rfcn_mining_target",
                                              **dict(KW, strategy="cleanliness", **SETTINGS["cleanliness"]))
        a_cls = F.reshape(to_anchor_order(F, cls, 2), (-1, 2))
        return rpn_classification_loss(F, a_cls, F.reshape(t, (-1,)), F.reshape(w, (-1,)))


def test_operator_inside_a_hybridized_network():
    x = op_inputs(6, B=1)
    net = _Net()
    net.initialize(mx.init.Normal(0.1))
    net.hybridize()
    img = mx.nd.array(np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32))
    with mx.autograd.record():
        loss = net(img, mx.nd.array(x["gt"]), mx.nd.array(x["im_info"]))
    loss.backward()
    assert np.isfinite(loss.asscalar()) and loss.asscalar() > 0
    assert np.abs(net.cls.weight.grad().asnumpy()).sum() > 0
    assert np.all(net.box.weight.grad().asnumpy() == 0)       # the box branch only feeds the targets


def test_operator_kwargs_from_config():
    cfg = load_config("experiments/mining/final_cleanliness.yaml", preset="smoke")
    kw = mining_target_kwargs(cfg)
    assert all(isinstance(v, str) for v in kw.values())
    assert (kw["strategy"], kw["top_n"], kw["alpha"], kw["negatives"], kw["cls_loss"]) == \
        ("cleanliness", "30", "0.75", "all", "focal")
    prop = MiningTargetProp(**kw)
    a = prop.assigner
    assert (a.name, a.cls_loss) == ("cleanliness", "focal")
    assert {"type": a.name, **asdict(a.settings)} == cfg.rpn.assign
    assert prop.anchor_set == cfg.anchor_set() and a.params == AssignParams.from_config(cfg)
    assert (a.sampling.batch_size, a.sampling.fg_fraction) == (cfg.rpn.batch_size, cfg.rpn.fg_fraction)
    assert MiningTargetProp(strategy="hc", top_n="5").assigner.settings.top_n == 5
    assert MiningTargetProp().assigner.name == "max_iou"
    with pytest.raises(ValueError, match="k is not a setting of strategy 'hc'"):
        MiningTargetProp(strategy="hc", k="5")


# ------------------------------------------------------------------------------------------------ focal prior init
def test_focal_prior_initialises_the_rpn_face_logit_and_nothing_else():
    """rpn.cls_loss: focal starts every anchor's face probability at rpn.focal_prior (RetinaNet's prior-probability
    init of the face logit); the softmax RPN keeps R-FCN's zero bias, and the prior draws no random number, so every
    other parameter is initialised exactly as before."""
    from symbols.rfcn import build_detector, rpn_face_scores
    from symbols.weights import init_detector

    def built(*over):
        cfg = load_config("experiments/table1/13_final.yaml", preset="demo", overrides=list(over))
        net = build_detector(cfg)
        mx.random.seed(0)
        init_detector(net, "", zero_residual=cfg.model.zero_init_residual)
        return net, {k: v.data().asnumpy() for k, v in net.collect_params().items()}

    soft, p_soft = built()
    focal, p_focal = built("rpn.cls_loss=focal", "rpn.focal_prior=0.02")
    bias = focal.rpn_head.cls.bias.data().asnumpy()
    A = len(bias) // 2
    np.testing.assert_allclose(bias[1::2], np.full(A, np.log(0.02 / 0.98)), rtol=1e-6)     # face logits
    assert np.all(bias[0::2] == 0) and np.all(soft.rpn_head.cls.bias.data().asnumpy() == 0)
    assert p_soft.keys() == p_focal.keys()
    changed = [k for k in p_soft if not np.array_equal(p_soft[k], p_focal[k])]
    assert changed == [soft.rpn_head.cls.bias.name]
    # on an image (demo preset: trained BatchNorms, zero-initialised residual branches) every anchor starts near 0.02
    img = mx.nd.array(np.random.default_rng(0).normal(0, 1, (1, 3, 128, 128)).astype(np.float32))
    p = rpn_face_scores(mx.nd, focal(img)[0]).asnumpy()
    assert abs(float(p.mean()) - 0.02) < 0.002 and float(p.max()) < 0.05
    q = rpn_face_scores(mx.nd, soft(img)[0]).asnumpy()
    assert abs(float(q.mean()) - 0.5) < 0.05
