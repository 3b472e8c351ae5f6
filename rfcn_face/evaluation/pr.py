"""AFW and PASCAL Faces precision-recall and AP: the face-eval toolbox protocol (Mathias et al., ECCV 2014).

Read from the toolbox (``plot_AP.py``, ``VOCpr.py``, ``database.py``, ``loadData.py``, ``util.py``); every rule
is in docs/evaluation_fddb_pr.md. Boxes are in the toolbox's own coordinates (``x1 y1 x2 y2`` as in the
annotation files and the detection file).

* ground truth: faces with ``|x2 - x1| < minw`` or ``|y2 - y1| < minh`` (30 px, no +1) become **ignore**
  regions (they are not removed); the faces counted in recall are the non-ignored ones;
* detections: a line ``image score x1 y1 x2 y2``; the image key is the name up to its first dot; detections
  with ``x2 - x1 <= minpix`` and ``y2 - y1 <= minpix`` are removed, ``minpix = int(sqrt(0.5 * minw * minh))``
  (21); the rest are sorted by score, descending, ties in file order;
* matching, greedy in that order over the whole set: a detection takes the face of its image with the highest
  overlap (``+1`` pixel areas; on ties the last face); with overlap > 0.5 it is a TP if that face is not
  ignored and not yet taken, an FP if already taken, and dropped (neither) if the face is an ignore region;
  otherwise an FP;
* box refinement (``--nit``, default 5 as the toolbox): the evaluation runs ``nit`` times; after each run the
  mean relative translation and scale of the TP detections to their faces is applied to every detection;
  the reported curve is the last run's (``nit - 1`` corrections applied);
* precision ``cumTP / (cumTP + cumFP)`` and recall ``cumTP / faces`` at every detection; AP is the VOC
  integral (:func:`rfcn_face.evaluation.voc.voc_ap`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from .voc import voc_ap

__all__ = ["read_detections", "ground_truth_from_records", "filter_detections", "toolbox_overlap",
           "match_detections", "refine_detections", "PRResult", "evaluate_face_eval", "image_key"]


def image_key(name: str) -> str:
    """The toolbox's image key: the file name up to its first dot (folders are dropped)."""
    return os.path.basename(str(name).replace("\\", "/")).split(".")[0]


def read_detections(path, drop_nonfinite: bool = False, counts: dict = None) -> Tuple[List[str], np.ndarray]:
    """``image score x1 y1 x2 y2`` per line -> (keys, (n, 5) ``score x1 y1 x2 y2``) in file order.

    Errors name the file and line: fewer than six fields, a non-numeric value, a box that ends before it starts
    (``x2 - x1 + 1 < 0`` or ``y2 - y1 + 1 < 0``: the toolbox's inclusive widths) and a
    NaN or infinite value (with ``drop_nonfinite`` such lines are left out instead and counted in
    ``counts['nonfinite']``); an empty file is an error too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detections file not found: {path}")
    keys, rows, dropped = [], [], 0
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            tok = line.split()
            if not tok:
                continue
            if len(tok) < 6:
                raise ValueError(f"{path}:{lineno}: expected 'image score x1 y1 x2 y2', found {line.strip()!r}")
            try:
                row = [float(t) for t in tok[1:6]]
            except ValueError:
                raise ValueError(f"{path}:{lineno}: non-numeric value in {line.strip()!r}") from None
            if not np.all(np.isfinite(row)):
                if drop_nonfinite:
                    dropped += 1
                    continue
                raise ValueError(f"{path}:{lineno}: NaN or infinite value in {line.strip()!r}; fix the file, or pass "
                                 "--drop-nonfinite to leave such lines out (their count is printed)")
            if row[3] - row[1] + 1 < 0 or row[4] - row[2] + 1 < 0:   # toolbox widths are x2 - x1 + 1
                raise ValueError(f"{path}:{lineno}: x2 < x1 or y2 < y1 (width x2 - x1 + 1 or height y2 - y1 + 1 "
                                 f"negative) in {line.strip()!r} (a line is 'image score x1 y1 x2 y2')")
            rows.append(row)
            keys.append(image_key(tok[0]))
    if not rows and not dropped:
        raise ValueError(f"{path}: no detections (the file is empty; a line is 'image score x1 y1 x2 y2')")
    if counts is not None:
        counts["nonfinite"] = dropped
    return keys, np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def ground_truth_from_records(records, minw: float = 30, minh: float = 30) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """``{key: (boxes (n, 4) toolbox x1 y1 x2 y2, ignore (n,))}``; small faces become ignore regions."""
    from ..datasets.face_eval import continuous_to_toolbox
    gt = {}
    for r in records:
        if len(r.boxes) == 0:
            continue                                   # the toolbox skips images without rows
        b = continuous_to_toolbox(r.boxes)
        w, h = np.abs(b[:, 0] - b[:, 2]), np.abs(b[:, 1] - b[:, 3])
        ign = np.asarray(r.ignore, dtype=bool) | (w < minw) | (h < minh)
        gt[image_key(r.image_path or r.name)] = (b, ign)
    return gt


def filter_detections(dets: np.ndarray, minw: float = 30, minh: float = 30) -> np.ndarray:
    """Boolean keep mask of the toolbox's ``filterdet``: width or height above ``int(sqrt(0.5 minw minh))``."""
    minpix = int(np.sqrt(0.5 * minw * minh))
    return ((dets[:, 3] - dets[:, 1]) > minpix) | ((dets[:, 4] - dets[:, 2]) > minpix)


