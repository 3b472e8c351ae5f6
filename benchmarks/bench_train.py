"""Where a training iteration's time goes: data loading, forward + backward, the Python target ops and the
optimizer update, as shares of the iteration measured in the same run.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_train.py                    # R-18 512 px + R-101 600x1000
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_train.py --iters 6 --skip-r101   # quick

Runs the real loop (:class:`rfcn_face.train.DetectorTraining`) on the embedded synthfaces images resized to the
benchmark size (``train.multiscale_sizes``), random init, one CPU context:

* ResNet-18 at 512x512, DC+16x3+SJ+HC(5) (the Final row), ``--iters`` timed iterations after ``--warmup``;
* ResNet-101 at 600x1000 (a synthfaces image placed on a 600x1000 canvas), Final row, ``--r101-iters``.

Printed per phase: mean seconds per iteration and the share of the iteration. ``ops_share`` = (anchor target +
the after-forward mining of ``rpn.assign.type: hambox | cleanliness`` + proposals + proposal targets + OHEM) /
iteration (goal <= 0.10; the anchor target runs in the loader thread, overlapped with the compute, and is counted
anyway); ``loader_stall_share`` = time the loop waited for the next batch / iteration (goal <= 0.05: the next
batch is built while the current one computes).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FINAL = ROOT / "experiments" / "table1" / "13_final.yaml"
PHASES = ("data", "forward_backward", "target_ops", "anchor_target", "mining", "update")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iters", type=int, default=20, help="timed ResNet-18 iterations (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed first iterations (default 3)")
    p.add_argument("--size", type=int, default=512, help="ResNet-18 image size (default 512)")
    p.add_argument("--r101-iters", type=int, default=1, help="timed ResNet-101 600x1000 iterations (default 1)")
    p.add_argument("--skip-r101", action="store_true")
    return p.parse_args(argv)


def canvas_records(records, height, width, out_dir):
    """Each record's image pasted at the top-left of a ``height x width`` canvas (faces keep their boxes)."""
    import cv2

    from rfcn_face.datasets.record import FaceRecord
    out = []
    for r in records:
        img = cv2.imread(r.image_path)
        canvas = np.full((height, width, 3), 110, np.uint8)
        h, w = min(height, img.shape[0]), min(width, img.shape[1])
        canvas[:h, :w] = img[:h, :w]
        path = Path(out_dir) / f"{len(out):04d}.jpg"
        cv2.imwrite(str(path), canvas)
        out.append(FaceRecord(str(path), r.boxes, r.ignore))
    return out


def run(cfg, iters, warmup, records=None):
    from rfcn_face.train import DetectorTraining, TrainOptions

    class Timed(DetectorTraining):
        def setup_data(self):
            super().setup_data()
            if records is not None:
                self.records = records

    with tempfile.TemporaryDirectory() as d:
        t = Timed(cfg, TrainOptions(out=str(Path(d) / "run"), max_iters=warmup + iters, progress=False,
                                    keep_checkpoints=1))
        t.log = lambda *a, **k: None
        t.run()
    rows = t.timer.rows[warmup:]
    mean = {k: float(np.mean([r.get(k, 0.0) for r in rows])) for k in PHASES + ("total",)}
    return mean


def report(name, m):
    it = m["total"]
    print(f"{name}: {it:.3f} s per iteration")
    for k in PHASES:
        print(f"  {k:<17} {m[k]:8.4f} s  {m[k] / it:6.1%}" + ("  (loader thread, overlapped)"
                                                            if k == "anchor_target" else ""))
    ops = (m["target_ops"] + m["anchor_target"] + m["mining"]) / it
    stall = m["data"] / it
    print(f"{name} ops_share={ops:.3f} loader_stall_share={stall:.3f}")
    return ops, stall


def main(argv=None):
    a = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 2))
    os.environ.setdefault("RFCN_FACE_QUIET", "1")
    from rfcn_face.config import load_config
    from rfcn_face.datasets.loader import records_for_split
    print(f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; random init, one CPU context, synthfaces images")
    s = a.size
    cfg = load_config(FINAL, preset="smoke", overrides=(f"train.multiscale_sizes=[[{s},{s}]]", "train.max_size=0"))
    r18 = report(f"ResNet-18 {s}x{s} DC+16x3+SJ+HC(5)", run(cfg, a.iters, a.warmup))
    if not a.skip_r101:
        # a random-init ResNet-101 with frozen BatchNorms diverges at lr 1e-3; timing does not depend on the rate
        cfg = load_config(FINAL, preset="smoke", overrides=("model.depth=101", "train.max_size=0",
                                                            "train.flip=false", "train.lr=1e-8"))
        with tempfile.TemporaryDirectory() as d:
            recs = canvas_records(records_for_split(cfg, "train")[:a.r101_iters + 1], 600, 1000, d)
            report("ResNet-101 600x1000 DC+16x3+SJ+HC(5)", run(cfg, a.r101_iters, 1, recs))
    print(f"ops_share={r18[0]:.3f} loader_stall_share={r18[1]:.3f}")


if __name__ == "__main__":
    main()
