"""FDDB evaluation over all images at once: the geometry of every region in one pass, the face / detection pairs
whose windows meet, and the per-threshold statistics of every image in which no detection touches two faces.

The per-image definitions (rasterisation, overlap, Hungarian matching, merge) are :mod:`.fddb`; this module
computes the same numbers with the Python work per image reduced to drawing the face ellipses and counting the
pixels of the pairs that meet. :func:`rfcn_face.evaluation.fddb.evaluate_fddb` uses it; the tests compare both
ways bit for bit.
"""
from __future__ import annotations

from typing import List

import numpy as np

from .fddb_regions import draw_ellipses, ellipse_cv_args, ellipse_windows, rect_windows

__all__ = ["pair_overlaps", "independent_image_stats"]

_CHUNK = 1 << 16            # face / detection pairs tested at once


def _offsets(counts) -> np.ndarray:
    return np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))


def pair_overlaps(records, detections, progress: bool = False):
    """The pixel IoU of every face / detection pair of an image whose clipped windows meet and whose regions
    share a pixel: ``(face, det, iou)`` with global indices (faces and detections numbered over all images in
    order), grouped by image, then face, then detection; plus the face and detection offsets per image."""

    n_img = len(records)
    ells = [np.asarray(r.ellipses, dtype=np.float64).reshape(-1, 5) if r.ellipses is not None else np.zeros((0, 5))
            for r in records]
    size = np.array([(r.width, r.height) for r in records], dtype=np.int64).reshape(-1, 2)
    f_off = _offsets([len(e) for e in ells])
    d_off = _offsets([len(d.dets) for d in detections])
    nf, nd = np.diff(f_off), np.diff(d_off)
    centres, axes, angle = ellipse_cv_args(np.concatenate(ells) if n_img else np.zeros((0, 5)))
    fwin = ellipse_windows(centres, axes, np.repeat(size[:, 0], nf), np.repeat(size[:, 1], nf))
    # detection geometry: rectangles fill their windows; ellipses are drawn per image below
    is_rect = np.array([d.kind == "rect" for d in detections], dtype=bool)
    darea = np.zeros(int(d_off[-1]), dtype=np.int64)
    ell = np.flatnonzero(~is_rect & (nd > 0))
    if len(ell):                                       # (the regressor's ellipses: drawn like the faces)
        sel = np.concatenate([np.arange(d_off[i], d_off[i + 1]) for i in ell])
        dcen, dax = np.zeros((int(d_off[-1]), 2), np.int64), np.zeros((int(d_off[-1]), 2), np.int64)
        dang = np.zeros(int(d_off[-1]))
        dcen[sel], dax[sel], dang[sel] = ellipse_cv_args(np.concatenate([detections[i].dets[:, :5] for i in ell]))

    # every (face, det) pair of an image, then those whose windows meet (as overlap_matrix tests them); in
    # chunks of images, so that the temporaries stay small
    npair = nf * nd
    cum = np.cumsum(npair)
    edges = np.unique(np.r_[0, np.searchsorted(cum, np.arange(_CHUNK, int(cum[-1]) if n_img else 0, _CHUNK),
                                               side="right"), n_img])
    found = []
    dwin = np.zeros((int(d_off[-1]), 4), dtype=np.int32)
    for i0, i1 in zip(edges[:-1], edges[1:]):
        a, b = d_off[i0], d_off[i1]
        w, h = np.repeat(size[i0:i1, 0], nd[i0:i1]), np.repeat(size[i0:i1, 1], nd[i0:i1])
        rect = np.repeat(is_rect[i0:i1], nd[i0:i1])
        if rect.any():
            rows = np.concatenate([detections[i].dets[:, :4] for i in range(i0, i1) if is_rect[i]])
            dwin[a:b][rect], darea[a:b][rect] = rect_windows(rows, w[rect], h[rect])
        if not rect.all():
            dwin[a:b][~rect] = ellipse_windows(dcen[a:b][~rect], dax[a:b][~rect], w[~rect], h[~rect])
        cnt = npair[i0:i1]
        img = np.repeat(np.arange(i0, i1, dtype=np.int32), cnt)
        r = np.arange(int(cnt.sum()), dtype=np.int64) - np.repeat(_offsets(cnt)[:-1], cnt)
        per = np.maximum(nd[img], 1)
        f, d = f_off[img] + r // per, d_off[img] + r % per
        box = np.stack([np.maximum(fwin[f, 0], dwin[d, 0]), np.maximum(fwin[f, 1], dwin[d, 1]),
                        np.minimum(fwin[f, 2], dwin[d, 2]), np.minimum(fwin[f, 3], dwin[d, 3])], axis=1)
        meet = (box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1])
        found.append((img[meet], f[meet], d[meet], box[meet]))
    img, f, d, box = (np.concatenate(x) for x in zip(*found)) if found else (np.zeros(0, np.int64),) * 3 + (
        np.zeros((0, 4), np.int64),)
    starts = np.searchsorted(img, np.arange(n_img + 1))

    inter = np.zeros(len(f), dtype=np.int64)
    farea = np.zeros(len(fwin), dtype=np.int64)
    it = range(n_img)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=n_img, desc="FDDB", leave=False)
    canvas = None
    for i in it:
        if nd[i] == 0:                                   # the official tool draws nothing for such an image
            continue
        h, w = int(size[i, 1]), int(size[i, 0])
        if canvas is None or canvas.shape != (h, w):
            canvas = np.zeros((h, w), dtype=np.uint8)
        a, b = f_off[i], f_off[i + 1]
        fm, farea[a:b] = draw_ellipses(centres[a:b], axes[a:b], angle[a:b], fwin[a:b], canvas)
        p0, p1 = starts[i], starts[i + 1]
        if p0 == p1:
            continue
        # pixel counts of the pairs, with Python numbers in the loop (numpy scalars cost more than the count)
        fw = fwin[a:b, :2].tolist()
        pairs = zip((f[p0:p1] - a).tolist(), box[p0:p1].tolist())
        if is_rect[i]:                                   # a rectangle fills its window
            inter[p0:p1] = [np.count_nonzero(fm[fa][y0 - fw[fa][1]:y1 - fw[fa][1], x0 - fw[fa][0]:x1 - fw[fa][0]])
                            for fa, (x0, y0, x1, y1) in pairs]
            continue
        c, e = d_off[i], d_off[i + 1]
        dm, darea[c:e] = draw_ellipses(dcen[c:e], dax[c:e], dang[c:e], dwin[c:e], canvas)
        dw = dwin[c:e, :2].tolist()
        inter[p0:p1] = [np.count_nonzero(fm[fa][y0 - fw[fa][1]:y1 - fw[fa][1], x0 - fw[fa][0]:x1 - fw[fa][0]] &
                                         dm[dd][y0 - dw[dd][1]:y1 - dw[dd][1], x0 - dw[dd][0]:x1 - dw[dd][0]])
                        for (fa, (x0, y0, x1, y1)), dd in zip(pairs, (d[p0:p1] - c).tolist())]
    hit = inter > 0
    f, d, inter = f[hit], d[hit], inter[hit]
    iou = inter.astype(np.float64) / (farea[f] + darea[d] - inter).astype(np.float64)
    return f, d, iou, f_off, d_off


