"""WIDER FACE evaluation, exact against the official MATLAB ``eval_tools`` (Yang et al., 2016).

What the official tool does, step by step (``wider_eval.m`` → ``read_pred`` → ``norm_score`` → ``evaluation``),
and where this module does it:

1. ``read_pred``: per image keep predictions with ``score >= 0`` (NaN dropped) and sort them by score,
   descending, stably (ties keep file order) — :func:`evaluate_wider` needs that order only where it decides
   something (the first match of a face, NaN normalised scores).
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

:func:`evaluate_wider` is the vectorised implementation: each prediction's best face from the candidate pairs
that can reach the IoU threshold (:mod:`.wider_match`, no dense prediction x face matrix), shared by the three
settings, and one histogram over thresholds for the whole dataset. The ground truth is read once from the
``.mat`` files and then from the cache folder (:meth:`WiderGroundTruth.load`, :mod:`.cache`).
:func:`rfcn_face.testing.wider_reference.evaluate_wider_reference` is a slow per-prediction, per-threshold
transcription of the same protocol used by the tests and the benchmark.
"""
from __future__ import annotations

import math
from collections import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .voc import voc_ap
from .wider_match import _INT32_MAX, _INT32_MIN, best_faces, matlab_overlaps, matlab_round  # noqa: F401

SETTINGS = ("easy", "medium", "hard")
THRESH_NUM = 1000
IOU_THRESH = 0.5
GT_FILES = {"all": "wider_face_val.mat", "easy": "wider_easy_val.mat", "medium": "wider_medium_val.mat",
            "hard": "wider_hard_val.mat"}

GT_CACHE_VERSION = 1
_SINGLE_REALMIN = np.float32(np.finfo(np.float32).tiny)  # realmin('single')
_SINGLE_REALMAX = np.float32(np.finfo(np.float32).max)  # realmax('single')

PredInput = Union[Mapping, Sequence]


