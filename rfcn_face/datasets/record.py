"""The one record type every benchmark reader yields."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np


@dataclass
class FaceRecord:
    """One image and its faces.

    ``boxes`` are float64 (N, 4) ``(x1, y1, x2, y2)`` in the continuous convention of :mod:`rfcn_face.boxes`.
    ``ignore`` (N,) bool marks faces that must never count as positives or negatives (WIDER invalid faces,
    face-eval ignore regions). ``attributes`` maps a name (WIDER: blur, expression, illumination, invalid,
    occlusion, pose; evaluation keep lists: keep_easy, keep_medium, keep_hard) to an (N,) integer/bool array.
    ``ellipses`` (N, 5) ``(major_radius, minor_radius, angle, cx, cy)`` for FDDB, else None.
    ``event`` is the WIDER event folder (e.g. ``0--Parade``) or '' ; ``name`` the image name without folder.
    ``height``/``width`` are 0 when unknown.
    """

    image_path: str
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0,), dtype=bool))
    attributes: dict = field(default_factory=dict)
    ellipses: Optional[np.ndarray] = None
    event: str = ""
    name: str = ""
    height: int = 0
    width: int = 0

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.ignore = np.asarray(self.ignore, dtype=bool).reshape(-1)
        if self.ignore.shape[0] != self.boxes.shape[0]:
            raise ValueError(f"{self.image_path}: {len(self.boxes)} boxes but {len(self.ignore)} ignore flags")

    @property
    def num_faces(self) -> int:
        return int((~self.ignore).sum())


def load_mat(path, what: str = "MATLAB"):
    """``scipy.io.loadmat`` of an annotation file: a missing file is a FileNotFoundError and an unreadable one a
    ValueError, both naming the path (``what`` names the kind of file in the message)."""
    import scipy.io
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        return scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises several types for corrupt files
        raise ValueError(f"{path}: not a readable MATLAB file ({e})") from None
