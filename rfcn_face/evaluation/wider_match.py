"""WIDER FACE matching: ``boxoverlap`` as MATLAB evaluates it, and each prediction's best face without dense
prediction x face matrices.

The official ``image_evaluation`` gives a prediction its highest-IoU face (the first one on ties) and only looks at
that face when the IoU reaches the threshold ``t`` (0.5). So only pairs that *can* reach ``t`` matter, and those
are close: with the MATLAB arithmetic of :func:`matlab_overlaps` (prediction corners ``c1 <= c2`` rounded to
integers, span ``Lp = c2 - c1 + 1``; a face ``x y w h`` with integer values, centre ``m = x + (w + 1) / 2``),
``IoU >= t`` implies, per axis,

    m  in  [c1 - d, c2 + 1 + d],   d = Lp (k / 2 - 1) + 1/4,   k = (1 + t) / t     (d = Lp / 2 + 1/4 at t = 0.5)

(``IoU >= t`` gives ``k inter >= round(aarea + barea) >= aarea + barea - 1/2``, hence ``iw > Lg / k - 1 / (2k)``
for the face span ``Lg = w + 1``; the part of the face span outside the prediction span is at most
``Lg / 2 - iw`` on the side of ``m``, and ``Lg < k Lp + 1/2``.) :func:`best_faces` therefore sorts the faces of
all images by (image, centre x), finds each prediction's x band with two ``searchsorted`` calls, keeps the
candidates inside the y band and evaluates the exact MATLAB IoU on those pairs only, in chunks; every pair
outside the bands has IoU < t, so the first maximum among candidates that reaches ``t`` is the official best
face. The bound needs finite, non-negative sizes, integer faces and no int32 saturation; an image with any box
outside that domain (NaN, negative size, coordinates or areas beyond 2^29, non-integer faces) is evaluated with
the dense per-image matrix, exactly as before (:func:`_dense_best`).
"""
from __future__ import annotations

import numpy as np

__all__ = ["matlab_round", "matlab_overlaps", "pred_geometry", "best_faces"]

_INT32_MIN, _INT32_MAX = -2.0 ** 31, 2.0 ** 31 - 1
_LIMIT = 2.0 ** 29          # |coordinate|, size, area beyond this: the dense path (int32 saturation voids the bound)
_STRIDE = 2.0 ** 31         # image stride of the face sort key; keys and bands stay within +-2^30 of it
_MAX_IMAGES = 2 ** 19       # image * stride < 2^50: keys exact to 1/4 (the band margin is 1)
_MARGIN = 1.0               # pixels added to each band for float rounding of the key and the band ends
_CHUNK = 1 << 14            # predictions matched at once (small temporaries, reused from chunk to chunk)
_PAIRS = 1 << 19            # at most this many candidate pairs at once


