"""Benchmark: full FDDB evaluation (2,845 images) on simulated detections; slow reference on a subset; the
ellipse regressor's effect (raw rectangles vs regressed ellipses, 10-fold cross-validated).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fddb_eval.py [--fddb ../shared/data/fddb] [--ref-images 60]

Simulated detections: per face a detector-like box (the ellipse's bounding box shrunk vertically, shifted,
with noise; score 0.45-1) and per image 0-8 background boxes with scores 0-0.55.
"""
import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from rfcn_face.datasets.fddb import read_fddb  # noqa: E402
from rfcn_face.evaluation import ellipse as E  # noqa: E402
from rfcn_face.evaluation import fddb as F  # noqa: E402
from rfcn_face.evaluation import fddb_format as FF  # noqa: E402
from rfcn_face.testing import synthetic_eval as SE  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fddb", default=str(ROOT.parent / "shared" / "data" / "fddb"))
    ap.add_argument("--ref-images", type=int, default=60, help="images for the slow reference timing")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    fddb = Path(args.fddb)
    recs = read_fddb(fddb / "FDDB-folds", sizes_file=fddb / "FDDB-image-sizes.txt")
    rng = np.random.default_rng(args.seed)
    dets = SE.simulate_rect_detections(recs, rng, max_false=8)
    n_det = sum(len(d.dets) for d in dets)
    print(f"{len(recs)} images, {sum(len(r.ellipses) for r in recs)} faces, {n_det} simulated detections")

    t = time.perf_counter()
    res = F.evaluate_fddb(recs, dets)
    t_fast = time.perf_counter() - t
    d, c = F.tpr_at_fp(res)
    print(f"fast evaluation (rectangles): {t_fast:.2f} s   TPR@1000FP discrete {d:.4f} continuous {c:.4f}")

    from rfcn_face.testing.fddb_reference import reference_evaluate
    sub = slice(0, args.ref_images)
    sub_dets = [FF.FddbImageDets(x.name, x.kind, x.dets[np.argsort(-x.dets[:, 4])][:6]) for x in dets[sub]]
    t = time.perf_counter()
    reference_evaluate(recs[sub], sub_dets)
    t_ref = (time.perf_counter() - t) / args.ref_images
    t = time.perf_counter()
    F.evaluate_fddb(recs[sub], sub_dets)
    t_fast_sub = (time.perf_counter() - t) / args.ref_images
    print(f"slow reference (full-image masks, exhaustive matching; {args.ref_images} images, <= 6 dets each): "
          f"{1e3 * t_ref:.1f} ms/image vs fast {1e3 * t_fast_sub:.2f} ms/image -> {t_ref / t_fast_sub:.0f}x; "
          f"reference extrapolated to the full set >= {t_ref * len(recs):.0f} s")
    print(f"target: official C++ ~9 s here -> within 2x = 18 s; fast path {t_fast:.2f} s ({t_fast / 9:.2f}x of 9 s)")

    t = time.perf_counter()
    model = E.fit_cross_validated(recs, dets)
    reg_dets = E.apply_to_detections(model, recs, dets)
    t_fit = time.perf_counter() - t
    reg = F.evaluate_fddb(recs, reg_dets)
    rd, rc = F.tpr_at_fp(reg)
    print(f"ellipse regressor (10-fold CV, {sum(model['pairs'].values())} matched pairs, fit+apply {t_fit:.1f} s):")
    print(f"  rectangles      : discrete {d:.4f}  continuous {c:.4f}  (TPR at 1000 FP)")
    print(f"  ellipses (CV)   : discrete {rd:.4f}  continuous {rc:.4f}")


if __name__ == "__main__":
    main()
