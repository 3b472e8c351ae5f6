"""Transforms: flip, shift jittering (Sec. 4.3), size policies (Table 2), pyramid; against slow references."""
import numpy as np
import pytest

from rfcn_face.config import config_from_dict
from rfcn_face.transforms import (TestTransform, TrainTransform, cap_longer_side, hflip, image_pyramid, resize,
                                  resize_to_test_size, shift_image, shift_jitter_offsets, max_size_scale, inference_sizes)


def _random_case(rng, h=40, w=60, n=6):
    img = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    x1 = rng.integers(0, w - 5, n)
    y1 = rng.integers(0, h - 5, n)
    x2 = x1 + rng.integers(1, 6, n)
    y2 = y1 + rng.integers(1, 6, n)
    return img, np.stack([x1, y1, x2, y2], 1).astype(float)


def _crop(img, b):
    x1, y1, x2, y2 = np.round(b).astype(int)
    return img[y1:y2, x1:x2]


# ----------------------------------------------------------------------------------------- flip
def test_hflip_literal():
    img = np.arange(12).reshape(2, 6)
    out, b = hflip(img, [[1, 0, 3, 2], [0, 0, 6, 1]])
    np.testing.assert_array_equal(out[0], [5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(b, [[3, 0, 5, 2], [0, 0, 6, 1]])


def test_hflip_box_content_matches_slow_reference():
    rng = np.random.default_rng(0)
    img, boxes = _random_case(rng)
    out, fb = hflip(img, boxes)
    h, w = img.shape[:2]
    ref = np.zeros_like(img)
    for y in range(h):
        for x in range(w):
            ref[y, w - 1 - x] = img[y, x]
    np.testing.assert_array_equal(out, ref)
    for b, f in zip(boxes, fb):
        np.testing.assert_array_equal(_crop(out, f), _crop(img, b)[:, ::-1])
    back, bb = hflip(out, fb)
    np.testing.assert_array_equal(back, img)
    np.testing.assert_array_equal(bb, boxes)


# ----------------------------------------------------------------------------------------- shift jitter
@pytest.mark.parametrize("stride", [8, 16])
def test_shift_draws_cover_exactly_the_paper_range(stride):
    rng = np.random.default_rng(stride)
    draws = np.array([shift_jitter_offsets(rng, stride) for _ in range(20000)])
    expected = set(range(stride // 2))                  # {0, 1, ..., sA/2 - 1}
    assert set(draws[:, 0].tolist()) == expected and set(draws[:, 1].tolist()) == expected
    # uniform: every value within 5 standard deviations of its expected count, both axes
    n, k = len(draws), stride // 2
    for axis in (0, 1):
        counts = np.bincount(draws[:, axis], minlength=k)
        sd = np.sqrt(n * (1 / k) * (1 - 1 / k))
        assert np.all(np.abs(counts - n / k) < 5 * sd)
    # the two axes are drawn independently
    assert abs(np.corrcoef(draws[:, 0], draws[:, 1])[0, 1]) < 0.05


def test_shift_rejects_odd_stride():
    with pytest.raises(ValueError, match="even anchor stride"):
        shift_jitter_offsets(np.random.default_rng(0), 7)


def _shift_reference(img, dx, dy, fill):
    h, w = img.shape[:2]
    out = np.full((h + dy, w + dx) + img.shape[2:], fill, dtype=img.dtype)
    for y in range(h):
        for x in range(w):
            out[y + dy, x + dx] = img[y, x]
    return out


def test_shift_moves_boxes_with_their_pixels():
    rng = np.random.default_rng(1)
    for _ in range(20):
        img, boxes = _random_case(rng)
        dx, dy = shift_jitter_offsets(rng, 16)
        out, sb = shift_image(img, boxes, dx, dy, fill=7)
        np.testing.assert_array_equal(out, _shift_reference(img, dx, dy, 7))
        np.testing.assert_array_equal(sb, boxes + [dx, dy, dx, dy])
        for b, s in zip(boxes, sb):
            np.testing.assert_array_equal(_crop(out, s), _crop(img, b))     # same content on the new pixels


def test_shift_literal_and_keep_size():
    img = np.arange(9, dtype=np.uint8).reshape(3, 3)
    out, b = shift_image(img, [[0, 0, 3, 3]], 2, 1, fill=0)
    np.testing.assert_array_equal(out, [[0, 0, 0, 0, 0], [0, 0, 0, 1, 2], [0, 0, 3, 4, 5], [0, 0, 6, 7, 8]])
    np.testing.assert_array_equal(b, [[2, 1, 5, 4]])
    out, b = shift_image(img, [[0, 0, 3, 3]], 2, 1, keep_size=True)
    np.testing.assert_array_equal(out, [[0, 0, 0], [0, 0, 0], [0, 0, 3]])
    np.testing.assert_array_equal(b, [[2, 1, 3, 3]])


# ----------------------------------------------------------------------------------------- sizes
def test_table2_test_scale_literals():
    # a 1024 x 768 WIDER-like image (h=768, w=1024)
    assert max_size_scale(768, 1024, 600, 1000) == pytest.approx(600 / 768)        # shorter side binds
    assert max_size_scale(768, 1024, 1400, 1800) == pytest.approx(1800 / 1024)     # longer side binds: enlarges
    assert max_size_scale(400, 1800, 600, 1000) == pytest.approx(1000 / 1800)
    assert max_size_scale(768, 1024, 0, 0) == 1.0


def test_test_scale_is_the_largest_admissible_scale():
    rng = np.random.default_rng(2)
    for _ in range(500):
        h, w = rng.integers(50, 3000, 2)
        S, L = sorted(rng.integers(100, 2500, 2))
        s = max_size_scale(h, w, S, L)
        short, long_ = min(h, w) * s, max(h, w) * s
        assert short <= S + 1e-9 and long_ <= L + 1e-9
        assert np.isclose(short, S) or np.isclose(long_, L)                   # no larger scale would fit
        # brute force: the largest scale on a fine grid that satisfies both limits
        grid = np.linspace(0.01, 10, 20000)
        ok = grid[(grid * min(h, w) <= S) & (grid * max(h, w) <= L)]
        assert ok.max() <= s + 1e-9 and s - ok.max() < 1e-3


def test_resize_to_test_size_shapes_and_boxes():
    img = np.zeros((768, 1024, 3), np.uint8)
    out, b, (sx, sy) = resize_to_test_size(img, [[100, 200, 110, 212]], (600, 1000))
    assert out.shape == (600, 800, 3)
    np.testing.assert_allclose(b, [[100 * sx, 200 * sy, 110 * sx, 212 * sy]])
    assert (sx, sy) == (800 / 1024, 600 / 768)
    out, b, sxy = resize_to_test_size(img, [[1, 2, 3, 4]], (0, 0))
    assert out is img and sxy == (1.0, 1.0)


def test_resize_keeps_box_content_for_integer_factor():
    rng = np.random.default_rng(3)
    img, boxes = _random_case(rng)
    import cv2
    out, b, _ = resize(img, boxes, 2.0)
    ref = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(b, boxes * 2)


def test_training_cap_is_off_by_default_and_caps_when_set():
    img = np.zeros((600, 1000, 3), np.uint8)
    out, b, s = cap_longer_side(img, [[0, 0, 10, 10]], 0)
    assert out is img and s == (1.0, 1.0)
    out, b, s = cap_longer_side(img, [[0, 0, 10, 10]], 500)
    assert out.shape == (300, 500, 3)
    np.testing.assert_allclose(b, [[0, 0, 5, 5]])
    assert config_from_dict({}).train.max_size == 0


def test_pyramid_from_config():
    cfg = config_from_dict({"test": {"pyramid": True}})
    sizes = inference_sizes(cfg)
    assert sizes == [[500, 2000], [800, 2000], [1200, 2000], [1600, 2000]]
    levels = image_pyramid(np.zeros((768, 1024, 3), np.uint8), sizes)
    assert [lv[0].shape[:2] for lv in levels] == [(500, 667), (800, 1067), (1200, 1600), (1500, 2000)]
    assert inference_sizes(config_from_dict({"test": {"sizes": [[600, 1000]]}})) == [[600, 1000]]


def test_test_transform():
    out, sxy = TestTransform((600, 1000))(np.zeros((768, 1024, 3), np.uint8))
    assert out.shape == (600, 800, 3) and sxy == (800 / 1024, 600 / 768)


# ----------------------------------------------------------------------------------------- config-driven
def test_train_transform_everything_off_is_identity():
    cfg = config_from_dict({"train": {"flip": False, "shift_jitter": False}})
    rng = np.random.default_rng(0)
    img, boxes = _random_case(rng)
    out, b, info = TrainTransform(cfg)(img, boxes, rng)
    assert out is img
    np.testing.assert_array_equal(b, boxes)
    assert info == {"scale": (1.0, 1.0), "flipped": False, "shift": (0, 0)}


def test_train_transform_flip_and_jitter_keep_box_content():
    cfg = config_from_dict({"model": {"arch": "DC"}, "train": {"flip": True, "shift_jitter": True}})
    t = TrainTransform(cfg)
    rng = np.random.default_rng(5)
    img, boxes = _random_case(rng)
    flips, shifts = 0, set()
    for _ in range(400):
        out, b, info = t(img, boxes, rng)
        flips += info["flipped"]
        shifts.add(info["shift"])
        assert out.shape[:2] == (img.shape[0] + info["shift"][1], img.shape[1] + info["shift"][0])
        for src, dst in zip(boxes, b):
            want = _crop(img, src)
            np.testing.assert_array_equal(_crop(out, dst), want[:, ::-1] if info["flipped"] else want)
    assert 150 < flips < 250
    assert shifts == {(dx, dy) for dx in range(4) for dy in range(4)}       # DC: stride 8 -> {0..3}^2


def test_train_transform_multiscale():
    cfg = config_from_dict({"train": {"flip": False, "multiscale_sizes": [[100, 200], [50, 100]]}})
    rng = np.random.default_rng(0)
    shapes = {TrainTransform(cfg)(np.zeros((300, 400, 3), np.uint8), [[0, 0, 40, 40]], rng)[0].shape[:2]
              for _ in range(30)}
    assert shapes == {(100, 133), (50, 67)}


@pytest.mark.parametrize("arch, shifted, mode, expected", [
    ("DC", "", "feature", 4),          # sF = 8 -> offsets {0..3}
    ("DC", "", "anchor", 4),           # no shifted anchors: the smallest anchors' period is sF
    ("DC", "16x3", "feature", 4),
    ("DC", "16x3", "anchor", 2),       # 16x3 puts 16-anchors every sF/2 = 4 px -> offsets {0, 1}
    ("DC", "16x1", "anchor", 4),       # a quincunx repeats along one axis only every sF
    ("DC", "32x3", "anchor", 4),       # the 16-anchors are the smallest and are not shifted
    ("baseline", "", "feature", 8),    # sF = 16 -> {0..7}
    ("baseline", "16x3", "anchor", 4),
])
def test_shift_jitter_range_per_stride_choice(arch, shifted, mode, expected):
    """Sec. 4.3: offsets uniform on {0, ..., sA/2 - 1}, sA chosen by train.shift_jitter_stride."""
    from rfcn_face.config import config_from_dict
    from rfcn_face.transforms import TrainTransform
    cfg = config_from_dict({"model": {"arch": arch}, "anchors": {"shifted": shifted},
                            "train": {"shift_jitter": True, "shift_jitter_stride": mode, "flip": False}}, "t")
    tf = TrainTransform(cfg)
    rng = np.random.default_rng(0)
    img = np.zeros((20, 30, 3), np.uint8)
    seen = {tf(img, np.array([[1.0, 2.0, 5.0, 6.0]]), rng)[2]["shift"] for _ in range(400)}
    assert seen == {(dx, dy) for dx in range(expected) for dy in range(expected)}