# --------------------------------------------------------------------------------------------------------------
# MATLAB numerics
def matlab_round(values, out=None) -> np.ndarray:
    """MATLAB's double → int32 conversion as float64: round half away from zero, saturate, NaN → 0
    (into ``out`` when given, which may be ``values`` itself)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size and v.min() >= 0 and v.max() <= _INT32_MAX:   # the usual case (NaN fails): floor + (fraction >= .5)
        r = np.floor(v)
        frac = np.subtract(v, r, out=v if out is v else None)
        r += frac >= 0.5
        return r if out is None else np.copyto(out, r) or out
    a = np.abs(v)
    nan, neg = np.isnan(v), np.signbit(v)                 # before ``out`` (possibly ``v``) is overwritten
    r = np.floor(a, out=out)
    with np.errstate(invalid="ignore"):
        np.subtract(a, r, out=a)                          # the fraction; in place: few large temporaries
        r += a >= 0.5
    np.negative(r, out=r, where=neg)
    np.clip(r, _INT32_MIN, _INT32_MAX, out=r)
    r[nan] = 0.0
    return r


def pred_geometry(pred_xywh: np.ndarray):
    """Per prediction: the int32-converted corners ``(x1, y1, x1 + w, y1 + h)`` and the double "+1" area."""
    p = np.asarray(pred_xywh, dtype=np.float64).reshape(-1, 4)
    corners = np.empty_like(p)
    corners[:, :2] = p[:, :2]
    np.add(p[:, :2], p[:, 2:4], out=corners[:, 2:])         # pred_info(:,3) = x + w, in double
    barea = (corners[:, 2] - p[:, 0] + 1) * (corners[:, 3] - p[:, 1] + 1)
    return matlab_round(corners, out=corners), barea


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
    return _overlaps(g, *pred_geometry(pred_xywh))


# --------------------------------------------------------------------------------------------------------------
# best face per prediction
def _pair_overlaps(g, f, corners, barea, p):
    """:func:`_overlaps` for the pairs (face ``f[i]``, prediction ``p[i]``): the same operations element by
    element, so every value is bit-identical to the dense matrix entry."""
    gx1, gy1, gw, gh = g[f, 0], g[f, 1], g[f, 2], g[f, 3]
    iw = np.minimum(gx1 + gw, corners[p, 2]) - np.maximum(gx1, corners[p, 0]) + 1
    ih = np.minimum(gy1 + gh, corners[p, 3]) - np.maximum(gy1, corners[p, 1]) + 1
    inter = iw * ih
    union = matlab_round((gw + 1) * (gh + 1) + barea[p]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        o = inter / union
    o[(iw <= 0) | (ih <= 0)] = 0.0
    return o


def _dense_best(best, g, offsets, boxes, starts, images, iou_thresh):
    """The per-image dense matrix (the previous implementation) for ``images``."""
    for i in images:
        a, b, fa, fb = starts[i], starts[i + 1], offsets[i], offsets[i + 1]
        if a == b or fa == fb:
            continue
        o = _overlaps(g[fa:fb], *pred_geometry(boxes[a:b]))
        j = o.argmax(axis=1)
        ok = o[np.arange(b - a), j] >= iou_thresh
        best[a:b][ok] = j[ok]


def _outside(x):
    """Beyond the bound's domain: |x| > 2^29, NaN or infinite (NaN fails every comparison)."""
    return ~(np.abs(x) <= _LIMIT)


def _odd_images(g, offsets, boxes, img, n_img):
    """Images with a box outside the domain of the band bound (see the module docstring)."""
    odd = np.zeros(n_img, dtype=bool)
    with np.errstate(invalid="ignore", over="ignore"):
        # one global test first (the usual case: nothing odd, and no temporaries), the per-box test when it fails:
        # coordinates and sizes within +-2^14 keep every corner and the "+1" area within 2^29
        if not (len(boxes) == 0 or (-2.0 ** 14 <= boxes.min() and boxes.max() <= 2.0 ** 14
                                    and boxes[:, 2:4].min() >= 0)):
            corners, barea = pred_geometry(boxes)
            bad = _outside(barea) | (boxes[:, 2] < 0) | (boxes[:, 3] < 0) | _outside(corners).any(axis=1)
            odd[img[bad]] = True
        area = (g[:, 2] + 1) * (g[:, 3] + 1)
        bad = _outside(area) | (g[:, 2] < 0) | (g[:, 3] < 0) | _outside(g).any(axis=1) | (g != np.round(g)).any(axis=1)
    if bad.any():
        odd[np.repeat(np.arange(n_img), np.diff(offsets))[bad]] = True
    return odd


def _bands(c1, c2, k):
    """The band ``[c1 - d, c2 + 1 + d]`` of face centres that can reach IoU >= t (module docstring), widened by
    the rounding margin and clipped to the key range."""
    d = (c2 - c1 + 1) * (k / 2 - 1) + 0.25 + _MARGIN
    return np.maximum(c1 - d, -_STRIDE / 2 + 1), np.minimum(c2 + 1 + d, _STRIDE / 2 - 1)


