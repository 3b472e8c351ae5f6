"""Issue 24 items 2-3: the whole detector as ONNX (run by onnx.reference) equals FaceDetector; its PSROIPooling
subgraph equals MXNet's operator; the vectorised kernels equal MXNet's convolutions; ``test`` / ``detect`` with
``--model PREFIX|FILE.onnx`` write what ``--run`` writes."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")
onnx = pytest.importorskip("onnx")

from onnx import helper  # noqa: E402

from rfcn_face.__main__ import main  # noqa: E402
from rfcn_face.detector import FaceDetector, prepare_image  # noqa: E402
from rfcn_face.onnx_export import GraphBuilder, psroi_pool  # noqa: E402
from rfcn_face.onnx_runtime import conv2d, conv_transpose2d, session  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Cannot decide type")


# ------------------------------------------------------------------------------------------------ kernels
@pytest.mark.parametrize("stride,dilate,pad,group", [(1, 1, 1, 1), (2, 1, 3, 1), (1, 2, 2, 1), (2, 1, 0, 2)])
def test_conv_kernel_equals_mxnet(stride, dilate, pad, group):
    rng = np.random.default_rng(stride * 10 + dilate + pad)
    x = rng.normal(size=(1, 4, 11, 14)).astype(np.float32)
    w = rng.normal(size=(6, 4 // group, 3, 3)).astype(np.float32)
    b = rng.normal(size=6).astype(np.float32)
    ref = mx.nd.Convolution(mx.nd.array(x), mx.nd.array(w), mx.nd.array(b), kernel=(3, 3), stride=(stride,) * 2,
                            dilate=(dilate,) * 2, pad=(pad,) * 2, num_filter=6, num_group=group).asnumpy()
    got = conv2d(x, w, b, pads=[pad] * 4, strides=[stride] * 2, dilations=[dilate] * 2, group=group)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_grouped_conv_transpose_equals_mxnet_deconvolution():
    """BU's upsampler: stride 2, kernel 4, pad 1, one filter per channel (num_group = channels)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 3, 5, 7)).astype(np.float32)
    w = rng.normal(size=(3, 1, 4, 4)).astype(np.float32)
    ref = mx.nd.Deconvolution(mx.nd.array(x), mx.nd.array(w), kernel=(4, 4), stride=(2, 2), pad=(1, 1),
                              num_filter=3, num_group=3, no_bias=True).asnumpy()
    got = conv_transpose2d(x, w, pads=[1] * 4, strides=[2, 2], group=3)
    assert got.shape == ref.shape == (1, 3, 10, 14)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ PSROIPooling
def _psroi_model(k, dim, scale):
    g = helper.make_graph([], "psroi", [helper.make_tensor_value_info("maps", 1, [1, k * k * dim, None, None]),
                                        helper.make_tensor_value_info("rois", 1, [None, 4])], [])
    b = GraphBuilder(g, opset=19)
    out = psroi_pool(b, "maps", "rois", spatial_scale=scale, k=k, output_dim=dim)
    g.node.append(helper.make_node("Identity", [out], ["pooled"]))
    g.output.append(helper.make_tensor_value_info("pooled", 1, None))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize("k,dim,scale,hw", [(7, 2, 1 / 8, (9, 13)), (3, 4, 1 / 16, (5, 4)), (2, 3, 1.0, (6, 6))])
def test_psroi_subgraph_equals_mxnet_operator(k, dim, scale, hw):
    rng = np.random.default_rng(k)
    H, W = hw
    maps = rng.normal(size=(1, k * k * dim, H, W)).astype(np.float32)
    sw, sh = W / scale, H / scale                              # image size in pixels
    x1, y1 = rng.uniform(-5, sw, 40), rng.uniform(-5, sh, 40)
    rois = np.stack([x1, y1, x1 + rng.uniform(0, sw / 2, 40), y1 + rng.uniform(0, sh / 2, 40)], 1)
    rois = np.concatenate([rois,
                           [[0, 0, sw, sh], [sw - 1, sh - 1, sw, sh], [0, 0, 0.4, 0.4],       # whole map, corner
                            [3.5, 2.5, 3.6, 2.7], [2.5, 1.5, 9.5, 7.49], [-3, -3, sw + 4, sh + 4],  # tiny, halves
                            [1.2, 0.7, 1.2 + 3 / scale, 0.7 + 2 / scale]]]).astype(np.float32)
    got = session(_psroi_model(k, dim, scale), prefer_onnxruntime=False).run({"maps": maps, "rois": rois})[0]
    # the head's call: batch index, x2 - 1 / y2 - 1 as the operator's inclusive corners
    mrois = np.concatenate([np.zeros((len(rois), 1), np.float32), rois[:, :2], rois[:, 2:] - 1], 1)
    ref = mx.nd.contrib.PSROIPooling(mx.nd.array(maps), mx.nd.array(mrois), spatial_scale=scale, output_dim=dim,
                                     pooled_size=k, group_size=k).asnumpy().mean(axis=(2, 3))
    assert got.shape == ref.shape == (len(rois), dim)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("row", ["01_baseline", "02_bu", "03_bus", "04_dc"])