def toolbox_overlap(det_xyxy: np.ndarray, gt_xyxy: np.ndarray) -> np.ndarray:
    """(n_det, n_gt) overlap of ``util.overlap``: ``+1`` areas with abs(); no intersection unless the boxes
    overlap strictly (``x2 > x1'`` on both axes)."""
    d = np.asarray(det_xyxy, dtype=np.float64)[:, None, :]
    g = np.asarray(gt_xyxy, dtype=np.float64)[None, :, :]
    a1 = (np.abs(d[..., 0] - d[..., 2]) + 1) * (np.abs(d[..., 1] - d[..., 3]) + 1)
    a2 = (np.abs(g[..., 0] - g[..., 2]) + 1) * (np.abs(g[..., 1] - g[..., 3]) + 1)
    hit = (d[..., 3] > g[..., 1]) & (g[..., 3] > d[..., 1]) & (d[..., 2] > g[..., 0]) & (g[..., 2] > d[..., 0])
    iw = np.minimum(d[..., 2], g[..., 2]) - np.maximum(d[..., 0], g[..., 0]) + 1
    ih = np.minimum(d[..., 3], g[..., 3]) - np.maximum(d[..., 1], g[..., 1]) + 1
    ia = np.where(hit, iw * ih, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ia / (a1 + a2 - ia)


def match_detections(gt, keys, dets, ovr: float = 0.5):
    """One greedy pass (``VOCprRecordOptim``) over detections already in ranking order.

    Returns tp (n,), fp (n,) as 0/1 floats and the TP pairs (det index, gt box) in ranking order.
    """
    n = len(dets)
    tp, fp = np.zeros(n), np.zeros(n)
    taken = {k: np.zeros(len(v[0]), dtype=bool) for k, v in gt.items()}
    by_image: Dict[str, list] = {}
    for i, k in enumerate(keys):
        by_image.setdefault(k, []).append(i)
    best = np.full(n, -1, dtype=np.int64)
    bestov = np.zeros(n)
    for k, idx in by_image.items():
        if k not in gt:
            continue
        idx = np.asarray(idx)
        ov = toolbox_overlap(dets[idx, 1:5], gt[k][0])
        ov = np.where(np.isnan(ov), -np.inf, ov)
        m = np.maximum(ov.max(axis=1), 0.0)
        last = ov.shape[1] - 1 - np.argmax((ov == m[:, None])[:, ::-1], axis=1)   # last face with the max
        best[idx], bestov[idx] = last, m
    pairs = []
    for i in range(n):
        if bestov[i] > ovr:
            k, g = keys[i], best[i]
            if not gt[k][1][g]:
                if not taken[k][g]:
                    tp[i] = 1
                    taken[k][g] = True
                    pairs.append((i, gt[k][0][g]))
                else:
                    fp[i] = 1
        else:
            fp[i] = 1
    return tp, fp, pairs


def refine_detections(dets, pairs):
    """``transf_dets`` with the mean relative translation / scale of the TP pairs; returns (dets, (tx, ty, sx, sy))."""
    if pairs:
        i = np.asarray([p[0] for p in pairs])
        g = np.asarray([p[1] for p in pairs], dtype=np.float64)
        d = dets[i, 1:5]
    else:
        g = d = np.zeros((0, 4))
    dtx, dty = d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]
    gtx, gty = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        tx = np.mean(((g[:, 2] + g[:, 0]) / 2. - (d[:, 2] + d[:, 0]) / 2.) / dtx) if len(d) else np.nan
        ty = np.mean(((g[:, 3] + g[:, 1]) / 2. - (d[:, 3] + d[:, 1]) / 2.) / dty) if len(d) else np.nan
        sx = np.mean(gtx / dtx) if len(d) else np.nan
        sy = np.mean(gty / dty) if len(d) else np.nan
    out = dets.copy()
    w = (dets[:, 3] - dets[:, 1]) / 2.0
    h = (dets[:, 4] - dets[:, 2]) / 2.0
    cx = (dets[:, 3] + dets[:, 1]) / 2. + tx * w * 2
    cy = (dets[:, 4] + dets[:, 2]) / 2. + ty * h * 2
    out[:, 1], out[:, 2], out[:, 3], out[:, 4] = cx - w * sx, cy - h * sy, cx + w * sx, cy + h * sy
    return out, (float(tx), float(ty), float(sx), float(sy))


