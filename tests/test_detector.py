"""FaceDetector: boxes map back to the original image exactly, the pyramid merge equals a slow reference, the
numpy PSROI head equals MXNet's, and a smoke-trained run detects boxes inside the image with sorted scores."""
import math
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from rfcn_face.boxes import iou_matrix  # noqa: E402
from rfcn_face.config import load_config  # noqa: E402
from rfcn_face.testing.box_reference import decode_one  # noqa: E402
from rfcn_face.detector import (FaceDetector, apply_test_overrides, head_detections, map_to_original,  # noqa: E402
                                merge_detections, prepare_image, psroi_pool_numpy, resolve_sizes)

ROOT = Path(__file__).resolve().parents[1]
FINAL = str(ROOT / "experiments" / "table1" / "13_final.yaml")


@pytest.fixture(scope="module")
def detector(run_dir):
    return FaceDetector.from_run(run_dir)


@pytest.fixture(scope="module")
def val_images(detector):
    from rfcn_face.datasets.loader import load_image, records_for_split
    return [load_image(r.image_path) for r in records_for_split(detector.cfg, "val")[:4]]


# ------------------------------------------------------------------------------------------------ box mapping
def _slow_head(rois, cls, box, resized, original, means, stds, thresh):
    """Per RoI with python floats: softmax, decode, clip to the resized image, then to original pixels with the
    factors recomputed from the two image sizes (w / W0, h / H0)."""
    (h, w), (H, W) = resized, original
    sx, sy = w / W, h / H
    out_b, out_s = [], []
    for r, c, d in zip(rois, cls, box):
        e = [math.exp(v - max(c)) for v in c]
        p = e[1] / sum(e)
        b = decode_one(r, d, means, stds)
        b = [min(max(b[0], 0), w), min(max(b[1], 0), h), min(max(b[2], 0), w), min(max(b[3], 0), h)]
        if p > thresh and b[2] > b[0] and b[3] > b[1]:
            o = [b[0] / sx, b[1] / sy, b[2] / sx, b[3] / sy]
            out_b.append([min(max(o[0], 0), W), min(max(o[1], 0), H), min(max(o[2], 0), W), min(max(o[3], 0), H)])
            out_s.append(p)
    return np.array(out_b).reshape(-1, 4), np.array(out_s)


def test_head_detections_map_back_like_slow_reference():
    rng = np.random.default_rng(0)
    cfg = load_config(FINAL, preset="smoke")
    for H, W, size in ((333, 517, (200, 300)), (480, 640, (600, 1000)), (97, 211, (0, 0))):
        img = np.zeros((H, W, 3), np.uint8)
        norm = type("N", (), {"mean": (0, 0, 0), "std": (1, 1, 1), "scale": 1.0})()
        x, im_info, sxy = prepare_image(img, size, norm)
        h, w = x.shape[1:]
        assert (im_info[0], im_info[1]) == (h, w)
        assert sxy == (w / W, h / H)            # the exact per-axis factors of the rounded size
        if H == 333:
            assert (h, w) == (193, 300) and sxy[0] != sxy[1]       # rounding makes the two factors differ
        xy = rng.uniform(-20, max(h, w), (60, 2))
        rois = np.concatenate([xy, xy + rng.uniform(4, 120, (60, 2))], 1)
        cls, box = rng.normal(0, 2, (60, 2)), rng.normal(0, 0.5, (60, 4))
        got = head_detections(rois, cls, box, (h, w), sxy, (H, W), means=cfg.rcnn.bbox_means,
                              stds=cfg.rcnn.bbox_stds, score_thresh=0.3)
        ref = _slow_head(rois, cls, box, (h, w), (H, W), cfg.rcnn.bbox_means, cfg.rcnn.bbox_stds, 0.3)
        assert len(got[0]) == len(ref[0]) > 10
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-12)
        assert got[0][:, [0, 2]].max() <= W and got[0][:, [1, 3]].max() <= H and got[0].min() >= 0


def test_whole_resized_image_maps_to_whole_original_literal():
    # 333 x 517 at 200x300: scale min(200/333, 300/517) = 0.58027; 193 x 300 px, factors 300/517 and 193/333
    b = map_to_original([[0, 0, 300, 193], [150, 96.5, 300, 193]], (300 / 517, 193 / 333), (333, 517))
    np.testing.assert_allclose(b, [[0, 0, 517, 333], [258.5, 166.5, 517, 333]], rtol=0, atol=1e-9)
    assert b[0].tolist() == [0.0, 0.0, 517.0, 333.0]           # clipped: never outside the image


