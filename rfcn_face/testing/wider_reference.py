"""Slow reference of the WIDER FACE evaluation: the official MATLAB loops (``read_pred``, ``norm_score``,
``image_evaluation``, ``image_pr_info``) transcribed one prediction and one threshold at a time.

Used by the tests (fast == reference on random submissions) and ``benchmarks/bench_wider_eval.py`` (speed ratio).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from ..evaluation.wider import (_INT32_MAX, _INT32_MIN, _SINGLE_REALMAX, _SINGLE_REALMIN, IOU_THRESH, THRESH_NUM,
                                PredInput, WiderGroundTruth, WiderResult, _finish, align_predictions)

__all__ = ["evaluate_wider_reference"]

def _ref_int32(v: float) -> float:
    if math.isnan(v):
        return 0.0
    if math.isinf(v):
        return _INT32_MAX if v > 0 else _INT32_MIN
    a = abs(v)
    f = math.floor(a)
    r = f + 1.0 if a - f >= 0.5 else float(f)
    r = r if v >= 0 else -r
    return min(max(r, _INT32_MIN), _INT32_MAX)


def _ref_boxoverlap(gt_xyxy: np.ndarray, b: Sequence[float]) -> np.ndarray:
    """``boxoverlap(a, b)`` for int32 ``a`` (faces) and one double box ``b``, face by face."""
    o = np.zeros(len(gt_xyxy))
    bx1, by1, bx2, by2 = (_ref_int32(c) for c in b)
    barea = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    for n, (ax1, ay1, ax2, ay2) in enumerate(gt_xyxy):
        w = min(ax2, bx2) - max(ax1, bx1) + 1
        h = min(ay2, by2) - max(ay1, by1) + 1
        if w <= 0 or h <= 0:
            continue
        inter = w * h
        aarea = (ax2 - ax1 + 1) * (ay2 - ay1 + 1)
        union = _ref_int32(aarea + barea) - inter
        o[n] = inter / union if union != 0 else (math.inf if inter > 0 else math.nan)
    return o


def _ref_read_pred(p: Optional[np.ndarray]) -> Optional[np.ndarray]:
    if p is None or len(p) == 0:
        return None
    rows = [list(r[:5]) for r in p if r[4] >= 0]          # NaN >= 0 is False
    if not rows:
        return None
    rows.sort(key=lambda r: -r[4])                        # Python's sort is stable
    return np.array(rows, dtype=np.float64)


def _ref_norm_score(pred_list):
    hi, lo = _SINGLE_REALMIN, _SINGLE_REALMAX
    for p in pred_list:
        if p is None:
            continue
        with np.errstate(over="ignore"):
            hi = max(hi, np.float32(p[:, 4].max()))
            lo = min(lo, np.float32(p[:, 4].min()))
    out = []
    for p in pred_list:
        if p is None:
            out.append(None)
            continue
        q = p.copy()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for r in range(len(q)):
                q[r, 4] = float((np.float32(q[r, 4]) - lo) / (hi - lo))
        out.append(q)
    return out


def _ref_image_evaluation(pred_info, gt_bbx, keep, iou_thresh):
    gt_xyxy = [(x, y, x + w, y + h) for x, y, w, h in gt_bbx]
    pred_recall = np.zeros(len(pred_info))
    recall_list = np.zeros(len(gt_bbx))
    proposal_list = np.ones(len(pred_info))
    for h, (x, y, w, hh, _) in enumerate(pred_info):
        overlap = _ref_boxoverlap(np.array(gt_xyxy), (x, y, x + w, y + hh))
        ov = np.where(np.isnan(overlap), -np.inf, overlap)  # MATLAB max ignores NaN
        idx = int(np.argmax(ov))                             # first index on ties
        if ov[idx] >= iou_thresh:
            if not keep[idx]:
                recall_list[idx] = -1
                proposal_list[h] = -1
            elif recall_list[idx] == 0:
                recall_list[idx] = 1
        pred_recall[h] = np.count_nonzero(recall_list == 1)
    return pred_recall, proposal_list


def _ref_image_pr_info(thresh_num, pred_info, proposal_list, pred_recall):
    info = np.zeros((thresh_num, 2))
    for t in range(1, thresh_num + 1):
        thresh = 1 - t / thresh_num
        passing = np.flatnonzero(pred_info[:, 4] >= thresh)
        if len(passing) == 0:
            continue
        r = passing[-1]
        info[t - 1, 0] = np.count_nonzero(proposal_list[:r + 1] == 1)
        info[t - 1, 1] = pred_recall[r]
    return info


def evaluate_wider_reference(predictions: PredInput, gt: WiderGroundTruth, settings: Optional[Sequence[str]] = None,
                             iou_thresh: float = IOU_THRESH, thresh_num: int = THRESH_NUM,
                             progress: bool = False) -> WiderResult:
    """Slow reference: the official loops transcribed one prediction and one threshold at a time."""
    settings = tuple(settings or gt.settings)
    pred_list = [_ref_read_pred(p) for p in align_predictions(predictions, gt)]
    n_pred = sum(len(p) for p in align_predictions(predictions, gt) if p is not None)
    norm_list = _ref_norm_score(pred_list)
    thr = np.array([1 - t / thresh_num for t in range(1, thresh_num + 1)])
    tp, prop, faces = {}, {}, {}
    for s in settings:
        curve = np.zeros((thresh_num, 2))
        count_face = 0
        it = range(len(gt))
        if progress:
            from tqdm import tqdm
            it = tqdm(it, desc=f"reference {s}", leave=False)
        for j in it:
            gt_bbx, pred_info, keep = gt.boxes[j], norm_list[j], gt.keep[s][j]
            count_face += int(np.count_nonzero(keep))
            if len(gt_bbx) == 0 or pred_info is None:
                continue
            pred_recall, proposal_list = _ref_image_evaluation(pred_info, gt_bbx, keep, iou_thresh)
            curve += _ref_image_pr_info(thresh_num, pred_info, proposal_list, pred_recall)
        tp[s], prop[s], faces[s] = curve[:, 1].copy(), curve[:, 0].copy(), count_face
    return _finish(tp, prop, faces, thr, n_pred)
