"""face-eval toolbox (AFW / PASCAL Faces) reader: hand-built .mat files of each format, the coordinate
mapping against the toolbox's +1 overlap, and the real counts."""
import numpy as np
import pytest
import scipy.io

from rfcn_face.boxes import iou_matrix
from rfcn_face.datasets.face_eval import (continuous_to_toolbox, read_face_eval_mat, toolbox_to_continuous)


def _struct(entries, with_flags=True):
    names = ["imgname", "imgsize", "objects"] + (["flags"] if with_flags else [])
    a = np.empty((len(entries), 1), dtype=[(n, object) for n in names])
    for k, e in enumerate(entries):
        for n in names:
            a[k, 0][n] = e[n] if n != "flags" else np.array([[0]])
    return a


def test_new_format_literal(tmp_path):
    p = tmp_path / "new.mat"
    scipy.io.savemat(str(p), {"Annotations": _struct([
        {"imgname": "1.jpg", "imgsize": np.array([[640], [480], [3]]),
         "objects": np.array([[11, 21, 30, 60, 0, 0], [100, 100, 104, 109, 0, 1]])},
        {"imgname": "2.jpg", "imgsize": np.array([[50], [40], [3]]), "objects": np.array([[1, 1, 10, 10, 0, 0]])},
    ])})
    recs = read_face_eval_mat(p, image_root="/afw")
    assert [r.name for r in recs] == ["1", "2"] and recs[0].image_path == "/afw/1.jpg"
    assert (recs[0].width, recs[0].height) == (640, 480)
    np.testing.assert_array_equal(recs[0].boxes, [[10, 20, 30, 60], [99, 99, 104, 109]])
    np.testing.assert_array_equal(recs[0].ignore, [False, True])
    assert recs[0].num_faces == 1
    np.testing.assert_array_equal(recs[1].boxes, [[0, 0, 10, 10]])     # 1..10 inclusive = 10 pixels


def test_old_pascal_format_literal(tmp_path):
    p = tmp_path / "old.mat"
    scipy.io.savemat(str(p), {"Annotations": _struct([
        {"imgname": "2007_000272.jpg", "imgsize": np.array([[333, 500, 3]]),
         "objects": np.array([[166, 118, 246, 235]])}], with_flags=False)})
    r = read_face_eval_mat(p)[0]
    assert r.name == "2007_000272" and (r.width, r.height) == (333, 500)
    np.testing.assert_array_equal(r.boxes, [[165, 117, 246, 235]])
    assert not r.ignore.any()


def test_old_afw_format_literal(tmp_path):
    anno = np.empty((1, 4), dtype=object)
    anno[0, 0] = "111.jpg"
    boxes = np.empty((1, 2), dtype=object)
    boxes[0, 0] = np.array([[1036, 602], [1198, 764]])
    boxes[0, 1] = np.array([[1117, 743], [1267, 881]])
    poses = np.empty((1, 2), dtype=object)
    poses[0, 0] = np.array([[15, 0, -15]])
    poses[0, 1] = np.array([[15, 0, 0]])
    anno[0, 1], anno[0, 2], anno[0, 3] = boxes, poses, np.empty((1, 2), dtype=object)
    anno[0, 3][0, 0] = anno[0, 3][0, 1] = np.zeros((6, 2))
    p = tmp_path / "anno2.mat"
    scipy.io.savemat(str(p), {"anno": anno})
    r = read_face_eval_mat(p)[0]
    assert r.name == "111"
    np.testing.assert_array_equal(r.boxes, [[1035, 601, 1198, 764], [1116, 742, 1267, 881]])
    np.testing.assert_array_equal(r.attributes["pose"], [[15, 0, -15], [15, 0, 0]])


def _toolbox_overlap(a, b):
    """The toolbox's overlap of two inclusive integer boxes (x1, y1, x2, y2), written out plainly."""
    w1, h1 = a[2] - a[0] + 1, a[3] - a[1] + 1
    w2, h2 = b[2] - b[0] + 1, b[3] - b[1] + 1
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    inter = iw * ih if iw > 0 and ih > 0 else 0
    return inter / float(w1 * h1 + w2 * h2 - inter)


def test_mapping_preserves_the_toolbox_iou():
    rng = np.random.default_rng(1)
    a = rng.integers(1, 60, (40, 2))
    a = np.concatenate([a, a + rng.integers(0, 40, (40, 2))], axis=1)
    b = rng.integers(1, 60, (30, 2))
    b = np.concatenate([b, b + rng.integers(0, 40, (30, 2))], axis=1)
    got = iou_matrix(toolbox_to_continuous(a), toolbox_to_continuous(b))
    ref = np.array([[_toolbox_overlap(x, y) for y in b] for x in a])
    np.testing.assert_allclose(got, ref, atol=1e-12)
    np.testing.assert_array_equal(continuous_to_toolbox(toolbox_to_continuous(a)), a)


def test_inverted_box_is_an_error(tmp_path):
    p = tmp_path / "bad.mat"
    scipy.io.savemat(str(p), {"Annotations": _struct([
        {"imgname": "x.jpg", "imgsize": np.array([[10], [10], [3]]), "objects": np.array([[5, 5, 2, 8, 0, 0]])}])})
    with pytest.raises(ValueError, match=r"bad.mat: entry 1 \(x.jpg\) row 1: x2 < x1"):
        read_face_eval_mat(p)


def test_unknown_layout_is_an_error(tmp_path):
    p = tmp_path / "other.mat"
    scipy.io.savemat(str(p), {"boxes": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="other.mat: neither an 'Annotations' struct"):
        read_face_eval_mat(p)


@pytest.mark.realdata
@pytest.mark.parametrize("fname, images, faces, ignored", [
    ("new_annotations_AFW.mat", 205, 474, 71),
    ("Annotations_Face_PASCALLayout_large_fixed.mat", 851, 1580, 55),
    ("anno2.mat", 205, 468, 0),
    ("Annotations_Face_PASCALLayout_large.mat", 851, 1335, 0),
])
def test_real_counts(shared_data, fname, images, faces, ignored):
    recs = read_face_eval_mat(shared_data / "afw_pascal" / fname)
    assert len(recs) == images
    assert sum(r.num_faces for r in recs) == faces
    assert sum(int(r.ignore.sum()) for r in recs) == ignored


@pytest.mark.realdata
def test_real_new_afw_first_entry(shared_data):
    r = read_face_eval_mat(shared_data / "afw_pascal/new_annotations_AFW.mat")[0]
    assert r.name == "5002723411" and (r.width, r.height) == (2301, 1530)
    np.testing.assert_array_equal(r.boxes[0], [1406, 656, 1451, 705])
    np.testing.assert_array_equal(r.ignore, [True, True, False, False, False])
