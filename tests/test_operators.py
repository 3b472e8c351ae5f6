"""The CustomOp adapters: forward equals the numpy function, backward gives zeros, and each works imperatively,
inside a hybridized HybridBlock and in the symbol / Module API."""
import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import HybridBlock, nn

import operators.anchor_target  # noqa: F401  (registers the ops)
import operators.ohem  # noqa: F401
import operators.nms  # noqa: F401
import operators.proposal_target  # noqa: F401
from operators.base import parse_floats, reset_seed_streams
from rfcn_face.targets import anchor_target_numpy, ohem_numpy, proposal_target_numpy
from rfcn_face.testing.proposal_reference import proposals_reference
from rfcn_face.anchors import AnchorSet
from rfcn_face.assigners import AssignParams, assigner_from_spec
from rfcn_face.sampling import RPNSampling

F32 = np.float32
AT = dict(stride="8", scales="16,32,64", ratios="1", shifts="16x3", pos_iou="0.5", neg_iou="0.3",
          allowed_border="0", ignore_iof="0.5", strategy="hc", top_n="3", batch_size="64", fg_fraction="0.5",
          seed="3", bbox_means="0,0,0,0", bbox_stds="1,1,1,1")
ASET = AnchorSet(8, scales=(16, 32, 64), shifts="16x3")     # 6 anchors per location
NMS = dict(overlap_thresh="0.5", valid_thresh="0", coord_start="1", score_index="5")
PT = dict(fg_iou="0.5", bg_iou_hi="0.5", bg_iou_lo="0.0", ignore_iof="0.5", bbox_means="0,0,0,0",
          bbox_stds="0.1,0.1,0.2,0.2", batch_rois="-1", fg_fraction="0.25", seed="0")
OH = dict(batch_size="16", fg_fraction="0.25", sigma="1.0")


def gt_rows(rng, m=6, size=64):
    xy = rng.uniform(0, size - 8, (m, 2))
    wh = rng.uniform(4, 30, (m, 2))
    flag = np.array([0, 0, 0, 1, 0, -1][:m], dtype=float)     # faces, one ignored, one padding row
    rows = np.concatenate([xy, xy + wh, flag[:, None]], axis=1)
    rows[flag < 0, :4] = 0
    return rows.astype(F32)


HC3 = assigner_from_spec({"type": "hc", "top_n": 3}, AssignParams(0.5, 0.3, 0, 0.5), RPNSampling(64, 0.5))


def anchor_target_ref(feat_hw, gt, im_info, rng):
    """What rfcn_anchor_target returns with the AT parameters: label, bbox_target, bbox_weight, matched."""
    out = anchor_target_numpy(feat_hw, gt, im_info, ASET, HC3, rng=rng)
    return out[0], out[3], out[4], out[5]


def anchor_target_case(rng):
    H = W = 8
    inputs = {"rpn_cls": rng.normal(size=(1, 2 * 6, H, W)).astype(F32), "gt": gt_rows(rng)[None],
              "im_info": np.array([[64, 64, 1]], dtype=F32)}

    def ref(rpn_cls, gt, im_info):
        return anchor_target_ref(rpn_cls.shape[2:], gt, im_info, np.random.default_rng(3))
    return "rfcn_anchor_target", AT, inputs, ref


def proposal_target_case(rng):
    gt = gt_rows(rng)
    jitter = gt[[0, 1, 2, 4], :4] + rng.normal(scale=2, size=(4, 4))
    xy = rng.uniform(0, 50, (26, 2))
    boxes = np.concatenate([jitter, np.concatenate([xy, xy + rng.uniform(4, 30, (26, 2))], axis=1)])
    rois = np.concatenate([np.zeros((30, 1)), boxes], axis=1).astype(F32)
    inputs = {"rois": rois, "gt": gt[None]}

    def ref(rois, gt):
        return proposal_target_numpy(rois, gt, rng=np.random.default_rng(0), fg_iou=0.5, bg_iou_hi=0.5,
                                     bg_iou_lo=0.0, ignore_iof=0.5, means=parse_floats(PT["bbox_means"]),
                                     stds=parse_floats(PT["bbox_stds"]), batch_rois=-1, fg_fraction=0.25)
    return "rfcn_proposal_target", PT, inputs, ref


