"""Recall per face scale (the paper's Fig. 1(a) and Fig. S1): the share of ground-truth faces that some detection
overlaps with IoU >= 0.5, per group of face size sqrt(w * h).

Faces are those a WIDER setting keeps (:class:`rfcn_face.evaluation.wider.WiderGroundTruth`, default
``hard``: every valid face); detections are one submission (``{(event, name): (k, 5) x y w h score}``, e.g.
:func:`rfcn_face.evaluation.submission.read_submission`) with scores >= ``min_score`` (default: all the
detector kept). IoU in the continuous convention of :mod:`rfcn_face.boxes` (``x y w h`` -> ``(x, y, x+w, y+h)``).
A face counts once however many detections hit it (recall, not precision).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence, Tuple

import numpy as np

from ..boxes import iou_matrix, xywh_to_xyxy

__all__ = ["SCALE_EDGES", "scale_group_labels", "RecallByScale", "recall_by_scale"]

SCALE_EDGES = (0, 8, 16, 32, 64, float("inf"))   # sqrt(w*h) groups; [0, 16) = "below 16 px" (Sec. 1)


def scale_group_labels(edges: Sequence[float] = SCALE_EDGES) -> list:
    """``["[0,8)", "[8,16)", ..., "[64,inf)"]``."""
    fmt = lambda v: "inf" if np.isinf(v) else f"{v:g}"  # noqa: E731
    return [f"[{fmt(a)},{fmt(b)})" for a, b in zip(edges[:-1], edges[1:])]


@dataclass
class RecallByScale:
    groups: list           # labels of the size groups
    recalled: np.ndarray   # faces hit per group
    faces: np.ndarray      # faces per group
    edges: tuple = SCALE_EDGES   # the group edges (len(groups) + 1)

    @property
    def recall(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.faces > 0, self.recalled / np.maximum(self.faces, 1), np.nan)

    def below(self, size: float) -> float:
        """Recall over every face smaller than ``size`` px (``size`` must be one of the result's group edges)."""
        if size not in self.edges:
            raise ValueError(f"{size} px is not a group edge ({', '.join(f'{e:g}' for e in self.edges)})")
        k = list(self.edges).index(size)
        f = self.faces[:k].sum()
        return float(self.recalled[:k].sum() / f) if f else float("nan")

    def to_json(self) -> dict:
        return {"groups": self.groups, "recall": [None if np.isnan(v) else float(v) for v in self.recall],
                "faces": [int(v) for v in self.faces]}


def recall_by_scale(predictions: Mapping[Tuple[str, str], np.ndarray], gt, setting: str = "hard",
                    edges: Sequence[float] = SCALE_EDGES, iou_thresh: float = 0.5,
                    min_score: float = -np.inf) -> RecallByScale:
    """Recall at IoU >= ``iou_thresh`` per sqrt(w*h) group of the faces ``gt`` keeps in ``setting``."""
    edges = np.asarray(edges, dtype=np.float64)
    n = len(edges) - 1
    recalled, faces = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for key, boxes, keep in zip(gt.keys(), gt.boxes, gt.keep[setting]):
        g = boxes[keep]
        if len(g) == 0:
            continue
        size = np.sqrt(np.clip(g[:, 2], 0, None) * np.clip(g[:, 3], 0, None))
        group = np.clip(np.searchsorted(edges, size, side="right") - 1, 0, n - 1)
        p = predictions.get(key)
        hit = np.zeros(len(g), dtype=bool)
        if p is not None and len(p):
            p = np.asarray(p, dtype=np.float64).reshape(-1, 5)
            p = p[p[:, 4] >= min_score]
            if len(p):
                hit = iou_matrix(xywh_to_xyxy(g), xywh_to_xyxy(p[:, :4])).max(axis=1) >= iou_thresh
        np.add.at(faces, group, 1)
        np.add.at(recalled, group, hit.astype(np.int64))
    return RecallByScale(scale_group_labels(edges), recalled, faces, tuple(float(e) for e in edges))
