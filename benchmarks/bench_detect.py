"""Detection speed per architecture at the four Table 2 test sizes, split into preprocessing / network forward /
post-processing, the image pyramid's cost, and GFLOPs from the layer shapes (to estimate GPU time against the
paper's Fig. 10, Titan X, batch 1).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_detect.py                    # full: ResNet-101 and -18
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_detect.py --quick            # ResNet-18, image / 4

The image is a WIDER-like 768 x 1024 photo (random pixels; the networks are randomly initialised, so every RoI
passes the score threshold: the post-processing works on the full test.rpn_post_nms_top_n = 300 boxes, its
worst case). Each (architecture, size) is warmed up once, then timed ``--repeat`` times through
:class:`rfcn_face.detector.FaceDetector` (its per-stage timers, with ``sync`` so that the device stages are
separated: forward = backbone + RPN + PSROI head, proposals = the proposal block, post = head decode + threshold
on the device, mapping + final NMS on the host). ``post_share`` = (proposals + post) / forward, goal <= 0.05.
``--nms-impl`` picks the proposals' NMS (default auto: the numpy CustomOp on this CPU). GFLOPs (:mod:`symbols.flops`) count 2 x multiply-adds of
every convolution / deconvolution of backbone, BU / BUS, RPN and R-FCN head maps at that input size
(PSROIPooling, the voting and the element-wise layers are left out: < 1 %).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symbols.flops import config_gflops, gflops  # noqa: E402  (2 x MACs of every convolution, from the layer shapes)

TABLE2 = [[600, 1000], [800, 1200], [1200, 1600], [1400, 1800]]
ROWS = {"baseline": "01_baseline.yaml", "BU": "02_bu.yaml", "BUS": "03_bus.yaml", "DC": "04_dc.yaml"}


def config(arch: str, depth: int):
    from rfcn_face.config import load_config, resolve_normalisation
    cfg = load_config(ROOT / "experiments" / "table1" / ROWS[arch], overrides=[f"model.depth={depth}"])
    resolve_normalisation(cfg, checkpoint_style=None)
    return cfg


def network(cfg):
    import mxnet as mx
    from symbols.rfcn import build_detector
    net = build_detector(cfg)
    mx.random.seed(0)
    net.initialize(mx.init.Xavier())
    return net


def input_size(h0, w0, size):
    from rfcn_face.transforms import max_size_scale
    s = max_size_scale(h0, w0, size[0], size[1])
    return max(1, int(round(h0 * s))), max(1, int(round(w0 * s)))


def time_detector(det, image, sizes, repeat: int) -> dict:
    det.timings.sync = True                                  # separate the device stages (docs: StageTimes)
    det.detect(image, sizes=sizes)                           # warm-up: shape inference, memory
    det.timings.reset()
    t0 = time.perf_counter()
    for _ in range(repeat):
        det.detect(image, sizes=sizes)
    wall = (time.perf_counter() - t0) / repeat
    t = det.timings
    ms = {k: 1000 * getattr(t, k) / repeat for k in ("preprocess", "forward", "proposals", "post")}
    ms["total"] = 1000 * wall
    ms["post_share"] = (ms["proposals"] + ms["post"]) / ms["forward"]
    return ms


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depths", type=int, nargs="+", default=[101, 18])
    p.add_argument("--archs", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--image", default="768x1024", help="HxW of the test photo (WIDER-like)")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the photo and every test size by this (quick)")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--no-pyramid", action="store_true")
    p.add_argument("--gpu-tflops", type=float, default=5.0,
                   help="effective fp32 throughput assumed for the paper-side estimate (Titan X peak ~6-11)")
    p.add_argument("--nms-impl", default="auto", choices=("auto", "box_nms", "numpy"),
                   help="NMS of the proposals (auto: numpy on a CPU)")
    p.add_argument("--quick", action="store_true", help="= --depths 18 --scale 0.25 --repeat 1")
    a = p.parse_args(argv)
    if a.quick:
        a.depths, a.scale, a.repeat = [18], 0.25, 1
    from rfcn_face.detector import FaceDetector
    h0, w0 = (int(v) for v in a.image.lower().split("x"))
    H, W = max(16, int(round(h0 * a.scale))), max(16, int(round(w0 * a.scale)))
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    sizes = [[int(round(s * a.scale)), int(round(l * a.scale))] for s, l in TABLE2]
    print(f"photo {H}x{W} (scale {a.scale:g}), Table 2 sizes {sizes}, repeat {a.repeat}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')}, load {os.getloadavg()[0]:.2f}, "
          f"NMS {a.nms_impl}")
    results, flops, pyr_flops = {}, {}, {}
    hdr = (f"{'depth':>5} {'arch':<8} {'size':<10} {'input':<10} {'pre ms':>8} {'forward ms':>11} {'props ms':>9} "
           f"{'post ms':>8} {'total ms':>9} {'post_share':>10} {'GFLOPs':>8}")
    print(hdr)
    for depth in a.depths:
        for arch in a.archs:
            cfg = config(arch, depth)
            net = network(cfg)
            det = FaceDetector(cfg, net=net, nms_impl=a.nms_impl)
            for size, full in zip(sizes, TABLE2):
                ms = time_detector(det, image, [size], a.repeat)
                ih, iw = input_size(H, W, size)
                g = gflops(net, ih, iw)
                results[(depth, arch, tuple(full))] = ms
                print(f"{depth:>5} {arch:<8} {'x'.join(map(str, size)):<10} {f'{ih}x{iw}':<10} {ms['preprocess']:8.1f} "
                      f"{ms['forward']:11.1f} {ms['proposals']:9.1f} {ms['post']:8.1f} {ms['total']:9.1f} "
                      f"{ms['post_share']:10.4f} {g:8.1f}", flush=True)
            if not a.no_pyramid:
                pyr = [[int(round(s * a.scale)), int(round(l * a.scale))] for s, l in cfg.test.pyramid_sizes]
                ms = time_detector(det, image, pyr, a.repeat)
                results[(depth, arch, "pyramid")] = ms
                g = sum(gflops(net, *input_size(H, W, s)) for s in pyr)
                pyr_flops[(depth, arch)] = (g, gflops(net, *input_size(H, W, sizes[0])),
                                            gflops(net, *input_size(H, W, sizes[2])))
                print(f"{depth:>5} {arch:<8} {'pyramid':<10} {f'{len(pyr)} levels':<10} {ms['preprocess']:8.1f} "
                      f"{ms['forward']:11.1f} {ms['proposals']:9.1f} {ms['post']:8.1f} {ms['total']:9.1f} "
                      f"{ms['post_share']:10.4f} {g:8.1f}", flush=True)
            del det, net
    # GFLOPs of every architecture at the full-size Table 2 inputs (shape inference only: cheap)
    print(f"\nGFLOPs at the Table 2 sizes for a {h0}x{w0} photo (estimate at {a.gpu_tflops:g} TFLOP/s effective):")
    print(f"{'depth':>5} {'arch':<8} " + " ".join(f"{'x'.join(map(str, s)):>16}" for s in TABLE2))
    for depth in sorted(set(a.depths) | {101}, reverse=True):       # 101: the DC size ratios below
        for arch in ROWS:
            cfg = config(arch, depth)
            row = []
            for s in TABLE2:
                g = config_gflops(cfg, *input_size(h0, w0, s))      # built, never initialised
                flops[(depth, arch, tuple(s))] = g
                row.append(f"{g:7.1f} ({1000 * g / (a.gpu_tflops * 1000):5.0f} ms)")
            print(f"{depth:>5} {arch:<8} " + " ".join(f"{r:>16}" for r in row))
    # closing note
    print("\nclosing note:")
    shares = [v["post_share"] for k, v in results.items() if k[2] != "pyramid"]
    print(f"post_share= max {max(shares):.4f}, median {float(np.median(shares)):.4f} over {len(shares)} "
          f"(arch, size) runs (goal <= 0.05)")
    for depth in a.depths:
        for arch in a.archs:
            r = [results[(depth, arch, s)]["forward"] / results[(depth, "baseline", s)]["forward"]
                 for s in map(tuple, TABLE2) if (depth, "baseline", s) in results and (depth, arch, s) in results]
            fr = [flops[(depth, arch, tuple(s))] / flops[(depth, "baseline", tuple(s))] for s in TABLE2]
            if r:
                print(f"ResNet-{depth} {arch}: forward / baseline {min(r):.2f}-{max(r):.2f} (measured), "
                      f"GFLOPs / baseline {min(fr):.2f}-{max(fr):.2f}")
        for arch in a.archs:
            k = (depth, arch, "pyramid")
            if k in results:
                one = results[(depth, arch, tuple(TABLE2[0]))]["total"]
                best = results[(depth, arch, tuple(TABLE2[2]))]["total"]
                g, g1, g3 = pyr_flops[(depth, arch)]
                print(f"ResNet-{depth} {arch}: pyramid / one size = {results[k]['total'] / one:.2f} x (vs 600x1000), "
                      f"{results[k]['total'] / best:.2f} x (vs 1200x1600) measured; GFLOPs {g / g1:.2f} x / "
                      f"{g / g3:.2f} x")
    size_ratio = [flops[(101, "DC", tuple(s))] / flops[(101, "DC", tuple(TABLE2[0]))] for s in TABLE2]
    print("ResNet-101 DC GFLOPs vs 600x1000: " + ", ".join(f"{'x'.join(map(str, s))} {r:.2f}"
                                                        for s, r in zip(TABLE2, size_ratio)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
