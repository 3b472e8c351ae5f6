"""Face alignment, flip fusion and re-detection with zero padding (Qi, Liu & Su, Sec. 2.2, 3.1, Table 2).

* :func:`similarity_transform` — least-squares similarity (scale, rotation, translation; Umeyama 1991)
  mapping 5 landmarks (left eye, right eye, nose, left and right mouth corners) onto a template.
* :func:`align_face` — warp an image to the 112x96 (H x W) crop with the standard 96x112 template used by
  SphereFace / NormFace (Sec. 3.1: "similarity transformation", "cropped to 112x96 RGB").
* :func:`fuse_features` — the flip-fusion strategies of Table 2.
* :func:`detect_with_padding` — Sec. 2.2 / Fig. 5: when the detector finds no face, pad the image with zeros
  by its own width and height and detect again; boxes are mapped back to the original image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TEMPLATE_96x112", "CROP_SIZE", "similarity_transform", "apply_transform", "align_face",
           "FUSIONS", "fuse_features", "flip_image", "pad_image", "detect_with_padding", "Detection"]

CROP_SIZE = (112, 96)  # (height, width)
# (x, y) in a 96-wide x 112-high crop: left eye, right eye, nose tip, left mouth corner, right mouth corner
TEMPLATE_96x112 = np.array([[30.2946, 51.6963],
                            [65.5318, 51.5014],
                            [48.0252, 71.7366],
                            [33.5493, 92.3655],
                            [62.7299, 92.2041]], dtype=np.float64)


def similarity_transform(src, dst):
    """2x3 matrix ``M`` of the similarity x -> s R x + t minimising sum ||M [x;1] - y||^2 over point pairs
    (Umeyama's closed form, reflections excluded). ``src``, ``dst``: (K, 2) with K >= 2."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two (K>=2, 2) point arrays of equal shape, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0 ** 2).sum() / len(src)
    if var_s <= 0:
        raise ValueError("source landmarks are all at one point")
    cov = d0.T @ s0 / len(src)
    U, S, Vt = np.linalg.svd(cov)
    D = np.diag([1.0, np.sign(np.linalg.det(U) * np.linalg.det(Vt)) or 1.0])
    R = U @ D @ Vt
    scale = np.trace(np.diag(S) @ D) / var_s
    t = mu_d - scale * R @ mu_s
    return np.hstack([scale * R, t[:, None]])


def apply_transform(M, pts):
    pts = np.asarray(pts, np.float64)
    return pts @ M[:, :2].T + M[:, 2]


def align_face(image, landmarks, template=TEMPLATE_96x112, size=CROP_SIZE):
    """Warp ``image`` (H, W[, C]) so that ``landmarks`` (5, 2) land on ``template``; returns the
    ``size`` = (112, 96) crop and the 2x3 transform. Pixels outside the image are 0."""
    import cv2
    M = similarity_transform(landmarks, template)
    crop = cv2.warpAffine(np.asarray(image), M, (size[1], size[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, M


def flip_image(image):
    """Horizontal mirror of an (H, W[, C]) image (the second view of Table 2's fusion)."""
    return np.ascontiguousarray(np.asarray(image)[:, ::-1])


# Table 2: feature of the original image f and of its mirror g (both (N, D)).
FUSIONS = ("single", "concatenate", "sort", "product", "sum", "max")


def fuse_features(f, g, strategy="sum"):
    """Fuse the features of an image and of its horizontal flip (Table 2; SUM is the paper's best, 99.0%).

    single: f (the flip is ignored); concatenate: [f, g] (2D); sort: per dimension [min(f, g), max(f, g)]
    (2D; a concatenation that does not depend on which view came first — our reading of "SORT");
    product: f * g; sum: f + g; max: max(f, g). Normalise afterwards if cosine scores are wanted."""
    f, g = np.asarray(f, np.float32), np.asarray(g, np.float32)
    if f.shape != g.shape:
        raise ValueError(f"feature shapes differ: {f.shape} vs {g.shape}")
    if strategy == "single":
        return f.copy()
    if strategy == "concatenate":
        return np.concatenate([f, g], axis=-1)
    if strategy == "sort":
        return np.concatenate([np.minimum(f, g), np.maximum(f, g)], axis=-1)
    if strategy == "product":
        return f * g
    if strategy == "sum":
        return f + g
    if strategy == "max":
        return np.maximum(f, g)
    raise ValueError(f"unknown fusion {strategy!r}; expected one of {', '.join(FUSIONS)}")


def pad_image(image, centered=True):
    """Zero-pad by the image's own width and height (Sec. 2.2, Fig. 5). ``centered``: W/2 left and right,
    H/2 top and bottom (canvas 2W x 2H, image in the middle); else W and H added on every side (3W x 3H).
    Returns the padded image and the (x, y) offset of the original's top-left corner."""
    image = np.asarray(image)
    h, w = image.shape[:2]
    if centered:
        top, left = h // 2, w // 2
        bottom, right = h - top, w - left
    else:
        top = bottom = h
        left = right = w
    pad = [(top, bottom), (left, right)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="constant"), (left, top)


@dataclass
class Detection:
    boxes: np.ndarray          # (N, 4) x1, y1, x2, y2 in the original image (rfcn_face.boxes convention)
    scores: np.ndarray         # (N,)
    landmarks: np.ndarray | None  # (N, 5, 2) or None
    padded: bool               # True when found only after zero padding


def _unpack(result):
    if len(result) == 3:
        boxes, scores, landmarks = result
    else:
        (boxes, scores), landmarks = result, None
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    if landmarks is not None:
        landmarks = np.asarray(landmarks, np.float64).reshape(-1, 5, 2)
    return boxes, scores, landmarks


def detect_with_padding(image, detector, centered=True):
    """Run ``detector(image) -> (boxes, scores[, landmarks])``; when it finds nothing, zero-pad the image by
    its own width and height (:func:`pad_image`) and detect again, mapping boxes and landmarks back to the
    original coordinates (clipped to the image). When the padded image yields nothing either, the result is
    empty and the caller uses the original image (Sec. 2.2)."""
    boxes, scores, lms = _unpack(detector(image))
    if len(boxes):
        return Detection(boxes, scores, lms, padded=False)
    padded, (ox, oy) = pad_image(image, centered)
    boxes, scores, lms = _unpack(detector(padded))
    h, w = np.asarray(image).shape[:2]
    boxes = boxes - np.array([ox, oy, ox, oy], np.float64)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    if lms is not None:
        lms = lms - np.array([ox, oy], np.float64)
    return Detection(boxes, scores, lms, padded=len(boxes) > 0)
