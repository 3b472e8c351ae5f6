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
image (they do not depend on the threshold); a rectangle is never rasterised: its intersection with a face is the
count of the face mask's pixels inside the rectangle's window. When no detection of an image touches two faces, the
maximum-sum assignment gives every face its best valid detection, so all thresholds of all such images come from
running maxima computed at once (:mod:`.fddb_batch`); otherwise the assignment is re-solved per threshold
(:func:`image_threshold_stats`), only when a newly admitted detection overlaps some face (otherwise the matching
cannot change).

The detection file format is :mod:`rfcn_face.evaluation.fddb_format`; plots are in :mod:`.plots`.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .fddb_format import FddbImageDets
from .fddb_regions import draw_ellipses, ellipse_cv_args, ellipse_windows, rect_cv_corners, rect_windows  # noqa: F401

__all__ = ["ellipse_cv_args", "rect_cv_corners", "Regions", "rasterise_regions", "overlap_matrix",
           "image_threshold_stats", "FddbResult", "evaluate_fddb", "write_roc_files", "tpr_at_fp", "DBL_MAX"]

DBL_MAX = sys.float_info.max


# ----------------------------------------------------------------------------------------------------------
# rasterisation (exactly the official arguments, OpenCV's own fill)
@dataclass
class Regions:
    """Rasterised regions of one image: per region a window ``(x0, y0, x1, y1)`` (half-open, inside the image),
    its boolean mask crop and its pixel count. ``masks`` is None for rectangles rasterised with
    ``masks=False``: each fills its window."""

    windows: np.ndarray
    masks: Optional[list]
    areas: np.ndarray


def rasterise_regions(kind: str, params, width: int, height: int, canvas: Optional[np.ndarray] = None,
                      masks: bool = True) -> Regions:
    """Rasterise regions ('ellipse' rows ``major minor angle cx cy ...`` or 'rect' rows ``x y w h ...``) on a
    ``height x width`` image, clipped to it, returning bounding-window crops.

    Ellipses are drawn by OpenCV's filled ``ellipse`` on a full-size canvas (the same clipping as the official
    masks) and cropped to a window that contains every drawn pixel; rectangles are inclusive integer ranges
    (with ``masks=False`` their all-true crops are not made: :func:`overlap_matrix` needs only the windows).
    """
    params = np.asarray(params, dtype=np.float64)
    k = params.shape[0] if params.ndim == 2 else 0
    if kind not in ("rect", "ellipse"):
        raise ValueError(f"unknown region kind {kind!r}")
    if k == 0:
        return Regions(np.zeros((0, 4), dtype=np.int64), [] if (masks or kind != "rect") else None,
                       np.zeros(0, dtype=np.int64))
    if kind == "rect":
        windows, areas = rect_windows(params, width, height)
        w, h = windows[:, 2] - windows[:, 0], windows[:, 3] - windows[:, 1]
        return Regions(windows, [np.ones((int(b), int(a)), dtype=bool) for a, b in zip(w, h)] if masks else None,
                       areas)
    centres, axes, angle = ellipse_cv_args(params)
    if canvas is None or canvas.shape != (height, width):
        canvas = np.zeros((height, width), dtype=np.uint8)
    windows = ellipse_windows(centres, axes, width, height)
    return Regions(windows, *draw_ellipses(centres, axes, angle, windows, canvas))


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
        if dets.masks is None:                      # a rectangle fills its window
            inter = float(np.count_nonzero(ma))
        else:
            md = dets.masks[d][y0 - da[d, 1]:y1 - da[d, 1], x0 - da[d, 0]:x1 - da[d, 0]]
            inter = float(np.count_nonzero(ma & md))
        if inter:
            out[a, d] = inter / float(faces.areas[a] + dets.areas[d] - inter)
    return out