def test_backbone_maps_of_every_arch_equal_mxnet(row, tmp_path):
    """The MXNet-exported part (backbone + BU / BUS / DC + RPN + maps, dynamic H x W) at a size that is no multiple
    of the stride: equal to the Gluon network (random weights, BatchNorm statistics made non-trivial)."""
    from rfcn_face.config import load_config
    from symbols.export import onnx_maps_model
    from symbols.rfcn import build_detector
    root = Path(__file__).resolve().parents[1]
    net = build_detector(load_config(root / "experiments" / "table1" / f"{row}.yaml", preset="smoke"))
    net.initialize(mx.init.Normal(0.05))
    rng = np.random.default_rng(1)
    for name, p in net.collect_params().items():
        if name.endswith(("running_mean", "_beta")):
            p.set_data(mx.nd.array(rng.normal(0, 0.1, p.shape)))
        elif name.endswith(("running_var", "_gamma")):
            p.set_data(mx.nd.array(rng.uniform(0.5, 1.5, p.shape)))
    model, _ = onnx_maps_model(net, tmp_path / "maps.onnx")
    x = rng.normal(size=(1, 3, 45, 70)).astype(np.float32)
    got = session(model, prefer_onnxruntime=False).run({"data": x})
    rpn_cls, rpn_bbox, feat = net(mx.nd.array(x))
    h = mx.nd.relu(net.head.conv_new(feat))
    for g, r in zip(got, (rpn_cls, rpn_bbox, net.head.cls_maps(h), net.head.box_maps(h))):
        r = r.asnumpy()
        assert g.shape == r.shape
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * np.abs(r).max())


# ------------------------------------------------------------------------------------------------ whole detector
@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx_export")
    assert main(["export", "--run", str(run_dir), "--out", str(d / "final"), "--onnx", str(d / "final.onnx"),
                 "--json", str(d / "s.json")]) == 0
    return d


@pytest.fixture(scope="module")
def image():
    from rfcn_face.datasets.loader import load_image
    from rfcn_face.datasets.synthfaces import ensure_synthfaces
    from rfcn_face.datasets.wider import wider_split_records
    base = ensure_synthfaces()
    recs = wider_split_records(base, "val")
    return load_image(recs[0].image_path)


def test_onnx_detector_equals_facedetector_at_two_sizes(run_dir, exported, image):
    """Reference evaluator (numpy) at 96 x 120 (original size, a multiple of the stride 8) and a 100 x 77 crop
    resized to 90 x 69 (neither side a multiple of 8, sx != sy): same detections as FaceDetector."""
    s = json.loads((exported / "s.json").read_text())
    assert s["onnx"]["ok"] and {"NonMaxSuppression", "TopK", "CumSum"} <= set(s["onnx"]["ops"])
    assert not {op for op in s["onnx"]["ops"] if "PSROI" in op or op.startswith("_")}
    sess = session(exported / "final.onnx", prefer_onnxruntime=False)
    det = FaceDetector.from_run(run_dir)
    for img, size in ((image[:96, :120], [0, 0]), (image[10:110, 5:82], [90, 120])):
        x, info, sxy = prepare_image(img, size, det.norm)
        assert size == [0, 0] or (x.shape[1] % 8 and x.shape[2] % 8 and sxy[0] != sxy[1])
        boxes, scores = sess.run({"data": x[None].astype(np.float32), "im_info": info[None].astype(np.float32),
                                  "orig_hw": np.array([img.shape[:2]], np.float32)})
        rb, rs = det.detect(img, sizes=[size])
        assert len(scores) == len(rs) > 0
        np.testing.assert_allclose(scores, rs, rtol=0, atol=1e-5)
        np.testing.assert_allclose(boxes, rb, rtol=0, atol=0.05)


