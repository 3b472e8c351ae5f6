"""WIDER FACE evaluation, exact against the official MATLAB ``eval_tools`` (Yang et al., 2016).

What the official tool does, step by step (``wider_eval.m`` → ``read_pred`` → ``norm_score`` → ``evaluation``),
and where this module does it:

1. ``read_pred``: per image keep predictions with ``score >= 0`` (NaN dropped) and sort them by score,
   descending, stably (ties keep file order) — :func:`prepare_predictions`.
2. ``norm_score``: min-max normalise every score of the submission with one global min and max. The running
   max/min start at ``realmin('single')`` / ``realmax('single')``, and MATLAB's mixed single/double rules then
   make the whole normalisation single precision; the float32 results are stored back into double arrays —
   :func:`normalise_scores`.
3. ``image_evaluation`` per image and setting: prediction boxes ``x y w h`` become ``(x, y, x + w, y + h)``,
   ground truth likewise in **int32** (the ``.mat`` stores int32), and ``boxoverlap`` applies the "+1" pixel
   convention in int32 arithmetic, so prediction corners are rounded (half away from zero) where they bound the
   intersection and the union is rounded — :func:`matlab_overlaps`. Each prediction, in sorted order, looks at
   its highest-IoU face (the first one on ties); IoU < 0.5 → false positive; best face not kept by the
   setting → the prediction is dropped (neither TP nor FP); best face kept and not yet matched → TP;
   otherwise → FP.
4. ``image_pr_info``: 1,000 thresholds ``1 - t/1000`` (t = 1..1000); at each, the last prediction (in sorted
   order) with ``score >= threshold`` gives the cumulative TP count and the cumulative non-dropped count.
   Images without ground-truth rows or without predictions contribute nothing but still add their kept
   faces to the recall denominator.
5. ``dataset_pr_info``: precision = TP / proposals (0/0 = NaN where no proposal passes the threshold),
   recall = TP / kept faces; AP = ``VOCap`` (:func:`rfcn_face.evaluation.voc.voc_ap`).

:func:`evaluate_wider` is the vectorised implementation (one IoU matrix per image shared by the three
settings, and one histogram over thresholds for the whole dataset);
:func:`rfcn_face.testing.wider_reference.evaluate_wider_reference` is a slow per-prediction, per-threshold
transcription of the same protocol used by the tests and the benchmark.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .voc import voc_ap

SETTINGS = ("easy", "medium", "hard")
THRESH_NUM = 1000
IOU_THRESH = 0.5
GT_FILES = {"all": "wider_face_val.mat", "easy": "wider_easy_val.mat", "medium": "wider_medium_val.mat",
            "hard": "wider_hard_val.mat"}

_INT32_MIN, _INT32_MAX = -2.0 ** 31, 2.0 ** 31 - 1
_SINGLE_REALMIN = np.float32(np.finfo(np.float32).tiny)  # realmin('single')
_SINGLE_REALMAX = np.float32(np.finfo(np.float32).max)  # realmax('single')

PredInput = Union[Mapping, Sequence]


# --------------------------------------------------------------------------------------------------------------
# ground truth
@dataclass
class WiderGroundTruth:
    """The official evaluation ground truth, one entry per image in the official (event, file) order.

    ``boxes[i]`` is (n_i, 4) float64 ``x y w h`` with the integer values of ``face_bbx_list`` (every row kept,
    including the dummy ``0 0 0 0`` boxes); ``keep[setting][i]`` is (n_i,) bool: the faces of ``gt_list``.
    """

    events: List[str]
    names: List[str]
    boxes: List[np.ndarray]
    keep: Dict[str, List[np.ndarray]] = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.names)
        if len(self.events) != n or len(self.boxes) != n:
            raise ValueError("WiderGroundTruth: events, names and boxes must have one entry per image")
        self.boxes = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in self.boxes]
        for s, masks in self.keep.items():
            if len(masks) != n:
                raise ValueError(f"WiderGroundTruth: keep[{s!r}] has {len(masks)} entries for {n} images")
            self.keep[s] = [np.asarray(m, dtype=bool).reshape(-1) for m in masks]
            for i, (m, b) in enumerate(zip(self.keep[s], self.boxes)):
                if m.shape[0] != b.shape[0]:
                    raise ValueError(f"WiderGroundTruth: {self.events[i]}/{self.names[i]}: {b.shape[0]} boxes "
                                     f"but {m.shape[0]} keep flags for {s!r}")

    def __len__(self) -> int:
        return len(self.names)

    @property
    def settings(self) -> Tuple[str, ...]:
        return tuple(s for s in SETTINGS if s in self.keep) + tuple(s for s in self.keep if s not in SETTINGS)

    def keys(self) -> List[Tuple[str, str]]:
        return list(zip(self.events, self.names))

    def count_faces(self, setting: str) -> int:
        return int(sum(int(m.sum()) for m in self.keep[setting]))

    def subset(self, indices) -> "WiderGroundTruth":
        idx = [int(i) for i in indices]
        return WiderGroundTruth([self.events[i] for i in idx], [self.names[i] for i in idx],
                                [self.boxes[i] for i in idx],
                                {s: [m[i] for i in idx] for s, m in self.keep.items()})

    @classmethod
    def from_records(cls, records) -> "WiderGroundTruth":
        """From :class:`~rfcn_face.datasets.record.FaceRecord` s with ``keep_<setting>`` attributes.

        ``boxes`` are ``(x, y, x + w, y + h)``; for the integer WIDER values ``w = x2 - x1`` is exact.
        """
        events, names, boxes, keep = [], [], [], {s: [] for s in SETTINGS}
        for r in records:
            b = np.asarray(r.boxes, dtype=np.float64).reshape(-1, 4)
            events.append(r.event)
            names.append(r.name)
            boxes.append(np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1))
            for s in SETTINGS:
                keep[s].append(np.asarray(r.attributes.get(f"keep_{s}", np.zeros(len(b), bool)), bool))
        return cls(events, names, boxes, keep)

    @classmethod
    def load(cls, gt_dir) -> "WiderGroundTruth":
        """Read the four official ``wider_*_val.mat`` files of ``gt_dir`` (via the dataset reader)."""
        gt_dir = Path(gt_dir)
        for f in GT_FILES.values():
            if not (gt_dir / f).is_file():
                raise FileNotFoundError(f"WIDER evaluation ground truth not found: {gt_dir / f} "
                                        f"(--gt must hold {', '.join(GT_FILES.values())})")
        try:
            from ..datasets.wider import read_wider_eval_gt
        except ImportError as e:  # the datasets module is a separate piece of the project
            raise FileNotFoundError(f"rfcn_face.datasets.wider.read_wider_eval_gt is not available ({e})") from e
        return cls.from_records(read_wider_eval_gt(gt_dir))


# --------------------------------------------------------------------------------------------------------------
# MATLAB numerics
def matlab_round(values) -> np.ndarray:
    """MATLAB's double → int32 conversion as float64: round half away from zero, saturate, NaN → 0."""
    v = np.asarray(values, dtype=np.float64)
    a = np.abs(v)
    f = np.floor(a)
    with np.errstate(invalid="ignore"):
        r = np.copysign(f + ((a - f) >= 0.5), v)
    r = np.minimum(np.maximum(r, _INT32_MIN), _INT32_MAX)
    r[np.isnan(v)] = 0.0
    return r


