"""The steps of a row — train, test (on the val split at the row's test size), plot — each skipped when its
output is complete, and the state they read: a run folder's newest checkpoint, a test folder's marker
(``OUT/tests/<row>/reproduce.json``: what the test was run on and its APs)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from ..benchmarks import get_benchmark
from ..benchmarks.base import fmt
from ..checkpoint import CONFIG_FILE, FINAL_PARAMS, atomic_write_json, newest_checkpoint, read_state
from ..evaluation.wider import SETTINGS
from .commands import launch_args, train_args
from .common import (MARKER, command_line, contexts_of, display_path, params_fingerprint, pr_png_of, read_marker,
                     run_dir_of, test_dir_of, val_dataset)
from .estimate import input_hw
from .rows import Row

__all__ = ["JobFailed", "train_status", "test_setup", "test_status", "ensure_trained", "ensure_tested",
           "ensure_plotted"]


class JobFailed(RuntimeError):
    """A training job under ``launch`` (``--workers``) exited non-zero; ``code`` is its exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = int(code) or 1


def train_status(run_dir, cfg, max_iters: int = 0) -> dict:
    """``{"status": done | partial | new, "iteration": n, "target": N or None}`` of a run folder (reads only
    ``state.json`` of its newest checkpoint). ``done`` = ``final.params`` written and the schedule (``train.epochs``
    x iterations per epoch, capped by ``max_iters``) reached."""
    run = Path(run_dir)
    if not (run / CONFIG_FILE).is_file():
        return {"status": "new", "iteration": 0, "target": None}
    ckpt = newest_checkpoint(run)
    if ckpt is None:
        return {"status": "partial", "iteration": 0, "target": None}
    st = read_state(ckpt)
    target = int(cfg.train.epochs) * int(st.get("iters_per_epoch", 0)) or None
    if target and max_iters > 0:
        target = min(target, int(max_iters))
    it = int(st["iteration"])
    done = (run / FINAL_PARAMS).is_file() and target is not None and it >= target
    return {"status": "done" if done else "partial", "iteration": it, "target": target,
            "schedule": int(cfg.train.epochs) * int(st.get("iters_per_epoch", 0)) or None}


def test_setup(row: Row, run_dir, opts) -> dict:
    """What a row's test marker must match for the test to count as done."""
    return {"run": str(Path(run_dir)), "params": params_fingerprint(run_dir), "sizes": [list(s) for s in row.sizes],
            "dataset": val_dataset(row.cfg), "data_root": str(row.cfg.data.root), "limit": int(opts.limit),
            "test_overrides": list(row.test_overrides)}


def test_status(row: Row, out, opts) -> dict:
    m = read_marker(test_dir_of(row, out))
    if m is None:
        return {"status": "new", "marker": None}
    ok = m.get("setup") == test_setup(row, run_dir_of(row, out), opts)
    return {"status": "done" if ok else "stale", "marker": m}


# library functions, not pytest tests
test_status.__test__ = test_setup.__test__ = False


def ensure_trained(row: Row, opts, log) -> dict:
    """Train ``row`` (the training row) unless its run reached its schedule; resumes a partial run."""
    run = run_dir_of(row, opts.out)
    st = train_status(run, row.cfg, opts.max_iters)
    if st["status"] == "done":
        log(f"[{row.id}] trained: {run} ({st['iteration']} iterations) — skipped")
        return st
    resume = st["status"] == "partial"
    log(f"[{row.id}] {'resuming' if resume else 'training'} {run}"
        + (f" from iteration {st['iteration']}" if resume else ""))
    if opts.workers:
        from ..launch import launch
        extra = [] if opts.progress else ["--no-progress"]
        rc = launch(train_args(row, opts, resume) + extra, workers=opts.workers, servers=opts.servers)
        if rc != 0:
            raise JobFailed(f"[{row.id}] the training job failed (exit {rc}): "
                            f"{command_line(launch_args(row, opts, resume) + extra)}", rc)
    else:
        from ..train import TrainOptions, train
        train(row.cfg, TrainOptions(out=str(run), contexts=contexts_of(opts), resume=resume, max_iters=opts.max_iters,
                                    checkpoint_every=opts.checkpoint_every, progress=opts.progress))
    st = train_status(run, row.cfg, opts.max_iters)
    if st["status"] != "done":
        raise RuntimeError(f"[{row.id}] training stopped at iteration {st['iteration']} of {st['target']}: {run}")
    return st


