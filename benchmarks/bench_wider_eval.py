"""Time a whole WIDER FACE val evaluation against today's code, the slow reference and the I/O / parse floor, all
measured in this run (no comparison time is written down anywhere).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_wider_eval.py [--gt DIR] [--per-image 40]
        [--old-tree PATH] [--repeat 5] [--ref-images 500] [--port]

Input: the packaged val ground truth (3,226 images, 39,708 faces) and a seeded synthetic submission at a real
detector's density (``--per-image``, default 40 boxes per image, ~129,000 in all; 60 % are jittered copies of
faces, so matches, duplicates and ignored faces occur), written in the official folder layout (coordinates
with one decimal, scores with three).

* whole run: ``python -m rfcn_face evaluate wider --pred DIR --gt DIR --json OUT`` in a fresh process each time;
  wall time, CPU time (user + system) and peak memory (``ru_maxrss`` of that process, read with
  ``getrusage(RUSAGE_CHILDREN)`` in a small launcher that ran only it). Ours with a warm ground-truth
  cache (the first, cold run builds the cache entry and is shown on its own line); ``--old-tree PATH`` (a
  checkout of the code to compare with, e.g. ``git worktree add ../old <commit>``) runs the same command with
  ``PYTHONPATH=PATH``. Beside them the whole-run floor: a fresh Python that imports numpy, reads the ground-truth
  arrays, every prediction file's bytes and parses all box lines with one ``np.loadtxt``. Runs alternate,
  ``--repeat`` each, medians; the APs and PR counts of the JSON files must be equal. Every timed process caches
  its bytecode (``PYTHONPYCACHEPREFIX`` in the run's temporary folder, one untimed run per tree first), as an
  installed package does, even where ``PYTHONDONTWRITEBYTECODE`` is set.
* in process (a fresh process of ours): ground truth from the cache, ``read_submission``, the value check and
  ``evaluate_wider``, against the floor measured in the same process: read every prediction file's bytes, parse
  all box lines with one ``np.loadtxt``, read the ground-truth cache entry (``np.load``). Goal: <= 1.5x the floor
  (wall time; the process-time ratio, less sensitive to other load on the machine, is printed too).
* reference: ``evaluate_wider_reference`` (the official loops, one prediction and one threshold at a time) on
  ``--ref-images`` images (0 = all; the whole set takes minutes) against ``evaluate_wider`` on the same images.
* ``--port``: a per-image loop port in the style of the widely used Python re-implementation (its APs differ
  slightly from the official tool's; the difference is printed).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _runs import RunStats, child_env, run_process  # noqa: E402  (benchmarks/)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rfcn_face.evaluation.submission import read_submission, write_submission  # noqa: E402
from rfcn_face.evaluation.voc import voc_ap  # noqa: E402
from rfcn_face.evaluation.wider import SETTINGS, WiderGroundTruth, align_predictions, evaluate_wider  # noqa: E402


# ---------------------------------------------------------------------------------------------- usual port
def _port_overlaps(pred_xyxy, gt_xyxy):
    """Float IoU with the +1 convention, the whole (predictions x faces) matrix at once (the usual port does
    this in a compiled helper, so it is vectorised here too)."""
    garea = (gt_xyxy[:, 2] - gt_xyxy[:, 0] + 1) * (gt_xyxy[:, 3] - gt_xyxy[:, 1] + 1)
    parea = (pred_xyxy[:, 2] - pred_xyxy[:, 0] + 1) * (pred_xyxy[:, 3] - pred_xyxy[:, 1] + 1)
    iw = np.minimum(gt_xyxy[None, :, 2], pred_xyxy[:, None, 2]) - np.maximum(gt_xyxy[None, :, 0], pred_xyxy[:, None, 0]) + 1
    ih = np.minimum(gt_xyxy[None, :, 3], pred_xyxy[:, None, 3]) - np.maximum(gt_xyxy[None, :, 1], pred_xyxy[:, None, 1]) + 1
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / (parea[:, None] + garea[None, :] - inter)


def usual_port(preds, gt: WiderGroundTruth, thresh_num=1000, iou_thresh=0.5):
    """APs by the usual Python port's semantics and loop structure (file order, float IoU, init 0/1)."""
    preds = [None if p is None else p.copy() for p in preds]
    hi, lo = 0.0, 1.0
    for p in preds:
        if p is not None and len(p):
            hi, lo = max(hi, p[:, 4].max()), min(lo, p[:, 4].min())
    for p in preds:
        if p is not None and len(p):
            p[:, 4] = (p[:, 4] - lo) / (hi - lo)
    aps = {}
    for s in SETTINGS:
        curve = np.zeros((thresh_num, 2))
        count_face = 0
        for j in range(len(gt)):
            g, p, keep = gt.boxes[j], preds[j], gt.keep[s][j]
            count_face += int(keep.sum())
            if len(g) == 0 or p is None or len(p) == 0:
                continue
            pb = p[:, :4].copy()
            pb[:, 2:] += pb[:, :2]
            gb = g.copy()
            gb[:, 2:] += gb[:, :2]
            ov = _port_overlaps(pb, gb)
            recall_list = np.zeros(len(g))
            proposal = np.ones(len(p))
            pred_recall = np.zeros(len(p))
            for h in range(len(p)):
                idx = ov[h].argmax()
                if ov[h, idx] >= iou_thresh:
                    if not keep[idx]:
                        recall_list[idx] = -1
                        proposal[h] = -1
                    elif recall_list[idx] == 0:
                        recall_list[idx] = 1
                pred_recall[h] = np.count_nonzero(recall_list == 1)
            for t in range(thresh_num):
                r = np.flatnonzero(p[:, 4] >= 1 - (t + 1) / thresh_num)
                if len(r):
                    curve[t, 0] += np.count_nonzero(proposal[:r[-1] + 1] == 1)
                    curve[t, 1] += pred_recall[r[-1]]
        with np.errstate(invalid="ignore", divide="ignore"):
            prec, rec = curve[:, 1] / curve[:, 0], curve[:, 1] / count_face
        aps[s] = voc_ap(rec, np.nan_to_num(prec))
    return aps


