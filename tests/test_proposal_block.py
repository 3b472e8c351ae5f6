"""The device proposal block (symbols.proposal) and its pieces against the numpy reference: box ops, anchor
tiling, the two NMS implementations, and the whole block on random maps and on a 1024^2 DC+16x3 image with
200 faces, imperatively and hybridized."""
import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from rfcn_face.anchors import AnchorSet  # noqa: E402
from rfcn_face.boxes import clip_boxes, decode as np_decode, encode as np_encode, iou_matrix, nms_rows  # noqa: E402
from rfcn_face.proposals import ProposalParams  # noqa: E402
from rfcn_face.testing.box_reference import decode_one  # noqa: E402
from rfcn_face.testing.proposal_reference import face_maps, proposals_reference  # noqa: E402
from symbols import boxes as fb  # noqa: E402
from symbols.nms import nms, resolve_nms_impl  # noqa: E402
from symbols.proposal import ProposalBlock, tile_anchors  # noqa: E402

nd = mx.nd
F64 = "float64"


def _boxes(rng, n, size=100.0):
    xy = rng.uniform(-10, size, (n, 2))
    return np.concatenate([xy, xy + rng.uniform(0, 50, (n, 2))], axis=1)


# ------------------------------------------------------------------------------------------------ box ops
def test_box_ops_equal_numpy_and_slow_decode():
    rng = np.random.default_rng(0)
    a, d = _boxes(rng, 300), rng.normal(0, 1.5, (300, 4))
    d[:5, 2:] = 20.0                                                   # log-size clipped at log(1000/16)
    means, stds = (0.01, -0.02, 0.0, 0.1), (0.1, 0.1, 0.2, 0.2)
    a[7, 2] = a[7, 0]                                                  # a zero-width box
    got = fb.decode(nd, nd.array(a, dtype=F64), nd.array(d, dtype=F64), means, stds).asnumpy()
    np.testing.assert_allclose(got, np_decode(a, d, means, stds), rtol=1e-13, atol=1e-10)
    np.testing.assert_allclose(got[:20], [decode_one(a[i], d[i], means, stds) for i in range(20)], atol=1e-9)
    g = _boxes(rng, 300)
    pos = (a[:, 2] > a[:, 0]) & (a[:, 3] > a[:, 1])
    t = fb.encode(nd, nd.array(a, dtype=F64), nd.array(g, dtype=F64), means, stds).asnumpy()
    np.testing.assert_allclose(t[pos], np_encode(a[pos], g[pos], means, stds), rtol=1e-12, atol=1e-12)
    info = np.array([[60.0, 80.0, 1.0], [100.0, 30.0, 1.0]])
    two = np.stack([a[:150], a[150:]])
    clipped = fb.clip_to_image(nd, nd.array(two, dtype=F64), nd.array(info, dtype=F64)).asnumpy()
    np.testing.assert_array_equal(clipped[0], clip_boxes(a[:150], 60, 80))
    np.testing.assert_array_equal(clipped[1], clip_boxes(a[150:], 100, 30))
    inter, iou, iof = (x.asnumpy() for x in fb.overlaps(nd, nd.array(two[:, :40], dtype=F64),
                                                        nd.array(two[:, 40:70], dtype=F64)))
    for b in range(2):
        np.testing.assert_allclose(iou[b], iou_matrix(two[b, :40], two[b, 40:70]), rtol=0, atol=1e-14)
    # literal: two 10x10 boxes shifted by 5: inter 50, IoU 50/150, IoF 50/100; a zero-area box: 0 / 0
    lit = [x.asnumpy()[0] for x in fb.overlaps(nd, nd.array([[[0, 0, 10, 10], [3, 3, 3, 9]]], dtype=F64),
                                                   nd.array([[[5, 0, 15, 10]]], dtype=F64))]
    np.testing.assert_allclose([lit[0][0, 0], lit[1][0, 0], lit[2][0, 0]], [50, 1 / 3, 0.5])
    assert lit[1][1, 0] == 0 and lit[2][1, 0] == 0


@pytest.mark.parametrize("spec", [dict(stride=8, shifts="16x3"), dict(stride=16),
                                  dict(stride=8, scales=(16, 32), ratios=(0.5, 1, 2), shifts="16x3&32x1")])
