"""Synthetic evaluation inputs for tests, benchmarks and smoke runs (never used by the evaluators themselves):
WIDER ground truth and submissions, a small FDDB-format set with simulated detections, a face-eval set."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..datasets.fddb import read_fddb
from ..evaluation.fddb_format import FddbImageDets, write_fddb_detections
from ..evaluation.wider import SETTINGS, WiderGroundTruth

__all__ = ["synthetic_ground_truth", "random_predictions", "simulate_rect_detections", "write_synthetic_fddb",
           "write_synthetic_face_eval"]


def synthetic_ground_truth(rng: np.random.Generator, num_images: int = 50, max_faces: int = 30,
                           num_events: int = 5) -> WiderGroundTruth:
    """Random integer ``x y w h`` faces with random nested keep lists (hard ⊇ medium ⊇ easy), some images
    with no faces at all and some with the dummy ``0 0 0 0`` row, like the real val set."""
    events, names, boxes, keep = [], [], [], {s: [] for s in SETTINGS}
    for i in range(num_images):
        n = int(rng.integers(0, max_faces + 1))
        if i % 17 == 5:
            n = 0
        wh = rng.integers(1, 120, size=(n, 2))
        xy = rng.integers(0, 900, size=(n, 2))
        b = np.concatenate([xy, wh], axis=1).astype(np.float64)
        if i % 23 == 7:
            b = np.zeros((1, 4))
        size = np.sqrt(b[:, 2] * b[:, 3])
        hard = (size > 3) & (rng.random(len(b)) < 0.9)
        medium = hard & (size > 15) & (rng.random(len(b)) < 0.9)
        easy = medium & (size > 40) & (rng.random(len(b)) < 0.9)
        events.append(f"{i % num_events}--Event{i % num_events}")
        names.append(f"{i % num_events}_Event_synthetic_{i}")
        boxes.append(b)
        for s, m in zip(SETTINGS, (easy, medium, hard)):
            keep[s].append(m)
    return WiderGroundTruth(events, names, boxes, keep)


def random_predictions(gt: WiderGroundTruth, rng: np.random.Generator, mean_per_image: float = 50.0,
                       near_fraction: float = 0.6, jitter: float = 0.15, decimals: Optional[int] = 1,
                       missing_fraction: float = 0.02) -> Dict[Tuple[str, str], np.ndarray]:
    """A random submission: about ``near_fraction`` of the boxes are jittered copies of faces (so that real
    matches, duplicates and ignored faces occur), the rest are random boxes; scores are random with ties.
    Coordinates are rounded to ``decimals`` (None: full precision); some images get no entry at all."""
    out = {}
    for e, n, g in zip(gt.events, gt.names, gt.boxes):
        if rng.random() < missing_fraction:
            continue
        k = int(rng.poisson(mean_per_image))
        near = rng.random(k) < near_fraction
        p = np.empty((k, 5))
        rand_wh = rng.uniform(2, 150, size=(k, 2))
        p[:, :2] = rng.uniform(0, 900, size=(k, 2))
        p[:, 2:4] = rand_wh
        if len(g) and near.any():
            src = g[rng.integers(0, len(g), size=int(near.sum()))]
            wh = np.maximum(src[:, 2:4], 1.0)
            p[near, :2] = src[:, :2] + rng.normal(0, jitter, size=(len(src), 2)) * wh
            p[near, 2:4] = wh * np.exp(rng.normal(0, jitter, size=(len(src), 2)))
        if decimals is not None:
            p[:, :4] = np.round(p[:, :4], decimals)
        p[:, 4] = np.round(rng.random(k), 3)           # 3 decimals: many ties and many scores on a threshold
        out[(e, n)] = p
    return out


def simulate_rect_detections(records, rng, max_false: int = 4) -> List[FddbImageDets]:
    """Detector-like rectangles for FDDB ground truth: each face's ellipse bounding box shrunk vertically,
    shifted and jittered (score 0.45-1), plus 0..max_false background boxes (score 0-0.55)."""
    out = []
    for r in records:
        b = r.boxes
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        k = len(b)
        rows = [np.stack([b[:, 0] + w * rng.normal(0.03, 0.04, k), b[:, 1] + h * rng.normal(0.08, 0.04, k),
                          w * rng.normal(0.95, 0.05, k), h * rng.normal(0.8, 0.05, k),
                          rng.uniform(0.45, 1.0, k)], 1)]
        m = int(rng.integers(0, max_false + 1))
        s = rng.uniform(15, 120, m)
        rows.append(np.stack([rng.uniform(0, max(r.width - 40, 1), m), rng.uniform(0, max(r.height - 40, 1), m),
                              s, s * rng.uniform(0.9, 1.3, m), rng.uniform(0.0, 0.55, m)], 1))
        out.append(FddbImageDets(r.name, "rect", np.round(np.concatenate(rows), 3)))
    return out


def write_synthetic_fddb(root, images_per_fold: int = 6, seed: int = 0) -> dict:
    """Write a small FDDB-format set: ``root/FDDB-folds`` (10 folds), ``root/FDDB-image-sizes.txt`` and
    simulated rectangle detections ``root/dets.txt``. Returns the three paths."""

    root = Path(root)
    folds = root / "FDDB-folds"
    folds.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sizes = []
    for k in range(1, 11):
        names, ell_lines = [], []
        for i in range(images_per_fold):
            name = f"synth/fold{k:02d}/img_{i}"
            W, H = int(rng.integers(160, 320)), int(rng.integers(140, 260))
            n = int(rng.integers(1, 4))
            minor = rng.uniform(10, 35, n)
            ell = np.stack([minor * rng.uniform(1.2, 1.5, n), minor, np.pi / 2 + rng.normal(0, 0.2, n),
                            rng.uniform(0, W, n), rng.uniform(0, H, n)], 1)
            names.append(name)
            sizes.append(f"{name} {W} {H}")
            ell_lines += [name, str(n)] + [f"{a:.6f} {b:.6f} {t:.6f} {x:.6f} {y:.6f}  1" for a, b, t, x, y in ell]
        (folds / f"FDDB-fold-{k:02d}.txt").write_text("\n".join(names) + "\n")
        (folds / f"FDDB-fold-{k:02d}-ellipseList.txt").write_text("\n".join(ell_lines) + "\n")
    sizes_file = root / "FDDB-image-sizes.txt"
    sizes_file.write_text("\n".join(sizes) + "\n")
    recs = read_fddb(folds, sizes_file=sizes_file)
    dets = write_fddb_detections(root / "dets.txt", simulate_rect_detections(recs, rng))
    return {"folds": folds, "sizes": sizes_file, "dets": dets}


def write_synthetic_face_eval(root, num_images: int = 30, seed: int = 0) -> dict:
    """Write ``root/annotations.mat`` (new face-eval format: ``x1 y1 x2 y2 0 ignore`` rows, some faces under
    30 px, some ignore regions) and ``root/dets.txt`` (jittered faces + background, ``image score x1 y1 x2 y2``)."""
    import scipy.io as sio

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dt = [("imgname", "O"), ("imgsize", "O"), ("objects", "O"), ("flags", "O")]
    ann = np.zeros((num_images, 1), dtype=dt)
    lines = []
    for i in range(num_images):
        name = f"synth_{i:03d}.jpg"
        W, H = int(rng.integers(300, 600)), int(rng.integers(250, 500))
        n = int(rng.integers(1, 5))
        s = rng.uniform(15, 120, n)
        x1, y1 = np.floor(rng.uniform(1, W - s)), np.floor(rng.uniform(1, H - s))
        rows = np.stack([x1, y1, x1 + np.round(s), y1 + np.round(s * 1.2), np.zeros(n),
                         (rng.random(n) < 0.1).astype(float)], 1)
        ann[i, 0]["imgname"] = np.array([name])
        ann[i, 0]["imgsize"] = np.array([[W], [H], [3]], dtype=float)
        ann[i, 0]["objects"] = rows
        ann[i, 0]["flags"] = np.zeros((1, 1))
        for r in rows:
            if rng.random() < 0.85:
                j = rng.normal(0, 0.05, 4) * (r[2] - r[0])
                lines.append(f"{name} {rng.uniform(0.4, 1):.4f} " + " ".join(f"{v:.2f}" for v in r[:4] + j))
        for _ in range(int(rng.integers(0, 3))):
            x, y, s2 = rng.uniform(0, W - 60), rng.uniform(0, H - 60), rng.uniform(25, 60)
            lines.append(f"{name} {rng.uniform(0, 0.6):.4f} {x:.2f} {y:.2f} {x + s2:.2f} {y + s2:.2f}")
    gt = root / "annotations.mat"
    sio.savemat(str(gt), {"Annotations": ann})
    dets = root / "dets.txt"
    dets.write_text("\n".join(lines) + "\n")
    return {"gt": gt, "dets": dets}
