"""The main job (``make demo``): train Baseline and Final on the embedded data and show the paper's effect.

Two detectors are trained with the project's own training loop and the ``demo`` preset
(``experiments/presets/demo.yaml``: ResNet-18, random init, synthfaces, a CPU budget): **Baseline**
(Table 1 row 1, ``experiments/table1/01_baseline.yaml``) and **Final** (row 13, DC+16x3+SJ+HC(5),
``experiments/table1/13_final.yaml``) — same seed, same iterations, same data; they differ only in the paper's
knobs. Both are tested on the val split with the project's test pipeline (:func:`rfcn_face.inference.run_test`)
and scored with the WIDER evaluator, then compared:

``OUT/results.json``     AP (easy / medium / hard) of both, recall at IoU 0.5 per face-size group (Fig. S1, hard
                         setting), the ground-truth folder, iterations, seconds
``OUT/<model>/run/``     the training run; ``OUT/<model>/test/`` the test run; ``OUT/<model>/wider_pred/`` the
                         detections as a WIDER submission folder (re-score them with any evaluator)
``OUT/table1.md``        our two rows beside the paper's Table 1 rows (direction only: synthetic data, CPU minutes)
``OUT/pr_hard.png``      PR curves of both (hard); ``OUT/recall_by_scale.png`` (Fig. S1);
``OUT/fig7_val.png``     average max IoU per face scale of the two anchor designs on the val faces (Fig. 7);
``OUT/detections.png``   one val image with both models' detections side by side;
``OUT/emo/``             the EMO analysis (Fig. 4, Fig. 7 on the packaged WIDER val faces)

Every step is skipped when its output is complete, and the training runs resume, so an interrupted demo continues
where it stopped.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .checkpoint import (CONFIG_FILE, FINAL_PARAMS, METRICS_FILE, atomic_write_dir, atomic_write_json,
                         atomic_write_text, newest_checkpoint, read_state, save_figure)

__all__ = ["DemoOptions", "MODELS", "QUICK_ITERS", "run_demo", "demo_configs", "estimate_seconds"]

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"baseline": ROOT / "experiments" / "table1" / "01_baseline.yaml",
          "final": ROOT / "experiments" / "table1" / "13_final.yaml"}
LABELS = {"baseline": "Baseline", "final": "Final (DC+16x3+SJ+HC(5))"}
QUICK_ITERS = 6
QUICK_VAL_IMAGES = 12
# seconds per training iteration of the demo preset on a 2-core CPU (measured: the s_per_iter of make demo's runs)
SECONDS_PER_ITER = {"baseline": 0.085, "final": 0.125}


@dataclass
class DemoOptions:
    out: str = "outputs/demo"
    data: Optional[str] = None          # a WIDER-layout root (default: the embedded synthfaces set)
    pretrained: Optional[str] = None    # an ImageNet ResNet-18 checkpoint (default: random init)
    preset: str = "demo"
    quick: bool = False                 # a handful of iterations, a few val images (CI smoke test)
    progress: bool = True


def _data_overrides(data: Optional[str]) -> tuple:
    """Config overrides for ``--data``: a synthfaces root (has ``synthfaces.json``) or a WIDER-layout root."""
    if data is None:
        return ()
    root = Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: folder not found")
    from .datasets.synthfaces import find_synthfaces
    if find_synthfaces(root) is not None:
        return ("data.dataset=synthfaces", f"data.root={root}")
    from .datasets.wider import wider_base
    base = wider_base(root)
    if not (base / "wider_face_split").is_dir():
        raise FileNotFoundError(f"--data {root}: not a WIDER-layout root (no wider_face_split/ in {root} or "
                                f"{root / 'widerface'}; see data/README.md)")
    return ("data.dataset=wider", f"data.root={root}")


# With --pretrained the backbone is the ImageNet network: full width, trained as R-FCN does (conv1 / res2 and the
# BatchNorms fixed) instead of the random-init settings of the demo preset.
PRETRAINED_OVERRIDES = ("model.width=1.0", "model.zero_init_residual=false", "train.freeze=rfcn")


def _row_config(row, opts: DemoOptions):
    """One row's config under the demo preset (and ``--data`` / ``--pretrained``)."""
    from .config import load_config, with_pretrained
    over = _data_overrides(opts.data) + (PRETRAINED_OVERRIDES if opts.pretrained else ())
    return with_pretrained(load_config(row, preset=opts.preset, overrides=over), opts.pretrained)


