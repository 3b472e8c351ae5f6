"""HC(N) (Sec. 4.4) on the packaged WIDER FACE val faces: how many hard faces get exactly N anchors.

Anchors: DC+16x3 (stride 8, scales 16..512, ratio 1, three shifted 16-px anchors per location; 9 per
location). Faces: ``rfcn_face.facetable.load_face_table().usable()`` (valid faces of positive size, 3,226
images). The table has no image sizes, so each image is taken as the bounding extent of its faces rounded up
(``H = ceil(max y2)``, ``W = ceil(max x2)``, feature map ``ceil(H / 8) x ceil(W / 8)``) with no border rule
(``allowed_border = -1``): no face loses anchors to a border we do not know. Th = 0.5, Tl = 0.3.

Per N it prints: hard faces (best IoU < Th), those with at least N *available* anchors
(:func:`rfcn_face.assigners.hc_available`: IoU > 0, not a threshold positive of any face), the share of them
with exactly N positives (must be 100%), the share over all hard faces, and the same two shares for the
previous rule (each hard face claims its top-N plus every best-IoU tie, then each anchor goes to its
highest-IoU claimant), recomputed here from the overlap pairs. Usage::

    .venv/bin/python benchmarks/bench_hc_exact_n.py [--every K] [--check K] [--no-old]

``--every K`` uses every K-th image (default 1: all); ``--check K`` also compares the fast assignment with
``assign_reference`` on every K-th image used (default 0: off; slow); ``--no-old`` skips the previous rule
(about half of the ~2 min of a full run goes to scoring every pair for it).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from rfcn_face.anchors import AnchorSet
from rfcn_face.assigners import AnchorGrid, AssignParams, assign_hard_face_compensation, hc_available
from rfcn_face.assigners.core import overlap_pairs
from rfcn_face.facetable import load_face_table
from rfcn_face.testing.anchor_reference import assign_reference

NS = (3, 5, 7)


def previous_rule_matched(ai, fi, iou, num_faces, n, pos_iou=0.5):
    """Matched anchors per face under the previous HC(N): claims = IoU >= Th, every best-IoU tie, and for hard
    faces the top-N by (IoU desc, anchor asc); each anchor goes to its highest-IoU claimant (then lower face)."""
    best = np.zeros(num_faces)
    np.maximum.at(best, fi, iou)
    claim = (iou >= pos_iou) | (iou == best[fi])
    hard_pairs = np.flatnonzero(best[fi] < pos_iou)
    o = hard_pairs[np.lexsort((ai[hard_pairs], -iou[hard_pairs], fi[hard_pairs]))]   # per face, best first
    start = np.searchsorted(fi[o], fi[o], side="left")
    claim[o[np.arange(len(o)) - start < n]] = True
    c = np.flatnonzero(claim)
    w = c[np.lexsort((fi[c], -iou[c], ai[c]))]
    first = np.r_[True, ai[w][1:] != ai[w][:-1]] if len(w) else np.zeros(0, dtype=bool)
    return np.bincount(fi[w[first]], minlength=num_faces)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=1, help="use every K-th image")
    ap.add_argument("--check", type=int, default=0, help="compare with assign_reference on every K-th image")
    ap.add_argument("--no-old", action="store_true", help="skip the previous rule (prints nan)")
    args = ap.parse_args()

    table = load_face_table().usable()
    aset = AnchorSet(8, shifts="16x3")
    images = np.unique(table.image_index)[::args.every]
    stats = {n: dict(hard=0, enough=0, exact_enough=0, exact=0, old_exact_enough=0, old_exact=0) for n in NS}
    checked, t_assign, t0 = 0, 0.0, time.perf_counter()
    for k, img in enumerate(images):
        boxes = table.boxes[table.image_index == img]
        hw = (int(np.ceil(boxes[:, 3].max())), int(np.ceil(boxes[:, 2].max())))
        grid = AnchorGrid.for_image(aset, *hw)
        base = AssignParams(pos_iou=0.5, neg_iou=0.3, allowed_border=-1)
        avail = hc_available(grid, boxes, None, hw, base)
        if not args.no_old:
            ai, fi, iou = overlap_pairs(grid, boxes)                # every pair with IoU > 0 (for the old rule)
        for n in NS:
            p = base
            t = time.perf_counter()
            r = assign_hard_face_compensation(grid, boxes, None, hw, p, n)
            t_assign += time.perf_counter() - t
            if args.check and k % args.check == 0:
                ref = assign_reference(grid, boxes, None, hw, p, hc_top_n=n)
                if not (np.array_equal(r.labels, ref.labels) and np.array_equal(r.gt_index, ref.gt_index)):
                    raise SystemExit(f"image {img}: fast HC({n}) differs from assign_reference")
                checked += 1
            old = np.zeros(len(boxes), dtype=np.int64) if args.no_old else \
                previous_rule_matched(ai, fi, iou, len(boxes), n)
            s, hard = stats[n], r.hard
            enough = hard & (avail >= n)
            s["hard"] += int(hard.sum())
            s["enough"] += int(enough.sum())
            s["exact_enough"] += int((r.matched[enough] == n).sum())
            s["exact"] += int((r.matched[hard] == n).sum())
            s["old_exact_enough"] += int((old[enough] == n).sum())
            s["old_exact"] += int((old[hard] == n).sum())
    total = time.perf_counter() - t0
    print(f"packaged WIDER val faces: {len(images)} images, {int(np.isin(table.image_index, images).sum())} usable "
          f"faces; DC+16x3 (stride 8, scales 16..512, {aset.num_per_location} anchors/location), Th 0.5, image = "
          f"face extent rounded up, allowed_border -1")
    print(f"{'N':>2} {'hard':>6} {'>=N avail':>9} {'exact N | avail':>15} {'exact N | all':>13} "
          f"{'old: | avail':>12} {'old: | all':>10}")
    pct = lambda a, b: f"{100.0 * a / max(b, 1):.2f}%"  # noqa: E731
    for n in NS:
        s = stats[n]
        old = ("nan", "nan") if args.no_old else (pct(s["old_exact_enough"], s["enough"]),
                                                  pct(s["old_exact"], s["hard"]))
        print(f"{n:>2} {s['hard']:>6} {s['enough']:>9} {pct(s['exact_enough'], s['enough']):>15} "
              f"{pct(s['exact'], s['hard']):>13} {old[0]:>12} {old[1]:>10}")
    print(f"assign_ms_per_image={1e3 * t_assign / (len(images) * len(NS)):.2f} total_s={total:.1f}"
          + (f" reference_checks={checked} (all equal)" if args.check else ""))
    if any(stats[n]["exact_enough"] != stats[n]["enough"] for n in NS):
        raise SystemExit("some hard face with >= N available anchors did not get exactly N")


if __name__ == "__main__":
    main()