def test_resized_detection_equals_original_detection(detector, val_images):
    """A 2x nearest-neighbour upsampled image tested at half its size feeds the network the original pixels
    (INTER_AREA of 2x2 equal blocks), so its detections must be exactly twice the original's."""
    img = val_images[0]
    h, w = img.shape[:2]
    big = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)
    b1, s1 = detector.detect(img, sizes=[0, 0])
    b2, s2 = detector.detect(big, sizes=[min(h, w), max(h, w)])
    assert len(b1) > 0
    np.testing.assert_array_equal(s2, s1)
    np.testing.assert_allclose(b2, 2 * b1, rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------------------------ pyramid merge
def _slow_merge(cands, thresh, max_per):
    """Union, stable sort by score, greedy NMS written from the definition (pairwise IoU loop)."""
    rows = [(float(s), k, list(map(float, b))) for k, (b, s) in enumerate(
        (b, s) for boxes, scores in cands for b, s in zip(boxes, scores))]
    rows.sort(key=lambda r: (-r[0], r[1]))
    kept = []
    for s, k, b in rows:
        if all(iou_matrix(np.array([b]), np.array([kb]))[0, 0] <= thresh for _, _, kb in kept):
            kept.append((s, k, b))
        if len(kept) == max_per:
            break
    return np.array([b for _, _, b in kept]).reshape(-1, 4), np.array([s for s, _, _ in kept])


def test_pyramid_merge_equals_slow_reference():
    rng = np.random.default_rng(1)
    for trial in range(20):
        cands = []
        centres = rng.uniform(0, 400, (8, 2))
        for level in range(int(rng.integers(1, 5))):          # the same faces seen at several levels
            n = int(rng.integers(0, 30))
            c = centres[rng.integers(0, 8, n)] + rng.normal(0, 6, (n, 2))
            s = rng.uniform(10, 80, (n, 1))
            scores = np.round(rng.random(n), 2)                    # repeated scores: tie order matters
            cands.append((np.concatenate([c - s / 2, c + s / 2], 1), scores))
        for thresh, max_per in ((0.3, 1000), (0.5, 5)):
            got = merge_detections(cands, thresh, max_per)
            ref = _slow_merge(cands, thresh, max_per)
            np.testing.assert_array_equal(got[0], ref[0])
            np.testing.assert_array_equal(got[1], ref[1])


def test_pyramid_merge_literal():
    small = (np.array([[10, 10, 30, 30.]]), np.array([0.9]))          # a face at a large level
    large = (np.array([[12, 10, 32, 30.], [100, 100, 140, 140.]]), np.array([0.95, 0.4]))
    boxes, scores = merge_detections([small, large], 0.3, 1000)
    # IoU([10,10,30,30], [12,10,32,30]) = 360 / 440 > 0.3: the 0.95 box of the other level wins
    assert scores.tolist() == [0.95, 0.4]
    assert boxes.tolist() == [[12, 10, 32, 30], [100, 100, 140, 140]]
    assert merge_detections([small, large], 0.9, 1)[1].tolist() == [0.95]
    assert merge_detections([], 0.3, 10)[0].shape == (0, 4)


def test_resolve_sizes():
    cfg = load_config(FINAL, preset="smoke")
    assert resolve_sizes(cfg) == [[256, 256]]
    assert resolve_sizes(cfg, pyramid=True) == [[128, 256], [256, 256]]
    assert resolve_sizes(cfg, [600, 1000]) == [[600, 1000]]
    assert resolve_sizes(cfg, [[600, 1000], [0, 0]], pyramid=False) == [[600, 1000], [0, 0]]
    with pytest.raises(ValueError, match="shorter, longer"):
        resolve_sizes(cfg, [[600, -1]])


def test_test_time_overrides():
    cfg = load_config(FINAL, preset="smoke")
    c2 = apply_test_overrides(cfg, ["test.score_thresh=0.2", "test.sizes=[[64,64]]"])
    assert c2.test.score_thresh == 0.2 and c2.test.sizes == [[64, 64]] and c2.model.arch == "DC"
    with pytest.raises(ValueError, match="only test"):
        apply_test_overrides(cfg, ["model.arch=BU"])


# ------------------------------------------------------------------------------------------------ numpy head
def test_psroi_pool_numpy_equals_mxnet_head():
    from symbols.rfcn import PSROIHead
    rng = np.random.default_rng(3)
    k, stride = 7, 8
    head = PSROIHead(16, stride, channels=8, k=k)
    head.initialize(mx.init.Normal(0.5))
    feat = mx.nd.array(rng.normal(0, 1, (1, 16, 13, 17)))
    xy = rng.uniform(-10, 120, (40, 2))
    rois = np.concatenate([xy, xy + rng.uniform(0.3, 90, (40, 2))], 1)
    rois[:3] = [[0, 0, 136, 104], [5.5, 7.5, 6.2, 8.1], [16.5, 8.49, 40.5, 31.5]]   # whole map, tiny, .5 corners
    cls, box = head(feat, mx.nd.array(np.concatenate([np.zeros((40, 1)), rois], 1)))
    h = mx.nd.relu(head.conv_new(feat))
    cls_maps, box_maps = head.cls_maps(h).asnumpy()[0], head.box_maps(h).asnumpy()[0]
    np.testing.assert_allclose(psroi_pool_numpy(cls_maps, rois, spatial_scale=1 / stride, k=k, output_dim=2),
                               cls.asnumpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(psroi_pool_numpy(box_maps, rois, spatial_scale=1 / stride, k=k, output_dim=4),
                               box.asnumpy(), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------ smoke run
def test_detect_on_smoke_run(detector, val_images):
    cfg = detector.cfg
    for img in val_images:
        boxes, scores = detector.detect(img)
        h, w = img.shape[:2]
        assert boxes.shape == (len(scores), 4) and 0 < len(scores) <= cfg.test.max_per_image
        assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 1] >= 0)
        assert np.all(boxes[:, 2] <= w) and np.all(boxes[:, 3] <= h)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        assert np.all((scores > cfg.test.score_thresh) & (scores <= 1))
        assert np.all(np.diff(scores) <= 0)                             # best first
        iou = iou_matrix(boxes, boxes)
        assert np.all(iou[np.triu_indices(len(boxes), 1)] <= cfg.test.nms_thresh)   # NMS applied


def test_pyramid_is_the_merge_of_its_levels(detector, val_images):
    img = val_images[1]
    sizes = resolve_sizes(detector.cfg, pyramid=True)
    levels = []
    for s in sizes:   # each level's candidates = that size's detections before NMS: recompute with NMS off
        d = FaceDetector(apply_test_overrides(detector.cfg, ["test.nms_thresh=1.0", "test.max_per_image=100000"]),
                         net=detector.net, hybridize=False)
        levels.append(d.detect(img, sizes=s))
    ref = merge_detections(levels, detector.cfg.test.nms_thresh, detector.cfg.test.max_per_image)
    got = detector.detect(img, pyramid=True)
    np.testing.assert_allclose(got[0], ref[0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got[1], ref[1], rtol=0, atol=1e-12)


def test_several_devices_give_the_same_detections(run_dir, detector, val_images):
    two = FaceDetector.from_run(run_dir, ctx=[mx.cpu(0), mx.cpu(1)])
    got = two.detect_many(val_images[:3])
    for img, (b, s) in zip(val_images[:3], got):
        rb, rs = detector.detect(img)
        np.testing.assert_allclose(b, rb, rtol=0, atol=1e-6)
        np.testing.assert_allclose(s, rs, rtol=0, atol=1e-9)


def test_bad_input_errors(tmp_path, run_dir, detector):
    with pytest.raises(FileNotFoundError, match="run folder not found"):
        FaceDetector.from_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        FaceDetector.from_run(tmp_path / "empty")
    (tmp_path / "empty" / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    with pytest.raises(FileNotFoundError, match="no final.params"):
        FaceDetector.from_run(tmp_path / "empty")
    (tmp_path / "empty" / "final.params").write_bytes(b"not a params file")
    with pytest.raises(ValueError, match="cannot load detector parameters"):
        FaceDetector.from_run(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) RGB image"):
        detector.detect(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="empty image"):
        detector.detect(np.zeros((0, 5, 3), np.uint8))


def test_both_nms_implementations_give_the_same_detections(run_dir, detector, val_images):
    """The GPU choice (box_nms) forced on the CPU context equals the CPU choice (the numpy CustomOp)."""
    assert detector.nms_impl == "numpy"
    forced = FaceDetector(detector.cfg, net=detector.net, hybridize=False, nms_impl="box_nms")
    assert forced.nms_impl == "box_nms"
    for img in val_images[:2]:
        (b, s), (rb, rs) = forced.detect(img), detector.detect(img)
        assert len(s) == len(rs) > 0
        np.testing.assert_allclose(b, rb, rtol=0, atol=1e-9)
        np.testing.assert_allclose(s, rs, rtol=0, atol=1e-12)