def _pred_geometry(pred_xywh: np.ndarray):
    """Per prediction: the int32-converted corners ``(x1, y1, x1 + w, y1 + h)`` and the double "+1" area."""
    p = np.asarray(pred_xywh, dtype=np.float64).reshape(-1, 4)
    x2, y2 = p[:, 0] + p[:, 2], p[:, 1] + p[:, 3]           # pred_info(:,3) = x + w, in double
    corners = matlab_round(np.stack([p[:, 0], p[:, 1], x2, y2], axis=1))
    barea = (x2 - p[:, 0] + 1) * (y2 - p[:, 1] + 1)
    return corners, barea


def _overlaps(gt_xywh: np.ndarray, corners: np.ndarray, barea: np.ndarray) -> np.ndarray:
    g = gt_xywh
    gx1, gy1 = g[:, 0], g[:, 1]
    gx2, gy2 = gx1 + g[:, 2], gy1 + g[:, 3]
    iw = np.minimum(gx2, corners[:, 2:3]) - np.maximum(gx1, corners[:, 0:1]) + 1
    ih = np.minimum(gy2, corners[:, 3:4]) - np.maximum(gy1, corners[:, 1:2]) + 1
    inter = iw * ih
    aarea = (g[:, 2] + 1) * (g[:, 3] + 1)
    union = matlab_round(aarea + barea[:, None]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        o = inter / union
    o[(iw <= 0) | (ih <= 0)] = 0.0
    return o


def matlab_overlaps(gt_xywh, pred_xywh) -> np.ndarray:
    """``boxoverlap`` of every prediction (rows) with every face (columns), as MATLAB evaluates it.

    The ground truth is int32, so ``max``/``min`` with a double prediction corner convert that corner to
    int32 (round half away from zero), the "+1" widths and the intersection are integers, and
    ``aarea + barea`` (int32 + double) is rounded before the intersection is subtracted. Entries with a
    non-positive intersection width or height are 0.
    """
    g = np.asarray(gt_xywh, dtype=np.float64).reshape(-1, 4)
    return _overlaps(g, *_pred_geometry(pred_xywh))


# --------------------------------------------------------------------------------------------------------------
# predictions
def align_predictions(predictions: PredInput, gt: WiderGroundTruth) -> List[Optional[np.ndarray]]:
    """Per-image ``(k, 5)`` arrays ``x y w h score`` in ground-truth order (None = no file)."""
    if isinstance(predictions, Mapping):
        out = []
        for e, n in gt.keys():
            p = predictions.get((e, n))
            if p is None:
                p = predictions.get(f"{e}/{n}")
            out.append(p)
    else:
        out = list(predictions)
        if len(out) != len(gt):
            raise ValueError(f"{len(out)} prediction arrays for {len(gt)} ground-truth images")
    res = []
    for p in out:
        if p is None:
            res.append(None)
            continue
        a = np.asarray(p, dtype=np.float64)
        if a.size == 0:
            a = a.reshape(0, 5)
        if a.ndim != 2 or a.shape[1] < 5:
            raise ValueError(f"predictions must be (k, 5) x y w h score arrays, got shape {a.shape}")
        res.append(a[:, :5])
    return res


def prepare_predictions(preds: Sequence[Optional[np.ndarray]]):
    """``read_pred``: drop ``score < 0`` and NaN, stable sort by score descending, concatenate.

    Returns ``(boxes (N, 4), scores (N,), image_index (N,))`` with images in order.
    """
    arrays, owners = [], []
    for i, p in enumerate(preds):
        if p is not None and len(p):
            arrays.append(p)
            owners.append(np.full(len(p), i, dtype=np.int64))
    if not arrays:
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64)
    allp = np.concatenate(arrays)
    img = np.concatenate(owners)
    keep = allp[:, 4] >= 0.0                          # ind = bbx(:,5) >= score_thres (0); NaN fails
    allp, img = allp[keep], img[keep]
    order = np.lexsort((-allp[:, 4], img))            # stable: ties keep file order (MATLAB sort is stable)
    allp, img = allp[order], img[order]
    return allp[:, :4], allp[:, 4], img