def ensure_tested(row: Row, opts, log, train_state: dict) -> dict:
    """Test ``row`` on the val split of its training data (WIDER val, synthfaces val) at its test size(s) unless
    its marker matches; returns the marker (setup, APs, ms per image)."""
    from .. import inference
    from ..detector import FaceDetector
    run, tdir = run_dir_of(row, opts.out), test_dir_of(row, opts.out)
    st = test_status(row, opts.out, opts)
    if st["status"] == "done":
        m = st["marker"]
        log(f"[{row.id}] tested: {tdir} (hard AP {fmt(m['ap'].get('hard'))}) — skipped")
        return m
    setup = test_setup(row, run, opts)
    log(f"[{row.id}] testing {run} on {setup['dataset']} at {row.size_label} -> {tdir}")
    det = FaceDetector.from_run(run, ctx=contexts_of(opts), overrides=tuple(row.test_overrides))
    det.timings.reset()
    count = [0]
    prev = st["marker"] or {}
    t0 = time.perf_counter()
    summary = inference.run_test(det, inference.TestOptions(
        dataset=setup["dataset"], out=str(tdir), data_root=str(row.cfg.data.root), sizes=row.sizes,
        limit=opts.limit, label=row.label, progress=opts.progress, replace_other=True),
        log=lambda s: None, on_image=lambda i: count.__setitem__(0, count[0] + 1))
    wall = time.perf_counter() - t0
    if summary["unreadable"]:
        raise ValueError(f"[{row.id}] {len(summary['unreadable'])} val image(s) could not be read, e.g. "
                         f"{summary['unreadable'][0]['image']}: {summary['unreadable'][0]['reason']}")
    t = det.timings
    ms = 1000.0 * (t.preprocess + t.forward + t.proposals + t.post) / count[0] if count[0] else prev.get("ms_per_image")
    ev = summary["evaluation"]
    ap = {s: (float(ev[s]) if ev.get(s) is not None else None) for s in SETTINGS}
    from symbols.flops import config_gflops
    marker = {"row": row.stem, "id": row.id, "group": row.group, "yaml": display_path(row.path), "label": row.label,
              "setup": setup, "ap": ap, "paper": row.paper, "images": summary["images"],
              "ms_per_image": ms, "ms_images": count[0] or prev.get("ms_images", 0), "wall_seconds": wall,
              "gflops_per_image": float(sum(config_gflops(row.cfg, *input_hw(s)) for s in row.sizes)),
              "iterations": train_state.get("iteration"), "schedule": train_state.get("schedule"),
              "preset": str(opts.preset), "overrides": list(opts.all_overrides()),
              "submission_problems": len(ev.get("submission_problems", [])), "notes": summary["notes"],
              "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_json(tdir / MARKER, marker)
    log(f"[{row.id}] {'; '.join(get_benchmark(setup['dataset']).summary_lines(ap))}"
        + (f"  ({ms:.0f} ms/image here)" if ms else ""))
    return marker


def ensure_plotted(row: Row, opts, marker: dict, log) -> Optional[Path]:
    """``OUT/pr/<row>.png``: the row's PR curves with the paper's published curve (ZCC) overlaid."""
    from ..evaluation.plots import plot_wider_pr
    from ..evaluation.wider import WiderResult
    from ..evaluation.published import paper_published_baseline
    png, tdir = pr_png_of(row, opts.out), test_dir_of(row, opts.out)
    ev_json = tdir / "wider_eval.json"
    if not ev_json.is_file():
        log(f"[{row.id}] no evaluation (no ground truth): no PR plot")
        return None
    if png.is_file() and png.stat().st_mtime_ns >= (tdir / MARKER).stat().st_mtime_ns:
        return png
    r = WiderResult.from_json(json.loads(ev_json.read_text()))
    pr = {s: (r.precision[s], r.recall[s]) for s in r.ap}
    title = get_benchmark(marker["setup"]["dataset"]).pr_title
    legend = f"ours: {row.label}" + ("" if row.group == "2" else f" @ {row.size_label}")
    plot_wider_pr(png, pr, legend, [paper_published_baseline()], title=title)
    return png
