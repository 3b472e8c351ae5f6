"""Training and test transforms on numpy images (H, W, C) and boxes (N, 4) in the continuous convention of
:mod:`rfcn_face.boxes` (pixel ``i`` covers ``[i, i + 1)``; no "+1").

* :func:`hflip` — horizontal flip: ``x -> W - x``.
* :func:`shift_jitter_offsets` / :func:`shift_image` — face shift jittering (Sec. 4.3): every iteration the
  image is shifted right / down by ``dx, dy ~ U{0, ..., sA/2 - 1}`` and every box moves by the same amount.
  The shift pads ``dy`` rows on top and ``dx`` columns on the left (the image grows by at most sA/2 - 1 px),
  so no face is cut; ``keep_size=True`` crops back to the input size instead (boxes clipped).
* :func:`cap_longer_side` — the training size policy: the paper trains on original images (Sec. 5.1); the cap
  on the longer side (``train.max_size``) is for memory and off by default (0).
* :func:`max_size_scale` / :func:`resize_to_test_size` — Table 2's "max size S x L": the image is scaled by the
  largest factor that keeps its shorter side <= S and its longer side <= L, i.e. ``min(S / short, L / long)``.
  This may enlarge a small image (that is why 1200x1600 and 1400x1800 give different APs in Table 2 although
  most WIDER images are ~1024 px wide); ``[0, 0]`` keeps the original size.
* :func:`image_pyramid` — the test pyramid over ``test.pyramid_sizes`` (one Table 2 style size per level, as
  in SSH).
* :class:`TrainTransform` / :class:`TestTransform` — the above, driven by a :class:`rfcn_face.config.Config`.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "hflip", "shift_jitter_offsets", "shift_image", "cap_longer_side", "max_size_scale", "resize",
    "resize_to_test_size", "image_pyramid", "inference_sizes", "TrainTransform", "TestTransform", "jitter_range",
    "shift_jitter_stride",
]


def _boxes(b) -> np.ndarray:
    return np.asarray(b, dtype=np.float64).reshape(-1, 4)


def hflip(image: np.ndarray, boxes):
    """Mirror the image left-right; a box ``(x1, y1, x2, y2)`` becomes ``(W - x2, y1, W - x1, y2)``."""
    w = image.shape[1]
    b = _boxes(boxes).copy()
    b[:, [0, 2]] = w - b[:, [2, 0]]
    return np.ascontiguousarray(image[:, ::-1]), b


# ------------------------------------------------------------------------------------ shift jittering
def jitter_range(stride: int) -> int:
    """Number of possible offsets per axis: sA / 2 (offsets 0 .. sA/2 - 1; Sec. 4.3: the overlap pattern has
    period sA / 2)."""
    if stride < 2 or stride % 2:
        raise ValueError(f"shift jittering needs an even anchor stride >= 2, got {stride}")
    return stride // 2


def shift_jitter_offsets(rng: np.random.Generator, stride: int):
    """(dx, dy), each uniform on {0, 1, ..., sA/2 - 1} (Sec. 4.3)."""
    n = jitter_range(stride)
    dx, dy = rng.integers(0, n, size=2)
    return int(dx), int(dy)


def shift_image(image: np.ndarray, boxes, dx: int, dy: int, fill=0, keep_size: bool = False):
    """Shift the image right by ``dx`` and down by ``dy`` pixels; boxes move by ``(dx, dy)``.

    The new top rows / left columns take ``fill`` (a scalar or one value per channel). The output is
    ``(H + dy, W + dx)`` unless ``keep_size``, which drops the last ``dy`` rows / ``dx`` columns and clips the
    boxes to the image.
    """
    dx, dy = int(dx), int(dy)
    if dx < 0 or dy < 0:
        raise ValueError(f"shift offsets must be >= 0, got ({dx}, {dy})")
    h, w = image.shape[:2]
    out = np.empty((h + dy, w + dx) + image.shape[2:], dtype=image.dtype)
    out[...] = np.asarray(fill, dtype=image.dtype)
    out[dy:, dx:] = image
    b = _boxes(boxes) + np.array([dx, dy, dx, dy], dtype=np.float64)
    if keep_size:
        out = out[:h, :w]
        b[:, 0::2] = np.clip(b[:, 0::2], 0, w)
        b[:, 1::2] = np.clip(b[:, 1::2], 0, h)
    return out, b


# ------------------------------------------------------------------------------------ resizing
def resize(image: np.ndarray, boxes, scale: float):
    """Resize by ``scale`` (output size rounded to whole pixels; boxes scaled by the exact per-axis factors).

    Returns ``(image, boxes, (sx, sy))``.
    """
    import cv2
    h, w = image.shape[:2]
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    if (nh, nw) == (h, w):
        return image, _boxes(boxes).copy(), (1.0, 1.0)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = cv2.resize(image, (nw, nh), interpolation=interp)
    if image.ndim == 3 and out.ndim == 2:
        out = out[:, :, None]
    sx, sy = nw / w, nh / h
    return out, _boxes(boxes) * np.array([sx, sy, sx, sy]), (sx, sy)


def cap_longer_side(image: np.ndarray, boxes, max_size: int):
    """Training size policy: shrink so the longer side is <= ``max_size``; ``0`` (default) = original size."""
    h, w = image.shape[:2]
    if max_size <= 0 or max(h, w) <= max_size:
        return image, _boxes(boxes).copy(), (1.0, 1.0)
    return resize(image, boxes, max_size / max(h, w))


def max_size_scale(height: int, width: int, shorter: int, longer: int) -> float:
    """Table 2 "max size S x L": the largest scale with shorter side <= S and longer side <= L.

    ``[0, 0]`` = 1.0 (original size); a 0 in one place means "no limit" on that side.
    """
    if shorter < 0 or longer < 0:
        raise ValueError(f"test size must be non-negative, got [{shorter}, {longer}]")
    limits = []
    if shorter > 0:
        limits.append(shorter / min(height, width))
    if longer > 0:
        limits.append(longer / max(height, width))
    return float(min(limits)) if limits else 1.0


def resize_to_test_size(image: np.ndarray, boxes=None, size=(0, 0)):
    """Resize with Table 2 semantics; returns ``(image, boxes, scale)`` (``scale`` = (sx, sy) applied)."""
    s = max_size_scale(image.shape[0], image.shape[1], int(size[0]), int(size[1]))
    out, b, sxy = resize(image, np.zeros((0, 4)) if boxes is None else boxes, s)
    return out, b, sxy


def image_pyramid(image: np.ndarray, sizes):
    """``[(resized image, (sx, sy)), ...]`` one per ``[S, L]`` of ``sizes`` (e.g. ``test.pyramid_sizes``)."""
    return [(im, sxy) for im, _, sxy in (resize_to_test_size(image, None, s) for s in sizes)]


def inference_sizes(cfg) -> list:
    """The test sizes a config asks for: ``test.pyramid_sizes`` when ``test.pyramid``, else ``test.sizes``."""
    return [list(s) for s in (cfg.test.pyramid_sizes if cfg.test.pyramid else cfg.test.sizes)]


# ------------------------------------------------------------------------------------ config-driven
def shift_jitter_stride(cfg) -> int:
    """sA of Sec. 4.3 for ``train.shift_jitter_stride``: ``feature`` = the RPN feature stride sF (default: an
    sF/2 range covers half the period of every anchor lattice, shifted ones included), ``anchor`` = the
    per-axis period of the smallest anchors' lattice (:meth:`rfcn_face.anchors.AnchorSet.smallest_anchor_period`:
    sF/2 with a ``s_min x 3`` shift)."""
    aset = cfg.anchor_set()
    mode = cfg.train.shift_jitter_stride
    if mode == "feature":
        return int(aset.stride)
    if mode == "anchor":
        return aset.smallest_anchor_period()
    raise ValueError(f"train.shift_jitter_stride must be feature or anchor, got {mode!r}")


class TrainTransform:
    """One training sample: multi-scale size (``train.multiscale_sizes``) -> cap (``train.max_size``) ->
    random flip (``train.flip``) -> shift jitter (``train.shift_jitter``, Sec. 4.3, sA from
    :func:`shift_jitter_stride`).

    Call with ``(image, boxes, rng)``; returns ``(image, boxes, info)`` where ``info`` has the applied
    ``scale`` (sx, sy), ``flipped`` and ``shift`` (dx, dy).
    """

    def __init__(self, cfg, fill=0):
        self.flip = bool(cfg.train.flip)
        self.max_size = int(cfg.train.max_size)
        self.multiscale = [list(s) for s in cfg.train.multiscale_sizes]
        self.shift_jitter = bool(cfg.train.shift_jitter)
        self.stride = shift_jitter_stride(cfg)
        self.fill = fill

    def __call__(self, image, boxes, rng: np.random.Generator):
        boxes = _boxes(boxes)
        scale = (1.0, 1.0)
        if self.multiscale:
            size = self.multiscale[int(rng.integers(len(self.multiscale)))]
            image, boxes, scale = resize_to_test_size(image, boxes, size)
        image, boxes, (cx, cy) = cap_longer_side(image, boxes, self.max_size)
        scale = (scale[0] * cx, scale[1] * cy)
        flipped = bool(self.flip and rng.random() < 0.5)
        if flipped:
            image, boxes = hflip(image, boxes)
        shift = (0, 0)
        if self.shift_jitter:
            shift = shift_jitter_offsets(rng, self.stride)
            image, boxes = shift_image(image, boxes, *shift, fill=self.fill)
        return image, boxes, {"scale": scale, "flipped": flipped, "shift": shift}


class TestTransform:
    """Resize to one Table 2 test size ``[S, L]`` (``[0, 0]`` = original). Returns ``(image, (sx, sy))``."""

    __test__ = False

    def __init__(self, size=(0, 0)):
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, image):
        out, _, sxy = resize_to_test_size(image, None, self.size)
        return out, sxy
