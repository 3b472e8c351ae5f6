"""Time parsing the full WIDER FACE val and train annotations (text and .mat) with rfcn_face.datasets.wider,
against a naive reference parser measured in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_readers.py [--data ../shared/data] [--repeat 3]

The reference is the obvious line-by-line parser: name line, count line, then ``float()`` on every field of
every face row and one record per image (same output). Printed per file: median seconds, images/s, faces/s,
and ``speedup_vs_naive`` (naive median / reader median); the last line sums them up.
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np

from rfcn_face.datasets.record import FaceRecord
from rfcn_face.datasets.wider import (TXT_FORMATS, read_wider_eval_gt, read_wider_split_mat, read_wider_txt,
                                      split_image_name)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def naive_read_wider_txt(path):
    """Line-by-line reference with the same output as read_wider_txt (release form: count + rows)."""
    with open(path) as f:
        lines = f.read().splitlines()
    out, i = [], 0
    while i < len(lines):
        name = lines[i].strip()
        n = int(lines[i + 1])
        rows = [[float(v) for v in lines[i + 2 + k].split()] for k in range(n)]
        i += 2 + n
        cols = TXT_FORMATS[len(rows[0])] if rows else TXT_FORMATS[10]
        boxes, ignore, attrs = [], [], {c: [] for c in cols[4:]}
        for r in rows:
            boxes.append([r[0], r[1], r[0] + r[2], r[1] + r[3]])
            for j, c in enumerate(cols[4:]):
                attrs[c].append(int(r[4 + j]))
            ignore.append(r[2] <= 0 or r[3] <= 0 or int(r[cols.index("invalid")]) != 0)
        event, stem = split_image_name(name)
        out.append(FaceRecord(name, boxes=np.asarray(boxes).reshape(-1, 4), ignore=ignore,
                              attributes={c: np.asarray(v, np.int64) for c, v in attrs.items()},
                              event=event, name=stem))
    return out


def _time(fn, repeat):
    ts, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), result


def _same(a, b) -> bool:
    return len(a) == len(b) and all(
        x.name == y.name and np.array_equal(x.boxes, y.boxes) and np.array_equal(x.ignore, y.ignore)
        for x, y in zip(a, b))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA), help="the shared annotations folder")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    wf = Path(a.data) / "widerface"
    txt_files = [("val txt (10 col)", wf / "wider_face_split" / "wider_face_val_bbx_gt.txt"),
                 ("train txt (7 col)", wf / "wider_face_split" / "wider_face_train_bbx_gt_7col_blur_invalid_occl.txt")]
    for _, p in txt_files:
        if not p.is_file():
            raise FileNotFoundError(f"annotation file not found: {p} (pass --data)")
    warnings.simplefilter("ignore", UserWarning)
    print(f"{'file':<20} {'images':>7} {'faces':>8} {'reader s':>9} {'images/s':>10} {'faces/s':>11} "
          f"{'naive s':>8} {'speedup':>8}")
    speedups = []
    for label, p in txt_files:
        t_fast, fast = _time(lambda: read_wider_txt(p, negative_size="ignore"), a.repeat)
        t_ref, ref = _time(lambda: naive_read_wider_txt(p), a.repeat)
        if not _same(fast, ref):
            raise AssertionError(f"{p}: reader and naive reference disagree")
        n, f = len(fast), sum(len(r.boxes) for r in fast)
        speedups.append(t_ref / t_fast)
        print(f"{label:<20} {n:>7,} {f:>8,} {t_fast:>9.3f} {n / t_fast:>10,.0f} {f / t_fast:>11,.0f} "
              f"{t_ref:>8.3f} {t_ref / t_fast:>7.1f}x")
    for label, fn in (("train .mat", lambda: read_wider_split_mat(wf / "wider_face_split" / "wider_face_train.mat",
                                                                  negative_size="ignore")),
                      ("val eval gt (4 .mat)", lambda: read_wider_eval_gt(wf / "ground_truth"))):
        t, recs = _time(fn, a.repeat)
        n, f = len(recs), sum(len(r.boxes) for r in recs)
        print(f"{label:<20} {n:>7,} {f:>8,} {t:>9.3f} {n / t:>10,.0f} {f / t:>11,.0f} {'-':>8} {'-':>8}")
    print(f"speedup_vs_naive val={speedups[0]:.2f} train={speedups[1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
