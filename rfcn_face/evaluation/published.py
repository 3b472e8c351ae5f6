"""This paper's own published WIDER FACE val PR curves (ZCC in the official eval_tools, legend "Zhu et al."):
the packaged resource ``rfcn_face/resources/zcc_val_pr.json`` (provenance: REPRODUCE.md), its conversion from the
official ``.mat`` files, and the curve as a :class:`~rfcn_face.evaluation.plots.Baseline` for the PR plots of
``reproduce`` (tables and benchmark files)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..checkpoint import atomic_write_text

__all__ = ["PUBLISHED_CURVES", "convert_published_curves", "paper_published_baseline"]

PUBLISHED_CURVES = Path(__file__).resolve().parents[1] / "resources" / "zcc_val_pr.json"


def convert_published_curves(method_dir, out_json=None, tolerance: float = 2e-4) -> dict:
    """The packaged resource from the official eval_tools' ``Val/setting_int/ZCC/wider_pr_info_ZCC_{easy,medium,
    hard}_val.mat`` (this paper's published WIDER val PR curves, ``pr_cruve`` = 1,000 (precision, recall) rows).

    Each curve is thinned by Ramer-Douglas-Peucker in the (recall, precision) plane (``tolerance``: no dropped
    point is further than that from the kept polyline; first and last point kept), rounded to 6 decimals; ``ap``
    is the VOC AP (``wider_plot.m``) of the *full* curve, ``ap_thinned`` that of the stored points. Writes
    ``out_json`` (compact JSON) when given; returns the dict."""
    from .plots import _FILE_RE, read_pr_info
    from .voc import voc_ap
    method_dir = Path(method_dir)
    files = sorted(f for f in method_dir.glob("*.mat") if _FILE_RE.search(f.name))
    if not files:
        raise FileNotFoundError(f"no wider_pr_info_*_{{easy,medium,hard}}_val.mat in {method_dir}")
    out = {"method": method_dir.name, "legend": "", "split": "Val", "setting_class": method_dir.parent.name,
           "source": "WIDER FACE eval_tools plot/baselines/Val/setting_int/ZCC/wider_pr_info_ZCC_*_val.mat",
           "tolerance": tolerance, "settings": {}}
    for f in files:
        s = _FILE_RE.search(f.name).group(1).lower()
        curve, legend = read_pr_info(f)
        out["legend"] = legend
        pts = curve[:, ::-1]                                    # (recall, precision)
        keep = _rdp(pts, tolerance)
        kept = np.round(curve[keep], 6)
        out["settings"][s] = {"ap": round(float(voc_ap(curve[:, 1], curve[:, 0])), 6),
                              "ap_thinned": round(float(voc_ap(kept[:, 1], kept[:, 0])), 6),
                              "points_full": int(len(curve)), "indices": [int(i) for i in keep],
                              "precision": [float(v) for v in kept[:, 0]], "recall": [float(v) for v in kept[:, 1]]}
    if out_json is not None:
        atomic_write_text(out_json, json.dumps(out, separators=(",", ":")) + "\n")
        os.chmod(out_json, 0o644)                               # a package file, readable by all
    return out


def _rdp(points: np.ndarray, eps: float) -> np.ndarray:
    """Indices kept by Ramer-Douglas-Peucker (iterative) on a polyline of (x, y) points."""
    n = len(points)
    keep = np.zeros(n, bool)
    keep[[0, n - 1]] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b <= a + 1:
            continue
        p, d = points[a + 1:b] - points[a], points[b] - points[a]
        norm = float(np.hypot(*d))
        dist = np.hypot(p[:, 0], p[:, 1]) if norm == 0 else np.abs(d[0] * p[:, 1] - d[1] * p[:, 0]) / norm
        i = int(np.argmax(dist))
        if dist[i] > eps:
            keep[a + 1 + i] = True
            stack += [(a, a + 1 + i), (a + 1 + i, b)]
    return np.flatnonzero(keep)


def paper_published_baseline(path=None):
    """This paper's own published WIDER FACE val PR curves (ZCC in the official eval_tools, legend "Zhu et al.")
    as a :class:`rfcn_face.evaluation.plots.Baseline` for :func:`~rfcn_face.evaluation.plots.plot_wider_pr`; AP
    per setting is that of the full published curve (0.949 / 0.934 / 0.861 = the paper's Final+Pyramid row).
    Read from the packaged ``rfcn_face/resources/zcc_val_pr.json`` (provenance: REPRODUCE.md)."""
    from .plots import Baseline
    p = Path(path) if path is not None else PUBLISHED_CURVES
    if not p.is_file():
        raise FileNotFoundError(f"published curves not found: {p} (the package resource zcc_val_pr.json)")
    d = json.loads(p.read_text())
    b = Baseline(method=d["method"], legend=f"{d['legend']} (this paper, published)")
    for s, c in d["settings"].items():
        b.precision[s] = np.asarray(c["precision"], np.float64)
        b.recall[s] = np.asarray(c["recall"], np.float64)
        b.ap[s] = float(c["ap"])
    return b