def _detect_json(out):
    return {p.name: json.loads(p.read_text()) for p in sorted(Path(out).glob("*.json"))
            if not p.name.startswith(".")}             # not the folder's record (.rfcn_face_output.json)


def _same_rows(got, ref):
    assert got.keys() == ref.keys() and got
    for name in ref:
        assert len(got[name]) == len(ref[name]) > 0, name
        np.testing.assert_allclose([r["box"] for r in got[name]], [r["box"] for r in ref[name]], rtol=0, atol=0.05)
        np.testing.assert_allclose([r["score"] for r in got[name]], [r["score"] for r in ref[name]], rtol=0,
                                   atol=1e-5)


def test_detect_with_model_prefix_and_onnx_equals_run(run_dir, exported, image, tmp_path):
    import cv2
    imgs = []
    for i, crop in enumerate((image[:96, :120], image[20:120, 30:107])):
        p = tmp_path / f"im{i}.png"
        cv2.imwrite(str(p), crop[:, :, ::-1])
        imgs.append(str(p))
    common = imgs + ["--thresh", "0.0", "--sizes", "96x128", "--no-progress"]
    assert main(["detect", *common, "--run", str(run_dir), "--out", str(tmp_path / "run")]) == 0
    assert main(["detect", *common, "--model", str(exported / "final"), "--out", str(tmp_path / "prefix")]) == 0
    assert main(["detect", *common, "--model", str(exported / "final.onnx"), "--out", str(tmp_path / "onnx")]) == 0
    ref = _detect_json(tmp_path / "run")
    _same_rows(_detect_json(tmp_path / "prefix"), ref)
    _same_rows(_detect_json(tmp_path / "onnx"), ref)
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted(p.name for p in (tmp_path / "run").iterdir())


def test_test_with_model_prefix_equals_run(run_dir, exported, tmp_path):
    args = ["--dataset", "synthfaces-val", "--limit", "3", "--no-progress"]
    assert main(["test", "--run", str(run_dir), *args, "--out", str(tmp_path / "run")]) == 0
    assert main(["test", "--model", str(exported / "final"), *args, "--out", str(tmp_path / "prefix")]) == 0
    ref = json.loads((tmp_path / "run" / "results.json").read_text())
    got = json.loads((tmp_path / "prefix" / "results.json").read_text())
    assert got["detections"] == ref["detections"] > 0 and got["sizes"] == ref["sizes"]
    for split in ("easy", "medium", "hard"):
        assert got["evaluation"][split] == pytest.approx(ref["evaluation"][split], abs=1e-6)
    # the official files: same names, same counts, rows "x y w h score" within 0.05 px
    files = sorted(p.relative_to(tmp_path / "run") for p in (tmp_path / "run" / "predictions").rglob("*.txt"))
    assert files and files == sorted(p.relative_to(tmp_path / "prefix")
                                     for p in (tmp_path / "prefix" / "predictions").rglob("*.txt"))
    for f in files:
        a, b = ((tmp_path / d / f).read_text().splitlines() for d in ("run", "prefix"))
        assert a[:2] == b[:2] and len(a) == len(b)
        np.testing.assert_allclose(np.loadtxt(b[2:], ndmin=2), np.loadtxt(a[2:], ndmin=2), rtol=0, atol=0.05)


def test_model_argument_errors(run_dir, exported, tmp_path, capsys, monkeypatch):
    def one_line_error(argv, start):
        capsys.readouterr()
        assert main(argv) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(start), err
    img = tmp_path / "x.png"
    import cv2
    cv2.imwrite(str(img), np.zeros((20, 20, 3), np.uint8))
    one_line_error(["detect", str(img), "--run", str(run_dir), "--model", str(exported / "final"), "--out",
                    str(tmp_path / "o")], "error: give --run RUN_DIR or --model")
    one_line_error(["detect", str(img), "--out", str(tmp_path / "o")], "error: give --run RUN_DIR or --model")
    one_line_error(["detect", str(img), "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")],
                   "error: --model")
    one_line_error(["detect", str(img), "--model", str(exported / "final"), "--set", "test.score_thresh=0.2",
                    "--out", str(tmp_path / "o")], "error: --set applies to --run only")
    monkeypatch.setitem(sys.modules, "onnx", None)                      # onnx not installed
    one_line_error(["export", "--run", str(run_dir), "--out", str(tmp_path / "e"), "--onnx", str(tmp_path / "e.onnx")],
                   "error: --onnx: the 'onnx' package is not installed")
    assert not (tmp_path / "e.onnx").exists()
