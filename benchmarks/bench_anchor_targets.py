"""Time RPN anchor targets (assign HC(N) + sampling + box targets) for one 1024x1024 image with DC+16x3 anchors
(stride 8, 6 centred + 3 shifted per location -> 128*128*9 = 147,456 anchors) and 200 faces.

Compared in the same run with
* the slow reference of rfcn_face.assign (one dense IoU column per face over all anchors, per-anchor loop),
* the same fast code on a plain (N, 4) anchor array (no lattice windows: every anchor tested per face),
* a dense float64 IoU matrix (anchors x faces, computed in chunks) as a lower bound for the dense approach,
* one forward of the ResNet-101 DC detector (symbols.rfcn.build_detector) at 1024x1024,
and, for information, proposals over the same anchors with numpy NMS vs mx.nd.contrib.box_nms.

Anchor mining (rfcn_face.assigners, ``rpn.assign.type: hambox | cleanliness``): the prediction-free half
(``Assigner.prepare``: HAMBox step one / the top-N A_pos, in the loader processes) and the half after the forward
pass (decode every anchor's deltas, face probabilities, ``Assigner.finish``: OAM + RAL or c / r, sampling, box
targets), with RPN outputs of a partly trained network (deltas ~ N(0, 0.2), 5 % of the anchors regressing onto
a face). ``share`` = the after-forward half per iteration / one forward (goal <= 0.10); ``share_total`` adds the
loader-thread half.

Faces: (w, h) drawn from the WIDER FACE train annotations when the file exists (invalid faces become ignored
faces), else log-uniform sizes 4-256 px. Usage::

    OMP_NUM_THREADS=2 python benchmarks/bench_anchor_targets.py [--no-forward] [--repeat 5]

The last line reads ``speedup_vs_reference=<x> targets_ms=<t> forward_ms=<f> oam_share=<s> cleanliness_share=<s>``.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from rfcn_face.anchors import AnchorSet
from rfcn_face.assigners import AnchorGrid, AssignParams, assigner_from_spec
from rfcn_face.boxes import encode, iou_matrix
from rfcn_face.sampling import RPNSampling, subsample_labels
from rfcn_face.testing.anchor_reference import assign_reference

WIDER_TRAIN = (Path(__file__).resolve().parents[2] / "shared" / "data" / "widerface" / "wider_face_split"
               / "wider_face_train_bbx_gt_7col_blur_invalid_occl.txt")


def wider_face_sizes(path: Path):
    """(w, h) and invalid flag of every face in the 7-column WIDER train text (name, count, rows)."""
    lines = path.read_text().splitlines()
    sizes, invalid, i = [], [], 0
    while i < len(lines):
        n = int(lines[i + 1])
        for row in lines[i + 2:i + 2 + n]:
            v = row.split()
            sizes.append((float(v[2]), float(v[3])))
            invalid.append(v[5] == "1")
        i += 2 + max(n, 1)
    sizes, invalid = np.array(sizes), np.array(invalid)
    ok = (sizes[:, 0] > 0) & (sizes[:, 1] > 0)
    return sizes[ok], invalid[ok]


def make_faces(rng, n, size, gt_path: Path):
    if gt_path.is_file():
        sizes, invalid = wider_face_sizes(gt_path)
        pick = rng.integers(0, len(sizes), n)
        wh, ignore, source = np.minimum(sizes[pick], size), invalid[pick], f"WIDER train sizes ({gt_path.name})"
    else:
        s = np.exp(rng.uniform(np.log(4), np.log(256), n))
        wh, ignore, source = np.stack([s, s * 1.2], 1), rng.random(n) < 0.05, "log-uniform 4-256 px"
    xy = rng.uniform(0, 1, (n, 2)) * (size - wh)
    return np.concatenate([xy, xy + wh], axis=1), ignore, source


def timed(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), out


def reference_targets(grid, boxes, ignore, hw, params, hc, rng):
    res = assign_reference(grid, boxes, ignore, hw, params, hc_top_n=hc)
    labels = subsample_labels(res.labels, 256, 0.5, rng)
    pos = np.flatnonzero(labels == 1)
    t, w = np.zeros((len(labels), 4)), np.zeros((len(labels), 4))
    t[pos], w[pos] = encode(grid.boxes[pos], boxes[res.gt_index[pos]]), 1.0
    return labels, t, w, res


def strategy_spec(hc: int) -> dict:
    return {"type": "hc", "top_n": hc} if hc > 0 else {"type": "max_iou"}


def dense_iou(anchors, boxes, chunk=16384):
    for i in range(0, len(anchors), chunk):
        iou_matrix(anchors[i:i + chunk], boxes).max(axis=1)


def operator_ms(grid, boxes, ignore, size, hc, repeat):
    import mxnet as mx
    import operators.anchor_target  # noqa: F401  (registers the op)
    a = grid.anchor_set
    cls = mx.nd.zeros((1, 2 * a.num_per_location, grid.height, grid.width))
    gt = mx.nd.array(np.concatenate([boxes, ignore[:, None].astype(float)], axis=1)[None])
    info = mx.nd.array([[size, size, 1.0]])
    kw = dict(stride=str(a.stride), scales=",".join(map(str, a.scales)), shifts="16x3",
              **{("strategy" if k == "type" else k): str(v) for k, v in strategy_spec(hc).items()})

    def run():
        outs = mx.nd.Custom(cls, gt, info, op_type="rfcn_anchor_target", **kw)
        mx.nd.waitall()
        return outs
    run()
    return timed(run, repeat)[0]


def mining_ms(grid, boxes, ignore, hw, params, strategy, repeat, seed=0):
    """(prepare_ms, after_forward_ms, result) of a strategy that reads predictions (rfcn_face.assigners) for one
    image with synthetic RPN outputs."""
    from rfcn_face.anchors import to_anchor_order_np
    from rfcn_face.boxes import decode, encode
    from rfcn_face.targets import face_probabilities
    rng = np.random.default_rng(seed)
    a, (H, W), N = grid.anchor_set.num_per_location, (grid.height, grid.width), len(grid)
    deltas = rng.normal(0, 0.2, (N, 4))
    near = np.flatnonzero(rng.random(N) < 0.05)         # anchors that regress onto a face (OAM candidates)
    valid = np.flatnonzero(~ignore)
    face = boxes[valid[rng.integers(0, len(valid), len(near))]]
    jitter = np.concatenate([rng.normal(0, 0.05, (len(near), 2)), rng.normal(0, 0.05, (len(near), 2))], axis=1)
    deltas[near] = encode(grid.boxes[near], face) + jitter        # regressed boxes within a few % of a face
    # back into the network's channel layout (B, 4A, H, W) / (B, 2A, H, W), so decoding is timed as in training
    rpn_bbox = deltas.reshape(1, H, W, a, 4).transpose(0, 3, 4, 1, 2).reshape(1, 4 * a, H, W)
    logits = rng.normal(0, 1, (1, H, W, a, 2)).transpose(0, 3, 4, 1, 2).reshape(1, 2 * a, H, W)
    assigner = assigner_from_spec({"type": strategy}, params)
    prep_ms, plan = timed(lambda: assigner.prepare(grid, boxes, ignore, hw), repeat)

    def after_forward():
        pred = decode(grid.boxes, to_anchor_order_np(rpn_bbox, 4)[0])
        prob = face_probabilities(logits)[0]
        return assigner.finish(plan, pred, prob, rng=np.random.default_rng(1))
    fin_ms, res = timed(after_forward, repeat)
    return prep_ms, fin_ms, res


def forward_ms(size, repeat):
    import mxnet as mx
    from rfcn_face.config import config_from_dict
    from symbols.rfcn import build_detector
    cfg = config_from_dict({"model": {"arch": "DC", "depth": 101}, "anchors": {"shifted": "16x3"}})
    net = build_detector(cfg)
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    x = mx.nd.random.uniform(shape=(1, 3, size, size))

    def run():
        cls, bbox, _ = net(x)
        mx.nd.waitall()
        return cls.shape
    run()                                         # warm-up: graph construction and memory planning
    ms, shape = timed(run, repeat)
    return ms, shape


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--hc", type=int, default=5, help="HC(N) for the targets (0 = plain max-IoU)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--forward-repeat", type=int, default=1)
    ap.add_argument("--no-forward", action="store_true", help="skip the ResNet-101 forward (prints nan)")
    ap.add_argument("--forward-ms", type=float, default=0.0,
                    help="with --no-forward: a forward time measured separately, for the mining shares")
    ap.add_argument("--wider-gt", type=Path, default=WIDER_TRAIN)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    aset = AnchorSet(8, shifts="16x3")
    grid = AnchorGrid.for_image(aset, args.size, args.size)
    boxes, ignore, source = make_faces(rng, args.faces, args.size, args.wider_gt)
    hw = (args.size, args.size)
    params = AssignParams(pos_iou=0.5, neg_iou=0.3, allowed_border=0)
    assigner = assigner_from_spec(strategy_spec(args.hc), params, RPNSampling(256, 0.5))

    def anchor_targets(anchors):
        t = assigner.targets(anchors, boxes, ignore, hw, rng=np.random.default_rng(1))
        return t.loss_labels, t.bbox_target, t.bbox_weight, t
    print(f"image {args.size}x{args.size}, anchors {len(grid)} (DC stride 8, {aset.num_per_location}/location, "
          f"16x3 shifted), faces {len(boxes)} ({int(ignore.sum())} ignored), sizes: {source}, HC({args.hc})")

    fast = lambda: anchor_targets(grid)  # noqa: E731
    targets_ms, (lab, tgt, wgt, res) = timed(fast, args.repeat)
    ref_ms, (rlab, rtgt, rwgt, rres) = timed(
        lambda: reference_targets(grid, boxes, ignore, hw, params, args.hc, np.random.default_rng(1)), 1)
    same = (np.array_equal(lab, rlab) and np.array_equal(res.labels, rres.labels)
            and np.array_equal(res.matched, rres.matched) and np.allclose(tgt, rtgt))
    print(f"fast == reference: {same}  (positives {int((res.labels == 1).sum())}, hard faces {int(res.hard.sum())}, "
          f"mean matched anchors per valid face {res.matched[~ignore].mean():.2f})")
    if not same:
        raise SystemExit("fast anchor targets differ from the reference")
    arr_ms, _ = timed(lambda: anchor_targets(grid.boxes), max(1, args.repeat // 2))
    dense_ms, _ = timed(lambda: dense_iou(grid.boxes, boxes), 1)
    print(f"reference_ms={ref_ms:.1f} targets_ms={targets_ms:.1f} (lattice windows) "
          f"array_path_ms={arr_ms:.1f} (no lattice) dense_iou_only_ms={dense_ms:.1f} (anchors x faces float64)")

    op_ms = operator_ms(grid, boxes, ignore, args.size, args.hc, args.repeat)
    print(f"operator_ms={op_ms:.1f} (mx.nd.Custom rfcn_anchor_target, same image, incl. NDArray conversion)")

    step = AssignParams(pos_iou=0.5, neg_iou=0.3, allowed_border=0)
    mined = {}
    for strategy in ("hambox", "cleanliness"):
        prep, fin, res = mining_ms(grid, boxes, ignore, hw, step, strategy, args.repeat, args.seed)
        mined[strategy] = (prep, fin)
        extra = (f"compensated {int(res.compensated.sum())}, protected {int(res.protected.sum())}"
                 if strategy == "hambox" else f"|A_pos| {int((res.labels == 1).sum())}")
        print(f"mining_ms[{strategy}] prepare={prep:.1f} (loader) after_forward={fin:.1f} (decode + "
              f"probabilities + Assigner.finish; {extra}, matched per valid face {res.matched[~ignore].mean():.2f})")

    if args.no_forward:
        fwd = float(args.forward_ms) if args.forward_ms else float("nan")
        if args.forward_ms:
            print(f"forward: --forward-ms {fwd:.0f} (measured separately)")
    else:
        fwd, shape = forward_ms(args.size, args.forward_repeat)
        print(f"forward: symbols.rfcn.build_detector(arch=DC, depth=101), rpn_cls {tuple(shape)}")
    for strategy, (prep, fin) in mined.items():
        print(f"mining_share[{strategy}] share={fin / fwd:.4f} share_total={(prep + fin) / fwd:.4f} "
              f"(of one forward, goal <= 0.10)")
    print(f"speedup_vs_reference={ref_ms / targets_ms:.1f} targets_ms={targets_ms:.1f} forward_ms={fwd:.0f} "
          f"oam_share={mined['hambox'][1] / fwd:.4f} cleanliness_share={mined['cleanliness'][1] / fwd:.4f}")


if __name__ == "__main__":
    main()
