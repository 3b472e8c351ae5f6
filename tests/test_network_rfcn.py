"""R-FCN detector: RPN strides per architecture, shifted-anchor output layout, BU / BUS / DC, PSROI head."""
import math

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from rfcn_face.anchors import AnchorSet, feature_size, to_anchor_order_np  # noqa: E402
from rfcn_face.config import config_from_dict  # noqa: E402
from symbols.rfcn import (RFCN, bilinear_kernel, build_detector, count_params, new_layer_params,  # noqa: E402
                          rpn_face_scores, to_anchor_order)

H, W = 70, 100  # not multiples of 16: exercises the ceil sizes


def _cfg(arch="baseline", shifted="", depth=18):
    return config_from_dict({"model": {"arch": arch, "depth": depth}, "anchors": {"shifted": shifted}}, "test")


def _net(arch="baseline", shifted="", depth=18):
    net = build_detector(_cfg(arch, shifted, depth))
    net.initialize(mx.init.Xavier())
    return net


@pytest.fixture(scope="module")
def outputs():
    """Forward of every architecture once (depth 18, random init, 70x100)."""
    x = mx.nd.array(np.random.RandomState(0).uniform(-1, 1, (1, 3, H, W)))
    res = {}
    for arch in ("baseline", "BU", "BUS", "DC"):
        net = _net(arch)
        res[arch] = (net, x, net(x))
    return res


@pytest.mark.parametrize("arch,stride", [("baseline", 16), ("BU", 8), ("BUS", 8), ("DC", 8)])
def test_rpn_feature_stride_from_shapes(outputs, arch, stride):
    _, x, (cls, bbox, feat) = outputs[arch]
    fh, fw = cls.shape[2:]
    # measured: the RPN map of a 70x100 image is ceil(70/s) x ceil(100/s)
    measured = {s for s in (4, 8, 16, 32) if (fh, fw) == (math.ceil(H / s), math.ceil(W / s))}
    assert measured == {stride}
    assert _cfg(arch).anchor_set().stride == stride
    assert feat.shape[2:] == cls.shape[2:] == bbox.shape[2:]
    # the anchors of the config tile exactly this map
    anchors = _cfg(arch).anchor_set().for_image(H, W)
    assert anchors.shape[0] == fh * fw * 6


@pytest.mark.parametrize("shifted,a", [("", 6), ("16x1", 7), ("16x3", 9), ("16x3&32x1", 10), ("16x3&32x3", 12)])
def test_rpn_channels_follow_anchor_set(shifted, a):
    cfg = _cfg("DC", shifted)
    assert cfg.anchor_set().num_per_location == a
    net = _net("DC", shifted)
    cls, bbox, _ = net(mx.nd.zeros((1, 3, 48, 64)))
    assert cls.shape == (1, 2 * a, 6, 8)
    assert bbox.shape == (1, 4 * a, 6, 8)
    assert net.rpn(mx.nd.zeros((2, 3, 48, 64)))[0].shape == (2, 2 * a, 6, 8)


def _anchor_order_ref(x, k):
    n, ak, h, w = x.shape
    a_n = ak // k
    out = np.zeros((n, h * w * a_n, k), x.dtype)
    for b in range(n):
        for y in range(h):
            for xx in range(w):
                for a in range(a_n):
                    for j in range(k):
                        out[b, (y * w + xx) * a_n + a, j] = x[b, a * k + j, y, xx]
    return out


@pytest.mark.parametrize("k", [2, 4])
def test_to_anchor_order_matches_loops(k):
    x = np.random.RandomState(k).randn(2, 9 * k, 3, 5).astype(np.float32)
    ref = _anchor_order_ref(x, k)
    np.testing.assert_array_equal(to_anchor_order_np(x, k), ref)
    np.testing.assert_array_equal(to_anchor_order(mx.nd, mx.nd.array(x), k).asnumpy(), ref)
    sym = to_anchor_order(mx.sym, mx.sym.var("x"), k)
    ex = sym.bind(mx.cpu(), {"x": mx.nd.array(x)})
    np.testing.assert_array_equal(ex.forward()[0].asnumpy(), ref)