def normalise_scores(scores: np.ndarray) -> np.ndarray:
    """``norm_score``: ``(s - min) / (max - min)`` with the global min/max, in single precision.

    ``max_score`` starts at ``realmin('single')`` and ``min_score`` at ``realmax('single')``; MATLAB's
    ``max``/``min`` of a single and a double return single, so the subtraction and division are single
    precision too. ``max == min`` gives 0/0 = NaN for every score (nothing passes any threshold). The result
    is float32 widened to float64 (MATLAB stores it back into the double prediction matrix).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s.copy()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        s32 = s.astype(np.float32)
        hi = max(_SINGLE_REALMIN, s32.max())
        lo = min(_SINGLE_REALMAX, s32.min())
        out = (s32 - lo) / (hi - lo)
    return out.astype(np.float64)


def thresholds(thresh_num: int = THRESH_NUM) -> np.ndarray:
    """``thresh = 1 - t/thresh_num`` for t = 1..thresh_num (descending), computed as in MATLAB."""
    return 1.0 - np.arange(1, thresh_num + 1, dtype=np.float64) / thresh_num


# --------------------------------------------------------------------------------------------------------------
# result
@dataclass
class WiderResult:
    """AP and PR curves per setting. ``precision``/``recall`` are the ``pr_cruve`` columns (one per threshold,
    thresholds descending); ``tp``/``proposals`` the summed counts; ``faces`` the recall denominator."""

    ap: Dict[str, float]
    precision: Dict[str, np.ndarray]
    recall: Dict[str, np.ndarray]
    tp: Dict[str, np.ndarray]
    proposals: Dict[str, np.ndarray]
    faces: Dict[str, int]
    thresholds: np.ndarray
    num_predictions: int = 0

    def to_json(self, curves: bool = True) -> dict:
        d = {s: self.ap[s] for s in self.ap}
        if curves:
            d["curves"] = {s: {"threshold": self.thresholds.tolist(),
                               "precision": [None if math.isnan(v) else float(v) for v in self.precision[s]],
                               "recall": [float(v) for v in self.recall[s]],
                               "tp": [int(v) for v in self.tp[s]],
                               "proposals": [int(v) for v in self.proposals[s]],
                               "faces": self.faces[s]} for s in self.ap}
        d["num_predictions"] = self.num_predictions
        return d

    @classmethod
    def from_json(cls, d: dict) -> "WiderResult":
        """The result :meth:`to_json` (with curves) wrote, e.g. a test run's ``wider_eval.json``."""
        c = d["curves"]
        arr = lambda key, dtype: {s: np.asarray([np.nan if v is None else v for v in c[s][key]], dtype) for s in c}
        return cls(ap={s: d[s] for s in c}, precision=arr("precision", np.float64), recall=arr("recall", np.float64),
                   tp=arr("tp", np.int64), proposals=arr("proposals", np.int64),
                   faces={s: c[s]["faces"] for s in c}, thresholds=np.asarray(next(iter(c.values()))["threshold"]),
                   num_predictions=d.get("num_predictions", 0))


