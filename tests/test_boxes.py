import numpy as np
import pytest

from rfcn_face import boxes as B


def random_boxes(rng, n, size=100.0, max_wh=40.0, allow_degenerate=False):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(0 if allow_degenerate else 0.5, max_wh, (n, 2))
    if allow_degenerate:
        wh[rng.random(n) < 0.1, 0] = 0.0
    return np.concatenate([xy, xy + wh], axis=1)


def slow_iou(a, b):
    """Straight from the definition, one pair at a time (continuous convention, no +1)."""
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            area_p = max(0.0, p[2] - p[0]) * max(0.0, p[3] - p[1])
            area_q = max(0.0, q[2] - q[0]) * max(0.0, q[3] - q[1])
            union = area_p + area_q - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


def slow_nms(boxes, scores, thresh):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(slow_iou(boxes[i:i + 1], boxes[k:k + 1])[0, 0] <= thresh for k in keep):
            keep.append(i)
    return keep


def test_iou_matches_reference_on_random_boxes():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = random_boxes(rng, 37, allow_degenerate=True), random_boxes(rng, 23, allow_degenerate=True)
        np.testing.assert_allclose(B.iou_matrix(a, b), slow_iou(a, b), rtol=0, atol=1e-12)


def test_iou_pixel_convention_literal():
    # two 10x10 boxes shifted by 5 px: inter 50, union 150 (no "+1")
    assert B.iou_matrix([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)
    # touching boxes do not overlap
    assert B.iou_matrix([[0, 0, 10, 10]], [[10, 0, 20, 10]])[0, 0] == 0.0
    assert B.xywh_to_xyxy([[3, 4, 10, 20]]).tolist() == [[3, 4, 13, 24]]
    assert B.box_area([[3, 4, 13, 24]]).tolist() == [200.0]


def test_iou_empty_inputs():
    assert B.iou_matrix(np.zeros((0, 4)), [[0, 0, 1, 1]]).shape == (0, 1)
    assert B.iou_matrix([[0, 0, 1, 1]], np.zeros((0, 4))).shape == (1, 0)


def test_encode_decode_round_trip_and_literal():
    rng = np.random.default_rng(1)
    a, g = random_boxes(rng, 200), random_boxes(rng, 200)
    means, stds = (0.1, -0.2, 0.0, 0.05), (0.1, 0.1, 0.2, 0.2)
    d = B.encode(a, g, means, stds)
    np.testing.assert_allclose(B.decode(a, d, means, stds), g, atol=1e-9)
    # literal: gt twice as wide, centre shifted by half the anchor width
    t = B.encode([[0, 0, 10, 10]], [[0, -5, 20, 15]])
    np.testing.assert_allclose(t, [[0.5, 0.0, np.log(2), np.log(2)]])


def test_encode_rejects_zero_size():
    with pytest.raises(ValueError):
        B.encode([[0, 0, 10, 10]], [[5, 5, 5, 9]])


def test_decode_clips_log_scale():
    out = B.decode([[0, 0, 10, 10]], [[0, 0, 100, 100]])
    w = out[0, 2] - out[0, 0]
    assert w == pytest.approx(10 * 1000 / 16)


def test_clip_boxes():
    out = B.clip_boxes([[-5, -3, 50, 40]], height=30, width=20)
    assert out.tolist() == [[0, 0, 20, 30]]


@pytest.mark.parametrize("thresh", [0.0, 0.3, 0.5, 0.7])
def test_nms_matches_reference(thresh):
    rng = np.random.default_rng(int(thresh * 10))
    b = random_boxes(rng, 120, size=60, max_wh=30)
    s = rng.random(120).round(2)  # rounding creates ties
    assert B.nms(b, s, thresh).tolist() == slow_nms(b, s, thresh)


def test_nms_topk_and_literal():
    b = [[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]]
    assert B.nms(b, [0.9, 0.8, 0.7], 0.5).tolist() == [0, 2]
    assert B.nms(b, [0.9, 0.8, 0.7], 0.5, topk=1).tolist() == [0]
    assert B.nms(np.zeros((0, 4)), [], 0.5).tolist() == []


def test_pairwise_iou_is_the_diagonal_of_iou_matrix_bit_for_bit():
    from rfcn_face.boxes import iou_matrix, pairwise_iou
    rng = np.random.default_rng(7)
    a = rng.uniform(0, 50, (300, 4)); a[:, 2:] += a[:, :2] * rng.uniform(0, 1, (300, 2))
    b = rng.uniform(0, 50, (300, 4)); b[:, 2:] += b[:, :2] * rng.uniform(0, 1, (300, 2))
    a[:20, 2:] = a[:20, :2]                                    # empty boxes: IoU 0 (no 0 / 0)
    b[:10] = a[:10]
    got = pairwise_iou(a, b)
    np.testing.assert_array_equal(got, np.diag(iou_matrix(a, b)))
    assert got.dtype == np.float64 and (got[:20] == 0).all() and pairwise_iou(a[:0], b[:0]).shape == (0,)


@pytest.mark.parametrize("thresh", [0.3, 0.7])
def test_nms_over_several_blocks_matches_reference(thresh):
    """600 candidates span five blocks of NMS_CHUNK = 128: boxes kept in one block suppress the next ones; topk
    stops inside the first block, at its boundary and inside a later one."""
    assert B.NMS_CHUNK == 128
    rng = np.random.default_rng(int(thresh * 10))
    b = random_boxes(rng, 600, size=150, max_wh=40)
    s = rng.random(600).round(2)                       # ties across block boundaries
    ref = slow_nms(b, s, thresh)
    assert len(ref) > 260 or thresh == 0.3
    assert B.nms(b, s, thresh).tolist() == ref
    for k in (5, 128, 129, len(ref) - 1):
        assert B.nms(b, s, thresh, topk=k).tolist() == ref[:k]


def test_nms_rows_has_box_nms_layout_literal():
    """nms_rows = contrib.box_nms's contract: score > valid_thresh takes part (strict), only the topk best,
    kept rows first and best first, every other row -1; max_output stops early; extra columns ride along."""
    rows = np.array([[0.5, 0, 0, 10, 10, 7],          # IoU 81/119 = 0.68 with the next row: suppressed at 0.5
                     [0.9, 1, 1, 11, 11, 8],
                     [0.0, 50, 50, 60, 60, 9],        # score == valid_thresh: out
                     [0.3, 100, 100, 110, 110, 3],
                     [0.9, 200, 200, 210, 210, 4]])   # ties 0.9 with row 1: the lower row first
    out = B.nms_rows(rows, 0.5, 0.0)
    assert out[:, 5].tolist() == [8, 4, 3, -1, -1] and np.all(out[3:] == -1)
    assert B.nms_rows(rows, 0.5, 0.0, topk=2)[:, 5].tolist() == [8, 4, -1, -1, -1]
    assert B.nms_rows(rows, 0.5, 0.0, max_output=1)[:, 5].tolist() == [8, -1, -1, -1, -1]
    assert B.nms_rows(rows, 0.7, 0.0)[:, 5].tolist() == [8, 4, 7, 3, -1]
    batch = B.nms_rows(np.stack([rows, rows[::-1]]), 0.5, 0.0)          # per leading index
    assert batch[0, :, 5].tolist() == [8, 4, 3, -1, -1] and batch[1, :, 5].tolist() == [4, 8, 3, -1, -1]