def test_rpn_rows_line_up_with_anchor_tiling():
    """Hand-built: bias-only RPN regression layer whose channel 4a+c outputs 10a+c; after reshaping, row r
    carries anchor r % A, the anchor of AnchorSet.tile row r (location-major, shifted anchors last)."""
    net = _net("DC", "16x3&32x1")
    a = 10
    net.rpn_head.bbox.weight.set_data(mx.nd.zeros(net.rpn_head.bbox.weight.shape))
    net.rpn_head.bbox.bias.set_data(mx.nd.array([10 * i + c for i in range(a) for c in range(4)]))
    _, bbox, _ = net(mx.nd.zeros((1, 3, 40, 56)))
    rows = to_anchor_order(mx.nd, bbox, 4).asnumpy()[0]
    anchors = _cfg("DC", "16x3&32x1").anchor_set().tile(5, 7)
    assert rows.shape == (5 * 7 * a, 4) == anchors.shape
    r = np.arange(rows.shape[0])
    np.testing.assert_array_equal(rows[:, 0], 10 * (r % a))
    np.testing.assert_array_equal(rows[:, 3], 10 * (r % a) + 3)
    # row of location (y=2, x=3), anchor 8 (the 16x3 down-right one) and 9 (the 32x1 one)
    s = 8
    row = (2 * 7 + 3) * a + 8
    assert rows[row, 0] == 80
    np.testing.assert_allclose(anchors[row], [3.5 * s + 4 - 8, 2.5 * s + 4 - 8, 3.5 * s + 4 + 8, 2.5 * s + 4 + 8])
    np.testing.assert_allclose(anchors[(2 * 7 + 3) * a + 9], [3.5 * s + 4 - 16, 2.5 * s + 4 - 16,
                                                                3.5 * s + 4 + 16, 2.5 * s + 4 + 16])


def test_rpn_face_scores_softmax():
    x = np.random.RandomState(3).randn(1, 2 * 9, 2, 3).astype(np.float32)
    got = rpn_face_scores(mx.nd, mx.nd.array(x)).asnumpy()
    logits = to_anchor_order_np(x, 2)
    ref = 1.0 / (1.0 + np.exp(logits[..., 0] - logits[..., 1]))
    np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_bilinear_kernel_formula():
    np.testing.assert_allclose(bilinear_kernel(4), np.outer([0.25, 0.75, 0.75, 0.25], [0.25, 0.75, 0.75, 0.25]))
    # direct formula (FCN): w(x, y) = (1 - |x/f - c|) (1 - |y/f - c|), f = ceil(k/2), c = (2f - 1 - f%2) / (2f)
    for k in (2, 3, 4, 6):
        f = math.ceil(k / 2)
        c = (2 * f - 1 - f % 2) / (2 * f)
        ref = np.array([[(1 - abs(i / f - c)) * (1 - abs(j / f - c)) for j in range(k)] for i in range(k)])
        np.testing.assert_allclose(bilinear_kernel(k), ref, rtol=1e-6)


def _bilinear_upsample_ref(x):
    """2x bilinear interpolation with half-pixel centres (src = (dst + 0.5) / 2 - 0.5), edge-clamped."""
    c, h, w = x.shape
    out = np.zeros((c, 2 * h, 2 * w))
    for oy in range(2 * h):
        for ox in range(2 * w):
            sy, sx = (oy + 0.5) / 2 - 0.5, (ox + 0.5) / 2 - 0.5
            y0, x0 = int(math.floor(sy)), int(math.floor(sx))
            dy, dx = sy - y0, sx - x0
            for yy, wy in ((y0, 1 - dy), (y0 + 1, dy)):
                for xx, wx in ((x0, 1 - dx), (x0 + 1, dx)):
                    out[:, oy, ox] += wy * wx * x[:, min(max(yy, 0), h - 1), min(max(xx, 0), w - 1)]
    return out