def _finish(tp, prop, faces, thr, n_pred) -> WiderResult:
    ap, pr, rc = {}, {}, {}
    for s in tp:
        with np.errstate(divide="ignore", invalid="ignore"):   # dataset_pr_info: 0/0 stays NaN, as in MATLAB
            pr[s] = tp[s] / prop[s]
            rc[s] = tp[s] / np.float64(faces[s])             # no kept face at all: NaN recall, NaN AP
        ap[s] = voc_ap(rc[s], pr[s])
    return WiderResult(ap, pr, rc, tp, prop, faces, thr, n_pred)


# --------------------------------------------------------------------------------------------------------------
# fast path
def _best_faces(gt: WiderGroundTruth, boxes: np.ndarray, img: np.ndarray):
    """Highest-IoU face (first on ties) and its IoU for every prediction; -1 / -inf when the image has no
    ground-truth rows. One IoU matrix per image; nothing here depends on the setting."""
    n = len(boxes)
    best = np.full(n, -1, dtype=np.int64)
    best_iou = np.full(n, -np.inf)
    if n == 0:
        return best, best_iou
    corners, barea = _pred_geometry(boxes)
    starts = np.searchsorted(img, np.arange(len(gt) + 1))
    for i in np.unique(img):
        g = gt.boxes[i]
        if len(g) == 0:
            continue
        a, b = starts[i], starts[i + 1]
        o = _overlaps(g, corners[a:b], barea[a:b])
        j = o.argmax(axis=1)
        best[a:b] = j
        best_iou[a:b] = o[np.arange(b - a), j]
    return best, best_iou


