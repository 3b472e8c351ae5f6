"""Slow, obvious reference of the official FDDB ``evaluate`` program: full-image masks, exhaustive matching.

Used by the tests (fast path == reference on small random cases) and by ``benchmarks/bench_fddb_eval.py``
(speed ratio). Only for tiny inputs: the matching enumerates every partial one-to-one assignment.
"""
import itertools

import cv2
import numpy as np

from ..evaluation.fddb import DBL_MAX


def full_mask(kind, row, width, height):
    """The official mask: a full image-size canvas, OpenCV filled ellipse / rectangle."""
    m = np.zeros((height, width), np.uint8)
    if kind == "ellipse":
        a, b, t, cx, cy = row[:5]
        angle = 180.0 - (np.pi - t) * 180.0 / np.pi
        c = (int(np.rint(np.float32(cx))), int(np.rint(np.float32(cy))))
        cv2.ellipse(m, c, (int(a), int(b)), angle, 0, 360, 1, -1)
    else:
        x, y, w, h = row[:4]
        p1 = (int(np.rint(np.float32(x))), int(np.rint(np.float32(y))))
        p2 = (int(np.rint(np.float32(x + w))), int(np.rint(np.float32(y + h))))
        cv2.rectangle(m, p1, p2, 1, -1)
    return m.astype(bool)


def best_assignment(ov):
    """Exhaustive: max summed overlap over all one-to-one partial matchings (tiny cases)."""
    na, nd = ov.shape
    best, best_pairs = -1.0, []
    for k in range(min(na, nd) + 1):
        for faces in itertools.combinations(range(na), k):
            for dets in itertools.permutations(range(nd), k):
                s = sum(ov[a, d] for a, d in zip(faces, dets))
                if s > best + 1e-12:
                    best, best_pairs = s, list(zip(faces, dets))
    return best_pairs


def reference_evaluate(records, dets):
    """Per image, per distinct score: masks, overlaps, exhaustive matching; merge over the union of thresholds."""
    per_image, n_faces = [], 0
    for rec, det in zip(records, dets):
        n_faces += len(rec.ellipses)
        fm = [full_mask("ellipse", e, rec.width, rec.height) for e in rec.ellipses]
        dm = [full_mask(det.kind, d, rec.width, rec.height) for d in det.dets]
        ov = np.zeros((len(fm), len(dm)))
        for i, a in enumerate(fm):
            for j, d in enumerate(dm):
                u = np.count_nonzero(a | d)
                ov[i, j] = np.count_nonzero(a & d) / u if u else 0.0
        stats = {}
        for s in sorted(set(det.dets[:, -1].tolist())):
            valid = np.flatnonzero(det.dets[:, -1] >= s)
            pairs = [(a, valid[j]) for a, j in best_assignment(ov[:, valid]) if ov[a, valid[j]] > 0]
            tc = sum(ov[a, d] for a, d in pairs)
            td = sum(ov[a, d] > 0.5 for a, d in pairs)
            stats[s] = (tc, td, len(valid) - td)
        per_image.append(stats if len(det.dets) else {DBL_MAX: (0.0, 0, 0)})
    T = sorted(set(t for st in per_image for t in st))
    rows = []
    for t in T:
        tc = td = fp = 0
        for st in per_image:
            above = [s for s in st if s >= t]
            if above:
                c, d, f = st[min(above)]
                tc, td, fp = tc + c, td + d, fp + f
        rows.append((t, tc, td, fp))
    return np.array(rows).reshape(-1, 4), n_faces


def _match_reference(ov, valid):
    """Matching::runHungarian on the valid detections, as the official program builds its matrix: the faces and
    valid detections with some overlap, in index order; TPCont summed by face index (by detection index when the
    matrix is transposed)."""
    from scipy.optimize import linear_sum_assignment
    sub = ov[:, valid]
    rows = np.flatnonzero(sub.sum(axis=1) != 0)
    cols = np.flatnonzero(sub.sum(axis=0) != 0)
    if rows.size == 0:
        return 0.0, 0
    m = sub[np.ix_(rows, cols)]
    r, c = linear_sum_assignment(m, maximize=True)
    s = m[r, c]
    keep = s > 0
    r, c, s = r[keep], c[keep], s[keep]
    order = np.argsort(c if rows.size > cols.size else r, kind="stable")
    tp_cont = 0.0
    for v in s[order]:
        tp_cont += float(v)
    return tp_cont, int(np.count_nonzero(s > 0.5))


def image_threshold_stats_reference(ov, scores):
    """The per-threshold loop of the official program for one image: at every distinct score (high to low) the
    detections with score >= it are matched (re-solved only when a newly admitted detection overlaps a face:
    otherwise the matrix, and so the matching, is the same). Reference of
    :func:`rfcn_face.evaluation.fddb.image_threshold_stats`."""
    scores = np.asarray(scores, dtype=np.float64)
    thr = np.unique(scores)
    K = thr.size
    tp_cont, tp_disc, fp = np.zeros(K), np.zeros(K, dtype=np.int64), np.zeros(K, dtype=np.int64)
    touches = ov.sum(axis=0) != 0 if ov.shape[0] else np.zeros(len(scores), dtype=bool)
    last = (0.0, 0)
    for k in range(K - 1, -1, -1):
        valid = scores >= thr[k]
        if np.any(touches & (scores == thr[k])):
            last = _match_reference(ov, valid)
        tp_cont[k], tp_disc[k] = last
        fp[k] = int(np.count_nonzero(valid)) - last[1]
    return thr, tp_cont, tp_disc, fp


def merge_reference(per_image, num_faces: int):
    """Results::merge image by image: the union of thresholds; each image adds, at every global threshold up to its
    highest one, its statistics at its first threshold >= it (TPCont added image after image). Returns
    ``(thresholds, tp_cont, tp_disc, fp)``; reference of :func:`rfcn_face.evaluation.fddb._merge`."""
    all_thr = [t for (t, *_rest) in per_image]
    T = np.unique(np.concatenate(all_thr)) if all_thr else np.zeros(0)
    cont, disc, fp = np.zeros(T.size), np.zeros(T.size), np.zeros(T.size)
    for thr, tc, td, f in per_image:
        if len(thr) == 0:
            continue
        k = np.searchsorted(thr, T)                  # the image's first threshold >= T[j]
        on = k < len(thr)
        cont[on] += tc[k[on]]
        disc[on] += td[k[on]]
        fp[on] += f[k[on]]
    return T, cont, disc, fp