def test_tile_anchors_is_anchorset_tile(spec):
    aset = AnchorSet(**spec)
    for H, W in ((1, 1), (5, 7), (13, 4)):
        m = nd.zeros((2, 3, H, W), dtype=F64)
        got = tile_anchors(nd, m, nd.array(aset.base(), dtype=F64), aset.stride).asnumpy()[0]
        np.testing.assert_array_equal(got, aset.tile(H, W))


# ------------------------------------------------------------------------------------------------ NMS
def test_resolve_nms_impl():
    assert resolve_nms_impl("auto", [mx.cpu(0), mx.cpu(1)]) == "numpy"
    assert resolve_nms_impl("auto", mx.cpu()) == "numpy"
    assert resolve_nms_impl("auto", [mx.cpu(0), mx.gpu(0)]) == "box_nms"      # a Context object, no GPU needed
    assert resolve_nms_impl("box_nms", mx.cpu()) == "box_nms" and resolve_nms_impl("numpy", mx.gpu(0)) == "numpy"
    with pytest.raises(ValueError, match="unknown NMS implementation 'fast'.*auto, box_nms, numpy"):
        resolve_nms_impl("fast")


@pytest.mark.parametrize("seed", range(3))
def test_two_nms_implementations_agree_with_nms_rows(seed):
    """box_nms and the numpy CustomOp on the same (B, N, 6) rows, distinct scores (ranks): the same kept rows;
    the numpy one stops at max_output."""
    rng = np.random.default_rng(seed)
    B, N = 2, 500
    rows = np.zeros((B, N, 6))
    rows[..., 0] = rng.permutation(B * N).reshape(B, N) + 1.0
    rows[..., 0][rng.random((B, N)) < 0.1] = -1                           # invalid rows
    rows[..., 1:5] = np.stack([_boxes(rng, N, 150) for _ in range(B)])
    rows[..., 5] = rng.random((B, N))
    for thresh, topk, max_out in ((0.7, 300, 40), (0.3, -1, -1), (0.5, 450, 450)):
        ref = nms_rows(rows, thresh, 0.0, topk, max_out)
        for impl in ("numpy", "box_nms"):
            got = nms(nd, nd.array(rows, dtype=F64), impl, thresh, 0.0, topk, max_out).asnumpy()
            n = max_out if max_out > 0 else N
            np.testing.assert_array_equal(got[:, :n], ref[:, :n], err_msg=impl)


# ------------------------------------------------------------------------------------------------ the block
def _run(block, cls, box, info, hybridize=False):
    block.initialize(force_reinit=True)
    if hybridize:
        block.hybridize()
    rois, scores = block(nd.array(cls), nd.array(box), nd.array(info))
    return rois.asnumpy().astype(np.float64), scores.asnumpy().astype(np.float64)


def _assert_same(got, ref, atol=1e-3):
    (r, s), (rr, rs) = got, ref
    assert r.shape == rr.shape
    np.testing.assert_array_equal(r[:, 0], rr[:, 0])
    np.testing.assert_allclose(r[:, 1:], rr[:, 1:], rtol=0, atol=atol)
    np.testing.assert_allclose(s, rs, rtol=0, atol=1e-6)


CASES = [  # (pre, post, nms, min_size): pre < post, pre <= 0 (all), min_size that removes everything
    (200, 40, 0.7, 2.0), (0, 30, 0.5, 0.0), (20, 50, 0.7, 0.0), (300, 25, 0.3, 6.0), (100, 10, 0.7, 1000.0)]


