"""FDDB regions as the official ``evaluate`` draws them: the OpenCV arguments of an ellipse and of a rectangle,
the window of every region in the image, and filled ellipses cropped to their windows. Shared by the per-image
definitions (:mod:`.fddb`) and the all-images-at-once evaluation (:mod:`.fddb_batch`)."""
from __future__ import annotations

import numpy as np

__all__ = ["ellipse_cv_args", "rect_cv_corners", "rect_windows", "ellipse_windows", "draw_ellipses"]


def _cv_round(v) -> np.ndarray:
    """``cvRound`` of values that went through ``cvPoint2D32f`` (float32), round half to even."""
    return np.rint(np.asarray(v, dtype=np.float64).astype(np.float32).astype(np.float64)).astype(np.int64)


def ellipse_cv_args(ellipses):
    """(k, 5+) ``major minor angle cx cy`` -> (centres (k, 2) int, axes (k, 2) int, angle degrees (k,)).

    EllipsesSingleImage::read stores ``t' = (pi - t) * 180 / pi`` and EllipseR::display draws with
    ``180 - t'``; the centre goes through cvPoint2D32f/cvPointFrom32f and the axes through ``(int)``.
    """
    e = np.atleast_2d(np.asarray(ellipses, dtype=np.float64))
    t_stored = (np.pi - e[:, 2]) * 180.0 / np.pi
    angle = 180.0 - t_stored
    centres = np.stack([_cv_round(e[:, 3]), _cv_round(e[:, 4])], axis=1)
    axes = np.trunc(e[:, :2]).astype(np.int64)
    return centres, axes, angle


def rect_cv_corners(rects) -> np.ndarray:
    """(k, 4+) ``x y w h`` -> (k, 4) integer corners ``(x1, y1, x2, y2)``, both inclusive (cvRectangle)."""
    r = np.atleast_2d(np.asarray(rects, dtype=np.float64))
    return np.stack([_cv_round(r[:, 0]), _cv_round(r[:, 1]), _cv_round(r[:, 0] + r[:, 2]),
                     _cv_round(r[:, 1] + r[:, 3])], axis=1)


def rect_windows(rects, width, height):
    """(k, 4+) ``x y w h`` -> windows (k, 4) of the filled inclusive corner ranges clipped to the image, and their
    pixel counts (``width`` / ``height`` scalars or one per row)."""
    c = rect_cv_corners(rects[:, :4])
    x1, x2 = np.minimum(c[:, 0], c[:, 2]), np.maximum(c[:, 0], c[:, 2])
    y1, y2 = np.minimum(c[:, 1], c[:, 3]), np.maximum(c[:, 1], c[:, 3])
    wx0, wx1 = np.minimum(np.maximum(x1, 0), width), np.minimum(np.maximum(x2 + 1, 0), width)
    wy0, wy1 = np.minimum(np.maximum(y1, 0), height), np.minimum(np.maximum(y2 + 1, 0), height)
    w, h = np.maximum(wx1 - wx0, 0), np.maximum(wy1 - wy0, 0)
    return np.stack([wx0, wy0, wx0 + w, wy0 + h], axis=1), w * h


def ellipse_windows(centres, axes, width, height) -> np.ndarray:
    """Per ellipse a window (x0, y0, x1, y1) holding every pixel OpenCV draws (within max axis + 1 of the
    centre), clipped to the image (``width`` / ``height`` scalars or one per row)."""
    reach = np.max(np.abs(axes), axis=1) + 2
    cx, cy = centres[:, 0], centres[:, 1]
    return np.stack([np.minimum(np.maximum(cx - reach, 0), width), np.minimum(np.maximum(cy - reach, 0), height),
                     np.minimum(np.maximum(cx + reach + 1, 0), width),
                     np.minimum(np.maximum(cy + reach + 1, 0), height)], axis=1)


def draw_ellipses(centres, axes, angle, windows, canvas):
    """Filled ellipses drawn one by one on ``canvas`` (all zero, the image's size; left all zero) and cropped to
    their windows: (masks, pixel counts)."""
    import cv2

    crops, areas = [], np.zeros(len(windows), dtype=np.int64)
    for i, (x0, y0, x1, y1) in enumerate(windows.tolist()):
        if x1 <= x0 or y1 <= y0:
            crops.append(np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=bool))
            continue
        cv2.ellipse(canvas, (int(centres[i, 0]), int(centres[i, 1])), (int(axes[i, 0]), int(axes[i, 1])),
                    float(angle[i]), 0.0, 360.0, 1, -1)
        crop = canvas[y0:y1, x0:x1]
        m = crop.astype(bool)
        crop[...] = 0
        crops.append(m)
        areas[i] = int(np.count_nonzero(m))
    return crops, areas
