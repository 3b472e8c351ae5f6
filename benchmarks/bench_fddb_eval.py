"""Time a whole FDDB evaluation against today's code, the slow reference and the read floor, all measured in this
run; the ROC files must be the same bytes.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_fddb_eval.py [--fddb ../shared/data/fddb]
        [--old-tree PATH] [--max-false 8,76] [--repeat 5] [--ref-images 60] [--regressor]

Input: the shared FDDB folds (2,845 images, 5,171 faces) with their image sizes, and seeded simulated
rectangle detections (:func:`rfcn_face.testing.synthetic_eval.simulate_rect_detections`): per face a
detector-like box (the ellipse's bounding box shrunk vertically, shifted, with noise; score 0.45-1) plus 0 to
``--max-false`` background boxes per image (score 0-0.55). One set per value of ``--max-false``: 8 gives
~6 boxes per image (the density of published FDDB result files), 76 ~40 per image.

* whole run: ``python -m rfcn_face evaluate fddb --dets F --folds DIR --sizes F --out PREFIX`` in a fresh process
  each time (wall time; CPU time, user + system; peak memory = ``ru_maxrss`` of that process, read with
  ``getrusage(RUSAGE_CHILDREN)`` in a small launcher); ``--old-tree PATH`` (a checkout of the code to compare
  with) runs the same command with ``PYTHONPATH=PATH``; beside them the whole-run floor (a fresh Python that
  imports numpy, reads the files and parses their number lines with ``np.loadtxt``); runs alternate,
  ``--repeat`` each, medians; every run's ``DiscROC.txt`` / ``ContROC.txt`` must be byte-identical to ours.
  Bytecode is cached (``PYTHONPYCACHEPREFIX`` in the run's temporary folder, one untimed run per tree first)
  as for an installed package.
* in process (this process): reading the folds, reading the detections, ``evaluate_fddb``; the read floor in
  the same process is reading the files' bytes and parsing their number lines with one ``np.loadtxt``.
* reference: the slow, obvious reference (full-image masks, exhaustive matching) on ``--ref-images`` images
  with at most 6 detections each, against ``evaluate_fddb`` on the same images.
* ``--regressor``: the box -> ellipse regressor's effect (10-fold cross-validated) on the first set.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _runs import RunStats, child_env, run_process  # noqa: E402  (benchmarks/)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rfcn_face.datasets.fddb import load_fddb_gt  # noqa: E402
from rfcn_face.evaluation import fddb as F  # noqa: E402
from rfcn_face.evaluation import fddb_format as FF  # noqa: E402
from rfcn_face.testing import synthetic_eval as SE  # noqa: E402


# the floor of a whole run, in a fresh process like the command: start Python, import numpy, read the ellipse lists,
# the image sizes and the detections, and parse their number lines with np.loadtxt
FLOOR = """
import io, sys
from pathlib import Path
import numpy as np
for f in sys.argv[1:]:
    lines = [ln for ln in Path(f).read_bytes().split(b"\\n") if ln.count(b" ") >= 2 and not ln.startswith(b"20")]
    if lines:
        np.loadtxt(io.BytesIO(b"\\n".join(lines)), dtype=np.float64, ndmin=2, usecols=(0, 1, 2, 3, 4))
