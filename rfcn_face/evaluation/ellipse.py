"""Box -> ellipse regressor for FDDB (paper Sec. 5.2: "we learn a regressor to transform rectangle boxes
predicted by our detector to ellipses").

Model: for a detected box (x, y, w, h) with features ``f = [1, log(w/h), log(sqrt(w*h)/100)]`` each ellipse
parameter, expressed relative to the box, is linear in ``f`` (least squares, tiny ridge):

    dcx = (ecx - (x + w/2)) / w,   dcy = (ecy - (y + h/2)) / h,
    lv  = log(a_v / h),            lh  = log(a_h / w),            delta

where the ellipse is written canonically as a "vertical" semi-axis ``a_v`` along the direction
``pi/2 + delta`` (|delta| <= pi/4) and a "horizontal" semi-axis ``a_h`` perpendicular to it.

Training pairs are the official discrete matches (pixel overlap > 0.5 after the Hungarian assignment of all
detections of an image to its face ellipses). Cross-validation follows the FDDB folds: the model applied to
fold k is fit on the other nine folds; an ``all`` model (fit on every fold) serves images outside the folds.
The parameter file is a small JSON.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .fddb import overlap_matrix, rasterise_regions
from .fddb_format import FddbImageDets

__all__ = ["box_features", "canonical_ellipses", "ellipse_targets", "targets_to_ellipses", "fit_linear",
           "predict_ellipses", "matched_pairs", "fit_cross_validated", "save_regressor", "load_regressor",
           "apply_to_detections", "TARGETS", "FEATURES"]

FEATURES = ("1", "log(w/h)", "log(sqrt(w*h)/100)")
TARGETS = ("dcx", "dcy", "log(a_v/h)", "log(a_h/w)", "delta")


def box_features(xywh) -> np.ndarray:
    b = np.atleast_2d(np.asarray(xywh, dtype=np.float64))
    w, h = np.maximum(b[:, 2], 1e-6), np.maximum(b[:, 3], 1e-6)
    return np.stack([np.ones_like(w), np.log(w / h), np.log(np.sqrt(w * h) / 100.0)], axis=1)


def _wrap(x):
    """Angle modulo pi into [-pi/2, pi/2)."""
    return np.mod(np.asarray(x) + np.pi / 2, np.pi) - np.pi / 2


def canonical_ellipses(ellipses) -> np.ndarray:
    """(k, 5) ``major minor angle cx cy`` -> (k, 5) ``a_v a_h delta cx cy`` (the same ellipse)."""
    e = np.atleast_2d(np.asarray(ellipses, dtype=np.float64))
    a, b, t = e[:, 0], e[:, 1], e[:, 2]
    phi = _wrap(t - np.pi / 2)
    first_vertical = np.abs(phi) <= np.pi / 4
    av = np.where(first_vertical, a, b)
    ah = np.where(first_vertical, b, a)
    delta = np.where(first_vertical, phi, _wrap(t))
    return np.stack([av, ah, delta, e[:, 3], e[:, 4]], axis=1)


def ellipse_targets(ellipses, xywh) -> np.ndarray:
    c = canonical_ellipses(ellipses)
    b = np.atleast_2d(np.asarray(xywh, dtype=np.float64))
    x, y, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    return np.stack([(c[:, 3] - (x + w / 2)) / w, (c[:, 4] - (y + h / 2)) / h,
                     np.log(np.maximum(c[:, 0], 1e-6) / h), np.log(np.maximum(c[:, 1], 1e-6) / w), c[:, 2]], axis=1)


def targets_to_ellipses(targets, xywh) -> np.ndarray:
    """Inverse of :func:`ellipse_targets`: (k, 5) ``major minor angle cx cy`` in the FDDB file convention
    (``a_v`` along ``pi/2 + delta``)."""
    t = np.atleast_2d(np.asarray(targets, dtype=np.float64))
    b = np.atleast_2d(np.asarray(xywh, dtype=np.float64))
    x, y, w, h = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    cx, cy = x + w / 2 + t[:, 0] * w, y + h / 2 + t[:, 1] * h
    av, ah = h * np.exp(t[:, 2]), w * np.exp(t[:, 3])
    return np.stack([av, ah, np.pi / 2 + t[:, 4], cx, cy], axis=1)


def fit_linear(xywh, ellipses, ridge: float = 1e-6) -> np.ndarray:
    """Least-squares coefficients (len(FEATURES), len(TARGETS)) from matched boxes and face ellipses."""
    X = box_features(xywh)
    Y = ellipse_targets(ellipses, xywh)
    if len(X) < X.shape[1]:
        raise ValueError(f"the ellipse regressor needs at least {X.shape[1]} matched pairs, got {len(X)}")
    A = X.T @ X + ridge * len(X) * np.eye(X.shape[1])
    return np.linalg.solve(A, X.T @ Y)


def predict_ellipses(coef, xywh) -> np.ndarray:
    return targets_to_ellipses(box_features(xywh) @ np.asarray(coef, dtype=np.float64), xywh)


def matched_pairs(records, dets):
    """(boxes x y w h (n, 4), face ellipses (n, 5), fold per pair (n,)) of the official discrete matches with
    every detection valid (lowest threshold)."""
    from scipy.optimize import linear_sum_assignment

    boxes, ells, folds = [], [], []
    for rec, det in zip(records, dets):
        if det.name != rec.name:
            raise ValueError(f"detections for {det.name!r} where the annotations list {rec.name!r}")
        if len(det.dets) == 0 or rec.ellipses is None or len(rec.ellipses) == 0:
            continue
        fr = rasterise_regions("ellipse", rec.ellipses, rec.width, rec.height)
        dr = rasterise_regions("rect", det.dets, rec.width, rec.height, masks=False)
        ov = overlap_matrix(fr, dr)
        r, c = linear_sum_assignment(ov, maximize=True)
        ok = ov[r, c] > 0.5
        boxes.append(det.dets[c[ok], :4])
        ells.append(rec.ellipses[r[ok], :5])
        folds += [rec.event] * int(ok.sum())
    if not boxes:
        return np.zeros((0, 4)), np.zeros((0, 5)), np.array([], dtype=object)
    return np.concatenate(boxes), np.concatenate(ells), np.asarray(folds, dtype=object)


def fit_cross_validated(records, dets) -> dict:
    """``{"features", "targets", "models": {fold: coef, ..., "all": coef}, "pairs": {fold: n}}``; the model of
    fold k is fit on the pairs of the other folds."""
    boxes, ells, folds = matched_pairs(records, dets)
    models = {"all": fit_linear(boxes, ells).tolist()}
    uniq = sorted(set(folds.tolist()))
    if len(uniq) > 1:
        for f in uniq:
            m = folds != f
            models[f] = fit_linear(boxes[m], ells[m]).tolist()
    return {"features": list(FEATURES), "targets": list(TARGETS), "models": models,
            "pairs": {f: int(np.sum(folds == f)) for f in uniq}}


def save_regressor(path, model: dict) -> Path:
    from ..checkpoint import atomic_write_text
    return atomic_write_text(path, json.dumps(model, indent=1))


def load_regressor(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ellipse regressor file not found: {path}")
    try:
        model = json.loads(path.read_text())
        coef = np.asarray(model["models"]["all"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not an ellipse regressor file ({e})") from None
    if coef.shape != (len(FEATURES), len(TARGETS)):
        raise ValueError(f"{path}: coefficient shape {coef.shape}, expected {(len(FEATURES), len(TARGETS))}")
    return model


def apply_to_detections(model: dict, records, dets):
    """Rectangle detections -> ellipse detections (``major minor angle cx cy score``), each image with the
    model held out for its fold (``all`` when its fold has no model)."""

    models = {k: np.asarray(v, dtype=np.float64) for k, v in model["models"].items()}
    out = []
    for rec, det in zip(records, dets):
        coef = models.get(getattr(rec, "event", ""), models["all"])
        d = det.dets
        if len(d):
            e = predict_ellipses(coef, d[:, :4])
            rows = np.concatenate([e, d[:, 4:5]], axis=1)
        else:
            rows = np.zeros((0, 6))
        out.append(FddbImageDets(det.name, "ellipse", rows))
    return out
