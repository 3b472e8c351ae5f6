"""Gluon DataLoader pipeline on a small synthfaces set: shapes, padding, content (literal normalised values for
both checkpoint styles), reproducibility."""
import numpy as np
import pytest

pytest.importorskip("mxnet")

from rfcn_face.config import ConfigError, config_from_dict, resolve_normalisation  # noqa: E402
from rfcn_face.datasets import synthfaces as sf  # noqa: E402
from rfcn_face.datasets.loader import (EpochSampler, FaceTestDataset, load_image, normalise_image,  # noqa: E402
                                       records_for_split, test_loader, train_batchify, train_loader)
from rfcn_face.datasets.record import FaceRecord  # noqa: E402

# The two checkpoint styles, written out here (not taken from the module): RGB
CAFFE_MEAN = np.array([123.15, 115.90, 103.06])                       # 0..255, std 1 (MXNet R-FCN ResNet)
IMNET_MEAN, IMNET_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])   # x/255 (GluonCV)


def _cfg(data, style=None):
    cfg = config_from_dict(data)
    resolve_normalisation(cfg, style)
    return cfg


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = sf.generate_synthfaces(tmp_path_factory.mktemp("synth"), num_train=6, num_val=3, seed=1)
    cfg = _cfg({"data": {"dataset": "synthfaces", "root": str(root)}, "train": {"flip": False, "batch_images": 2}})
    return root, cfg


def _imagenet(img):
    """HWC uint8 -> CHW, (x/255 - mean) / std with the GluonCV numbers."""
    return ((img / 255.0 - IMNET_MEAN) / IMNET_STD).transpose(2, 0, 1)


def test_train_batches_hold_the_images_and_boxes(synth):
    root, cfg = synth
    recs = records_for_split(cfg, "train")
    assert len(recs) == 6
    batches = list(train_loader(recs, cfg, shuffle=False))
    assert len(batches) == 3
    k = 0
    for data, gt, info in batches:
        data, gt, info = data.asnumpy(), gt.asnumpy(), info.asnumpy()
        assert data.shape[:2] == (2, 3) and gt.shape[0] == 2 and gt.shape[2] == 5
        for b in range(2):
            r = recs[k]
            k += 1
            n = len(r.boxes)
            np.testing.assert_array_equal(gt[b, :n, :4], r.boxes)
            np.testing.assert_array_equal(gt[b, :n, 4], 0.0)                   # 0 = face
            assert np.all(gt[b, n:] == -1)                                  # padding rows
            img = load_image(r.image_path)
            np.testing.assert_array_equal(info[b], [img.shape[0], img.shape[1], 1.0])
            np.testing.assert_allclose(data[b, :, :img.shape[0], :img.shape[1]], _imagenet(img), rtol=0, atol=2e-6)
            assert np.all(data[b, :, img.shape[0]:] == 0) and np.all(data[b, :, :, img.shape[1]:] == 0)


def test_batchify_pads_images_and_boxes():
    a = (np.ones((3, 2, 4), np.float32), np.array([[0, 0, 1, 1, 1]], np.float32), np.array([2, 4, 1], np.float32))
    b = (2 * np.ones((3, 5, 3), np.float32), np.zeros((0, 5), np.float32), np.array([5, 3, 1], np.float32))
    data, gt, info = train_batchify([a, b], pad_multiple=4)
    assert data.shape == (2, 3, 8, 4)
    assert data[0, :, :2, :4].min() == 1 and data[0, :, 2:].max() == 0
    assert data[1, :, :5, :3].min() == 2 and data[1, :, :, 3:].max() == 0
    np.testing.assert_array_equal(gt, [[[0, 0, 1, 1, 1]], [[-1, -1, -1, -1, -1]]])
    np.testing.assert_array_equal(info, [[2, 4, 1], [5, 3, 1]])


def test_jitter_is_reproducible_with_workers(synth):
    root, cfg0 = synth
    cfg = _cfg({"data": {"dataset": "synthfaces", "root": str(root)}, "model": {"arch": "DC"},
                "train": {"flip": True, "shift_jitter": True, "batch_images": 1}})
    recs = records_for_split(cfg, "train")
    runs = []
    for workers in (0, 2):
        runs.append([(d.shape, g.asnumpy()) for d, g, _ in train_loader(recs, cfg, num_workers=workers)])
    assert [s for s, _ in runs[0]] == [s for s, _ in runs[1]]
    for (_, g0), (_, g1) in zip(*runs):
        np.testing.assert_array_equal(g0, g1)
    heights = {s[2] for s, _ in runs[0]}
    assert heights <= {256, 257, 258, 259}                                  # + dy in {0..3} (stride 8)


def test_epoch_sampler_draws():
    s = EpochSampler(5, shuffle=True, seed=0)
    e0, e1 = list(s), list(s)
    assert sorted(i for i, _ in e0) == sorted(i for i, _ in e1) == list(range(5))
    assert [d for _, d in e0] == list(range(5)) and [d for _, d in e1] == list(range(5, 10))
    assert list(EpochSampler(3, shuffle=False)) == [(0, 0), (1, 1), (2, 2)]


def test_test_loader_resizes_with_table2_semantics(synth):
    root, cfg = synth
    recs = records_for_split(cfg, "val")
    out = list(test_loader(recs, cfg, size=[128, 1000]))
    assert len(out) == 3
    for k, (data, info, index) in enumerate(out):
        assert data.shape == (1, 3, 128, 128)
        np.testing.assert_array_equal(info.asnumpy(), [[128, 128, 0.5]])
        assert int(index.asscalar()) == k


