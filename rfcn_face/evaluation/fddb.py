"""FDDB discrete / continuous ROC, reproducing the official ``evaluate`` program (Jain & Learned-Miller, 2010).

Protocol (read from the official C++ sources; each point is documented in docs/evaluation_fddb_pr.md):

* every face ellipse and every detection is rasterised as a filled region on a mask of the image's size
  with OpenCV (``cvEllipse`` / ``cvRectangle``, filled): ellipse centre ``cvRound(float(c))``, axes
  truncated ``(int)r``, angle ``180 - (pi - t) * 180 / pi`` degrees, rounded to an integer by OpenCV;
  rectangle corners ``cvRound(float(x))`` and ``cvRound(float(x + w))``, both inclusive;
* overlap = |A and D| / |A or D| in pixels of the clipped masks;
* for every distinct detection score ``s`` of an image (ascending) the detections with score >= s are
  matched one-to-one to the faces by the assignment maximising the summed overlap (Hungarian); pairs with
  overlap 0 are not matches; discrete TP = matches with overlap > 0.5, continuous TP = summed overlaps,
  FP = valid detections - discrete TP; an image without detections contributes its faces only;
* the per-image curves are merged over the union of all thresholds (image order, left fold) and written as
  ``DiscROC.txt`` (``TPR FP threshold``) and ``ContROC.txt`` (``TPR FP``), ascending thresholds, ``%g``.

Speed: regions are rasterised once per image in their bounding window, pairwise overlaps computed once per
image (they do not depend on the threshold), and the assignment is re-solved only when a newly admitted
detection overlaps some face (otherwise the matching cannot change).

The detection file format is :mod:`rfcn_face.evaluation.fddb_format`; plots are in :mod:`.plots`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .fddb_format import FddbImageDets

__all__ = ["ellipse_cv_args", "rect_cv_corners", "Regions", "rasterise_regions", "overlap_matrix",
           "image_threshold_stats", "FddbResult", "evaluate_fddb", "write_roc_files", "tpr_at_fp", "DBL_MAX"]

DBL_MAX = sys.float_info.max


# ----------------------------------------------------------------------------------------------------------
# rasterisation (exactly the official arguments, OpenCV's own fill)
def _cv_round(v) -> np.ndarray:
    """``cvRound`` of values that went through ``cvPoint2D32f`` (float32), round half to even."""
    return np.rint(np.asarray(v, dtype=np.float64).astype(np.float32).astype(np.float64)).astype(np.int64)


def ellipse_cv_args(ellipses):
    """(k, 5+) ``major minor angle cx cy`` -> (centres (k, 2) int, axes (k, 2) int, angle degrees (k,)).

    EllipsesSingleImage::read stores ``t' = (pi - t) * 180 / pi`` and EllipseR::display draws with
    ``180 - t'``; the centre goes through cvPoint2D32f/cvPointFrom32f and the axes through ``(int)``.
    """
    e = np.atleast_2d(np.asarray(ellipses, dtype=np.float64))
    t_stored = (np.pi - e[:, 2]) * 180.0 / np.pi
    angle = 180.0 - t_stored
    centres = np.stack([_cv_round(e[:, 3]), _cv_round(e[:, 4])], axis=1)
    axes = np.trunc(e[:, :2]).astype(np.int64)
    return centres, axes, angle


def rect_cv_corners(rects) -> np.ndarray:
    """(k, 4+) ``x y w h`` -> (k, 4) integer corners ``(x1, y1, x2, y2)``, both inclusive (cvRectangle)."""
    r = np.atleast_2d(np.asarray(rects, dtype=np.float64))
    return np.stack([_cv_round(r[:, 0]), _cv_round(r[:, 1]), _cv_round(r[:, 0] + r[:, 2]),
                     _cv_round(r[:, 1] + r[:, 3])], axis=1)


@dataclass
class Regions:
    """Rasterised regions of one image: per region a window ``(x0, y0, x1, y1)`` (half-open, inside the image),
    its boolean mask crop and its pixel count."""

    windows: np.ndarray
    masks: list
    areas: np.ndarray


def rasterise_regions(kind: str, params, width: int, height: int, canvas: Optional[np.ndarray] = None) -> Regions:
    """Rasterise regions ('ellipse' rows ``major minor angle cx cy ...`` or 'rect' rows ``x y w h ...``) on a
    ``height x width`` image, clipped to it, returning bounding-window crops.

    Ellipses are drawn by OpenCV's filled ``ellipse`` on a full-size canvas (the same clipping as the official
    masks) and cropped to a window that contains every drawn pixel; rectangles are inclusive integer ranges.
    """
    import cv2

    params = np.asarray(params, dtype=np.float64)
    k = params.shape[0] if params.ndim == 2 else 0
    windows = np.zeros((k, 4), dtype=np.int64)
    masks, areas = [], np.zeros(k, dtype=np.int64)
    if k == 0:
        return Regions(windows, masks, areas)
    if kind == "rect":
        c = rect_cv_corners(params[:, :4])
        x1, x2 = np.minimum(c[:, 0], c[:, 2]), np.maximum(c[:, 0], c[:, 2])
        y1, y2 = np.minimum(c[:, 1], c[:, 3]), np.maximum(c[:, 1], c[:, 3])
        wx0, wx1 = np.clip(x1, 0, width), np.clip(x2 + 1, 0, width)
        wy0, wy1 = np.clip(y1, 0, height), np.clip(y2 + 1, 0, height)
        for i in range(k):
            w, h = max(int(wx1[i] - wx0[i]), 0), max(int(wy1[i] - wy0[i]), 0)
            windows[i] = (wx0[i], wy0[i], wx0[i] + w, wy0[i] + h)
            masks.append(np.ones((h, w), dtype=bool))
            areas[i] = w * h
        return Regions(windows, masks, areas)
    if kind != "ellipse":
        raise ValueError(f"unknown region kind {kind!r}")
    centres, axes, angle = ellipse_cv_args(params)
    if canvas is None or canvas.shape != (height, width):
        canvas = np.zeros((height, width), dtype=np.uint8)
    reach = np.max(np.abs(axes), axis=1) + 2            # every drawn pixel is within max axis + 1 of the centre
    for i in range(k):
        cx, cy, r = int(centres[i, 0]), int(centres[i, 1]), int(reach[i])
        x0, x1 = min(max(cx - r, 0), width), min(max(cx + r + 1, 0), width)
        y0, y1 = min(max(cy - r, 0), height), min(max(cy + r + 1, 0), height)
        windows[i] = (x0, y0, x1, y1)
        if x1 <= x0 or y1 <= y0:
            masks.append(np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=bool))
            continue
        cv2.ellipse(canvas, (cx, cy), (int(axes[i, 0]), int(axes[i, 1])), float(angle[i]), 0.0, 360.0, 1, -1)
        crop = canvas[y0:y1, x0:x1]
        m = crop.astype(bool)
        crop[...] = 0
        masks.append(m)
        areas[i] = int(np.count_nonzero(m))
    return Regions(windows, masks, areas)


def overlap_matrix(faces: Regions, dets: Regions) -> np.ndarray:
    """(n_faces, n_dets) pixel IoU ``|A and D| / |A or D|`` of two rasterised region sets (0 when both empty)."""
    fa, da = faces.windows, dets.windows
    out = np.zeros((len(fa), len(da)), dtype=np.float64)
    if len(fa) == 0 or len(da) == 0:
        return out
    ix0 = np.maximum(fa[:, None, 0], da[None, :, 0])
    iy0 = np.maximum(fa[:, None, 1], da[None, :, 1])
    ix1 = np.minimum(fa[:, None, 2], da[None, :, 2])
    iy1 = np.minimum(fa[:, None, 3], da[None, :, 3])
    for a, d in zip(*np.nonzero((ix1 > ix0) & (iy1 > iy0))):
        x0, y0, x1, y1 = ix0[a, d], iy0[a, d], ix1[a, d], iy1[a, d]
        ma = faces.masks[a][y0 - fa[a, 1]:y1 - fa[a, 1], x0 - fa[a, 0]:x1 - fa[a, 0]]
        md = dets.masks[d][y0 - da[d, 1]:y1 - da[d, 1], x0 - da[d, 0]:x1 - da[d, 0]]
        inter = float(np.count_nonzero(ma & md))
        if inter:
            out[a, d] = inter / float(faces.areas[a] + dets.areas[d] - inter)
    return out


# ----------------------------------------------------------------------------------------------------------
# matching per image
def _match(ov: np.ndarray, valid: np.ndarray):
    """Official Matching::runHungarian on the valid detections: (TPCont, TPDisc) with TPCont summed in the
    official order (by face index, or by detection index when the matrix is transposed)."""
    from scipy.optimize import linear_sum_assignment

    sub = ov[:, valid]
    rows = np.flatnonzero(sub.sum(axis=1) != 0)
    cols_v = np.flatnonzero(sub.sum(axis=0) != 0)
    if rows.size == 0:
        return 0.0, 0
    m = sub[np.ix_(rows, cols_v)]
    r, c = linear_sum_assignment(m, maximize=True)
    s = m[r, c]
    keep = s > 0
    r, c, s = r[keep], c[keep], s[keep]
    order = np.argsort(c if rows.size > cols_v.size else r, kind="stable")
    tp_cont = 0.0
    for v in s[order]:
        tp_cont += float(v)
    return tp_cont, int(np.count_nonzero(s > 0.5))


def image_threshold_stats(ov: np.ndarray, scores: np.ndarray):
    """Per distinct score (ascending): thresholds (K,), TPCont (K,), TPDisc (K,), FP (K,) of one image."""
    scores = np.asarray(scores, dtype=np.float64)
    thr = np.unique(scores)
    K = thr.size
    tp_cont, tp_disc, fp = np.zeros(K), np.zeros(K, dtype=np.int64), np.zeros(K, dtype=np.int64)
    touches = ov.sum(axis=0) != 0 if ov.shape[0] else np.zeros(len(scores), dtype=bool)
    last = (0.0, 0)
    for k in range(K - 1, -1, -1):                    # high to low: re-solve only when an overlapping det joins
        valid = scores >= thr[k]
        new = scores == thr[k]
        if np.any(touches & new):
            last = _match(ov, valid)
        tp_cont[k], tp_disc[k] = last
        fp[k] = int(np.count_nonzero(valid)) - last[1]
    return thr, tp_cont, tp_disc, fp


# ----------------------------------------------------------------------------------------------------------
# whole data set
@dataclass
class FddbResult:
    """Merged ROC (ascending thresholds, as written by the official tool)."""

    thresholds: np.ndarray
    tp_cont: np.ndarray
    tp_disc: np.ndarray
    fp: np.ndarray
    num_faces: int
    num_images: int = 0
    num_detections: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def tpr_cont(self) -> np.ndarray:
        return self.tp_cont / self.num_faces if self.num_faces else np.zeros_like(self.tp_cont)

    @property
    def tpr_disc(self) -> np.ndarray:
        return self.tp_disc / self.num_faces if self.num_faces else np.zeros_like(self.tp_cont)

    def to_json(self, max_fp: float = 1000.0) -> dict:
        """Counts, the TPRs at ``max_fp`` false positives (:func:`tpr_at_fp`) and the ROC curves (ascending
        thresholds, as in the ROC files) as JSON-ready lists."""
        d, c = tpr_at_fp(self, max_fp)
        return {"images": int(self.num_images), "faces": int(self.num_faces), "detections": int(self.num_detections),
                "max_fp": max_fp, "tpr_discrete": d, "tpr_continuous": c,
                "curves": {"threshold": self.thresholds.tolist(), "fp": self.fp.tolist(),
                           "tpr_discrete": self.tpr_disc.tolist(), "tpr_continuous": self.tpr_cont.tolist()}}


def _merge(per_image, num_faces: int) -> FddbResult:
    """Official Results::merge: union of thresholds; at threshold t each image contributes its statistics at
    its smallest threshold >= t (nothing when none); TPCont summed image by image (left fold)."""
    all_thr = [t for (t, *_rest) in per_image]
    T = np.unique(np.concatenate(all_thr)) if all_thr else np.zeros(0)
    cont = np.zeros(T.size)
    disc_delta = np.zeros(T.size + 1, dtype=np.int64)
    fp_delta = np.zeros(T.size + 1, dtype=np.int64)
    for thr, tc, td, fp in per_image:
        idx = np.searchsorted(T, thr)               # global position of each image threshold
        # contribution at global j: stats of the first image threshold >= T[j]; zero above the image's max
        # (piecewise constant: global positions idx[k-1]+1 .. idx[k] take the statistics of image threshold k)
        cont[:idx[-1] + 1] += np.repeat(tc, np.diff(idx, prepend=-1))
        # integer statistics by differences (exact in any order)
        nxt_d = np.append(td[1:], 0)
        nxt_f = np.append(fp[1:], 0)
        np.add.at(disc_delta, idx, td - nxt_d)
        np.add.at(fp_delta, idx, fp - nxt_f)
    disc = np.cumsum(disc_delta[::-1])[::-1][:T.size]
    fpv = np.cumsum(fp_delta[::-1])[::-1][:T.size]
    return FddbResult(T, cont, disc.astype(np.float64), fpv.astype(np.float64), num_faces)


def evaluate_fddb(records, detections: Sequence[FddbImageDets], progress: bool = False) -> FddbResult:
    """Evaluate ``detections`` (one entry per record, same order and names) against FDDB ``records``
    (:func:`rfcn_face.datasets.fddb.read_fddb` with image sizes)."""
    if len(detections) != len(records):
        raise ValueError(f"{len(detections)} images in the detections but {len(records)} in the annotations")
    per_image, num_faces, ndet = [], 0, 0
    it = zip(records, detections)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=len(records), desc="FDDB", leave=False)
    canvas = None
    for rec, det in it:
        if det.name != rec.name:
            raise ValueError(f"detections for {det.name!r} where the annotations list {rec.name!r} "
                             "(the official tool needs the same image order)")
        if rec.width <= 0 or rec.height <= 0:
            raise ValueError(f"image size of {rec.name!r} unknown: give --sizes or --images")
        n_a = len(rec.ellipses) if rec.ellipses is not None else 0
        num_faces += n_a
        ndet += len(det.dets)
        if len(det.dets) == 0:
            per_image.append((np.array([DBL_MAX]), np.zeros(1), np.zeros(1, np.int64), np.zeros(1, np.int64)))
            continue
        if canvas is None or canvas.shape != (rec.height, rec.width):
            canvas = np.zeros((rec.height, rec.width), dtype=np.uint8)
        faces = rasterise_regions("ellipse", rec.ellipses, rec.width, rec.height, canvas)
        dregs = rasterise_regions(det.kind, det.dets, rec.width, rec.height, canvas)
        ov = overlap_matrix(faces, dregs)
        per_image.append(image_threshold_stats(ov, det.scores))
    res = _merge(per_image, num_faces)
    res.num_images, res.num_detections = len(records), ndet
    return res


def _g(v: float) -> str:
    return format(float(v), "g")


def write_roc_files(prefix, result: FddbResult):
    """``PREFIXDiscROC.txt`` (``TPR FP threshold``) and ``PREFIXContROC.txt`` (``TPR FP``), official format."""
    prefix = str(prefix)
    Path(prefix + "x").parent.mkdir(parents=True, exist_ok=True)
    disc_lines, cont_lines = [], []
    for t, tc, td, fp in zip(result.thresholds, result.tp_cont, result.tp_disc, result.fp):
        if result.num_faces:
            cont_lines.append(f"{_g(tc / result.num_faces)} {_g(fp)}\n")
            disc_lines.append(f"{_g(td / result.num_faces)} {_g(fp)} {_g(t)}\n")
        else:
            cont_lines.append("0 0\n")
            disc_lines.append(f"0 0 {_g(t)}\n")
    dp, cp = Path(prefix + "DiscROC.txt"), Path(prefix + "ContROC.txt")
    dp.write_text("".join(disc_lines))
    cp.write_text("".join(cont_lines))
    return dp, cp


def tpr_at_fp(result: FddbResult, max_fp: float = 1000.0):
    """(discrete TPR, continuous TPR) at the lowest threshold whose FP count is <= ``max_fp``."""
    ok = np.flatnonzero(result.fp <= max_fp)
    if ok.size == 0:
        return 0.0, 0.0
    k = ok[0]
    return float(result.tpr_disc[k]), float(result.tpr_cont[k])