@pytest.mark.parametrize("arch", ["BU", "BUS"])
def test_deconv_initialised_bilinear_and_learnable(outputs, arch):
    net, x, _ = outputs[arch]
    up = net.enlarge if arch == "BU" else net.enlarge.up
    w = up.deconv.weight.data().asnumpy()
    assert w.shape == (512, 1, 4, 4)  # one filter per res5 channel (depth 18: 512)
    np.testing.assert_allclose(w, np.broadcast_to(bilinear_kernel(4), w.shape))
    res5 = np.random.RandomState(0).randn(1, 512, 3, 4).astype(np.float32)
    like = mx.nd.zeros((1, 1, 6, 8))
    got = up(mx.nd.array(res5), like).asnumpy()[0]
    ref = _bilinear_upsample_ref(res5[0])
    np.testing.assert_allclose(got[:, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], rtol=1e-5, atol=1e-5)
    # cropped to the stride-8 size: 2*ceil(70/16) = 10 rows -> ceil(70/8) = 9
    assert outputs[arch][2][0].shape[2:] == (9, 13)
    # learnable: receives a gradient
    with mx.autograd.record():
        cls, bbox, feat = net(x)
        s, d = net.head(feat, mx.nd.array([[0, 4, 4, 60, 50]]))
        loss = cls.sum() + bbox.sum() + s.sum() + d.sum()
    loss.backward()
    assert np.abs(up.deconv.weight.grad().asnumpy()).max() > 0
    assert up.deconv.weight.grad_req == "write"


def _rpn_params(cin, a):
    return cin * 9 * 512 + 512 + 512 * 2 * a + 2 * a + 512 * 4 * a + 4 * a


def _head_params(cin, k=7):
    return cin * 1024 + 1024 + 1024 * 2 * k * k + 2 * k * k + 1024 * 4 * k * k + 4 * k * k


@pytest.mark.parametrize("depth,c3,c5", [(18, 128, 512), (101, 512, 2048)])
def test_parameter_counts_by_formula(depth, c3, c5):
    """DC adds no parameter; BU adds its deconvolution (c5 * 4 * 4); BUS adds the deconvolution, two 1x1 convs
    and a 3x3 conv of 512 channels, and its RPN / head read 512 channels instead of c5."""
    nets = {arch: build_detector(_cfg(arch, "16x3", depth)) for arch in ("baseline", "BU", "BUS", "DC")}
    counts = {arch: count_params(n) for arch, n in nets.items()}
    backbone = count_params(nets["baseline"].backbone)
    a = 9
    assert counts["DC"] == counts["baseline"] == backbone + _rpn_params(c5, a) + _head_params(c5)
    deconv = c5 * 16
    assert counts["BU"] - counts["baseline"] == deconv
    bus_layers = deconv + (c5 * 512 + 512) + (c3 * 512 + 512) + (512 * 512 * 9 + 512)
    assert counts["BUS"] == backbone + bus_layers + _rpn_params(512, a) + _head_params(512)
    assert new_layer_params(nets["BU"]) == _rpn_params(c5, a) + _head_params(c5) + deconv
    assert new_layer_params(nets["BUS"]) == _rpn_params(512, a) + _head_params(512) + bus_layers
    assert new_layer_params(nets["DC"]) == new_layer_params(nets["baseline"])
    # DC: the same parameters, name by name and shape by shape
    shapes = lambda n: {p.name: p.shape for p in n.collect_params().values()}  # noqa: E731
    assert shapes(nets["DC"]) == shapes(nets["baseline"])