def test_missing_image_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        load_image(tmp_path / "nope.jpg")


def test_wider_root_missing_is_a_clear_error(tmp_path):
    cfg = config_from_dict({"data": {"root": str(tmp_path)}})        # wider is the default (the paper's data)
    assert cfg.data.dataset == "wider"
    with pytest.raises(FileNotFoundError, match=r"widerface/wider_face_split/wider_face_train_bbx_gt.txt"):
        records_for_split(cfg, "train")


def test_ignored_faces_are_flagged_for_the_target_operators(tmp_path):
    import cv2

    from rfcn_face.targets import split_gt
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), np.full((20, 30, 3), 128, np.uint8))
    rec = FaceRecord(str(path), boxes=[[1, 2, 5, 8], [10, 10, 20, 18]], ignore=[False, True])
    cfg = _cfg({"train": {"flip": False}})
    (data, gt, info), = list(train_loader([rec, rec], cfg, batch_size=2, shuffle=False))[:1]
    gt = gt.asnumpy()
    np.testing.assert_array_equal(gt[0], [[1, 2, 5, 8, 0], [10, 10, 20, 18, 1]])
    present, boxes, ignore = split_gt(gt[0])
    assert present.tolist() == [0, 1] and ignore.tolist() == [False, True]


# ------------------------------------------------------------------------------------ normalisation
def _pixel_image(tmp_path):
    """A 1x2 PNG (lossless): pixel (255, 0, 128) and pixel (0, 0, 0), RGB."""
    import cv2
    rgb = np.array([[[255, 0, 128], [0, 0, 0]]], np.uint8)
    path = tmp_path / "px.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1].copy())
    return path


@pytest.mark.parametrize("style,expected", [
    ("mxnet", [131.85, -115.90, 24.94]),                                     # 255-123.15, 0-115.90, 128-103.06
    ("gluon_v1", [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]),
    ("gluon_v1b", [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]),
    (None, [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128 / 255 - 0.406) / 0.225]),
])
def test_pixel_values_follow_the_checkpoint_style(tmp_path, style, expected):
    path = _pixel_image(tmp_path)
    cfg = _cfg({"train": {"flip": False}}, style)
    rec = FaceRecord(str(path), boxes=np.zeros((0, 4)), ignore=[])
    (data, _, _), = list(train_loader([rec], cfg, shuffle=False))
    np.testing.assert_allclose(data.asnumpy()[0, :, 0, 0], expected, rtol=1e-5, atol=1e-5)
    ((tdata, _, _),) = list(test_loader([rec], cfg, size=[0, 0]))
    np.testing.assert_allclose(tdata.asnumpy()[0, :, 0, 0], expected, rtol=1e-5, atol=1e-5)
    black = {"mxnet": [-123.15, -115.90, -103.06]}.get(style, [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])
    np.testing.assert_allclose(tdata.asnumpy()[0, :, 0, 1], black, rtol=1e-5, atol=1e-5)


def test_normalise_image_literal():
    img = np.array([[[255, 0, 128]]], np.uint8)
    cfg = config_from_dict({})
    out = normalise_image(img, resolve_normalisation(cfg, "mxnet"))
    assert out.shape == (3, 1, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [131.85, -115.90, 24.94], rtol=0, atol=2e-5)


@pytest.mark.parametrize("style,fill", [
    ("mxnet", [123 - 123.15, 116 - 115.90, 103 - 103.06]),                   # mean pixel (123, 116, 103)
    (None, [(124 / 255 - 0.485) / 0.229, (116 / 255 - 0.456) / 0.224, (104 / 255 - 0.406) / 0.225]),
])
def test_shift_jitter_pads_with_the_mean_pixel(tmp_path, style, fill):
    import cv2
    path = tmp_path / "white.png"
    cv2.imwrite(str(path), np.full((16, 16, 3), 255, np.uint8))
    rec = FaceRecord(str(path), boxes=[[2, 2, 10, 10]], ignore=[False])
    cfg = _cfg({"train": {"flip": False, "shift_jitter": True, "seed": 3}}, style)   # baseline: dy in {0..7}
    white = {"mxnet": 255 - CAFFE_MEAN}.get(style, (1 - IMNET_MEAN) / IMNET_STD)
    seen = 0
    for data, gt, info in train_loader([rec] * 12, cfg, shuffle=False):
        d = data.asnumpy()[0]
        h, w = (int(v) for v in info.asnumpy()[0, :2])
        dy, dx = h - 16, w - 16
        assert 0 <= dy <= 7 and 0 <= dx <= 7
        np.testing.assert_allclose(gt.asnumpy()[0, 0, :4], [2 + dx, 2 + dy, 10 + dx, 10 + dy])
        if dy:
            seen += 1
            np.testing.assert_allclose(d[:, :dy, :].reshape(3, -1).T, np.tile(fill, (dy * w, 1)), atol=1e-5)
        np.testing.assert_allclose(d[:, dy:h, dx:w].reshape(3, -1).T, np.tile(white, (16 * 16, 1)), atol=1e-5)
    assert seen > 0


def test_loaders_refuse_an_unresolved_normalisation(tmp_path):
    rec = FaceRecord(str(_pixel_image(tmp_path)), boxes=np.zeros((0, 4)), ignore=[])
    cfg = config_from_dict({})
    with pytest.raises(ConfigError, match="resolve_normalisation"):
        train_loader([rec], cfg)
    with pytest.raises(ConfigError, match="resolve_normalisation"):
        test_loader([rec], cfg)
    with pytest.raises(TypeError):
        FaceTestDataset([rec], norm=None)
