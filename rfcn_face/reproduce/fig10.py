"""Fig. 10, speed against accuracy: hard AP against the time per image measured here and against a FLOP-based
GPU estimate, from the test runs that share the Table 2 rows' training (``OUT/fig10.{png,md,json}``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from ..benchmarks import BENCHMARKS
from ..checkpoint import atomic_write_json, atomic_write_text
from .common import read_marker, test_dir_of
from .estimate import DEFAULT_GPU_TFLOPS, GPU_NAME, TYPICAL_IMAGE_HW
from .rows import Row

__all__ = ["SpeedPoint", "speed_accuracy", "fig10"]


@dataclass
class SpeedPoint:
    label: str                 # the test size(s)
    hard_ap: float
    ms_per_image: Optional[float]   # measured on the machine that ran the test
    gflops: float              # forward GFLOPs of a typical 1024 x 768 WIDER image at that size
    gpu_ms: float              # gflops / gpu_tflops: the FLOP-based GPU estimate


def speed_accuracy(points: Sequence[SpeedPoint], out_dir, gpu_tflops: float = DEFAULT_GPU_TFLOPS,
                   title: str = "Speed vs accuracy (Fig. 10)", stem: str = "fig10") -> dict:
    """Fig. 10: hard AP against ms/image measured here (bottom axis, circles) and against the FLOP-based GPU
    estimate (top axis, squares), ``OUT_DIR/fig10.png``, plus the table ``fig10.md`` / ``fig10.json``. Points
    are sorted by GFLOPs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out_dir = Path(out_dir)
    pts = sorted(points, key=lambda p: p.gflops)
    if not pts:
        raise ValueError("speed_accuracy: no test run to plot")
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    meas = [p for p in pts if p.ms_per_image]
    if meas:
        ax.plot([p.ms_per_image for p in meas], [p.hard_ap for p in meas], "o-", color="C0", lw=1.5,
                label="measured here (bottom axis)")
        for p in meas:
            ax.annotate(p.label, (p.ms_per_image, p.hard_ap), textcoords="offset points", xytext=(5, -10), fontsize=7,
                        color="C0")
    ax.set_xlabel("ms / image, measured on the machine that ran the tests")
    ax.set_ylabel("Hard AP")
    ax.grid(alpha=0.3)
    top = ax.twiny()
    top.plot([p.gpu_ms for p in pts], [p.hard_ap for p in pts], "s--", color="C3", lw=1.2,
             label=f"FLOP-based estimate, {GPU_NAME} at {gpu_tflops:g} TFLOP/s (top axis)")
    for p in pts:
        top.annotate(p.label, (p.gpu_ms, p.hard_ap), textcoords="offset points", xytext=(5, 5), fontsize=7, color="C3")
    top.set_xlabel(f"estimated ms / image on one {GPU_NAME} (GFLOPs / {gpu_tflops:g} TFLOP/s)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = top.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="lower right", fontsize=7)
    ax.set_title(title, fontsize=9, pad=28)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{stem}.png"
    from ..checkpoint import save_figure
    save_figure(fig, png, 110)
    doc = {"gpu": GPU_NAME, "gpu_tflops": gpu_tflops, "image_hw": list(TYPICAL_IMAGE_HW),
           "points": [asdict(p) for p in pts], "plot": str(png)}
    lines = [f"# {title}", "",
             f"Hard AP against the time per image measured on the machine that ran the tests, and a FLOP-based "
             f"estimate for one {GPU_NAME} (the paper's GPU, batch 1): forward GFLOPs of a "
             f"{TYPICAL_IMAGE_HW[1]}x{TYPICAL_IMAGE_HW[0]} WIDER image at that size / {gpu_tflops:g} TFLOP/s "
             "effective (convolution arithmetic only).", "",
             "| test size | hard AP | ms / image (measured) | GFLOPs / image | est. ms on GPU |",
             "| --- | --- | --- | --- | --- |"]
    for p in pts:
        lines.append(f"| {p.label} | {p.hard_ap:.3f} | {'—' if not p.ms_per_image else f'{p.ms_per_image:.0f}'} "
                     f"| {p.gflops:.0f} | {p.gpu_ms:.0f} |")
    atomic_write_text(out_dir / f"{stem}.md", "\n".join(lines) + "\n")
    atomic_write_json(out_dir / f"{stem}.json", doc)
    return doc


def fig10(all_rows: List[Row], out, gpu_tflops: float) -> Optional[dict]:
    """Fig. 10 from the tests that share the Table 2 rows' training (Table 2 sizes + the Final row itself)."""
    trains = {r.train_stem for r in all_rows if r.group == "2"}
    if not trains:
        return None
    pts, datasets = [], set()
    for r in all_rows:
        if r.train_stem not in trains:
            continue
        m = read_marker(test_dir_of(r, out))
        if not m or m["ap"].get("hard") is None:
            continue
        g = float(m["gflops_per_image"])
        pts.append(SpeedPoint(r.size_label, float(m["ap"]["hard"]), m.get("ms_per_image"), g, g / gpu_tflops))
        datasets.add(m["setup"]["dataset"])
    if not pts:
        return None
    names = sorted(datasets)
    one = BENCHMARKS.get_or_none(names[0]) if len(names) == 1 else None
    data = one.title if one is not None and one.paper_tables else " / ".join(names)
    return speed_accuracy(pts, out, gpu_tflops, title=f"Speed vs accuracy of the Final model (Fig. 10), {data}, Hard")