def _segment_cummax(v: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Running maximum of ``v`` within runs of equal ``group`` (exact: only comparisons)."""
    out = v.copy()
    shift = 1
    while shift < len(v):
        same = group[shift:] == group[:-shift]
        if not same.any():
            break
        prev = out[:-shift].copy()
        np.maximum(out[shift:], np.where(same, prev, -np.inf), out=out[shift:])
        shift *= 2
    return out


def independent_image_stats(images: np.ndarray, scores: np.ndarray, f_off: np.ndarray, d_off: np.ndarray,
                            f: np.ndarray, d: np.ndarray, iou: np.ndarray) -> List[tuple]:
    """:func:`rfcn_face.evaluation.fddb.image_threshold_stats` of each image of ``images`` (each with at least
    one detection, none touching two faces), from the positive pairs ``(f, d, iou)`` of those images: per face
    the running maximum over its detections in descending score order, read at each threshold's count of valid
    detections, summed over the faces in face order (the official order when no detection is shared).
    Returns ``(thresholds, TPCont, TPDisc, FP)`` per image, thresholds ascending."""
    if len(images) == 0:
        return []
    nd = np.diff(d_off)[images]
    det = np.repeat(d_off[images], nd) + np.arange(int(nd.sum())) - np.repeat(_offsets(nd)[:-1], nd)
    slot = np.repeat(np.arange(len(images)), nd)                    # which of ``images``
    order = np.lexsort((-scores[det], slot))                        # per image: score descending, stable
    sd, ss, sl = det[order], scores[det][order], slot[order]
    first = _offsets(nd)[:-1]
    pos = np.arange(len(sd)) - np.repeat(first, nd)                 # rank in that order
    rank = np.empty(len(scores), dtype=np.int64)
    rank[sd] = pos
    # thresholds: the distinct scores; the detections valid at one = the rank of the last of its run + 1
    last = np.flatnonzero(np.r_[(ss[1:] != ss[:-1]) | (sl[1:] != sl[:-1]), True])
    q_slot, q_thr, q_valid = sl[last], ss[last], pos[last] + 1
    # per face: running maximum of its pairs' IoU by detection rank
    p_face = np.asarray(f, dtype=np.int64)
    p_rank = rank[np.asarray(d, dtype=np.int64)]
    o = np.lexsort((p_rank, p_face))
    p_face, p_rank, p_best = p_face[o], p_rank[o], _segment_cummax(np.asarray(iou)[o], p_face[o])
    m = int(nd.max()) + 1
    p_key = p_face * m + p_rank
    tp_cont = np.zeros(len(last))
    tp_disc = np.zeros(len(last), dtype=np.int64)
    nf = np.diff(f_off)[images][q_slot]
    q_face0 = f_off[images][q_slot]
    for j in range(int(nf.max()) if len(nf) else 0):               # faces in order: TPCont is a left fold
        sel = np.flatnonzero(nf > j)
        face = q_face0[sel] + j
        k = np.searchsorted(p_key, face * m + q_valid[sel], side="left") - 1
        ok = (k >= 0) & (p_face[np.maximum(k, 0)] == face)
        best = np.where(ok, p_best[np.maximum(k, 0)], 0.0)
        tp_cont[sel] += best
        tp_disc[sel] += best > 0.5
    fp = q_valid - tp_disc
    bounds = np.searchsorted(q_slot, np.arange(len(images) + 1))
    return [(q_thr[a:b][::-1].copy(), tp_cont[a:b][::-1].copy(), tp_disc[a:b][::-1].copy(), fp[a:b][::-1].copy())
            for a, b in zip(bounds[:-1], bounds[1:])]