def _psroi_ref(maps, rois, stride, out_dim, k):
    """Position-sensitive RoI pooling + average voting for boxes in the project's convention (no +1):
    bin (i, j) of a box averages channel (c*k + i)*k + j over the feature cells it touches."""
    _, _, fh, fw = maps.shape
    out = np.zeros((len(rois), out_dim))
    for r, (b, x1, y1, x2, y2) in enumerate(rois):
        bw, bh = (x2 - x1) / stride / k, (y2 - y1) / stride / k
        for c in range(out_dim):
            votes = []
            for i in range(k):
                for j in range(k):
                    ys = min(max(int(math.floor(y1 / stride + i * bh)), 0), fh)
                    ye = min(max(int(math.ceil(y1 / stride + (i + 1) * bh)), 0), fh)
                    xs = min(max(int(math.floor(x1 / stride + j * bw)), 0), fw)
                    xe = min(max(int(math.ceil(x1 / stride + (j + 1) * bw)), 0), fw)
                    ch = (c * k + i) * k + j
                    cell = maps[int(b), ch, ys:ye, xs:xe]
                    votes.append(cell.mean() if cell.size else 0.0)
            out[r, c] = np.mean(votes)
    return out


@pytest.mark.parametrize("arch", ["baseline", "DC"])
def test_psroi_head_matches_reference(outputs, arch):
    net, x, (_, _, feat) = outputs[arch]
    stride = net.head.stride
    assert stride == (16 if arch == "baseline" else 8)
    rois = np.array([[0, 0, 0, 64, 48], [0, 8, 16, 72, 70], [0, 24, 8, 100, 40], [0, 3, 5, 35, 61]], np.float32)
    cls, box = net.head(feat, mx.nd.array(rois))
    assert cls.shape == (4, 2) and box.shape == (4, 4)
    h = mx.nd.relu(net.head.conv_new(feat))
    cls_maps, box_maps = net.head.cls_maps(h).asnumpy(), net.head.box_maps(h).asnumpy()
    assert cls_maps.shape[1] == 7 * 7 * 2 and box_maps.shape[1] == 7 * 7 * 4
    np.testing.assert_allclose(cls.asnumpy(), _psroi_ref(cls_maps, rois, stride, 2, 7), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(box.asnumpy(), _psroi_ref(box_maps, rois, stride, 4, 7), rtol=1e-4, atol=1e-5)


def test_psroi_average_voting_hand_built():
    """Constant score maps (bias-only convs, channel value = channel index): the vote of class c is the mean
    of its k*k channel indices: class 0 -> 24, class 1 -> 73; box maps -> 24, 73, 122, 171."""
    net = _net("baseline")
    hd = net.head
    for conv, n in ((hd.conv_new, 1024), (hd.cls_maps, 98), (hd.box_maps, 196)):
        conv.weight.set_data(mx.nd.zeros(conv.weight.shape))
        conv.bias.set_data(mx.nd.ones(n) if conv is hd.conv_new else mx.nd.arange(n))
    feat = mx.nd.zeros((1, 512, 5, 7))
    cls, box = hd(feat, mx.nd.array([[0, 0, 0, 80, 80], [0, 16, 16, 40, 33]]))
    np.testing.assert_allclose(cls.asnumpy(), [[24, 73], [24, 73]], rtol=1e-6)
    np.testing.assert_allclose(box.asnumpy(), [[24, 73, 122, 171]] * 2, rtol=1e-6)


def test_unknown_arch_is_an_error():
    with pytest.raises(ValueError, match="architecture"):
        RFCN(arch="FPN", depth=18)


def test_anchor_set_of_config_is_the_rpn_anchor_set():
    assert _cfg("BUS", "16x3").anchor_set() == AnchorSet(8, (16, 32, 64, 128, 256, 512), (1.0,), "16x3")
    assert feature_size(600, 16) == 38


def test_freeze_fixed_params_like_rfcn():
    net = _net("DC")
    total = count_params(net)
    frozen = set(net.freeze_fixed_params())
    assert {"conv1_weight", "bn_conv1_gamma", "res2a_branch2a_weight", "bn2b_branch2b_beta", "bn5b_branch2b_gamma"} \
        <= frozen
    assert "res3a_branch2a_weight" not in frozen and "rpn_conv_3x3_weight" not in frozen
    params = net.collect_params()
    assert params["res3a_branch2a_weight"].grad_req == "write" and params["conv1_weight"].grad_req == "null"
    assert count_params(net) == total
