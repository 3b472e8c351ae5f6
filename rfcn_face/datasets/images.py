"""Training and test images as the network reads them, without MXNet (the loader worker processes import this,
:mod:`rfcn_face.datasets.loader` re-exports it): decode, normalisation, ``im_info`` and the gt rows of a
transformed training image."""
from __future__ import annotations

import numpy as np

from ..config import Normalisation
from ..transforms import TrainTransform

__all__ = ["load_image", "normalise_image", "image_info", "prepare_train_image", "gt_rows"]


def load_image(path) -> np.ndarray:
    """RGB uint8 (H, W, 3); a missing or unreadable file is a :class:`FileNotFoundError` naming it."""
    import cv2
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"image not found or unreadable: {path}")
    return np.ascontiguousarray(img[:, :, ::-1])


def normalise_image(img, norm: Normalisation) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 (3, H, W) ``(pixel * norm.scale - norm.mean) / norm.std``."""
    x = img.astype(np.float32)
    if norm.scale != 1.0:
        x *= np.float32(norm.scale)
    x -= np.asarray(norm.mean, np.float32)
    x /= np.asarray(norm.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def image_info(img, scale_xy, dtype=np.float32) -> np.ndarray:
    """``im_info`` of a resized (H, W, 3) image: ``(height, width, scale)``, scale = (sx + sy) / 2."""
    sx, sy = scale_xy
    return np.array([img.shape[0], img.shape[1], 0.5 * (sx + sy)], dtype)


def prepare_train_image(record, transform: TrainTransform, norm: Normalisation, rng):
    """One training image: load (an empty image is an error naming it), transform with ``rng``, normalise:
    ``(image (3, H, W) float32, gt rows (N, 5), im_info (3,), the transform's info dict)``."""
    img = load_image(record.image_path)
    if img.size == 0:
        raise ValueError(f"{record.image_path}: empty image")
    img, boxes, info = transform(img, record.boxes, rng)
    return normalise_image(img, norm), gt_rows(boxes, record.ignore), image_info(img, info["scale"]), info


def gt_rows(boxes, ignore) -> np.ndarray:
    """``(N, 5)`` rows ``x1 y1 x2 y2 flag``, flag 0 for a face and 1 for an ignored face."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    flag = np.asarray(ignore, bool).astype(np.float32).reshape(-1, 1)   # 0 face, 1 ignored face
    return np.concatenate([b, flag], axis=1)