# ---------------------------------------------------------------------------------------------- whole runs
# the floor of a whole run, in a fresh process like the command: start Python, import numpy, read the ground-truth
# arrays (the cache entry: the image list), every prediction file's bytes, and parse all box lines with np.loadtxt
FLOOR = """
import io, sys
import numpy as np
pred, entry = sys.argv[1], sys.argv[2]
with np.load(entry) as z:
    a = {k: z[k] for k in z.files}
data = []
for e, n in zip(a["events"][a["event_index"]].tolist(), a["names"].tolist()):
    with open(f"{pred}/{e}/{n}.txt", "rb") as f:
        data.append(f.read())
np.loadtxt(io.BytesIO(b"".join(d.split(b"\\n", 2)[2] for d in data)), dtype=np.float64, ndmin=2)
"""


def run_cli(tree: Path, pred: Path, gt: str, out_json: Path, env_extra: dict):
    """One ``evaluate wider`` process: (wall seconds, peak RSS MB, CPU seconds, JSON result)."""
    wall, mb, cpu = run_process([sys.executable, "-m", "rfcn_face", "evaluate", "wider", "--pred", str(pred),
                                 "--gt", gt, "--json", str(out_json), "--quiet"], tree, child_env(tree, env_extra))
    return wall, mb, cpu, json.loads(out_json.read_text())


def same_result(a: dict, b: dict) -> bool:
    return all(a[s] == b[s] and a["curves"][s]["tp"] == b["curves"][s]["tp"]
               and a["curves"][s]["proposals"] == b["curves"][s]["proposals"] for s in SETTINGS)