# --------------------------------------------------------------------------------------------------------------
# ground truth
class _Views(abc.Sequence):
    """``flat[offsets[i]:offsets[i + 1]]`` for every image ``i``, made on access (a list of 3,226 views costs
    more than the evaluation needs)."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray):
        self.flat, self.offsets = flat, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]
        return self.flat[self.offsets[i]:self.offsets[i + 1]]


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
    _flat: Optional[tuple] = field(default=None, init=False, repr=False, compare=False)

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
        return int(self.flat_keep(setting).sum())

    # one array over all images (the lists above are views into it when built by ``load``); treat as read-only
    def _flatten(self):
        if self._flat is None:
            offsets = np.concatenate(([0], np.cumsum([len(b) for b in self.boxes], dtype=np.int64)))
            boxes = np.concatenate(self.boxes) if self.boxes else np.zeros((0, 4))
            keep = {s: np.concatenate(m) if m else np.zeros(0, bool) for s, m in self.keep.items()}
            self._flat = (offsets, boxes.reshape(-1, 4), keep)
        return self._flat

    @property
    def face_offsets(self) -> np.ndarray:
        """(n + 1,) int64: image ``i`` owns faces ``face_offsets[i]:face_offsets[i + 1]`` of :attr:`flat_boxes`."""
        return self._flatten()[0]

    @property
    def flat_boxes(self) -> np.ndarray:
        """(F, 4) ``x y w h`` of every face of every image, in image order."""
        return self._flatten()[1]

    def flat_keep(self, setting: str) -> np.ndarray:
        """(F,) bool: the faces kept by ``setting``, aligned with :attr:`flat_boxes`."""
        return self._flatten()[2][setting]

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
    def load(cls, gt_dir, cache: bool = True) -> "WiderGroundTruth":
        """Read the four official ``wider_*_val.mat`` files of ``gt_dir`` (via the dataset reader).

        With ``cache`` (default) the parsed ground truth is kept in the cache folder and read from there while
        the four files keep their size and modification time (:mod:`rfcn_face.evaluation.cache`): the same
        content, without parsing the ``.mat`` files again.
        """
        gt_dir = Path(gt_dir)
        files = [gt_dir / f for f in GT_FILES.values()]
        for f in files:
            if not f.is_file():
                raise FileNotFoundError(f"WIDER evaluation ground truth not found: {f} "
                                        f"(--gt must hold {', '.join(GT_FILES.values())})")

        def parse():
            try:
                from ..datasets.wider import read_wider_eval_gt
            except ImportError as e:  # the datasets module is a separate piece of the project
                raise FileNotFoundError(f"rfcn_face.datasets.wider.read_wider_eval_gt is not available ({e})") from e
            return cls.from_records(read_wider_eval_gt(gt_dir))

        if not cache:
            return parse()
        from .cache import cached_arrays
        return cls.from_arrays(cached_arrays("wider_gt", files, lambda: parse().to_arrays(), cls.check_arrays,
                                             GT_CACHE_VERSION))

    # the flat arrays of the ground-truth cache
    def to_arrays(self) -> Dict[str, np.ndarray]:
        offsets, boxes, keep = self._flatten()
        events, event_index = np.unique(np.asarray(self.events, dtype=str), return_inverse=True)
        settings = list(keep)
        return {"events": events, "event_index": event_index.astype(np.int64),
                "names": np.asarray(self.names, dtype=str), "counts": np.diff(offsets), "boxes": boxes,
                "settings": np.asarray(settings, dtype=str),
                "keep": np.stack([keep[s] for s in settings], axis=1) if settings else np.zeros((len(boxes), 0), bool)}

    @staticmethod
    def check_arrays(a: Dict[str, np.ndarray]) -> None:
        """Raise ValueError unless ``a`` is a consistent result of :meth:`to_arrays`."""
        n, counts = len(a["names"]), a["counts"]
        ok = (a["names"].ndim == 1 and a["event_index"].shape == (n,) and counts.shape == (n,)
              and a["boxes"].ndim == 2 and a["boxes"].shape[1] == 4 and a["boxes"].dtype == np.float64
              and a["keep"].dtype == bool and a["keep"].shape == (len(a["boxes"]), len(a["settings"]))
              and (n == 0 or (counts.min() >= 0 and a["event_index"].min() >= 0
                              and a["event_index"].max() < len(a["events"])))
              and int(counts.sum()) == len(a["boxes"]))
        if not ok:
            raise ValueError("inconsistent WIDER ground-truth arrays")

    @classmethod
    def from_arrays(cls, a: Dict[str, np.ndarray]) -> "WiderGroundTruth":
        """The ground truth of :meth:`to_arrays` (per-image lists are views into the flat arrays)."""
        cls.check_arrays(a)
        offsets = np.concatenate(([0], np.cumsum(a["counts"], dtype=np.int64)))
        boxes = np.asarray(a["boxes"], dtype=np.float64)
        keep = {str(s): np.ascontiguousarray(a["keep"][:, j]) for j, s in enumerate(a["settings"])}
        gt = cls.__new__(cls)                   # the arrays are consistent (checked): skip the per-image checks
        gt.events = a["events"][a["event_index"]].tolist()
        gt.names = a["names"].tolist()
        gt.boxes = _Views(boxes, offsets)
        gt.keep = {s: _Views(m, offsets) for s, m in keep.items()}
        gt._flat = (offsets, boxes, keep)
        return gt


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


def flat_predictions(predictions: PredInput, gt: WiderGroundTruth):
    """All predictions as one ``(N, 5)`` array ``x y w h score`` and the ground-truth index of each row's image,
    images in ground-truth order, rows in file order within an image. A
    :class:`~rfcn_face.evaluation.submission.Predictions` (what ``read_submission`` returns) is used as it is."""
    from .submission import Predictions
    if isinstance(predictions, Predictions):
        return predictions.aligned(gt.keys())
    return _concatenate(align_predictions(predictions, gt))


def _concatenate(preds: Sequence[Optional[np.ndarray]]):
    arrays = [p for p in preds if p is not None and len(p)]
    owners = [np.full(len(p), i, dtype=np.int64) for i, p in enumerate(preds) if p is not None and len(p)]
    if not arrays:
        return np.zeros((0, 5)), np.zeros(0, dtype=np.int64)
    return np.concatenate(arrays), np.concatenate(owners)


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


def first_threshold(scores: np.ndarray, thresh_num: int = THRESH_NUM) -> np.ndarray:
    """For each normalised score the index t (1..thresh_num) of the first (highest) threshold
    ``1 - t/thresh_num`` it reaches, ``thresh_num + 1`` when it reaches none (NaN included).

    ``searchsorted`` with unsorted queries is branch-bound; the thresholds are ``~ i/thresh_num``, so the count of
    thresholds <= s is ``floor(s * thresh_num) + 1`` up to one either way (rounding), and one comparison with the
    exact threshold on each side settles it.
    """
    asc = thresholds(thresh_num)[::-1]                     # asc[i] = 1 - (thresh_num - i)/thresh_num ~ i/thresh_num
    s = np.asarray(scores, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        c = np.floor(np.clip(s, -1.0, 2.0) * thresh_num).astype(np.int64) + 1      # NaN -> garbage, fixed below
        np.clip(c, 0, thresh_num, out=c)
        c -= (c > 0) & (asc[np.maximum(c - 1, 0)] > s)
        c += (c < thresh_num) & (asc[np.minimum(c, thresh_num - 1)] <= s)
    k = thresh_num + 1 - c
    k[~(s >= asc[0])] = thresh_num + 1                      # below every threshold, or NaN
    return k


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
def _reverse_segment_cummin(values: np.ndarray, seg: np.ndarray, big: int) -> np.ndarray:
    """Per segment (``seg`` sorted ascending), ``out[h] = min(values[h:end_of_segment])``."""
    if len(values) == 0:
        return values.copy()
    v = values[::-1].astype(np.int64)
    rank = (seg[::-1].max() - seg[::-1]).astype(np.int64)      # 0, 0, ..., 1, 1, ... in processing order
    out = np.minimum.accumulate(v - big * rank) + big * rank
    return out[::-1]


def _first_per_group(group: np.ndarray, score: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Among the rows ``idx`` (ascending), per value of ``group`` the row with the highest score, the first row
    on ties (MATLAB's stable descending sort)."""
    if len(idx) == 0:
        return idx
    order = idx[np.argsort(group[idx], kind="stable")]          # rows of a group together, in row order
    g, s = group[order], score[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    top = np.maximum.reduceat(s, starts)
    at_top = np.flatnonzero(s == np.repeat(top, np.diff(np.r_[starts, len(g)])))
    return order[at_top[np.searchsorted(at_top, starts)]]      # the first row at the top of each group


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
    rows, img = flat_predictions(predictions, gt)         # image order, file order within an image
    keep = rows[:, 4] >= 0.0                              # read_pred: bbx(:,5) >= score_thres (0); NaN fails
    if not keep.all():
        rows, img = rows[keep], img[keep]
    n_pred = len(rows)
    scores = normalise_scores(rows[:, 4])                 # global, over images with or without faces
    # threshold index at which each prediction first passes (1..thresh_num, thresh_num+1 = never)
    thr = thresholds(thresh_num)
    k = first_threshold(scores, thresh_num)
    if np.isnan(scores).any():
        # read_pred sorts by score (descending, stable); the official "last prediction with score >= thresh" then
        # also counts the predictions above it whose normalised score is NaN: reverse cumulative minimum
        order = np.lexsort((-rows[:, 4], img))           # (first_threshold gives NaN thresh_num + 1: never)
        rows, img, k = rows[order], img[order], k[order]
        k = _reverse_segment_cummin(k, img, big=2 * (thresh_num + 2))
    # else the normalised scores are a non-decreasing function of the raw ones: in score order k never
    # decreases within an image, that minimum is k itself, and no order but the one below is needed
    # images without ground-truth rows are skipped by the official loop: their predictions never count
    face_offset = gt.face_offsets
    sel = (np.diff(face_offset) > 0)[img]
    rows, img, eff = (rows, img, k) if sel.all() else (rows[sel], img[sel], k[sel])

    best = best_faces(gt.flat_boxes, face_offset, rows[:, :4], img, iou_thresh)
    matched = best >= 0
    gface = face_offset[img] + best                       # global id of the best face
    # the candidate TP of face f: the first prediction in read_pred's order (score descending, file order on
    # ties) among those whose best face is f with IoU >= thresh (image_evaluation's recall_list)
    first = np.zeros(len(img), dtype=bool)
    first[_first_per_group(gface, rows[:, 4], np.flatnonzero(matched))] = True

    tp, prop, faces = {}, {}, {}
    for s in settings:
        kept = gt.flat_keep(s)[gface] if len(gface) else np.zeros(0, bool)
        is_tp = first & kept
        is_prop = ~(matched & ~kept)
        tp[s] = np.cumsum(np.bincount(eff[is_tp], minlength=thresh_num + 2))[1:thresh_num + 1].astype(np.float64)
        prop[s] = np.cumsum(np.bincount(eff[is_prop], minlength=thresh_num + 2))[1:thresh_num + 1].astype(np.float64)
        faces[s] = gt.count_faces(s)
    return _finish(tp, prop, faces, thr, int(n_pred))


# --------------------------------------------------------------------------------------------------------------
def format_result(result: WiderResult, digits: int = 4) -> str:
    """``Easy   Val AP: 0.9492`` lines, as the usual evaluation printout."""
    return "\n".join(f"{s.capitalize():<7}Val AP: {result.ap[s]:.{digits}f}" for s in result.ap)
