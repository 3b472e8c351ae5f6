"""Expected Max Overlap (EMO, Sec. 3) and the max IoU of real faces with an anchor set (Fig. 1b, Fig. 7).

Geometry follows :mod:`rfcn_face.boxes` and :mod:`rfcn_face.anchors`. Two facts make everything here cheap
and exact (no search over the tiled anchors):

* An anchor set is a union of *lattices*: one per anchor of the per-location template (scale, ratio, offset),
  each repeated with period ``sF`` in x and y.
* For two axis-aligned boxes of fixed sizes, the intersection is ``ix(|dx|) * iy(|dy|)`` with each factor
  non-increasing in the centre distance along its axis, and IoU increases with the intersection. So within one
  lattice the best anchor is the lattice point nearest to the face centre *per axis*, and the max over the
  whole anchor set is the max over the template's lattices of that nearest point.

The brute-force version (IoU against every tiled anchor) is the reference in the tests.
"""
from __future__ import annotations

import numpy as np

from .anchors import AnchorSet

__all__ = [
    "emo_square", "expected_max_iou", "max_iou_with_anchors", "overlap_1d", "FACE_SCALE_GROUPS",
    "group_average_max_iou",
]

# Fig. 7 face-scale groups on sqrt(w * h), in pixels; the last group is open.
FACE_SCALE_GROUPS = ((0, 8), (8, 16), (16, 32), (32, 64), (64, 128), (128, 256), (256, np.inf))


def overlap_1d(size_a, size_b, dist):
    """Length of the overlap of two segments of lengths ``size_a``, ``size_b`` whose centres are ``dist`` apart."""
    return np.clip((np.asarray(size_a) + size_b) / 2.0 - np.abs(dist), 0.0, np.minimum(size_a, size_b))


def _iou_from_offsets(fw, fh, aw, ah, dx, dy):
    inter = overlap_1d(fw, aw, dx) * overlap_1d(fh, ah, dy)
    return inter / (fw * fh + aw * ah - inter)


def emo_square(face: float, stride: float, grid: int = 2000) -> float:
    """Eq. 4: EMO of an ``l x l`` face matched to the ``l x l`` anchor at anchor stride ``sA``.

    The face centre is uniform over the ``sA/2 x sA/2`` quarter-period next to its anchor; IoU is Eq. 3 with
    the intersection clamped at zero when ``sA/2 > l``. Midpoint rule on a ``grid x grid`` lattice.
    """
    l, s = float(face), float(stride)
    x = (np.arange(grid) + 0.5) / grid * (s / 2.0)          # x', y' ~ U(0, sA/2)
    side = np.clip(l - x, 0.0, None)                         # (l - x'), clamped
    inter = side[:, None] * side[None, :]
    return float(np.mean(inter / (2 * l * l - inter)))      # Eq. 3 averaged = Eq. 4


def _lattices(anchors: AnchorSet):
    """Per template anchor: centre of location (0, 0) plus offset (A, 2) and size (A, 2)."""
    offs, sizes = anchors.templates()
    return 0.5 * anchors.stride + offs, sizes


def _nearest_dist(c, origin, period, lo=0, hi=None):
    """Distance from ``c`` to the nearest point ``origin + k * period`` with ``lo <= k <= hi``."""
    k = np.rint((c - origin) / period)
    k = np.maximum(k, lo)
    if hi is not None:
        k = np.minimum(k, hi)
    return c - (origin + k * period)


def expected_max_iou(face_w: float, face_h: float, anchors: AnchorSet, grid: int = 64) -> float:
    """Eq. 2: expected max IoU of a ``face_w x face_h`` face with ANY anchor set, the face centre uniform over
    one period ``[0, sF)^2`` of the (infinite) anchor tiling. Midpoint rule on ``grid x grid`` centres."""
    s = float(anchors.stride)
    origin, sizes = _lattices(anchors)
    c = (np.arange(grid) + 0.5) / grid * s
    # distances per axis to the nearest point of every lattice: (grid, A)
    dx = _nearest_dist(c[:, None], origin[None, :, 0], s, lo=-np.inf)
    dy = _nearest_dist(c[:, None], origin[None, :, 1], s, lo=-np.inf)
    best = np.zeros((grid, grid))
    for a in range(len(sizes)):
        iou = _iou_from_offsets(face_w, face_h, sizes[a, 0], sizes[a, 1], dx[:, a][None, :], dy[:, a][:, None])
        np.maximum(best, iou, out=best)
    return float(best.mean())


def max_iou_with_anchors(boxes, anchors: AnchorSet, image_sizes=None) -> np.ndarray:
    """Eq. 1 for real faces at real positions: the max IoU of each face box with the anchors of its image.

    ``boxes`` (N, 4) in the continuous convention. The anchor locations start at index 0 (the top-left
    location); with ``image_sizes`` (N, 2) = (height, width) per face they also end at the feature map's last
    location, otherwise the tiling is unbounded to the right and bottom (exact for faces inside their image
    except for shifted anchors in the last half stride). Anchors are not dropped at the image border.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    fw, fh = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    cx, cy = b[:, 0] + fw / 2, b[:, 1] + fh / 2
    s = float(anchors.stride)
    origin, sizes = _lattices(anchors)
    hi_x = hi_y = None
    if image_sizes is not None:
        hw = np.asarray(image_sizes, dtype=np.float64).reshape(-1, 2)
        hi_y = (np.ceil(hw[:, 0] / s) - 1)[:, None]
        hi_x = (np.ceil(hw[:, 1] / s) - 1)[:, None]
    dx = _nearest_dist(cx[:, None], origin[None, :, 0], s, hi=hi_x)
    dy = _nearest_dist(cy[:, None], origin[None, :, 1], s, hi=hi_y)
    iou = _iou_from_offsets(fw[:, None], fh[:, None], sizes[None, :, 0], sizes[None, :, 1], dx, dy)
    out = iou.max(axis=1) if len(sizes) else np.zeros(len(b))
    out[(fw <= 0) | (fh <= 0)] = 0.0
    return out


def group_average_max_iou(boxes, anchors: AnchorSet, groups=FACE_SCALE_GROUPS, image_sizes=None):
    """Fig. 7: per face-scale group of sqrt(w*h), (number of faces, average max IoU with the anchors)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scale = np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None))
    m = max_iou_with_anchors(b, anchors, image_sizes)
    out = []
    for lo, hi in groups:
        sel = (scale >= lo) & (scale < hi)
        out.append((int(sel.sum()), float(m[sel].mean()) if sel.any() else float("nan")))
    return out