# ----------------------------------------------------------------------------------------------------------
# matching per image
def _match(m: np.ndarray, linear_sum_assignment):
    """Official Matching::runHungarian on ``m`` (faces x valid detections, each column touching some face, in
    detection order): (TPCont, TPDisc) with TPCont summed in the official order (by face index, or by detection
    index when the matrix is transposed)."""
    rows = m.any(axis=1)                                # overlaps are >= 0: any() == (sum != 0)
    if not rows.all():
        m = m[rows]
        if m.shape[0] == 0:
            return 0.0, 0
    r, c = linear_sum_assignment(m, maximize=True)      # r ascending: face order already
    s = m[r, c]
    if m.shape[0] > m.shape[1]:                         # transposed: detection order
        s = s[np.argsort(c, kind="stable")]
    tp_cont, tp_disc = 0.0, 0
    for v in s.tolist():                                # pairs with overlap 0 are not matches
        if v > 0:
            tp_cont += v
            tp_disc += v > 0.5
    return tp_cont, tp_disc


def image_threshold_stats(ov: np.ndarray, scores: np.ndarray):
    """Per distinct score (ascending): thresholds (K,), TPCont (K,), TPDisc (K,), FP (K,) of one image: at each
    threshold the Hungarian over the detections with score >= it. The matching changes only where a detection
    that touches a face is admitted, so it is solved at those thresholds only (on the touching detections, in
    detection order, as the official matrix holds them) and carried down to the next;
    :func:`rfcn_face.testing.fddb_reference.image_threshold_stats_reference` is the per-threshold loop.
    :func:`rfcn_face.evaluation.fddb_batch.independent_image_stats` computes the same for all images where no
    detection touches two faces at once."""
    scores = np.asarray(scores, dtype=np.float64)
    thr = np.unique(scores)
    K = thr.size
    n_valid = len(scores) - np.searchsorted(np.sort(scores), thr, side="left")     # detections with score >= thr
    touch = np.flatnonzero(ov.any(axis=0)) if ov.shape[0] else np.zeros(0, dtype=np.int64)
    ov_t, s_t = ov[:, touch], scores[touch]
    solve_at = np.searchsorted(thr, np.unique(s_t))     # ascending threshold indices where the matching changes
    cont, disc = np.zeros(solve_at.size + 1), np.zeros(solve_at.size + 1, dtype=np.int64)   # last: nothing valid
    if solve_at.size:
        from scipy.optimize import linear_sum_assignment
    for j, k in enumerate(solve_at):
        cont[j], disc[j] = _match(ov_t[:, s_t >= thr[k]], linear_sum_assignment)
    # threshold k takes the matching of the first solve at or above it (none above the highest: 0, 0)
    at = np.searchsorted(solve_at, np.arange(K), side="left")
    tp_cont, tp_disc = cont[at], disc[at]
    return thr, tp_cont, tp_disc, n_valid - tp_disc


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


_MERGE_CELLS = 1 << 16      # thresholds x images of the continuous TP built at once (0.5 MB)