def demo_configs(opts: DemoOptions) -> dict:
    """``{model: Config}`` of the two demo detectors (the ``demo`` preset under rows 1 and 13)."""
    if opts.pretrained and not Path(opts.pretrained).is_file():
        raise FileNotFoundError(f"--pretrained {opts.pretrained}: file not found (an ImageNet ResNet-18 .params "
                                "checkpoint; nothing is downloaded)")
    return {m: _row_config(row, opts) for m, row in MODELS.items()}


def _train_images(cfg) -> int:
    from .datasets.loader import records_for_split
    return len(records_for_split(cfg, cfg.data.train_split))


def estimate_seconds(iters: int, val_images: int) -> float:
    """Rough wall time of the demo on this machine: training, testing both models, the plots and EMO."""
    return iters * sum(SECONDS_PER_ITER.values()) + 2 * val_images * 0.06 + 20.0


def _trained(run_dir: Path, iters: int) -> bool:
    ckpt = newest_checkpoint(run_dir)
    return (run_dir / FINAL_PARAMS).is_file() and ckpt is not None and read_state(ckpt)["iteration"] >= iters


def _val_set(cfg):
    """(the benchmark of the val split of the training data (:func:`rfcn_face.benchmarks.val_benchmark`), data
    root, ground-truth folder)."""
    from .benchmarks import val_benchmark
    from .datasets.loader import data_base
    base = data_base(cfg)
    return val_benchmark(cfg.data.dataset), base, base / "ground_truth"


