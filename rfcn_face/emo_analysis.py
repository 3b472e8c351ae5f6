"""The EMO analysis of Sec. 3 (Fig. 4: EMO vs face scale per anchor stride; Eq. 2 per anchor set) and the
face-anchor IoU of Fig. 7 on real faces: tables, CSV files and PNGs (``python -m rfcn_face emo``, the demo)."""
from __future__ import annotations

import csv
import math
from pathlib import Path

__all__ = ["write_emo_analysis", "fig4_rows", "fig7_rows", "eq2_rows", "fig7_anchor_sets", "FIG4_STRIDES",
           "FIG4_SCALES", "FIG7_DESIGNS", "MAX_GRID"]

FIG4_STRIDES = (4, 8, 16, 32)
FIG4_SCALES = (4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
# Fig. 7 anchor designs, each as the config overrides that define it (one place per knob: rfcn_face.config).
FIG7_DESIGNS = (
    ("baseline", {}),
    ("DC", {"model": {"arch": "DC"}}),
    ("DC+16x1", {"model": {"arch": "DC"}, "anchors": {"shifted": "16x1"}}),
    ("DC+16x3", {"model": {"arch": "DC"}, "anchors": {"shifted": "16x3"}}),
)


MAX_GRID = 5000      # Eq. 4 holds a grid x grid float64 matrix (three of them): 5000 -> 0.6 GB


def group_label(lo, hi) -> str:
    return f"{lo:g}-{hi:g}" if math.isfinite(hi) else f"{lo:g}+"


def fig4_rows(grid: int):
    from .emo import emo_square
    return [(l, s, emo_square(l, s, grid=grid)) for s in FIG4_STRIDES for l in FIG4_SCALES]


def fig7_anchor_sets():
    """{design name: AnchorSet}, each built from its config overrides."""
    from .config import config_from_dict
    return {name: config_from_dict(o, f"Fig. 7 {name}").anchor_set() for name, o in FIG7_DESIGNS}


def fig7_rows(table):
    from .emo import FACE_SCALE_GROUPS, group_average_max_iou
    cols = {name: group_average_max_iou(table.boxes, a) for name, a in fig7_anchor_sets().items()}
    rows = []
    for g, (lo, hi) in enumerate(FACE_SCALE_GROUPS):
        n = cols["baseline"][g][0]
        rows.append([group_label(lo, hi), n] + [cols[name][g][1] for name, _ in FIG7_DESIGNS])
    return rows


def eq2_rows():
    """Eq. 2 (general anchor set) for square faces, per Fig. 7 design: what the designs buy in expectation."""
    from .emo import expected_max_iou
    sets = list(fig7_anchor_sets().values())
    return [[l] + [expected_max_iou(l, l, a) for a in sets] for l in FIG4_SCALES]


def _write_csv(path: Path, header, rows):
    from .checkpoint import atomic_write_file

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for r in rows:
                w.writerow([f"{v:.6f}" if isinstance(v, float) else v for v in r])
    atomic_write_file(path, write)


def _plot_fig4(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in FIG4_STRIDES:
        pts = [(l, e) for l, ss, e in rows if ss == s]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"$s_A$ = {s}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("face scale l (px)")
    ax.set_ylabel("EMO (Eq. 4)")
    ax.set_title("Fig. 4: EMO vs face scale and anchor stride")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    from .checkpoint import save_figure
    save_figure(fig, path, 120)


def _plot_fig7(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    names = [n for n, _ in FIG7_DESIGNS]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        ax.bar(x + (k - (len(names) - 1) / 2) * width, [r[2 + k] for r in rows], width, label=name)
    ax.set_xticks(x, [f"{r[0]}\n(n={r[1]})" for r in rows], fontsize=8)
    ax.set_xlabel("face scale sqrt(w*h) (px)")
    ax.set_ylabel("average max IoU with anchors")
    ax.set_title("Fig. 7: average max IoU of real faces with the anchors")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from .checkpoint import save_figure
    save_figure(fig, path, 120)


def _table(title, header, rows) -> str:
    widths = [max(len(str(h)), 9) for h in header]
    lines = [title, "  ".join(str(h).rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join((f"{v:.4f}" if isinstance(v, float) else str(v)).rjust(w) for v, w in zip(r, widths))
              for r in rows]
    return "\n".join(lines) + "\n"


def _records(header, rows) -> list:
    """Table rows as JSON-ready dicts keyed by the CSV header (numpy scalars as Python numbers)."""
    return [{h: (v.item() if hasattr(v, "item") else v) for h, v in zip(header, r)} for r in rows]


def write_emo_analysis(out, annotations=None, grid: int = 2000, plots: bool = True, log=print) -> dict:
    """Write ``fig4_emo.csv``, ``fig7_avg_max_iou.csv``, ``eq2_emo_anchor_sets.csv`` (and the two PNGs) to ``out``
    for the faces of ``annotations`` (default: the packaged WIDER val face table); ``log`` gets the tables.
    Returns the summary (what ``emo --json`` writes): the folder, the face source and counts, the grid, the three
    tables as lists of rows keyed by their CSV headers, and the files written."""
    from .facetable import load_face_table
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if not 1 <= int(grid) <= MAX_GRID:
        raise ValueError(f"--grid must be in 1..{MAX_GRID}, got {grid}")
    table = load_face_table(annotations)
    usable = table.usable()
    if len(usable) == 0:
        raise ValueError(f"{table.source}: no face to analyse: {len(table)} row(s), none a valid face of positive "
                         "size (usable faces: 0)")
    out.mkdir(parents=True, exist_ok=True)
    log(f"faces: {len(usable)} usable of {len(table)} rows in {table.source} "
        f"(invalid and zero-size boxes left out)\n")

    f4 = fig4_rows(grid)
    _write_csv(out / "fig4_emo.csv", ["face_scale", "stride", "emo"], f4)
    by_scale = [[l] + [e for ll, s, e in f4 if ll == l] for l in FIG4_SCALES]
    log(_table("Fig. 4 — EMO (Eq. 4) of an l x l face, per anchor stride",
               ["face_scale"] + [f"sA={s}" for s in FIG4_STRIDES], by_scale))

    f7 = fig7_rows(usable)
    header7 = ["group", "n_faces"] + [n for n, _ in FIG7_DESIGNS]
    _write_csv(out / "fig7_avg_max_iou.csv", header7, f7)
    log(_table("Fig. 7 — average max IoU of real faces with the anchors, per face-scale group", header7, f7))

    e2 = eq2_rows()
    header2 = ["face_scale"] + [n for n, _ in FIG7_DESIGNS]
    _write_csv(out / "eq2_emo_anchor_sets.csv", header2, e2)
    log(_table("Eq. 2 — EMO of an l x l face against each full anchor set", header2, e2))

    if plots:
        _plot_fig4(f4, out / "fig4_emo.png")
        _plot_fig7(f7, out / "fig7_avg_max_iou.png")
    files = sorted(p.name for p in out.iterdir())
    log(f"wrote {', '.join(files)} to {out}")
    return {"out": str(out), "source": str(table.source), "faces": int(len(usable)), "rows": int(len(table)),
            "grid": int(grid), "fig4_emo": _records(["face_scale", "stride", "emo"], f4),
            "fig7_avg_max_iou": _records(header7, f7), "eq2_emo_anchor_sets": _records(header2, e2), "files": files}