def _reverse_segment_cummin(values: np.ndarray, seg: np.ndarray, big: int) -> np.ndarray:
    """Per segment (``seg`` sorted ascending), ``out[h] = min(values[h:end_of_segment])``."""
    if len(values) == 0:
        return values.copy()
    v = values[::-1].astype(np.int64)
    rank = (seg[::-1].max() - seg[::-1]).astype(np.int64)      # 0, 0, ..., 1, 1, ... in processing order
    out = np.minimum.accumulate(v - big * rank) + big * rank
    return out[::-1]


def evaluate_wider(predictions: PredInput, gt: WiderGroundTruth, settings: Optional[Sequence[str]] = None,
                   iou_thresh: float = IOU_THRESH, thresh_num: int = THRESH_NUM) -> WiderResult:
    """Official WIDER FACE AP (vectorised).

    Parameters
    ----------
    predictions : mapping ``(event, name)`` (or ``"event/name"``) → (k, 5) ``x y w h score`` in file order,
        or a sequence aligned with ``gt``; a missing entry / None means no predictions for that image.
    gt : :class:`WiderGroundTruth`.
    settings : subset of ``gt.settings`` (default: all).
    """
    settings = tuple(settings or gt.settings)
    preds = align_predictions(predictions, gt)
    boxes, raw_scores, img = prepare_predictions(preds)
    scores = normalise_scores(raw_scores)                 # global, over images with or without faces
    # images without ground-truth rows are skipped by the official loop: their predictions never count
    has_gt = np.array([len(b) > 0 for b in gt.boxes], dtype=bool)
    sel = has_gt[img] if len(img) else np.zeros(0, bool)
    boxes, scores, img = boxes[sel], scores[sel], img[sel]

    best, best_iou = _best_faces(gt, boxes, img)
    matched = best_iou >= iou_thresh
    face_offset = np.concatenate(([0], np.cumsum([len(b) for b in gt.boxes])))
    gface = face_offset[img] + best                       # global id of the best face
    # the first prediction (in sorted order) whose best face is f, with IoU >= thresh, is the candidate TP of f
    first = np.zeros(len(img), dtype=bool)
    ok_idx = np.flatnonzero(matched)
    _, first_pos = np.unique(gface[ok_idx], return_index=True)
    first[ok_idx[first_pos]] = True

    # threshold index at which each prediction first passes (1..thresh_num, thresh_num+1 = never); the
    # official "last prediction with score >= thresh" counts a prediction whenever any later one passes, so
    # use the reverse cumulative minimum within each image.
    thr = thresholds(thresh_num)
    k = thresh_num + 1 - np.searchsorted(thr[::-1], scores, side="right")
    k[np.isnan(scores)] = thresh_num + 1
    eff = _reverse_segment_cummin(k, img, big=2 * (thresh_num + 2))

    tp, prop, faces = {}, {}, {}
    for s in settings:
        keep_all = np.concatenate(gt.keep[s]) if len(gt) else np.zeros(0, bool)
        kept = keep_all[gface] if len(gface) else np.zeros(0, bool)
        is_tp = first & kept
        is_prop = ~(matched & ~kept)
        tp[s] = np.cumsum(np.bincount(eff[is_tp], minlength=thresh_num + 2))[1:thresh_num + 1].astype(np.float64)
        prop[s] = np.cumsum(np.bincount(eff[is_prop], minlength=thresh_num + 2))[1:thresh_num + 1].astype(np.float64)
        faces[s] = gt.count_faces(s)
    return _finish(tp, prop, faces, thr, int(len(raw_scores)))


# --------------------------------------------------------------------------------------------------------------
def format_result(result: WiderResult, digits: int = 4) -> str:
    """``Easy   Val AP: 0.9492`` lines, as the usual evaluation printout."""
    return "\n".join(f"{s.capitalize():<7}Val AP: {result.ap[s]:.{digits}f}" for s in result.ap)