# ------------------------------------------------------------------------------------------------ figures
def _plot_pr(path, curves, val_name: str):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for label, (p, r, ap) in curves.items():
        ax.plot(r, p, lw=2, label=f"{label} (AP {ap:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(f"{val_name}, hard setting (WIDER protocol)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    save_figure(fig, path, 110)


def _plot_bars(path, groups, series: dict, ylabel: str, title: str, counts=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = np.arange(len(groups))
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    w = 0.8 / len(series)
    for k, (label, vals) in enumerate(series.items()):
        v = np.asarray([np.nan if a is None else a for a in vals], dtype=np.float64)
        ax.bar(x + (k - (len(series) - 1) / 2) * w, np.nan_to_num(v), w, label=label)
    ticks = groups if counts is None else [f"{g}\n(n={n})" for g, n in zip(groups, counts)]
    ax.set_xticks(x, ticks, fontsize=8)
    ax.set_xlabel("face size sqrt(w*h) (px)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, 110)


def _side_by_side(path, record, dets: dict):
    """One val image, twice magnified: ground truth (green) and, per model, its k best detections (red), k = the
    number of annotated faces (the scores of the demo's detectors are low in absolute terms; their ranking is
    what the AP measures)."""
    import cv2
    from .datasets.loader import load_image
    img = load_image(record.image_path)
    k = len(record.boxes)
    tiles = []
    for label, p in dets.items():
        t = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_NEAREST).copy()
        for b in record.boxes:
            x1, y1, x2, y2 = (2 * b).astype(int)
            cv2.rectangle(t, (x1, y1), (x2 - 1, y2 - 1), (0, 200, 0), 1)
        p = np.asarray(p).reshape(-1, 5)
        for x, y, w, h, _ in p[np.argsort(-p[:, 4], kind="stable")][:k]:
            cv2.rectangle(t, (int(2 * x), int(2 * y)), (int(2 * (x + w)) - 1, int(2 * (y + h)) - 1), (230, 30, 30), 1)
        cv2.putText(t, f"{label}: best {k} detections (red), faces (green)", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(t)
    cv2.imwrite(str(path), np.hstack(tiles)[:, :, ::-1])


def _table1_md(path, cfgs, ap, iters, bench):
    lines = ["# Table 1, two rows: this demo beside the paper",
             "",
             f"Ours: ResNet-18 ({'random init' if not cfgs['final'].model.pretrained else 'ImageNet init'}) trained "
             f"{iters} iterations on {bench.trained_on} on a CPU, tested on its val split with "
             "the WIDER protocol. The paper: ResNet-101 on WIDER FACE train, 8 epochs on GPUs, WIDER FACE val. The "
             "numbers are **not comparable in value, only in direction** (Final above Baseline, most on Hard).",
             "",
             "| row | ours easy | ours medium | ours hard | paper easy | paper medium | paper hard |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in MODELS:
        p = cfgs[m].paper
        f = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
        lines.append(f"| {LABELS[m]} | {ap[m]['easy']:.3f} | {ap[m]['medium']:.3f} | {ap[m]['hard']:.3f} | "
                     f"{f(p.easy)} | {f(p.medium)} | {f(p.hard)} |")
    atomic_write_text(path, "\n".join(lines) + "\n")


def _fig7_val(gt, cfgs):
    """Average max IoU of the val faces (hard setting) with each design's anchors, per face-size group."""
    from .boxes import xywh_to_xyxy
    from .emo import group_average_max_iou
    from .evaluation.recall import SCALE_EDGES, scale_group_labels
    boxes = np.concatenate([b[k] for b, k in zip(gt.boxes, gt.keep["hard"])], axis=0)
    xyxy = xywh_to_xyxy(boxes)
    groups = list(zip(SCALE_EDGES[:-1], SCALE_EDGES[1:]))
    out = {}
    for m, cfg in cfgs.items():
        rows = group_average_max_iou(xyxy, cfg.anchor_set(), groups=groups)
        out[m] = [None if n == 0 else float(v) for n, v in rows]
        counts = [int(n) for n, _ in rows]
    return scale_group_labels(), out, counts


# ------------------------------------------------------------------------------------------------ the job
def _train_and_test(name, cfg, folder: Path, iters: int, dataset: str, data_root, limit: int, progress: bool,
                    log):
    """Train ``cfg`` into ``folder/run`` (resuming; skipped when done), test it on the val split into
    ``folder/test`` (the test cache makes a rerun cheap) and copy the submission folder to ``folder/wider_pred``;
    returns that folder and the test step's evaluation (:class:`WiderResult`)."""
    from . import inference
    from .detector import FaceDetector
    from .train import TrainOptions, train
    run_dir = folder / "run"
    if _trained(run_dir, iters):
        log(f"[{name}] trained ({run_dir})")
    else:
        resume = (run_dir / CONFIG_FILE).is_file()
        log(f"[{name}] {'resuming' if resume else 'training'} {run_dir}")
        train(cfg, TrainOptions(out=str(run_dir), max_iters=iters, resume=resume, progress=progress,
                                log_every=10, keep_checkpoints=2))
    test_dir = folder / "test"
    det = FaceDetector.from_run(run_dir)
    summary = inference.run_test(det, inference.TestOptions(dataset=dataset, out=str(test_dir),
                                                             data_root=str(data_root), limit=limit,
                                                             label=LABELS.get(name, name), progress=progress,
                                                             replace_other=True),
                                 log=lambda s: None)
    if summary["unreadable"]:
        raise ValueError(f"[{name}] {len(summary['unreadable'])} val images could not be read, e.g. "
                         f"{summary['unreadable'][0]['image']}")
    src = test_dir / "predictions"
    atomic_write_dir(folder / "wider_pred", lambda tmp: shutil.copytree(src, tmp, dirs_exist_ok=True),
                     prefix=".wider_pred-")
    return folder / "wider_pred", _test_evaluation(test_dir)


def _test_evaluation(test_dir: Path):
    """The WIDER evaluation the test step wrote (``wider_eval.json``) as a :class:`WiderResult`."""
    from .evaluation.wider import WiderResult
    path = test_dir / "wider_eval.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the test step wrote no evaluation (no ground truth for the val split?)")
    return WiderResult.from_json(json.loads(path.read_text()))


def _val_ground_truth(gt_dir: Path, records):
    """The val ground truth of the tested images (``records``: ``--quick`` tests the first few)."""
    from .evaluation.wider import WiderGroundTruth
    gt = WiderGroundTruth.load(gt_dir)
    want = {(r.event, r.name) for r in records}
    return gt if len(want) == len(gt) else gt.subset([i for i, k in enumerate(gt.keys()) if k in want])


def _schedule(opts, cfg) -> int:
    """Iterations of every demo model: the preset's whole schedule (``QUICK_ITERS`` with ``--quick``)."""
    if opts.quick:
        return QUICK_ITERS
    return int(cfg.train.epochs) * (_train_images(cfg) // int(cfg.train.batch_images))


def run_demo(opts: DemoOptions, log=None) -> dict:
    """Run (or continue) the demo; returns the content of ``results.json``. Messages go to ``log`` (default: the
    project's logger) and ``OUT/log.txt``."""
    from .logs import get_logger, run_log
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is a file, not a folder")
    cfgs = demo_configs(opts)                 # bad --data / --pretrained / --preset fail before anything is written
    out.mkdir(parents=True, exist_ok=True)
    with run_log(out):
        return _run_demo(opts, cfgs, log or get_logger().info)


def _run_demo(opts: DemoOptions, cfgs: dict, log) -> dict:
    from .evaluation.recall import recall_by_scale
    from .evaluation.submission import read_submission

    t_start = time.time()
    out = Path(opts.out)
    n_train = _train_images(cfgs["final"])
    iters = _schedule(opts, cfgs["final"])
    bench, data_root, gt_dir = _val_set(cfgs["final"])
    val_name = bench.title
    limit = QUICK_VAL_IMAGES if opts.quick else 0
    records = bench.load(data_root, limit).records      # the val images tested
    n_val = len(records)
    state_path = out / "state.json"
    state = json.loads(state_path.read_text()) if state_path.is_file() else {"seconds": 0.0}
    log(f"demo: train Baseline (Table 1 row 1) and Final (row 13, DC+16x3+SJ+HC(5)) on {cfgs['final'].data.dataset} "
        f"({n_train} train images, ResNet-{cfgs['final'].model.depth}, "
        f"{'random init' if not cfgs['final'].model.pretrained else cfgs['final'].model.pretrained}), {iters} "
        f"iterations each, same seed and data; test both on {n_val} val images; write {out}/")
    log(f"estimated time on a 2-core CPU: about {estimate_seconds(iters, n_val) / 60:.0f} min "
        "(finished steps are not redone when the demo is run again)")

    ap, preds_dir, evals = {}, {}, {}
    for m, cfg in cfgs.items():
        preds_dir[m], evals[m] = _train_and_test(m, cfg, out / m, iters, bench.name, data_root, limit, opts.progress,
                                                 log)

    gt = _val_ground_truth(gt_dir, records)
    curves, recall = {}, {}
    for m in cfgs:
        preds, _ = read_submission(preds_dir[m], gt.keys())
        r = evals[m]
        ap[m] = {s: float(r.ap[s]) for s in ("easy", "medium", "hard")}
        curves[LABELS[m]] = (r.precision["hard"], r.recall["hard"], r.ap["hard"])
        recall[m] = recall_by_scale(preds, gt, "hard")
        log(f"[{m}] AP easy {ap[m]['easy']:.4f}  medium {ap[m]['medium']:.4f}  hard {ap[m]['hard']:.4f}; recall "
            f"below 16 px {recall[m].below(16):.3f}")
    groups = recall["final"].groups
    _plot_pr(out / "pr_hard.png", curves, val_name)
    _plot_bars(out / "recall_by_scale.png", groups, {LABELS[m]: recall[m].to_json()["recall"] for m in cfgs},
               "recall at IoU 0.5", f"Recall per face scale (Fig. S1), {val_name}", recall["final"].faces)
    fig7_groups, fig7, counts = _fig7_val(gt, cfgs)
    _plot_bars(out / "fig7_val.png", fig7_groups, {LABELS[m]: fig7[m] for m in cfgs}, "average max IoU with anchors",
               "Fig. 7 on the val faces: the two anchor designs", counts)
    tiny = [int(np.sum(np.sqrt(np.prod(r.boxes[:, 2:] - r.boxes[:, :2], axis=1)) < 16)) for r in records]
    pick = records[int(np.argmax(tiny))]
    dets = {LABELS[m]: read_submission(preds_dir[m], [(pick.event, pick.name)])[0].get((pick.event, pick.name),
                                                                                       np.zeros((0, 5)))
            for m in cfgs}
    _side_by_side(out / "detections.png", pick, dets)
    _table1_md(out / "table1.md", cfgs, ap, iters, bench)
    if not (out / "emo" / "fig7_avg_max_iou.png").is_file():
        from .emo_analysis import write_emo_analysis
        write_emo_analysis(out / "emo", log=lambda s: None)
    state["seconds"] = float(state["seconds"]) + (time.time() - t_start)
    atomic_write_json(state_path, state, indent=None)
    results = {"baseline": ap["baseline"], "final": ap["final"],
               "recall_by_scale": {"groups": groups, "baseline": recall["baseline"].to_json()["recall"],
                                   "final": recall["final"].to_json()["recall"],
                                   "faces": [int(v) for v in recall["final"].faces],
                                   "below_16": {m: recall[m].below(16) for m in cfgs}, "iou": 0.5,
                                   "setting": "hard"},
               "fig7_val_avg_max_iou": {"groups": fig7_groups, **fig7},
               "gt_dir": str(gt_dir), "iterations": iters, "seconds": round(state["seconds"], 1),
               "quick": bool(opts.quick), "val_images": len(gt)}
    atomic_write_json(out / "results.json", results)
    return results


# ------------------------------------------------------------------------------------------------ ablation
MINING_ROWS = ROOT / "experiments" / "mining"


def _matched_per_face(run_dir: Path) -> float:
    """Mean of ``matched_per_face`` (positive anchors per face before sampling, HAMBox Fig. 1(a)) over the last
    epoch's logged iterations of a run."""
    rows = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines() if line.strip()]
    if not rows:
        return float("nan")
    last = max(r["epoch"] for r in rows)
    vals = [r["matched_per_face"] for r in rows if r["epoch"] == last and r["matched_per_face"] is not None
            and np.isfinite(r["matched_per_face"])]
    return float(np.mean(vals)) if vals else float("nan")


def hard_ratios(table: dict) -> dict:
    """Per row of an ablation table (``{name: {"hard", "loss", ...}}``): hard AP ÷ its Table 1 row (``baseline`` or
    ``final``, by the name's prefix) and ÷ its same-loss control (the Table 1 row for a ``softmax`` row,
    ``<baseline|final>_focal`` for a ``focal`` one; None when that row is not in the table). A zero denominator
    gives NaN."""
    def ratio(a, b):
        return a / b if b > 0 else float("nan")
    out = {}
    for name, t in table.items():
        base = "final" if name.startswith("final") else "baseline"
        ctrl = base if t["loss"] == "softmax" else f"{base}_focal"
        out[name] = {"vs_table1": ratio(t["hard"], table[base]["hard"]) if base in table else None,
                     "vs_same_loss": ratio(t["hard"], table[ctrl]["hard"]) if ctrl in table else None}
    return out


def run_ablation(opts: DemoOptions, log=None, rows=None) -> dict:
    """``demo --ablation``: the ``experiments/mining/*.yaml`` rows (HAMBox, cleanliness, the K x T grid; ``rows``:
    only these names, default all) trained with the demo budget, beside Baseline and Final: AP, recall below 16 px,
    matched anchors per face. Writes ``OUT/ablation.md`` and ``OUT/ablation.json``; reuses the demo's Baseline /
    Final runs in ``OUT``."""
    from .evaluation.recall import recall_by_scale
    from .evaluation.submission import read_submission
    from .logs import get_logger, run_log
    log = log or get_logger().info
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    with run_log(out):
        paths = {p.stem: p for p in sorted(MINING_ROWS.glob("*.yaml"))}
        if not paths:
            raise FileNotFoundError(f"no mining rows in {MINING_ROWS}")
        unknown = sorted(set(rows or ()) - set(paths))
        if unknown:
            raise ValueError(f"--rows: no mining row {', '.join(unknown)} in {MINING_ROWS} (rows: {', '.join(paths)})")
        cfgs = dict(demo_configs(opts))
        cfgs.update({name: _row_config(path, opts) for name, path in paths.items() if not rows or name in rows})
        iters = _schedule(opts, cfgs["final"])
        bench, data_root, gt_dir = _val_set(cfgs["final"])
        limit = QUICK_VAL_IMAGES if opts.quick else 0
        log(f"ablation: {len(cfgs)} rows ({', '.join(cfgs)}) x {iters} iterations with the {opts.preset} preset; about "
            f"{len(cfgs) * iters * SECONDS_PER_ITER['final'] / 60:.0f} min on a 2-core CPU")
        gt = _val_ground_truth(gt_dir, bench.load(data_root, limit).records)
        table = {}
        for name, cfg in cfgs.items():
            folder = out / name if name in MODELS else out / "ablation" / name
            pred, r = _train_and_test(name, cfg, folder, iters, bench.name, data_root, limit, opts.progress, log)
            preds, _ = read_submission(pred, gt.keys())
            table[name] = {"strategy": cfg.rpn.assign["type"], "loss": cfg.rpn.cls_loss,
                           "arch": cfg.model.arch, "easy": float(r.ap["easy"]), "medium": float(r.ap["medium"]),
                           "hard": float(r.ap["hard"]), "recall_below_16": recall_by_scale(preds, gt).below(16),
                           "matched_per_face": _matched_per_face(folder / "run"), "run": str(folder / "run")}
            log(f"[{name}] hard AP {table[name]['hard']:.4f}, recall < 16 px {table[name]['recall_below_16']:.3f}, "
                f"matched anchors per face {table[name]['matched_per_face']:.2f}")
        lines = [f"# Anchor-mining ablation on {bench.title} (demo budget)", "",
                 f"ResNet-18 from random init, {iters} iterations per row, the `{opts.preset}` preset; WIDER protocol "
                 "on the val split. Matched anchors per face: positive anchors per face before sampling, averaged over "
                 "the last epoch (HAMBox Fig. 1(a)).", "",
                 "Hard ÷: the row's hard AP over its Table 1 row's (baseline / final) and over its same-loss control "
                 "(the Table 1 row for the sampled softmax, `baseline_focal` / `final_focal` for the dense focal "
                 "loss).", "",
                 "| row | strategy | RPN loss | arch | easy | medium | hard | recall < 16 px | matched / face | "
                 "hard ÷ Table 1 row | hard ÷ same-loss control |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
        for name, r in hard_ratios(table).items():
            t = table[name]
            t["hard_vs_table1"], t["hard_vs_same_loss"] = r["vs_table1"], r["vs_same_loss"]
            lines.append(f"| {name} | {t['strategy']} | {t['loss']} | {t['arch']} | {t['easy']:.3f} | "
                         f"{t['medium']:.3f} | {t['hard']:.3f} | {t['recall_below_16']:.3f} | "
                         f"{t['matched_per_face']:.2f} | {fmt(r['vs_table1'])} | {fmt(r['vs_same_loss'])} |")
        atomic_write_text(out / "ablation.md", "\n".join(lines) + "\n")
        res = {"rows": table, "iterations": iters, "preset": opts.preset, "gt_dir": str(gt_dir)}
        atomic_write_json(out / "ablation.json", res)
        return res