"""


def floor_files(fddb: Path, dets_file: Path):
    return sorted((fddb / "FDDB-folds").glob("FDDB-fold-*-ellipseList.txt")) + [fddb / "FDDB-image-sizes.txt",
                                                                                 dets_file]


def run_cli(tree: Path, dets: Path, fddb: Path, prefix: Path, env_extra: dict):
    """One ``evaluate fddb`` process: (wall seconds, peak RSS MB, CPU seconds, DiscROC bytes, ContROC bytes)."""
    wall, mb, cpu = run_process([sys.executable, "-m", "rfcn_face", "evaluate", "fddb", "--dets", str(dets),
                            "--folds", str(fddb / "FDDB-folds"), "--sizes", str(fddb / "FDDB-image-sizes.txt"),
                            "--out", str(prefix)], tree, child_env(tree, env_extra))
    return (wall, mb, cpu, Path(f"{prefix}DiscROC.txt").read_bytes(), Path(f"{prefix}ContROC.txt").read_bytes())


def in_process(fddb: Path, dets_file: Path, repeat: int) -> dict:
    rows = {k: [] for k in ("folds", "dets", "evaluate", "ours", "floor")}
    files = floor_files(fddb, dets_file)
    for _ in range(repeat):
        t0 = time.perf_counter()
        recs = load_fddb_gt(fddb / "FDDB-folds", None, fddb / "FDDB-image-sizes.txt")
        t1 = time.perf_counter()
        dets = FF.read_fddb_detections(dets_file)
        t2 = time.perf_counter()
        F.evaluate_fddb(recs, dets)
        t3 = time.perf_counter()
        for f in files:                                   # floor: the bytes, and their number lines in numpy
            data = f.read_bytes()
            lines = [ln for ln in data.split(b"\n") if ln.count(b" ") >= 2 and not ln.startswith(b"20")]
            if lines:
                np.loadtxt(io.BytesIO(b"\n".join(lines)), dtype=np.float64, ndmin=2, usecols=(0, 1, 2, 3, 4))
        t4 = time.perf_counter()
        for k, v in zip(rows, (t1 - t0, t2 - t1, t3 - t2, t3 - t0, t4 - t3)):
            rows[k].append(v)
    return {k: statistics.median(v) for k, v in rows.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fddb", default=str(REPO.parent / "shared" / "data" / "fddb"))
    ap.add_argument("--old-tree", default=None, metavar="PATH", help="checkout of the code to compare with")
    ap.add_argument("--max-false", default="8,76", help="background boxes per image, one set per value")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--ref-images", type=int, default=60, help="images for the slow reference")
    ap.add_argument("--regressor", action="store_true", help="also show the ellipse regressor's effect")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    fddb = Path(args.fddb)
    recs = load_fddb_gt(fddb / "FDDB-folds", None, fddb / "FDDB-image-sizes.txt")
    print(f"{len(recs)} images, {sum(len(r.ellipses) for r in recs)} faces; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}", flush=True)
    trees = [("ours", REPO)] + ([("today", Path(args.old_tree).resolve())] if args.old_tree else [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for j, mf in enumerate(int(v) for v in args.max_false.split(",")):
            rng = np.random.default_rng(args.seed + j)
            dets = SE.simulate_rect_detections(recs, rng, max_false=mf)
            dfile = FF.write_fddb_detections(tmp / f"dets{mf}.txt", dets)
            n_det = sum(len(d.dets) for d in dets)
            print(f"\nset --max-false {mf}: {n_det} detections ({n_det / len(recs):.1f} per image)", flush=True)
            env = {"PYTHONPYCACHEPREFIX": str(tmp / "pycache")}    # bytecode cached as for an installed package
            for name, tree in trees:
                run_cli(tree, dfile, fddb, tmp / f"{name}_", env)       # warms each tree's bytecode, untimed
            stats = RunStats([n for n, _ in trees] + ["floor"])
            ref_files = None
            for r in range(args.repeat):
                for name, tree in (trees if r % 2 == 0 else trees[::-1]):
                    wall, mb, c, disc, cont = run_cli(tree, dfile, fddb, tmp / f"{name}_", env)
                    stats.add(name, wall, mb, c)
                    ref_files = ref_files or (disc, cont)
                    if (disc, cont) != ref_files:
                        raise SystemExit(f"{name}: ROC files differ from the first run's")
                stats.add("floor", *run_process([sys.executable, "-c", FLOOR] + floor_files(fddb, dfile), tmp,
                                                child_env(REPO, env)))
            med, med_cpu = stats.print_medians("evaluate fddb", args.repeat)
            ratio = lambda a, b: f"{med[a] / med[b]:.2f}x wall, {med_cpu[a] / med_cpu[b]:.2f}x CPU"
            print(f"  (floor: a fresh Python that imports numpy, reads the ellipse lists, image sizes and detections "
                  f"and parses their number lines with np.loadtxt)\n  ours / floor = {ratio('ours', 'floor')}",
                  flush=True)
            if args.old_tree:
                print(f"  today / ours = {ratio('today', 'ours')}   DiscROC / ContROC byte-identical "
                      f"({len(ref_files[0].splitlines())} thresholds)", flush=True)
                print(f"done when: ROC files byte-identical to today's, today / ours = {ratio('today', 'ours')} "
                      "(goal >= 1.6)", flush=True)
            ip = in_process(fddb, dfile, args.repeat)
            print(f"in process, median of {args.repeat}: folds {ip['folds']:.3f} s + detections {ip['dets']:.3f} s + "
                  f"evaluate {ip['evaluate']:.3f} s = {ip['ours']:.3f} s; read floor (bytes + np.loadtxt of the "
                  f"number lines) {ip['floor']:.3f} s", flush=True)

            if j == 0:
                from rfcn_face.testing.fddb_reference import reference_evaluate
                sub = slice(0, args.ref_images)
                sub_dets = [FF.FddbImageDets(x.name, x.kind, x.dets[np.argsort(-x.dets[:, 4])][:6]) for x in dets[sub]]
                t = time.perf_counter()
                reference_evaluate(recs[sub], sub_dets)
                t_ref = time.perf_counter() - t
                fast = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    F.evaluate_fddb(recs[sub], sub_dets)
                    fast.append(time.perf_counter() - t)
                t_fast = statistics.median(fast)
                print(f"slow reference (full-image masks, exhaustive matching) on {args.ref_images} images, <= 6 "
                      f"detections each: {t_ref:.2f} s vs evaluate_fddb {t_fast:.4f} s -> {t_ref / t_fast:.0f}x",
                      flush=True)
                if args.regressor:
                    from rfcn_face.evaluation import ellipse as E
                    res = F.evaluate_fddb(recs, dets)
                    d, c = F.tpr_at_fp(res)
                    t = time.perf_counter()
                    model = E.fit_cross_validated(recs, dets)
                    reg = F.evaluate_fddb(recs, E.apply_to_detections(model, recs, dets))
                    rd, rc = F.tpr_at_fp(reg)
                    print(f"ellipse regressor (10-fold CV, {sum(model['pairs'].values())} matched pairs, "
                          f"{time.perf_counter() - t:.1f} s): TPR at 1000 FP discrete {d:.4f} -> {rd:.4f}, "
                          f"continuous {c:.4f} -> {rc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
