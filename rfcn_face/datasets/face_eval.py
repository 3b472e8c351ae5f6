"""AFW and PASCAL Faces ground truth of the face-eval toolbox (Mathias et al., ECCV 2014).

Formats (MATLAB v5 ``.mat``, read with :func:`scipy.io.loadmat`)
----------------------------------------------------------------
* **new** (``new_annotations_AFW.mat``, ``Annotations_Face_PASCALLayout_large_fixed.mat``): a struct array
  ``Annotations`` with fields ``imgname``, ``imgsize`` (``[width; height; channels]``), ``objects`` (one row per
  face: ``x1 y1 x2 y2 0 ignore``) and ``flags``. A row with ``ignore = 1`` is an ignore region: it maps to
  ``record.ignore``.
* **old PASCAL** (``Annotations_Face_PASCALLayout_large.mat``): the same struct without ``flags``, ``objects``
  rows ``x1 y1 x2 y2`` (no ignore column: every face counts).
* **old AFW** (``anno2.mat``): a 205 x 4 cell ``anno``: image name, a cell of 2 x 2 ``[x1 y1; x2 y2]`` boxes,
  a cell of 1 x 3 head poses and a cell of 6 x 2 landmarks. No image size. The poses are kept as
  ``attributes['pose']`` (N, 3) as stored.

Box coordinates
---------------
The toolbox treats a box as the integer pixels ``x1..x2`` by ``y1..y2`` inclusive, MATLAB 1-based: its width
is ``x2 - x1 + 1`` and its overlap adds ``+1`` to every side length. In our continuous convention
(:mod:`rfcn_face.boxes`, 0-based pixel ``i`` = ``[i, i+1)``) those pixels cover
``[x1 - 1, x2) x [y1 - 1, y2)``, so a toolbox row becomes ``(x1 - 1, y1 - 1, x2, y2)``
(:func:`toolbox_to_continuous`; inverse :func:`continuous_to_toolbox`). Widths, areas and IoUs are then
exactly the toolbox's. Coordinates are kept unclipped (a few rows lie slightly outside the image).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .record import FaceRecord, load_mat

__all__ = ["read_face_eval_mat", "toolbox_to_continuous", "continuous_to_toolbox", "detect_format"]


def toolbox_to_continuous(boxes) -> np.ndarray:
    """Toolbox ``x1 y1 x2 y2`` (1-based, inclusive) -> continuous ``(x1 - 1, y1 - 1, x2, y2)``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, :2] -= 1.0
    return b


def continuous_to_toolbox(boxes) -> np.ndarray:
    """Inverse of :func:`toolbox_to_continuous` (e.g. to write detections for the toolbox)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    b[:, :2] += 1.0
    return b


def _str(c) -> str:
    a = np.asarray(c).ravel()
    while a.size and a.dtype == object:
        a = np.asarray(a[0]).ravel()
    return str(a[0]) if a.size else ""


def detect_format(m: dict) -> str:
    """'new', 'old_pascal' or 'old_afw' from the variables of a loaded ``.mat``."""
    if "Annotations" in m:
        ann = np.asarray(m["Annotations"]).ravel()
        names = ann.dtype.names or ()
        if "objects" not in names or "imgname" not in names:
            raise ValueError("Annotations struct has no 'imgname' / 'objects' fields")
        widths = {np.asarray(a["objects"]).shape[1] for a in ann if np.asarray(a["objects"]).size}
        if widths <= {6}:
            return "new"
        if widths <= {4}:
            return "old_pascal"
        raise ValueError(f"Annotations.objects rows must have 6 (new) or 4 (old) columns, found {sorted(widths)}")
    if "anno" in m:
        return "old_afw"
    raise ValueError("neither an 'Annotations' struct (new / old PASCAL) nor an 'anno' cell (old AFW)")


def _image_path(image_root, name):
    return os.path.join(str(image_root), name) if image_root is not None else name


def _record(path, k, name, rows_xyxy, ignore, width, height, image_root, attributes=None):
    rows_xyxy = np.asarray(rows_xyxy, dtype=np.float64).reshape(-1, 4)
    nonfinite = np.flatnonzero(~np.isfinite(rows_xyxy).all(axis=1))
    if nonfinite.size:
        raise ValueError(f"{path}: entry {k + 1} ({name}) row {int(nonfinite[0]) + 1}: NaN or infinite coordinate "
                         f"({rows_xyxy[nonfinite[0]].tolist()})")
    bad = np.flatnonzero((rows_xyxy[:, 2] < rows_xyxy[:, 0]) | (rows_xyxy[:, 3] < rows_xyxy[:, 1]))
    if bad.size:
        raise ValueError(f"{path}: entry {k + 1} ({name}) row {int(bad[0]) + 1}: x2 < x1 or y2 < y1 "
                         f"({rows_xyxy[bad[0]].tolist()})")
    return FaceRecord(image_path=_image_path(image_root, name), boxes=toolbox_to_continuous(rows_xyxy),
                      ignore=ignore, attributes=attributes or {}, name=name.rsplit(".", 1)[0],
                      width=int(width), height=int(height))


def _read_struct(path, m, fmt, image_root):
    out = []
    for k, a in enumerate(np.asarray(m["Annotations"]).ravel()):
        name = _str(a["imgname"])
        obj = np.asarray(a["objects"], dtype=np.float64)
        obj = obj.reshape(-1, obj.shape[-1] if obj.ndim == 2 and obj.size else (6 if fmt == "new" else 4))
        size = np.asarray(a["imgsize"]).ravel()
        w, h = (size[0], size[1]) if size.size >= 2 else (0, 0)
        if fmt == "new":
            ign = obj[:, 5] != 0
        else:
            ign = np.zeros(len(obj), dtype=bool)
        out.append(_record(path, k, name, obj[:, :4], ign, w, h, image_root))
    return out


def _read_old_afw(path, m, image_root):
    anno = np.asarray(m["anno"], dtype=object)
    if anno.ndim != 2 or anno.shape[1] < 2:
        raise ValueError(f"{path}: 'anno' must be an N x 4 cell, got shape {anno.shape}")
    out = []
    for k in range(anno.shape[0]):
        name = _str(anno[k, 0])
        cells = np.asarray(anno[k, 1], dtype=object).ravel()
        rows = [np.asarray(c, dtype=np.float64).reshape(2, 2).ravel() for c in cells]  # [x1 y1; x2 y2]
        attrs = {}
        if anno.shape[1] >= 3:
            poses = [np.asarray(c, dtype=np.float64).ravel() for c in np.asarray(anno[k, 2], dtype=object).ravel()]
            if len(poses) == len(rows) and all(p.size == 3 for p in poses):
                attrs["pose"] = np.asarray(poses).reshape(-1, 3)
        out.append(_record(path, k, name, np.asarray(rows).reshape(-1, 4), np.zeros(len(rows), dtype=bool),
                           0, 0, image_root, attrs))
    return out


def read_face_eval_mat(path, image_root=None) -> list:
    """Read an AFW / PASCAL Faces annotation ``.mat`` of the face-eval toolbox (new or old format, detected).

    ``name`` is the image file stem, ``image_path`` ``<image_root>/<imgname>``; ``width``/``height`` from
    ``imgsize`` (0 for old AFW). Boxes in the continuous convention (see the module docstring).
    """
    path = Path(path)
    m = load_mat(path, "face-eval annotation")
    try:
        fmt = detect_format(m)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    if fmt == "old_afw":
        return _read_old_afw(path, m, image_root)
    return _read_struct(path, m, fmt, image_root)
