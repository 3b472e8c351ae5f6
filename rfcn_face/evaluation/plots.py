"""Precision-recall plots with the published WIDER FACE baselines of the official eval_tools overlaid.

The baselines folder is the eval_tools' ``plot/baselines`` tree: ``{Val,Test}/setting_{int,ext}/METHOD/
wider_pr_info_METHOD_{easy,medium,hard}[_val].mat``, each holding ``pr_cruve`` (N × 2: precision, recall)
and ``legend_name``. Some files are MATLAB v5 (scipy), some v7.3 / HDF5 (h5py, stored transposed).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .voc import voc_ap

SETTINGS = ("easy", "medium", "hard")
_FILE_RE = re.compile(r"_(easy|medium|hard)(?:_val|_test)?\.mat$", re.IGNORECASE)


@dataclass
class Baseline:
    """One published method: its folder name, legend, and per setting the PR curve and AP (our VOC AP)."""

    method: str
    legend: str
    precision: Dict[str, np.ndarray] = field(default_factory=dict)
    recall: Dict[str, np.ndarray] = field(default_factory=dict)
    ap: Dict[str, float] = field(default_factory=dict)


def _h5_string(ds) -> str:
    a = np.asarray(ds[()]).ravel()
    return "".join(chr(int(c)) for c in a if int(c) != 0)


def read_pr_info(path) -> Tuple[np.ndarray, str]:
    """``(pr_cruve (N, 2) [precision, recall], legend_name)`` from one ``wider_pr_info_*.mat`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"baseline PR file not found: {path}")
    import scipy.io as sio
    try:
        m = sio.loadmat(str(path))
        curve = np.asarray(m["pr_cruve"], dtype=np.float64)
        legend = m.get("legend_name", np.array([path.parent.name]))
        legend = str(np.asarray(legend).ravel()[0]) if np.asarray(legend).size else path.parent.name
    except NotImplementedError:                          # MATLAB v7.3 = HDF5
        import h5py
        with h5py.File(path, "r") as f:
            curve = np.asarray(f["pr_cruve"][()], dtype=np.float64).T
            legend = _h5_string(f["legend_name"]) if "legend_name" in f else path.parent.name
    except KeyError as e:
        raise ValueError(f"{path}: no {e} variable (expected pr_cruve and legend_name)") from e
    if curve.ndim != 2 or curve.shape[1] != 2:
        raise ValueError(f"{path}: pr_cruve has shape {curve.shape}, expected (N, 2)")
    return curve, legend


def default_baselines_dir() -> Optional[Path]:
    """The published-baseline curves: ``$RFCN_FACE_BASELINES``, ``$RFCN_FACE_DATA/widerface/eval_tools_baselines``
    or the project's ``data/widerface/eval_tools_baselines`` (working directory, then the checkout), if present."""
    repo = Path(__file__).resolve().parents[2]
    cands = [Path(os.environ["RFCN_FACE_BASELINES"])] if os.environ.get("RFCN_FACE_BASELINES") else []
    if os.environ.get("RFCN_FACE_DATA"):
        cands.append(Path(os.environ["RFCN_FACE_DATA"]) / "widerface" / "eval_tools_baselines")
    cands += [Path("data/widerface/eval_tools_baselines"), repo / "data" / "widerface" / "eval_tools_baselines"]
    return next((c for c in cands if c.is_dir()), None)


def load_baselines(root, split: str = "Val", setting_class: str = "setting_int") -> List[Baseline]:
    """Every method under ``root/split/setting_class``, sorted by folder name."""
    d = Path(root) / split / setting_class
    if not d.is_dir():
        raise FileNotFoundError(f"baselines folder not found: {d}")
    out = []
    for mdir in sorted(p for p in d.iterdir() if p.is_dir()):
        b = Baseline(method=mdir.name, legend=mdir.name)
        for f in sorted(mdir.glob("*.mat")):
            m = _FILE_RE.search(f.name)
            if not m:
                continue
            curve, legend = read_pr_info(f)
            s = m.group(1).lower()
            b.legend = legend or mdir.name
            b.precision[s], b.recall[s] = curve[:, 0], curve[:, 1]
            b.ap[s] = voc_ap(curve[:, 1], curve[:, 0])   # wider_plot.m: VOCap(recall, precision)
        if b.ap:
            out.append(b)
    return out


def plot_wider_pr(out_png, curves: Dict[str, Tuple[np.ndarray, np.ndarray]], label: str = "ours",
                  baselines: Sequence[Baseline] = (), settings: Sequence[str] = SETTINGS,
                  title: str = "WIDER FACE val") -> Path:
    """One PNG, a panel per setting: the baselines (sorted by AP, like ``wider_plot.m``) and the user's curve.

    ``curves[setting] = (precision, recall)``; legends read ``name (AP)``.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = [s for s in settings if s in curves]
    fig, axes = plt.subplots(1, len(settings), figsize=(6.2 * len(settings), 5.2), squeeze=False)
    for ax, s in zip(axes[0], settings):
        bl = sorted((b for b in baselines if s in b.ap), key=lambda b: -b.ap[s])
        colors = plt.cm.hsv(np.linspace(0, 0.9, max(len(bl), 1)))
        for b, c in zip(bl, colors):
            ax.plot(b.recall[s], b.precision[s], lw=1.0, color=c, label=f"{b.legend} ({b.ap[s]:.3f})")
        p, r = curves[s]
        ap = voc_ap(r, p)
        ax.plot(r, p, lw=2.6, color="black", label=f"{label} ({ap:.3f})", zorder=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("Recall")
        ax.set_ylabel("Precision")
        ax.set_title(f"{title} — {s.capitalize()}")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        order = [labels.index(l) for l in sorted(labels, key=lambda l: -float(l.rsplit("(", 1)[1][:-1]))]
        ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=6.5, loc="lower left")
    fig.tight_layout()
    from ..checkpoint import save_figure
    return save_figure(fig, out_png, 120)


def plot_roc(path, curves: dict, max_fp: float = 2000.0):
    """FDDB discrete and continuous ROC (TPR vs false positives) of one or more results, one PNG."""
    from .fddb import tpr_at_fp
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for label, res in curves.items():
        d, c = tpr_at_fp(res)
        axes[0].plot(res.fp, res.tpr_disc, label=f"{label} ({d:.4f} @1000 FP)")
        axes[1].plot(res.fp, res.tpr_cont, label=f"{label} ({c:.4f} @1000 FP)")
    for ax, title in zip(axes, ("Discrete score", "Continuous score")):
        ax.set_xlim(0, max_fp)
        ax.set_ylim(0, 1)
        ax.set_xlabel("False positives")
        ax.set_ylabel("True positive rate")
        ax.set_title(f"FDDB — {title}")
        ax.grid(True)
        ax.legend(loc="lower right")
    fig.tight_layout()
    from ..checkpoint import save_figure
    return save_figure(fig, path, 100)



def plot_pr(path, recall, precision, label: str, title: str, ap: float) -> Path:
    """One precision-recall curve (AFW / PASCAL Faces) as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.plot(recall, precision, label=f"{label} (AP {100 * ap:.2f})", lw=2)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(title)
    ax.grid(True)
    ax.legend(loc="lower left")
    from ..checkpoint import save_figure
    return save_figure(fig, path, 100)
