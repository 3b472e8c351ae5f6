"""Gluon DataLoader pipeline on a small synthfaces set: shapes, padding, content, reproducibility."""
import numpy as np
import pytest

pytest.importorskip("mxnet")

from rfcn_face.config import config_from_dict  # noqa: E402
from rfcn_face.datasets import synthfaces as sf  # noqa: E402
from rfcn_face.datasets.loader import (IMAGENET_MEAN, IMAGENET_STD, EpochSampler, load_image,  # noqa: E402
                                       records_for_split, test_loader, train_batchify, train_loader)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = sf.generate_synthfaces(tmp_path_factory.mktemp("synth"), num_train=6, num_val=3, seed=1)
    cfg = config_from_dict({"data": {"root": str(root)}, "train": {"flip": False, "batch_images": 2}})
    return root, cfg


def _denorm(chw):
    x = chw.transpose(1, 2, 0) * np.asarray(IMAGENET_STD) + np.asarray(IMAGENET_MEAN)
    return np.round(x * 255).astype(np.int64)


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
            np.testing.assert_array_equal(_denorm(data[b, :, :img.shape[0], :img.shape[1]]), img)


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
    cfg = config_from_dict({"data": {"root": str(root)}, "model": {"arch": "DC"},
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
    cfg = config_from_dict({"data": {"dataset": "wider", "root": str(tmp_path)}})
    with pytest.raises(FileNotFoundError, match=r"widerface/wider_face_split/wider_face_train_bbx_gt.txt"):
        records_for_split(cfg, "train")


def test_ignored_faces_are_flagged_for_the_target_operators(tmp_path):
    import cv2

    from operators.anchor_target import split_gt
    from rfcn_face.datasets.record import FaceRecord
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), np.full((20, 30, 3), 128, np.uint8))
    rec = FaceRecord(str(path), boxes=[[1, 2, 5, 8], [10, 10, 20, 18]], ignore=[False, True])
    cfg = config_from_dict({"train": {"flip": False}})
    (data, gt, info), = list(train_loader([rec, rec], cfg, batch_size=2, shuffle=False))[:1]
    gt = gt.asnumpy()
    np.testing.assert_array_equal(gt[0], [[1, 2, 5, 8, 0], [10, 10, 20, 18, 1]])
    present, boxes, ignore = split_gt(gt[0])
    assert present.tolist() == [0, 1] and ignore.tolist() == [False, True]
