"""Training and test images as the network reads them, without MXNet (the loader worker processes import this,
:mod:`rfcn_face.datasets.loader` re-exports it): decode, normalisation, ``im_info`` and the gt rows of a
transformed training image."""
from __future__ import annotations

import numpy as np

from ..config import Normalisation
from ..transforms import TrainTransform

__all__ = ["load_image", "decode_image", "image_damage", "DamagedImage", "normalise_image", "image_info",
           "prepare_train_image", "gt_rows"]

_JPEG, _PNG = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"


class DamagedImage(ValueError):
    """An image file that exists but is truncated or does not decode (the message names the file)."""


def image_damage(data: bytes) -> str:
    """Why the bytes of an image file are damaged, or ``""``. libjpeg / libpng decode a truncated file with only
    a warning on stderr (the missing rows grey), so the end of the stream is checked first: a JPEG needs its
    end-of-image marker ``FF D9`` (it cannot occur inside entropy-coded data: ``FF`` is stuffed there), a PNG its
    ``IEND`` chunk; a little trailing padding after either is accepted."""
    if not data:
        return "empty file"
    if data.startswith(_JPEG) and b"\xff\xd9" not in data[-1024:]:
        return "truncated JPEG (no end-of-image marker)"
    if data.startswith(_PNG) and b"IEND" not in data[-64:]:
        return "truncated PNG (no IEND chunk)"
    return ""


def decode_image(path, flags=None) -> np.ndarray:
    """BGR uint8 (H, W, 3) of an image file, as ``cv2.imread`` gives, but never half-decoded: a missing file is a
    :class:`FileNotFoundError`, a truncated or undecodable one a :class:`DamagedImage`, both naming the file.
    The one image reader of the project (training, test, detect, FaceResNet data, the previews)."""
    import cv2
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise DamagedImage(f"{path}: is a folder, not an image") from None
    why = image_damage(data)
    if why:
        raise DamagedImage(f"{path}: damaged image: {why}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if flags is None else flags)
    if img is None or img.size == 0:
        raise DamagedImage(f"{path}: damaged image: not a decodable image ({len(data)} bytes)")
    return img


def load_image(path) -> np.ndarray:
    """RGB uint8 (H, W, 3) (:func:`decode_image`: missing -> ``FileNotFoundError``, damaged -> ``DamagedImage``)."""
    return np.ascontiguousarray(decode_image(path)[:, :, ::-1])


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