@dataclass
class PRResult:
    ap: float
    recall: np.ndarray
    precision: np.ndarray
    scores: np.ndarray
    num_faces: int
    num_detections: int
    num_filtered: int
    transforms: list = field(default_factory=list)

    def to_json(self) -> dict:
        def clean(a):
            return [None if not np.isfinite(v) else float(v) for v in a]
        return {"ap": self.ap, "num_faces": self.num_faces, "num_detections": self.num_detections,
                "num_filtered_out": self.num_filtered, "refinement": self.transforms,
                "recall": clean(self.recall), "precision": clean(self.precision), "score": clean(self.scores)}


def evaluate_face_eval(records, keys, dets, minw: float = 30, minh: float = 30, nit: int = 5,
                       ovr: float = 0.5) -> PRResult:
    """AP of detections (``keys``, (n, 5) ``score x1 y1 x2 y2``) on face-eval records (ignore regions)."""
    gt = ground_truth_from_records(records, minw, minh)
    tot = int(sum(int((~ig).sum()) for _, ig in gt.values()))
    dets = np.asarray(dets, dtype=np.float64).reshape(-1, 5)
    keep = filter_detections(dets, minw, minh)
    order = np.argsort(-dets[keep, 0], kind="stable")
    d = dets[keep][order]
    k = [kk for kk, m in zip(keys, keep) if m]
    k = [k[i] for i in order]
    transforms = []
    tp = fp = np.zeros(0)
    for it in range(max(int(nit), 1)):
        tp, fp, pairs = match_detections(gt, k, d, ovr)
        if it == max(int(nit), 1) - 1:
            break
        d, tr = refine_detections(d, pairs)
        transforms.append(tr)
    ctp, cfp = np.cumsum(tp), np.cumsum(fp)
    rec = ctp / tot if tot else np.zeros_like(ctp)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = ctp / (cfp + ctp)
    return PRResult(voc_ap(rec, prec), rec, prec, d[:, 0], tot, len(d), int((~keep).sum()), transforms)
