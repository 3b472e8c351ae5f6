"""Time a full WIDER FACE val evaluation: the vectorised evaluator against references measured in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_wider_eval.py [--gt DIR] [--per-image 50]
                                                                      [--skip-reference] [--skip-port]

A random submission over the real val ground truth (>= 150,000 boxes, ~60 % of them jittered copies of
faces so that matches, duplicates and ignored faces occur, coordinates with one decimal, scores with three)
is written in the official folder layout and read back; then

* fast       — rfcn_face.evaluation.wider.evaluate_wider (3 settings);
* reference  — evaluate_wider_reference: the official protocol transcribed one prediction and one threshold
               at a time (same results, checked here);
* usual port — a per-image Python-loop port written after the widely used Python re-implementation of the
               eval_tools (per-prediction matching loop, per-threshold loop, float IoU, file order, no score
               filter, min/max started at 0/1): the "~65 s" baseline; its APs differ slightly from the
               official tool's, the difference is printed.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rfcn_face.evaluation.submission import read_submission, write_submission  # noqa: E402
from rfcn_face.evaluation.voc import voc_ap  # noqa: E402
from rfcn_face.evaluation.wider import (  # noqa: E402
    SETTINGS, WiderGroundTruth, align_predictions, evaluate_wider)
from rfcn_face.testing.synthetic_eval import random_predictions  # noqa: E402
from rfcn_face.testing.wider_reference import evaluate_wider_reference  # noqa: E402


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


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gt", default=str(REPO.parent / "shared" / "data" / "widerface" / "ground_truth"))
    ap.add_argument("--per-image", type=float, default=50.0, help="mean boxes per image")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--skip-port", action="store_true")
    args = ap.parse_args(argv)

    gt = WiderGroundTruth.load(args.gt)
    rng = np.random.default_rng(args.seed)
    preds = random_predictions(gt, rng, mean_per_image=args.per_image, decimals=1, missing_fraction=0.0)
    dets = {k: np.concatenate([p[:, :2], p[:, :2] + p[:, 2:4], p[:, 4:]], axis=1) for k, p in preds.items()}
    with tempfile.TemporaryDirectory() as tmp:
        write_submission(dets, tmp, gt.keys(), decimals=1, score_decimals=3)
        t0 = time.perf_counter()
        sub, warnings = read_submission(tmp, gt.keys())
        t_read = time.perf_counter() - t0
    n = sum(len(p) for p in sub.values())
    t0 = time.perf_counter()
    fast = evaluate_wider(sub, gt)
    t_fast = time.perf_counter() - t0
    print(f"submission: {len(gt)} images, {n} predictions, {len(warnings)} warnings")
    print(f"read submission folder : {t_read:7.2f} s")
    print(f"fast evaluate (3 sets) : {t_fast:7.2f} s   AP " + " / ".join(f"{fast.ap[s]:.6f}" for s in SETTINGS))
    print(f"fast read + evaluate   : {t_read + t_fast:7.2f} s")
    if not args.skip_reference:
        t0 = time.perf_counter()
        ref = evaluate_wider_reference(sub, gt, progress=True)
        t_ref = time.perf_counter() - t0
        same = max(abs(fast.ap[s] - ref.ap[s]) for s in SETTINGS)
        print(f"reference (slow)       : {t_ref:7.2f} s   ratio reference / fast = {t_ref / t_fast:6.1f}x"
              f"   max |AP diff| = {same:.1e}")
    if not args.skip_port:
        t0 = time.perf_counter()
        port = usual_port(align_predictions(sub, gt), gt)
        t_port = time.perf_counter() - t0
        print(f"usual Python port      : {t_port:7.2f} s   ratio port / fast = {t_port / t_fast:6.1f}x"
              f"   (port / fast incl. reading = {t_port / (t_fast + t_read):5.1f}x)")
        print("usual port AP - official AP: " + " / ".join(f"{port[s] - fast.ap[s]:+.2e}" for s in SETTINGS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
