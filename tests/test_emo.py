import numpy as np
import pytest

from rfcn_face.anchors import AnchorSet
from rfcn_face.boxes import iou_matrix
from rfcn_face.emo import (FACE_SCALE_GROUPS, emo_square, expected_max_iou, group_average_max_iou,
                           max_iou_with_anchors)


@pytest.mark.parametrize("l,s,expected", [(16, 16, 0.4086), (16, 8, 0.6290), (16, 4, 0.7873)])
def test_eq4_paper_values(l, s, expected):
    assert emo_square(l, s) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("l,s", [(8, 16), (16, 8), (24, 32), (5, 4)])
def test_eq4_scale_invariance(l, s):
    assert emo_square(l, s) == pytest.approx(emo_square(2 * l, 2 * s), abs=1e-9)


def test_eq4_decreases_with_stride_and_clamps():
    for l in (8, 16, 32):
        vals = [emo_square(l, s) for s in (2, 4, 8, 16, 32, 64)]
        assert all(a > b for a, b in zip(vals, vals[1:]))
    # sA/2 > l: part of the period has no overlap at all; a negative intersection would give IoU < 0
    assert 0 < emo_square(4, 32) < emo_square(4, 16)


def slow_eq4(l, s, n=200):
    """Eq. 3 averaged with plain Python loops over a midpoint grid."""
    tot = 0.0
    for i in range(n):
        for j in range(n):
            x, y = (i + 0.5) / n * s / 2, (j + 0.5) / n * s / 2
            inter = max(l - x, 0) * max(l - y, 0)
            tot += inter / (2 * l * l - inter)
    return tot / n / n


def test_eq4_vs_loop_reference():
    assert emo_square(16, 16, grid=200) == pytest.approx(slow_eq4(16, 16), abs=1e-12)


@pytest.mark.parametrize("l,s", [(16, 16), (16, 8), (32, 8), (8, 16)])
def test_eq2_equals_eq4_for_single_square_anchor(l, s):
    assert expected_max_iou(l, l, AnchorSet(s, scales=(l,)), grid=256) == pytest.approx(emo_square(l, s), abs=2e-4)


def brute_force_eq2(w, h, aset, grid):
    """Eq. 2 by brute force: IoU with every tiled anchor of a map large enough around the period."""
    n = int(np.ceil(max(w, h, max(aset.scales)) / aset.stride)) + 3
    anchors = aset.tile(2 * n + 1, 2 * n + 1)
    c = n * aset.stride + (np.arange(grid) + 0.5) / grid * aset.stride
    cx, cy = np.meshgrid(c, c)
    faces = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).reshape(-1, 4)
    return iou_matrix(faces, anchors).max(1).mean()


@pytest.mark.parametrize("w,h,stride,shifts", [(16, 16, 8, "16x3"), (12, 20, 16, "16x1"), (40, 30, 8, "16x3&32x1")])
def test_eq2_vs_brute_force_any_anchor_set(w, h, stride, shifts):
    aset = AnchorSet(stride, scales=(8, 16, 32, 64), shifts=shifts, ratios=(1.0, 1.5))
    assert expected_max_iou(w, h, aset, grid=16) == pytest.approx(brute_force_eq2(w, h, aset, 16), abs=1e-12)


def test_eq2_shifted_anchors_raise_emo_for_small_faces():
    e = [expected_max_iou(16, 16, AnchorSet(8, shifts=s)) for s in ("", "16x1", "16x3")]
    assert e[0] < e[1] < e[2]
    assert expected_max_iou(16, 16, AnchorSet(16)) < e[0]


def test_max_iou_real_positions_vs_brute_force():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 300, (400, 2))
    wh = np.exp(rng.uniform(np.log(2), np.log(200), (400, 2)))
    faces = np.concatenate([xy, xy + wh], 1)
    for aset in (AnchorSet(16), AnchorSet(8, shifts="16x3"), AnchorSet(8, shifts="16x1")):
        H = W = int(np.ceil(600 / aset.stride))
        ref = iou_matrix(faces, aset.tile(H, W)).max(1)
        np.testing.assert_allclose(max_iou_with_anchors(faces, aset, image_sizes=np.full((400, 2), 600)), ref,
                                   atol=1e-12)
        # unbounded on the far side: same for faces well inside
        np.testing.assert_allclose(max_iou_with_anchors(faces, aset), ref, atol=1e-12)


def test_group_average_literal():
    # a 16x16 face exactly on a stride-16 anchor -> IoU 1; a 4x4 face -> group [0, 8)
    faces = np.array([[0, 0, 16, 16], [0, 0, 4, 4], [0, 0, 0, 5]])
    res = group_average_max_iou(faces, AnchorSet(16))
    assert len(res) == len(FACE_SCALE_GROUPS)
    assert res[2] == (1, 1.0)
    assert res[0][0] == 2 and res[0][1] == pytest.approx((16 / 256 + 0) / 2)