@pytest.mark.parametrize("impl", ["numpy", "box_nms"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_block_equals_reference_on_random_maps(impl, case):
    rng = np.random.default_rng(case)
    aset = AnchorSet(8, scales=(16, 32, 64), shifts="16x3")
    A, B, H, W = aset.num_per_location, 2, 9, 11
    cls = rng.normal(0, 2, (B, 2 * A, H, W)).astype(np.float32)
    box = rng.normal(0, 0.4, (B, 4 * A, H, W)).astype(np.float32)
    info = np.array([[70, 85, 1], [41, 88, 0.5]], np.float32)            # per-image clipping
    pre, post, thr, min_size = CASES[case]
    p = ProposalParams(pre, post, thr, min_size)
    for mark in (False, True):
        ref = proposals_reference(cls, box, info, aset, p, mark_padding=mark)
        for hyb in (False, True):
            got = _run(ProposalBlock(aset, p, nms_impl=impl, mark_padding=mark), cls, box, info, hyb)
            _assert_same(got, ref, atol=1e-4)
    if min_size == 1000.0:                                                # nothing survives: the whole image
        assert ref[0][:post, 1:].tolist() == [[0, 0, 85, 70]] * post and np.all(ref[1] == -1)


def test_block_equal_scores_keep_anchor_order():
    """Quantised logits: many anchors share a score exactly; ties go to the lower anchor index, in the top-k cut,
    in NMS and in the output order, as the reference's stable sort."""
    rng = np.random.default_rng(7)
    aset = AnchorSet(8, scales=(16, 32), shifts="16x3")
    A, H, W = aset.num_per_location, 12, 12
    cls = rng.integers(-2, 3, (1, 2 * A, H, W)).astype(np.float32)        # 25 distinct logit pairs
    box = rng.normal(0, 0.3, (1, 4 * A, H, W)).astype(np.float32)
    info = np.array([[96, 96, 1]], np.float32)
    p = ProposalParams(150, 60, 0.6, 0.0)
    ref = proposals_reference(cls, box, info, aset, p)
    assert len(np.unique(ref[1])) < 20                                     # the ties are there
    for impl in ("numpy", "box_nms"):
        _assert_same(_run(ProposalBlock(aset, p, nms_impl=impl), cls, box, info, True), ref, atol=1e-4)


@pytest.mark.parametrize("impl", ["numpy", "box_nms"])
def test_block_equals_reference_at_1024_dc16x3_200_faces(impl):
    """The issue's case: a 1024^2 image, DC+16x3 (147,456 anchors), 200 faces, training knobs 6000 / 300 / 0.7;
    a batch of two images (the second 1024 x 800 inside the same map)."""
    aset = AnchorSet(8, shifts="16x3")
    maps = [face_maps(np.random.default_rng(s), aset, (1024, 1024), 200) for s in (0, 1)]
    cls = np.concatenate([m[0] for m in maps])
    box = np.concatenate([m[1] for m in maps])
    info = np.array([[1024, 1024, 1], [1024, 800, 1]], np.float32)
    p = ProposalParams(6000, 300, 0.7, 0.0)
    ref = proposals_reference(cls, box, info, aset, p)
    got = _run(ProposalBlock(aset, p, nms_impl=impl), cls, box, info, True)
    _assert_same(got, ref)
    assert np.all(ref[1] > 0.5) and len(np.unique(ref[0][:, 1:], axis=0)) == 600     # 300 real boxes each
    assert got[0][300:, 1:][:, [0, 2]].max() <= 800


def test_block_in_a_symbol_graph():
    """The same block composed into an mx.sym graph and bound with the Module API (the export path)."""
    rng = np.random.default_rng(3)
    aset = AnchorSet(16, scales=(32, 64, 128))
    A, B, H, W = aset.num_per_location, 3, 6, 5
    cls = rng.normal(0, 1, (B, 2 * A, H, W)).astype(np.float32)
    box = rng.normal(0, 0.3, (B, 4 * A, H, W)).astype(np.float32)
    info = np.array([[90, 70, 1]] * B, np.float32)
    p = ProposalParams(60, 20, 0.7, 0.0)
    blk = ProposalBlock(aset, p, nms_impl="box_nms")
    blk.initialize()
    rois, scores = blk(mx.sym.var("rpn_cls"), mx.sym.var("rpn_bbox"), mx.sym.var("im_info"))
    sym = mx.sym.Group([rois, scores])
    assert "anchor_base" in sym.list_arguments()
    ex = sym.bind(mx.cpu(), {"rpn_cls": nd.array(cls), "rpn_bbox": nd.array(box), "im_info": nd.array(info),
                             "anchor_base": blk.anchor_base.data()})
    out = [o.asnumpy().astype(np.float64) for o in ex.forward()]
    _assert_same(out, proposals_reference(cls, box, info, aset, p), atol=1e-4)
