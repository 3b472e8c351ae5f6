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