class _SortedFaces:
    """The faces of the images matched by bands, sorted by (image, centre x): keys for ``searchsorted``."""

    def __init__(self, g, offsets, dense):
        n_img = len(offsets) - 1
        face_img = np.repeat(np.arange(n_img), np.diff(offsets))
        faces = np.flatnonzero(~dense[face_img])
        cx = g[faces, 0] + (g[faces, 2] + 1) * 0.5
        order = np.argsort(face_img[faces] * _STRIDE + cx, kind="stable")
        self.faces = faces[order]
        self.keys = face_img[self.faces] * _STRIDE + cx[order]
        self.cy = np.full(len(g), np.nan)
        self.cy[self.faces] = g[self.faces, 1] + (g[self.faces, 3] + 1) * 0.5


def _best_in_bands(best, g, offsets, boxes, img, preds, sf: _SortedFaces, iou_thresh):
    """:func:`best_faces` for the predictions ``preds`` (of band-matched images): candidates in the x band by
    two searches, kept when in the y band, the exact IoU on those pairs only."""
    corners, barea = pred_geometry(boxes[preds])
    k = (1.0 + iou_thresh) / iou_thresh
    xlo, xhi = _bands(corners[:, 0], corners[:, 2], k)
    ylo, yhi = _bands(corners[:, 1], corners[:, 3], k)
    base = img[preds] * _STRIDE
    lo = np.searchsorted(sf.keys, base + xlo, side="left")
    cnt = np.searchsorted(sf.keys, base + xhi, side="right") - lo
    if cnt.sum() > _PAIRS and len(preds) > 1:                      # wide bands in crowded images: split
        h = len(preds) // 2
        _best_in_bands(best, g, offsets, boxes, img, preds[:h], sf, iou_thresh)
        _best_in_bands(best, g, offsets, boxes, img, preds[h:], sf, iou_thresh)
        return
    q = np.repeat(np.arange(len(preds)), cnt)                      # local prediction, grouped ascending
    f = sf.faces[np.arange(len(q)) - np.repeat(np.cumsum(cnt) - cnt - lo, cnt)]
    cy = sf.cy[f]
    inside = (cy >= ylo[q]) & (cy <= yhi[q])
    q, f = q[inside], f[inside]
    if len(q) == 0:
        return
    o = _pair_overlaps(g, f, corners, barea, q)
    first = np.flatnonzero(np.r_[True, q[1:] != q[:-1]])
    m = np.maximum.reduceat(o, first)
    top = np.where(o == np.repeat(m, np.diff(np.r_[first, len(q)])), f, len(g))
    fbest = np.minimum.reduceat(top, first)                        # first face (lowest index) at the maximum
    ok = m >= iou_thresh
    pj = preds[q[first][ok]]
    best[pj] = fbest[ok] - offsets[img[pj]]


def best_faces(g: np.ndarray, offsets: np.ndarray, boxes: np.ndarray, img: np.ndarray,
               iou_thresh: float) -> np.ndarray:
    """For every prediction (``boxes`` (N, 4) ``x y w h``, ``img`` its image, ascending) the index within its
    image of its highest-IoU face (the first on ties) when that IoU is >= ``iou_thresh``, else -1.

    ``g`` (F, 4) holds the faces ``x y w h`` of all images, image ``i`` owning ``g[offsets[i]:offsets[i + 1]]``.
    Predictions are processed in chunks (small temporaries, reused memory).
    """
    n, n_img = len(boxes), len(offsets) - 1
    best = np.full(n, -1, dtype=np.int64)
    if n == 0 or len(g) == 0:
        return best
    starts = np.searchsorted(img, np.arange(n_img + 1))
    if not (0.0 < iou_thresh <= 1.0) or n_img > _MAX_IMAGES:
        _dense_best(best, g, offsets, boxes, starts, range(n_img), iou_thresh)
        return best
    dense = _odd_images(g, offsets, boxes, img, n_img)
    _dense_best(best, g, offsets, boxes, starts, np.flatnonzero(dense), iou_thresh)
    sf = _SortedFaces(g, offsets, dense)
    preds = np.flatnonzero(~dense[img] & (np.diff(offsets)[img] > 0))
    for a in range(0, len(preds), _CHUNK):
        _best_in_bands(best, g, offsets, boxes, img, preds[a:a + _CHUNK], sf, iou_thresh)
    return best