def _merge(per_image, num_faces: int) -> FddbResult:
    """Official Results::merge: union of thresholds; at threshold t each image contributes its statistics at
    its smallest threshold >= t (nothing when none); TPCont summed image by image (left fold, as the official
    loop adds: :func:`rfcn_face.testing.fddb_reference.merge_reference`)."""
    counts = np.array([len(p[0]) for p in per_image], dtype=np.int64)
    if counts.sum() == 0:
        return FddbResult(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0), num_faces)
    thr, tc, td, fp = (np.concatenate([p[j] for p in per_image]) for j in range(4))
    T = np.unique(thr)
    idx = np.searchsorted(T, thr)                      # global position of each image threshold
    last = np.cumsum(counts) - 1
    last = last[counts > 0]
    # integer statistics by differences (exact in any order): at idx[k] the step to the image's next threshold
    steps = []
    for v in (td, fp):
        d = v.astype(np.int64)
        d[:-1] -= v[1:]
        d[last] = v[last]                              # after an image's highest threshold: nothing
        steps.append(np.cumsum(np.bincount(idx, weights=d, minlength=T.size)[::-1])[::-1])
    # continuous: image i adds at global j its TPCont at its first threshold >= T[j], for j <= its highest one
    # (piecewise constant: positions idx[k-1]+1 .. idx[k] take threshold k); rows built per chunk of images,
    # then added one image after the other as the official loop does
    first = np.r_[0, last[:-1] + 1]
    seg = idx - np.r_[-1, idx[:-1]]
    seg[first] = idx[first] + 1
    reach = idx[last] + 1                              # per image with thresholds: columns it adds to
    cont = np.zeros(T.size)
    per = max(1, _MERGE_CELLS // T.size)
    for a in range(0, len(last), per):
        b = min(a + per, len(last))
        rows = np.zeros((b - a, T.size))
        r = reach[a:b]
        pos = np.repeat(np.arange(b - a) * T.size, r) + np.arange(int(r.sum())) - np.repeat(np.cumsum(r) - r, r)
        k0, k1 = first[a], last[b - 1] + 1
        rows.ravel()[pos] = np.repeat(tc[k0:k1], seg[k0:k1])
        for row, n in zip(rows, r.tolist()):
            cont[:n] += row[:n]
    return FddbResult(T, cont, steps[0].astype(np.float64), steps[1].astype(np.float64), num_faces)


def evaluate_fddb(records, detections: Sequence[FddbImageDets], progress: bool = False) -> FddbResult:
    """Evaluate ``detections`` (one entry per record, same order and names) against FDDB ``records``
    (:func:`rfcn_face.datasets.fddb.read_fddb` with image sizes)."""
    if len(detections) != len(records):
        raise ValueError(f"{len(detections)} images in the detections but {len(records)} in the annotations")
    for rec, det in zip(records, detections):
        if det.name != rec.name:
            raise ValueError(f"detections for {det.name!r} where the annotations list {rec.name!r} "
                             "(the official tool needs the same image order)")
        if rec.width <= 0 or rec.height <= 0:
            raise ValueError(f"image size of {rec.name!r} unknown: give --sizes or --images")
    from .fddb_batch import independent_image_stats, pair_overlaps

    # overlaps of the pairs that meet (all images at once; per image only drawing and pixel counts)
    f, d, iou, f_off, d_off = pair_overlaps(records, detections, progress)
    n_img, nd = len(records), np.diff(d_off)
    scores = np.concatenate([det.scores for det in detections]) if n_img and d_off[-1] else np.zeros(0)
    det_img = np.repeat(np.arange(n_img), nd)
    shared = np.zeros(n_img, dtype=bool)                 # an image with a detection touching two faces
    shared[det_img[np.flatnonzero(np.bincount(d, minlength=len(scores)) > 1)]] = True
    simple = np.flatnonzero((nd > 0) & ~shared)
    per_image: list = [(np.array([DBL_MAX]), np.zeros(1), np.zeros(1, np.int64), np.zeros(1, np.int64))] * n_img
    starts = np.searchsorted(det_img[d], np.arange(n_img + 1))  # pairs are grouped by image
    for part in np.array_split(simple, -(-len(simple) // 512)) if len(simple) else []:   # bounded temporaries
        a, b = starts[part[0]], starts[part[-1] + 1]
        keep = a + np.flatnonzero(~shared[det_img[d[a:b]]])
        for i, st in zip(part, independent_image_stats(part, scores, f_off, d_off, f[keep], d[keep], iou[keep])):
            per_image[i] = st
    for i in np.flatnonzero(shared):                     # the Hungarian path, per threshold
        ov = np.zeros((f_off[i + 1] - f_off[i], nd[i]))
        a, b = starts[i], starts[i + 1]
        ov[f[a:b] - f_off[i], d[a:b] - d_off[i]] = iou[a:b]
        per_image[i] = image_threshold_stats(ov, detections[i].scores)
    res = _merge(per_image, int(f_off[-1]))
    res.num_images, res.num_detections = n_img, int(d_off[-1])
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
    from ..checkpoint import atomic_write_text
    atomic_write_text(dp, "".join(disc_lines))
    atomic_write_text(cp, "".join(cont_lines))
    return dp, cp


def tpr_at_fp(result: FddbResult, max_fp: float = 1000.0):
    """(discrete TPR, continuous TPR) at the lowest threshold whose FP count is <= ``max_fp``."""
    ok = np.flatnonzero(result.fp <= max_fp)
    if ok.size == 0:
        return 0.0, 0.0
    k = ok[0]
    return float(result.tpr_disc[k]), float(result.tpr_cont[k])