def ohem_case(rng):
    R = 40
    logits = rng.normal(size=(R, 2))
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    label = rng.choice([-1, 0, 0, 1], R).astype(F32)
    inputs = {"cls_prob": prob.astype(F32), "bbox_pred": rng.normal(size=(R, 4)).astype(F32), "label": label,
              "bbox_target": rng.normal(size=(R, 4)).astype(F32),
              "bbox_weight": ((label == 1)[:, None] * np.ones((R, 4))).astype(F32),
              "rois": np.concatenate([np.repeat([0, 1], R // 2)[:, None], rng.uniform(0, 50, (R, 4))], 1).astype(F32)}

    def ref(*arrays):
        return ohem_numpy(*arrays, batch_size=16, fg_fraction=0.25)
    return "rfcn_ohem", OH, inputs, ref


CASES = {"anchor_target": anchor_target_case, "proposal_target": proposal_target_case, "ohem": ohem_case}


def proposal_block(**kw):
    """The one proposal path (symbols.proposal.ProposalBlock) (pre / post NMS 200 / 40, NMS 0.7, min size 2), imperative on a CPU."""
    from rfcn_face.proposals import ProposalParams
    from symbols.proposal import ProposalBlock
    block = ProposalBlock(ASET, ProposalParams(**dict(dict(pre_nms_top_n=200, post_nms_top_n=40, nms_thresh=0.7,
                                                            min_size=2.0), **kw)), "numpy")
    block.initialize()
    return block


def _compare(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        g = g.asnumpy() if hasattr(g, "asnumpy") else g
        np.testing.assert_allclose(g, np.asarray(e, dtype=np.float64).reshape(g.shape), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_imperative_forward_equals_numpy_and_backward_is_zero(case):
    op_type, params, inputs, ref = CASES[case](np.random.default_rng(11))
    expected = ref(*inputs.values())
    arrays = [mx.nd.array(v, dtype="float32") for v in inputs.values()]
    for a in arrays:
        a.attach_grad()
        a.grad[:] = 7.0
    reset_seed_streams()
    with mx.autograd.record():
        outs = mx.nd.Custom(*arrays, op_type=op_type, **params)
    outs = outs if isinstance(outs, list) else [outs]
    _compare(outs, expected)
    mx.autograd.backward(outs)
    for a in arrays:
        assert np.all(a.grad.asnumpy() == 0)
    if case == "anchor_target":      # the case has positives, negatives and ignored anchors
        lab = expected[0]
        assert (lab == 1).sum() > 0 and (lab == 0).sum() > 0 and (lab == -1).sum() > 0
    if case == "proposal":           # real proposals, not only padding
        assert len(np.unique(expected[0][:, 1:], axis=0)) > 10
    if case == "proposal_target":
        assert (expected[1] == 1).sum() >= 4 and (expected[1] == 0).sum() > 0 and (expected[1] == -1).sum() >= 2
    if case == "ohem":
        lab_in, img = inputs["label"], inputs["rois"][:, 0]
        for b in (0, 1):        # per image: min(#pos, 4) hardest positives, negatives fill up to 16
            fg = min(int((lab_in[img == b] == 1).sum()), 4)
            assert (expected[0][img == b] == 1).sum() == fg
            assert (expected[0][img == b] == 0).sum() == min(int((lab_in[img == b] == 0).sum()), 16 - fg)


class _OpBlock(HybridBlock):
    def __init__(self, op_type, params, **kw):
        super().__init__(**kw)
        self.op_type, self.op_params = op_type, params

    def hybrid_forward(self, F, *xs):
        return F.Custom(*xs, op_type=self.op_type, **self.op_params)


@pytest.mark.parametrize("case", list(CASES))
def test_hybridized_block(case):
    op_type, params, inputs, ref = CASES[case](np.random.default_rng(12))
    block = _OpBlock(op_type, params)
    block.hybridize()
    arrays = [mx.nd.array(v, dtype="float32") for v in inputs.values()]
    for a in arrays:
        a.attach_grad()
        a.grad[:] = 3.0
    reset_seed_streams()
    with mx.autograd.record():
        outs = block(*arrays)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    _compare(outs, ref(*inputs.values()))
    mx.autograd.backward(list(outs))
    for a in arrays:
        assert np.all(a.grad.asnumpy() == 0)


class _TinyRPN(HybridBlock):
    """A conv 'network' whose RPN map feeds the anchor-target op: no gradient may flow back through targets."""

    def __init__(self, **kw):
        super().__init__(**kw)
        with self.name_scope():
            self.conv = nn.Conv2D(12, 3, strides=8, padding=1, in_channels=3)

    def hybrid_forward(self, F, img, gt, im_info):
        cls = self.conv(img)
        label, target, weight, matched = F.Custom(cls, gt, im_info, op_type="rfcn_anchor_target", **AT)
        return cls, label, target, weight, matched


def test_anchor_target_inside_a_network():
    rng = np.random.default_rng(13)
    net = _TinyRPN()
    net.initialize(mx.init.Normal(0.1))
    net.hybridize()
    img = mx.nd.array(rng.normal(size=(1, 3, 64, 64)))
    gt = mx.nd.array(gt_rows(rng)[None])
    info = mx.nd.array([[64, 64, 1]])
    w = net.conv.weight
    reset_seed_streams()
    with mx.autograd.record():
        cls, label, target, weight, matched = net(img, gt, info)
        loss = (label * 1.0).sum() + (target * weight).sum()
    loss.backward()
    assert np.all(w.grad().asnumpy() == 0)            # targets carry no gradient into the network
    exp = anchor_target_ref(cls.shape[2:], gt.asnumpy(), info.asnumpy(), np.random.default_rng(3))
    _compare([label, target, weight, matched], exp)
    assert matched.asnumpy()[0, 5] == 0 and matched.asnumpy()[0, 3] == 0   # padding / ignored rows


@pytest.mark.parametrize("case", list(CASES))
def test_symbol_module_api(case):
    """Module inputs share the batch axis: every input is fed as (1, ...) and reshaped inside the symbol."""
    op_type, params, inputs, ref = CASES[case](np.random.default_rng(14))
    names = list(inputs)
    vars_ = [mx.sym.Variable(n) for n in names]
    reshaped = [mx.sym.reshape(v, shape=inputs[n].shape) for v, n in zip(vars_, names)]
    outs = mx.sym.Custom(*reshaped, op_type=op_type, **params)
    mod = mx.mod.Module(mx.sym.Group([outs[i] for i in range(len(outs.list_outputs()))]), data_names=names,
                        label_names=None, context=mx.cpu())
    mod.bind(data_shapes=[(n, (1,) + inputs[n].shape) for n in names], for_training=True, inputs_need_grad=True)
    mod.init_params()
    reset_seed_streams()
    mod.forward(mx.io.DataBatch([mx.nd.array(inputs[n][None]) for n in names]), is_train=True)
    _compare(mod.get_outputs(), ref(*inputs.values()))
    mod.backward()
    for g in mod.get_input_grads():
        assert np.all(g.asnumpy() == 0)


def test_operator_parameters_are_plain_strings():
    prop = operators.anchor_target.AnchorTargetProp(**AT)
    a = prop.assigner
    assert prop.anchor_set == ASET and (a.name, a.settings.top_n, a.sampling.batch_size) == ("hc", 3, 64)
    assert prop.infer_shape([(1, 12, 8, 8), (1, 6, 5), (1, 3)])[1] == [(1, 384), (1, 384, 4), (1, 384, 4), (1, 6)]
    with pytest.raises(ValueError, match="not a multiple"):
        prop.infer_shape([(1, 10, 8, 8), (1, 6, 5), (1, 3)])
    assert parse_floats("(0.1, 0.1, 0.2, 0.2)") == (0.1, 0.1, 0.2, 0.2)


def test_kwargs_from_config_build_the_ops():
    from operators.anchor_target import AnchorTargetProp, anchor_target_kwargs
    from operators.ohem import OHEMProp, ohem_kwargs
    from operators.proposal_target import ProposalTargetProp, proposal_target_kwargs
    from rfcn_face.config import config_from_dict
    cfg = config_from_dict({"model": {"arch": "DC"}, "anchors": {"shifted": "16x3"},
                            "rpn": {"assign": {"type": "hc", "top_n": 5}}})
    kw = anchor_target_kwargs(cfg)
    assert all(isinstance(v, str) for v in kw.values())
    at = AnchorTargetProp(**kw)
    assert at.anchor_set == cfg.anchor_set() and at.anchor_set.num_per_location == 9
    assert (at.assigner.params.pos_iou, at.assigner.settings.top_n, at.assigner.sampling.batch_size) == (0.5, 5, 256)
    pt = ProposalTargetProp(**proposal_target_kwargs(cfg))
    assert pt.kw["batch_rois"] == -1 and pt.kw["stds"] == (0.1, 0.1, 0.2, 0.2)
    oh = OHEMProp(**ohem_kwargs(cfg))
    assert (oh.batch_size, oh.fg_fraction) == (128, 0.25)            # Sec. 5.1: 1 : 3


def test_sampling_stream_advances_across_calls():
    """MXNet creates a new operator per call: the minibatch must still change from iteration to iteration,
    and replay after a reset."""
    rng = np.random.default_rng(15)
    _, params, inputs, _ = anchor_target_case(rng)
    arrays = [mx.nd.array(v) for v in inputs.values()]
    params = dict(params, batch_size="8", fg_fraction="0.5")
    reset_seed_streams()
    first = [mx.nd.Custom(*arrays, op_type="rfcn_anchor_target", **params)[0].asnumpy() for _ in range(3)]
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    reset_seed_streams()
    again = [mx.nd.Custom(*arrays, op_type="rfcn_anchor_target", **params)[0].asnumpy() for _ in range(3)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_batch_of_two_images():
    rng = np.random.default_rng(16)
    gt = np.stack([gt_rows(rng), gt_rows(rng)])
    cls = rng.normal(size=(2, 12, 8, 8)).astype(F32)
    info = np.array([[64, 64, 1], [56, 60, 1]], dtype=F32)
    reset_seed_streams()
    outs = mx.nd.Custom(mx.nd.array(cls), mx.nd.array(gt), mx.nd.array(info), op_type="rfcn_anchor_target", **AT)
    exp = anchor_target_ref((8, 8), gt, info, np.random.default_rng(3))
    _compare(outs, exp)
    assert not np.array_equal(exp[0][0], exp[0][1])
    bbox = (0.1 * rng.normal(size=(2, 24, 8, 8))).astype(F32)
    rois, scores = proposal_block()(mx.nd.array(cls), mx.nd.array(bbox), mx.nd.array(info))
    from rfcn_face.proposals import ProposalParams
    _compare([rois, scores], proposals_reference(cls, bbox, info, ASET, ProposalParams(200, 40, 0.7, 2.0)))
    assert rois.asnumpy()[:40, 0].max() == 0 and rois.asnumpy()[40:, 0].min() == 1
    assert rois.asnumpy()[40:, 3].max() <= 60 and rois.asnumpy()[40:, 4].max() <= 56   # clipped to image 1
    reset_seed_streams()
    pt = mx.nd.Custom(rois, mx.nd.array(gt), op_type="rfcn_proposal_target", **PT)
    _compare(pt, proposal_target_numpy(rois.asnumpy(), gt, rng=np.random.default_rng(0), fg_iou=0.5, bg_iou_hi=0.5,
                                       bg_iou_lo=0.0, ignore_iof=0.5, means=(0, 0, 0, 0), stds=(0.1, 0.1, 0.2, 0.2),
                                       batch_rois=-1, fg_fraction=0.25))
    assert pt[0].shape == (80 + 12, 5) and pt[0].asnumpy()[40:46, 0].max() == 0   # image 0's gt rows after its RoIs


def test_full_training_chain_on_a_tiny_detector():
    """symbols.rfcn detector (ResNet-18 DC, 16x3 shifted anchors) -> anchor targets + proposals -> proposal
    targets -> PSROI head -> OHEM -> losses; gradients reach the RPN and the head, none through the targets."""
    from operators.anchor_target import anchor_target_kwargs
    from operators.ohem import ohem_kwargs
    from operators.proposal_target import proposal_target_kwargs
    from rfcn_face.proposals import ProposalParams
    from symbols.proposal import ProposalBlock
    from rfcn_face.config import config_from_dict
    from symbols.rfcn import build_detector, to_anchor_order
    cfg = config_from_dict({"model": {"arch": "DC", "depth": 18}, "anchors": {"shifted": "16x3"},
                            "rpn": {"assign": {"type": "hc", "top_n": 3}, "pre_nms_top_n": 300, "post_nms_top_n": 50}})
    net = build_detector(cfg)
    net.initialize(mx.init.Xavier())
    block = ProposalBlock(cfg.anchor_set(), ProposalParams.from_config(cfg, train=True), "numpy")
    block.initialize()
    rng = np.random.default_rng(17)
    img = mx.nd.array(rng.normal(size=(1, 3, 64, 80)))
    gt = mx.nd.array(gt_rows(rng)[None])
    info = mx.nd.array([[64, 80, 1]])
    reset_seed_streams()
    with mx.autograd.record():
        rpn_cls, rpn_bbox, feat = net(img)
        label, target, weight, matched = mx.nd.Custom(rpn_cls, gt, info, op_type="rfcn_anchor_target",
                                                      **anchor_target_kwargs(cfg))
        rois, _ = block(rpn_cls, rpn_bbox, info)
        rois_t, rlab, rtgt, rw = mx.nd.Custom(rois, gt, op_type="rfcn_proposal_target", **proposal_target_kwargs(cfg))
        cls_score, bbox_pred = net.head(feat, rois_t)
        prob = mx.nd.softmax(cls_score)
        olab, ow = mx.nd.Custom(prob, bbox_pred, rlab, rtgt, rw, rois_t, op_type="rfcn_ohem", **ohem_kwargs(cfg))
        logits = to_anchor_order(mx.nd, rpn_cls, 2)[0]                     # (HWA, 2), rows = anchor order
        deltas = to_anchor_order(mx.nd, rpn_bbox, 4)[0]
        ok = label[0] >= 0
        rpn_loss = -(mx.nd.pick(mx.nd.log_softmax(logits), mx.nd.maximum(label[0], 0)) * ok).sum() / ok.sum()
        rpn_loss = rpn_loss + (mx.nd.smooth_l1(deltas - target[0], scalar=3.0) * weight[0]).sum() / ok.sum()
        keep = olab >= 0
        head_loss = -(mx.nd.pick(mx.nd.log_softmax(cls_score), mx.nd.maximum(olab, 0)) * keep).sum() / keep.sum()
        head_loss = head_loss + (mx.nd.smooth_l1(bbox_pred - rtgt, scalar=1.0) * ow).sum() / keep.sum()
        loss = rpn_loss + head_loss
    loss.backward()
    A = cfg.anchor_set().num_per_location
    assert label.shape == (1, rpn_cls.shape[2] * rpn_cls.shape[3] * A) == (1, logits.shape[0])
    assert rpn_cls.shape[2:] == (8, 10)                                      # DC: stride 8 over 64 x 80
    lab_np, olab_np = label.asnumpy(), olab.asnumpy()
    assert (lab_np == 1).sum() > 0 and (lab_np == 0).sum() > 0
    assert 0 < (olab_np == 1).sum() <= 32 and (olab_np >= 0).sum() <= 128   # OHEM 1:3 of 128
    assert rois_t.shape == (50 + 6, 5)
    grads = {n: p.grad().asnumpy() for n, p in net.collect_params().items() if p.grad_req != "null"}
    assert np.isfinite(loss.asnumpy()).all()
    assert any(np.abs(g).sum() > 0 for n, g in grads.items() if "rpn" in n)
    assert any(np.abs(g).sum() > 0 for n, g in grads.items() if "rfcn_cls" in n)
    assert all(np.isfinite(g).all() for g in grads.values())


def test_two_different_target_ops_share_an_input():
    """Regression: with MXNet's default backward dependencies, two different CustomOps in one graph crash the
    backward ("unknown storage type: -1", a process-wide dependency set in mxnet.operator)."""
    rng = np.random.default_rng(18)
    _, _, at_in, _ = anchor_target_case(rng)
    cls = mx.nd.array(at_in["rpn_cls"])
    gt, info = mx.nd.array(at_in["gt"]), mx.nd.array(at_in["im_info"])
    cls.attach_grad()
    with mx.autograd.record():
        c = cls * 2
        label = mx.nd.Custom(c, gt, info, op_type="rfcn_anchor_target", **AT)[0]
        rows = mx.nd.Custom(mx.nd.reshape(c, (1, -1, 6)), op_type="rfcn_nms", **NMS)
        loss = (c * c).sum() + label.sum() + rows.sum()
    loss.backward()
    np.testing.assert_allclose(cls.grad.asnumpy(), 8 * at_in["rpn_cls"], rtol=1e-5)   # only the c*c path
    # the same graph through the symbol / Module API
    c, im_info = mx.sym.Variable("rpn_cls") * 2, mx.sym.Variable("im_info")
    label = mx.sym.Custom(c, mx.sym.Variable("gt"), im_info, op_type="rfcn_anchor_target", **AT)[0]
    rows = mx.sym.Custom(mx.sym.reshape(c, (1, -1, 6)), op_type="rfcn_nms", **NMS)
    sym = mx.sym.Group([mx.sym.make_loss(mx.sym.sum(c * c)), mx.sym.BlockGrad(label), mx.sym.BlockGrad(rows)])
    names = ["rpn_cls", "gt", "im_info"]
    arrays = [at_in["rpn_cls"], at_in["gt"], at_in["im_info"]]
    mod = mx.mod.Module(sym, data_names=names, label_names=None)
    mod.bind(data_shapes=[(n, a.shape) for n, a in zip(names, arrays)], for_training=True, inputs_need_grad=True)
    mod.init_params()
    mod.forward(mx.io.DataBatch([mx.nd.array(a) for a in arrays]), is_train=True)
    mod.backward()
    np.testing.assert_allclose(mod.get_input_grads()[0].asnumpy(), 8 * at_in["rpn_cls"], rtol=1e-5)


def test_anchor_set_kwargs_round_trip():
    from operators.base import anchor_set_from_kwargs, anchor_set_kwargs
    from rfcn_face.anchors import AnchorSet
    for a in (AnchorSet(16), AnchorSet(8, shifts="16x3&32x1", ratios=(1.0, 1.5))):
        kw = anchor_set_kwargs(a)
        assert all(isinstance(v, str) for v in kw.values())
        assert anchor_set_from_kwargs(**kw) == a


def test_operator_defaults_are_the_config_defaults():
    """The anchor operators' defaults (no anchor parameters given) are the config's baseline anchor set."""
    from operators.anchor_target import AnchorTargetProp
    from rfcn_face.config import Config
    baseline = Config().anchor_set()
    assert baseline == AnchorSet(16, (16, 32, 64, 128, 256, 512), (1.0,), "")   # Sec. 5.1, written out
    assert AnchorTargetProp().anchor_set == baseline