# ---------------------------------------------------------------------------------------------- in process
def in_process(pred_dir: str, gt_dir: str, repeat: int) -> dict:
    """Ours against the floor, alternated in this process (medians). The cache entry must exist."""
    from rfcn_face.evaluation.cache import cache_file
    from rfcn_face.evaluation.submission import check_prediction_values
    from rfcn_face.evaluation.wider import GT_FILES
    entry = cache_file("wider_gt", [Path(gt_dir) / f for f in GT_FILES.values()])
    keys = WiderGroundTruth.load(gt_dir).keys()
    rows = {k: [] for k in ("gt", "read", "check", "evaluate", "ours", "floor_io", "floor_parse", "floor_gt", "floor",
                            "ours_cpu", "floor_cpu")}
    for _ in range(repeat):
        c0 = time.process_time()
        t0 = time.perf_counter()
        data = []
        for e, n in keys:
            with open(f"{pred_dir}/{e}/{n}.txt", "rb") as f:
                data.append(f.read())
        t1 = time.perf_counter()
        body = b"".join(d.split(b"\n", 2)[2] for d in data)          # every box line (after name and count)
        parsed = np.loadtxt(io.BytesIO(body), dtype=np.float64, ndmin=2)
        t2 = time.perf_counter()
        with np.load(entry) as z:
            _ = {k: z[k] for k in z.files}
        t3 = time.perf_counter()
        c3 = time.process_time()
        gt = WiderGroundTruth.load(gt_dir)
        t4 = time.perf_counter()
        preds, _ = read_submission(pred_dir, gt.keys())
        t5 = time.perf_counter()
        preds, _, _ = check_prediction_values(pred_dir, preds)
        t6 = time.perf_counter()
        evaluate_wider(preds, gt)
        t7 = time.perf_counter()
        c7 = time.process_time()
        for k, v in zip(rows, (t4 - t3, t5 - t4, t6 - t5, t7 - t6, t7 - t3, t1 - t0, t2 - t1, t3 - t2, t3 - t0,
                               c7 - c3, c3 - c0)):
            rows[k].append(v)
        del data, body, parsed
    out = {k: statistics.median(v) for k, v in rows.items()}
    out["boxes"] = len(preds.rows)
    return out


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gt", default=str(REPO.parent / "shared" / "data" / "widerface" / "ground_truth"))
    ap.add_argument("--per-image", type=float, default=40.0, help="mean boxes per image (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--old-tree", default=None, metavar="PATH",
                    help="checkout of the code to compare with (its `python -m rfcn_face evaluate wider` is timed)")
    ap.add_argument("--repeat", type=int, default=5, help="whole runs per tree and in-process repeats (medians)")
    ap.add_argument("--ref-images", type=int, default=500, help="images for the slow reference (0 = all)")
    ap.add_argument("--port", action="store_true", help="also time the usual-port loop (minutes)")
    ap.add_argument("--_in-process", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._in_process:
        print(json.dumps(in_process(args._in_process[0], args._in_process[1], int(args._in_process[2]))))
        return 0

    gt = WiderGroundTruth.load(args.gt, cache=False)
    rng = np.random.default_rng(args.seed)
    from rfcn_face.testing.synthetic_eval import random_predictions
    sub = random_predictions(gt, rng, mean_per_image=args.per_image, decimals=1, missing_fraction=0.0)
    dets = {k: np.concatenate([p[:, :2], p[:, :2] + p[:, 2:4], p[:, 4:]], axis=1) for k, p in sub.items()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pred = tmp / "pred"
        write_submission(dets, pred, gt.keys(), decimals=1, score_decimals=3)
        n_boxes = sum(len(p) for p in sub.values())
        print(f"submission: {len(gt)} images, {n_boxes} boxes ({n_boxes / len(gt):.1f} per image), "
              f"{sum(len(b) for b in gt.boxes)} faces; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}",
              flush=True)
        # this run's own cache (the first run is cold) and bytecode cache (warmed by one untimed run per tree)
        env = {"RFCN_FACE_CACHE": str(tmp / "cache"), "PYTHONPYCACHEPREFIX": str(tmp / "pycache")}

        cold, cold_mb, _, ours_json = run_cli(REPO, pred, args.gt, tmp / "cold.json", env)
        print(f"ours, cold cache (parses the .mat files, writes the entry): {cold:6.2f} s  {cold_mb:6.1f} MB",
              flush=True)
        from rfcn_face.evaluation.cache import cache_file
        from rfcn_face.evaluation.wider import GT_FILES
        entry = cache_file("wider_gt", [Path(args.gt) / f for f in GT_FILES.values()], root=tmp / "cache")
        trees = [("ours", REPO)] + ([("today", Path(args.old_tree).resolve())] if args.old_tree else [])
        for name, tree in trees[1:]:
            run_cli(tree, pred, args.gt, tmp / f"{name}.json", env)             # its bytecode, untimed
        stats = RunStats([name for name, _ in trees] + ["floor"])
        for r in range(args.repeat):
            for name, tree in (trees if r % 2 == 0 else trees[::-1]):
                wall, mb, c, res = run_cli(tree, pred, args.gt, tmp / f"{name}.json", env)
                stats.add(name, wall, mb, c)
                if not same_result(res, ours_json):
                    raise SystemExit(f"{name}: APs / PR counts differ from ours: "
                                     + ", ".join(f"{s} {res[s]!r} vs {ours_json[s]!r}" for s in SETTINGS))
            stats.add("floor", *run_process([sys.executable, "-c", FLOOR, str(pred), str(entry)], tmp,
                                            child_env(REPO, env)))
        med, med_cpu = stats.print_medians("evaluate wider", args.repeat)
        ratio = lambda a, b: f"{med[a] / med[b]:.2f}x wall, {med_cpu[a] / med_cpu[b]:.2f}x CPU"
        print(f"  (floor: a fresh Python that imports numpy, reads the ground-truth arrays and every prediction file, "
              f"and parses the box lines with np.loadtxt)\n  ours / floor = {ratio('ours', 'floor')}", flush=True)
        if args.old_tree:
            print(f"  today / ours = {ratio('today', 'ours')}   (today / floor = {ratio('today', 'floor')})",
                  flush=True)
            print("  APs and PR counts identical: " + " / ".join(f"{ours_json[s]:.6f}" for s in SETTINGS),
                  flush=True)

        child = subprocess.run([sys.executable, __file__, "--_in-process", str(pred), args.gt, str(args.repeat)],
                               env=dict(os.environ, PYTHONPATH=str(REPO), **env), capture_output=True, text=True,
                               check=True)
        ip = json.loads(child.stdout)
        print(f"in process, median of {args.repeat} (one fresh process; imports excluded):")
        print(f"  ours : ground truth (cache) {ip['gt']:.3f} s + read {ip['read']:.3f} s + check {ip['check']:.3f} s + "
              f"evaluate {ip['evaluate']:.3f} s = {ip['ours']:.3f} s")
        print(f"  floor: read bytes {ip['floor_io']:.3f} s + np.loadtxt of the box lines {ip['floor_parse']:.3f} s + "
              f"np.load of the ground truth {ip['floor_gt']:.3f} s = {ip['floor']:.3f} s")
        print(f"  ours / floor = {ip['ours'] / ip['floor']:.2f}x wall, {ip['ours_cpu'] / ip['floor_cpu']:.2f}x CPU "
              f"(process time: {ip['ours_cpu']:.3f} / {ip['floor_cpu']:.3f} s); I/O floor alone: {ip['floor_io']:.3f} s",
              flush=True)
        peak = max(stats.mem["ours"] + [cold_mb])
        print("done when: " + (f"whole run today / ours = {ratio('today', 'ours')} (goal >= 2.5), "
                               if args.old_tree else "") +
              f"in process / parse floor = {ip['ours'] / ip['floor']:.2f}x (goal <= 1.5), "
              f"peak {peak:.1f} MB (goal <= 130), APs identical"
              + (" to today's" if args.old_tree else " in every run"), flush=True)

        preds, _ = read_submission(pred, gt.keys())
        idx = np.arange(len(gt)) if args.ref_images <= 0 else np.sort(
            np.random.default_rng(args.seed + 1).choice(len(gt), min(args.ref_images, len(gt)), replace=False))
        sub_gt = gt.subset(idx)
        sub_preds = {k: preds[k] for k in sub_gt.keys() if k in preds}
        from rfcn_face.testing.wider_reference import evaluate_wider_reference
        t0 = time.perf_counter()
        ref = evaluate_wider_reference(sub_preds, sub_gt)
        t_ref = time.perf_counter() - t0
        fast_times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fast = evaluate_wider(sub_preds, sub_gt)
            fast_times.append(time.perf_counter() - t0)
        t_fast = statistics.median(fast_times)
        diff = max(abs(fast.ap[s] - ref.ap[s]) for s in SETTINGS)
        n_sub = sum(len(p) for p in sub_preds.values())
        print(f"slow reference on {len(sub_gt)} images ({n_sub} boxes): {t_ref:.2f} s "
              f"vs evaluate_wider {t_fast:.4f} s -> {t_ref / t_fast:.0f}x   max |AP diff| = {diff:.1e}", flush=True)

        if args.port:
            t0 = time.perf_counter()
            port = usual_port(align_predictions(preds, gt), gt)
            t_port = time.perf_counter() - t0
            print(f"usual Python port: {t_port:.2f} s -> port / ours in process = {t_port / ip['ours']:.0f}x; "
                  "port AP - official AP: " + " / ".join(f"{port[s] - ours_json[s]:+.2e}" for s in SETTINGS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
