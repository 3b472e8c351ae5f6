"""Forward time of the detector per architecture (baseline / BU / BUS / DC), relative to the baseline.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_network.py                 # ResNet-101, 600x1000
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_network.py --depth 18 --size 256x256 --repeat 2

Each network is built from the config of its Table 1 row (``model.arch``), randomly initialised (speed does not
depend on the weights), hybridized, warmed up once, then timed ``--repeat`` times in interleaved rounds (one
run of every architecture per round, so slow drifts of a shared machine hit all of them alike). Two timings:

* ``rpn``: backbone (+ BU / BUS layers) + RPN — what the training loop and the proposal stage run per image;
* ``full``: the same plus the R-FCN head (``conv_new_1``, score maps, PSROIPooling, voting) on ``--rois`` RoIs.

Printed: median seconds and the ratio to the baseline measured in the same run, plus parameter counts.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ARCHS = ("baseline", "BU", "BUS", "DC")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=101)
    p.add_argument("--size", default="600x1000", help="HxW (default 600x1000)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rois", type=int, default=300)
    p.add_argument("--archs", default=",".join(ARCHS))
    return p.parse_args(argv)


def make_net(arch, depth):
    import mxnet as mx

    from rfcn_face.config import config_from_dict
    from symbols.rfcn import build_detector
    cfg = config_from_dict({"model": {"arch": arch, "depth": depth}}, f"bench {arch}")
    net = build_detector(cfg)
    net.initialize(mx.init.Normal(0.01))
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def random_rois(n, h, w, seed=0):
    import numpy as np
    rng = np.random.RandomState(seed)
    x1, y1 = rng.uniform(0, w - 32, n), rng.uniform(0, h - 32, n)
    bw, bh = rng.uniform(16, 256, n), rng.uniform(16, 256, n)
    return np.stack([np.zeros(n), x1, y1, np.minimum(x1 + bw, w), np.minimum(y1 + bh, h)], 1).astype("float32")


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None) -> int:
    args = parse_args(argv)
    import mxnet as mx

    from symbols.rfcn import count_params, new_layer_params
    h, w = (int(v) for v in args.size.lower().split("x"))
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    x = mx.nd.random.uniform(shape=(1, 3, h, w))
    rois = mx.nd.array(random_rois(args.rois, h, w))
    print(f"ResNet-{args.depth}, image {h}x{w}, {args.rois} RoIs, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
          f"repeat {args.repeat} (median)", flush=True)

    nets = {}
    for arch in archs:
        nets[arch] = make_net(arch, args.depth)

    def run_rpn(net):
        return lambda: [o.wait_to_read() for o in net(x)]

    def run_full(net):
        def f():
            cls, bbox, feat = net(x)
            s, d = net.head(feat, rois)
            for o in (cls, bbox, s, d):
                o.wait_to_read()
        return f

    for arch in archs:  # warm-up (graph build, memory planning)
        run_full(nets[arch])()
        print(f"  warmed up {arch}", flush=True)
    times = {a: {"rpn": [], "full": []} for a in archs}
    for r in range(args.repeat):
        for arch in archs:
            times[arch]["rpn"].append(timed(run_rpn(nets[arch])))
            times[arch]["full"].append(timed(run_full(nets[arch])))
        print(f"  round {r + 1}/{args.repeat} done", flush=True)

    med = {a: {k: statistics.median(v) for k, v in t.items()} for a, t in times.items()}
    ref = med.get("baseline", med[archs[0]])
    ref_name = "baseline" if "baseline" in med else archs[0]
    print()
    print("| arch | RPN stride | rpn fwd (s) | ratio | full fwd (s) | ratio | params total | params new |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for arch in archs:
        net, m = nets[arch], med[arch]
        print(f"| {arch} | {net.stride} | {m['rpn']:.2f} | {m['rpn'] / ref['rpn']:.2f} | {m['full']:.2f} | "
              f"{m['full'] / ref['full']:.2f} | {count_params(net):,} | {new_layer_params(net):,} |")
    print(f"\nratios are against {ref_name} measured in the same run; 'rpn' = backbone + stride reduction + RPN, "
          f"'full' = rpn + R-FCN head on {args.rois} RoIs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
