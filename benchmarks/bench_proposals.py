"""The proposal step at 1024 x 1024, DC+16x3 (stride 8, 147,456 anchors), 200 faces: the device block with each
NMS implementation against the numpy reference, the two NMS implementations alone on the same 6000 candidates,
the device proposal targets and OHEM on its 300 RoIs against the numpy functions, and MXNet's own
``contrib.Proposal`` (which cannot serve: own anchors, "+1" convention).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_proposals.py [--repeat 5] [--faces 200]

RPN maps of a partly trained network (``rfcn_face.testing.proposal_reference.face_maps``), training knobs
(pre / post NMS 6000 / 300, NMS 0.7). Every figure is measured in this run; the ratios are what to compare.
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


def timed(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def contrib_proposal(mx, cls, box, info, stride, scales, p):
    """contrib.Proposal on our maps: its inputs are class-major probabilities (A background, then A face)."""
    A = cls.shape[1] // 2
    logits = cls.reshape(1, A, 2, *cls.shape[2:])
    e = np.exp(logits - logits.max(axis=2, keepdims=True))
    prob = (e / e.sum(axis=2, keepdims=True)).transpose(0, 2, 1, 3, 4).reshape(cls.shape)
    args = (mx.nd.array(prob), mx.nd.array(box), mx.nd.array(info))
    kw = dict(rpn_pre_nms_top_n=p.pre_nms_top_n, rpn_post_nms_top_n=p.post_nms_top_n, threshold=p.nms_thresh,
              rpn_min_size=0, scales=tuple(s / stride for s in scales), ratios=(1.0,), feature_stride=stride)
    return lambda: mx.nd.contrib.Proposal(*args, **kw).asnumpy()


def blk_rois(mx, aset, p, c, b, i):
    from symbols.proposal import ProposalBlock
    blk = ProposalBlock(aset, p, nms_impl="numpy")
    blk.initialize()
    return blk(c, b, i)[0].asnumpy()


def targets_and_ohem(mx, rois, faces, repeat):
    """Proposal targets (OHEM on: every RoI kept) + OHEM 1:3 of 128 on one image's RoIs and faces (10 % of them
    ignored): the numpy functions vs the device F-functions, hybridized."""
    from mxnet.gluon import HybridBlock

    from rfcn_face.proposals import ProposalTargetParams
    from rfcn_face.targets import ohem_numpy, proposal_target_numpy
    from symbols.ohem import ohem_select
    from symbols.proposal_target import proposal_targets
    R, M = len(rois), len(faces)
    gt = np.concatenate([faces, (np.arange(M) % 10 == 0)[:, None]], 1)[None].astype(np.float32)
    params = ProposalTargetParams()
    rng = np.random.default_rng(0)
    cls = rng.normal(0, 1, (R + M, 2)).astype(np.float32)
    box = rng.normal(0, 0.3, (R + M, 4)).astype(np.float32)

    def host():
        r, lab, tgt, w = proposal_target_numpy(rois, gt, **params.kwargs())
        prob = np.exp(cls) / np.exp(cls).sum(1, keepdims=True)
        return ohem_numpy(prob, box, lab, tgt, w, r, batch_size=128, fg_fraction=0.25)

    class Device(HybridBlock):
        def hybrid_forward(self, F, rois, gt, cls, box):
            r, lab, tgt, w = proposal_targets(F, rois, gt, rois_per_image=R, params=params)
            return ohem_select(F, cls, box, lab, tgt, w, num_images=1, batch_size=128, fg_fraction=0.25)
    dev = Device()
    dev.hybridize()
    args = [mx.nd.array(x) for x in (rois, gt, cls, box)]
    t_h = timed(host, repeat)
    t_d = timed(lambda: dev(*args)[0].asnumpy(), repeat)
    print(f"proposal targets + OHEM ({R} RoIs + {M} gt rows): numpy {t_h:.1f} ms, device {t_d:.1f} ms "
          f"(ratio device / numpy {t_d / t_h:.2f})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--faces", type=int, default=200)
    a = ap.parse_args(argv)
    import mxnet as mx

    from rfcn_face.anchors import AnchorSet
    from rfcn_face.boxes import nms
    from rfcn_face.proposals import ProposalParams
    from rfcn_face.testing.proposal_reference import face_maps, proposals_reference
    from symbols.nms import nms as device_nms
    from symbols.proposal import ProposalBlock
    aset = AnchorSet(8, shifts="16x3")
    cls, box, faces = face_maps(np.random.default_rng(0), aset, (1024, 1024), a.faces)
    info = np.array([[1024, 1024, 1]], np.float32)
    p = ProposalParams(6000, 300, 0.7, 0.0)
    print(f"1024x1024, DC+16x3: {cls.shape[2] * cls.shape[3] * aset.num_per_location} anchors, {a.faces} faces, "
          f"pre/post NMS {p.pre_nms_top_n}/{p.post_nms_top_n}, NMS {p.nms_thresh}; repeat {a.repeat}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')}, load {os.getloadavg()[0]:.2f}")
    ms = {"reference": timed(lambda: proposals_reference(cls, box, info, aset, p), a.repeat)}
    c, b, i = mx.nd.array(cls), mx.nd.array(box), mx.nd.array(info)
    for impl in ("numpy", "box_nms"):
        blk = ProposalBlock(aset, p, nms_impl=impl)
        blk.initialize()
        blk.hybridize()
        ms[f"block[{impl}]"] = timed(lambda: blk(c, b, i)[1].asnumpy(), a.repeat)
    # the NMS step alone, on the block's own 6000 candidates (score-ranked rows)
    ref_rois, _ = proposals_reference(cls, box, info, aset, ProposalParams(6000, 6000, 1.0, 0.0))
    rows = np.concatenate([np.arange(6000, 0, -1.0)[:, None], ref_rois[:, 1:]], 1)[None]
    nd_rows = mx.nd.array(rows, dtype="float64")
    ms["nms numpy (boxes.nms, topk 300)"] = timed(lambda: nms(rows[0, :, 1:], rows[0, :, 0], 0.7, topk=300),
                                                  a.repeat)
    for impl in ("numpy", "box_nms"):
        ms[f"nms op[{impl}]"] = timed(lambda: device_nms(mx.nd, nd_rows, impl, 0.7, 0.0, 6000, 300).asnumpy(),
                                      a.repeat)
    for k, v in ms.items():
        print(f"{k:<34} {v:9.1f} ms")
    print(f"ratio block[box_nms] / block[numpy] = {ms['block[box_nms]'] / ms['block[numpy]']:.2f}")
    print(f"ratio nms op[box_nms] / nms op[numpy] = {ms['nms op[box_nms]'] / ms['nms op[numpy]']:.2f}")
    print(f"ratio reference / block[numpy] = {ms['reference'] / ms['block[numpy]']:.2f}")
    targets_and_ohem(mx, blk_rois(mx, aset, p, c, b, i), faces, a.repeat)
    # contrib.Proposal: needs len(scales) * len(ratios) == A, its own anchors, "+1" box widths
    try:
        contrib_proposal(mx, cls, box, info, 8, (16, 32, 64, 128, 256, 512), p)()
        print("contrib.Proposal accepted the DC+16x3 maps (unexpected)")
    except mx.base.MXNetError as e:
        first = [line for line in str(e).splitlines() if "Check failed" in line or "Error" in line][:1]
        print(f"contrib.Proposal on DC+16x3 (A = 9 = 6 scales + 3 shifted): refused: {' '.join(first)[:160]}")
    base = AnchorSet(16)
    bcls, bbox, _ = face_maps(np.random.default_rng(0), base, (1024, 1024), a.faces)
    run = contrib_proposal(mx, bcls, bbox, info, 16, base.scales, p)
    out = run()
    ours, _ = proposals_reference(bcls, bbox, info, base, p)
    plus1 = out[:, 1:].copy()
    plus1[:, 2:] += 1.0                                   # its inclusive x2, y2 -> our continuous convention
    raw, fixed = np.abs(out[:, 1:] - ours[:, 1:]).max(), np.abs(plus1 - ours[:, 1:]).max()
    blk = ProposalBlock(base, p, nms_impl="numpy")
    blk.initialize()
    blk.hybridize()
    t_c = timed(run, a.repeat)
    t_b = timed(lambda: blk(mx.nd.array(bcls), mx.nd.array(bbox), mx.nd.array(info))[1].asnumpy(), a.repeat)
    print(f"contrib.Proposal on the stride-16 baseline set (A = 6, {bcls.shape[2] * bcls.shape[3] * 6} anchors): "
          f"{t_c:.1f} ms vs block[numpy] {t_b:.1f} ms (ratio {t_c / t_b:.2f}); row by row its boxes differ from "
          f"ours by up to {raw:.2f} px, {fixed:.1e} px once 1 is added to its x2, y2 (the +1 convention)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
