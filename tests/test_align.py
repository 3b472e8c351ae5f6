"""Alignment (5 points -> 112x96 template), Table 2 flip fusion, Sec. 2.2 re-detection with zero padding."""
import numpy as np
import pytest

from rfcn_face.recognition.align import (FUSIONS, TEMPLATE_96x112, align_face, apply_transform,
                                         detect_with_padding, flip_image, fuse_features, pad_image,
                                         similarity_transform)


def _random_similarity(rng):
    s, a = rng.uniform(0.3, 4.0), rng.uniform(-np.pi, np.pi)
    R = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return np.hstack([s * R, rng.uniform(-300, 300, (2, 1))])


@pytest.mark.parametrize("seed", range(25))
def test_exact_similarity_is_recovered_residual_below_1px(seed):
    rng = np.random.default_rng(seed)
    T = _random_similarity(rng)
    # landmarks in a source image = inverse map of the template
    A = np.vstack([T, [0, 0, 1]])
    src = apply_transform(np.linalg.inv(A)[:2], TEMPLATE_96x112)
    M = similarity_transform(src, TEMPLATE_96x112)
    res = np.linalg.norm(apply_transform(M, src) - TEMPLATE_96x112, axis=1)
    assert res.max() < 1e-6  # far below the 1 px requirement
    np.testing.assert_allclose(M, T, atol=1e-8)


def test_least_squares_against_brute_force_on_noisy_points():
    # the closed form is the least-squares optimum: no nearby similarity does better
    rng = np.random.default_rng(3)
    src = TEMPLATE_96x112 * 1.7 + rng.normal(0, 3, (5, 2)) + 40
    M = similarity_transform(src, TEMPLATE_96x112)
    cost = lambda m: ((apply_transform(m, src) - TEMPLATE_96x112) ** 2).sum()  # noqa: E731
    a, b, tx, ty = M[0, 0], M[1, 0], M[0, 2], M[1, 2]
    assert np.isclose(M[1, 1], a) and np.isclose(M[0, 1], -b)  # a rotation+scale, no shear or reflection
    for _ in range(200):
        d = rng.normal(0, 1e-3, 4) * [1, 1, 100, 100]
        a2, b2, x2, y2 = a + d[0], b + d[1], tx + d[2], ty + d[3]
        assert cost(np.array([[a2, -b2, x2], [b2, a2, y2]])) >= cost(M) - 1e-9


def test_warped_image_puts_landmark_dots_on_the_template():
    # a 300x400 image with a bright Gaussian dot at each landmark of a rotated, scaled face
    rng = np.random.default_rng(0)
    T = np.hstack([2.2 * np.array([[np.cos(0.4), -np.sin(0.4)], [np.sin(0.4), np.cos(0.4)]]), [[60], [20]]])
    lm = apply_transform(T, TEMPLATE_96x112)
    yy, xx = np.mgrid[0:300, 0:400]
    img = np.zeros((300, 400, 3), np.float32)
    for x, y in lm:
        img[..., 0] += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 4.0 ** 2))
    crop, M = align_face(img * 255, lm)
    assert crop.shape == (112, 96, 3)
    for tx, ty in TEMPLATE_96x112:  # intensity centroid in a window around each template point
        x0, y0 = int(round(tx)), int(round(ty))
        win = crop[y0 - 4:y0 + 5, x0 - 4:x0 + 5, 0].astype(np.float64)
        gy, gx = np.mgrid[y0 - 4:y0 + 5, x0 - 4:x0 + 5]
        cx, cy = (win * gx).sum() / win.sum(), (win * gy).sum() / win.sum()
        assert np.hypot(cx - tx, cy - ty) < 1.0


def test_fusion_hand_built():
    f, g = np.array([[1.0, -2.0, 3.0]]), np.array([[2.0, -1.0, -3.0]])
    expected = {
        "single": [[1, -2, 3]],
        "concatenate": [[1, -2, 3, 2, -1, -3]],
        "sort": [[1, -2, -3, 2, -1, 3]],
        "product": [[2, 2, -9]],
        "sum": [[3, -3, 0]],
        "max": [[2, -1, 3]],
    }
    assert set(expected) == set(FUSIONS)
    for name, e in expected.items():
        np.testing.assert_array_equal(fuse_features(f, g, name), np.array(e, np.float32))
    with pytest.raises(ValueError, match="fusion"):
        fuse_features(f, g, "mean")


@pytest.mark.parametrize("name", FUSIONS)
def test_fusion_against_per_element_reference(name):
    rng = np.random.default_rng(1)
    f, g = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    out = fuse_features(f, g, name)
    ref = {"single": lambda a, b: [a], "concatenate": lambda a, b: [a, b], "sort": lambda a, b: [min(a, b), max(a, b)],
           "product": lambda a, b: [a * b], "sum": lambda a, b: [a + b], "max": lambda a, b: [max(a, b)]}[name]
    for i in range(4):
        parts = [ref(a, b) for a, b in zip(f[i], g[i])]
        want = [p[k] for k in range(len(parts[0])) for p in parts]
        np.testing.assert_allclose(out[i], want, rtol=1e-6)
    symmetric = name in ("sort", "product", "sum", "max")
    assert np.allclose(fuse_features(g, f, name), out) == symmetric


def test_flip_image():
    img = np.arange(12).reshape(2, 3, 2)
    np.testing.assert_array_equal(flip_image(img)[:, 0], img[:, 2])


def test_pad_image_by_own_size():
    img = np.ones((10, 6, 3))
    p, (ox, oy) = pad_image(img)
    assert p.shape == (20, 12, 3) and (ox, oy) == (3, 5) and p.sum() == img.sum()
    p, (ox, oy) = pad_image(img, centered=False)
    assert p.shape == (30, 18, 3) and (ox, oy) == (6, 10)


def test_redetection_after_zero_padding():
    # a toy detector that only finds a face filling at most half of the image: the face fills the whole
    # original image, so it is found only after padding, and mapped back to the original frame
    calls = []

    def detector(im):
        calls.append(im.shape)
        h, w = im.shape[:2]
        ys, xs = np.nonzero(im[..., 0] > 0)
        if xs.max() - xs.min() + 1 > w / 2:
            return np.zeros((0, 4)), np.zeros(0)
        box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], float)
        lm = np.repeat(box[:, None, :2], 5, axis=1) + 1
        return box, np.array([0.9]), lm

    img = np.full((40, 30, 3), 200, np.uint8)
    det = detect_with_padding(img, detector)
    assert calls == [(40, 30, 3), (80, 60, 3)] and det.padded
    np.testing.assert_allclose(det.boxes, [[0, 0, 30, 40]])
    np.testing.assert_allclose(det.landmarks[0, 0], [1, 1])
    # a small face is found at once, without padding
    small = np.zeros((40, 30, 3), np.uint8)
    small[10:20, 5:15] = 255
    det = detect_with_padding(small, detector)
    assert not det.padded and det.boxes.tolist() == [[5, 10, 15, 20]]
    # nothing at all: empty result, caller keeps the original image
    det = detect_with_padding(np.zeros((8, 8, 3), np.uint8) + 1, lambda im: (np.zeros((0, 4)), np.zeros(0)))
    assert len(det.boxes) == 0 and not det.padded
