"""Face-search benchmark (Tables 3-4 in miniature) at 1,000,000 x 512: per strategy (flat, IVF + exact
re-ranking, IVF-PQ) recall@1 against exact search, top-1 identity accuracy, ms per probe, the evaluator's own
time outside Faiss, the index's memory, and how the index was trained; each row is printed when done.

    python benchmarks/bench_search.py                        # 1,000,000 x 512 base, 3,000 probes (~160 s of CPU)
    python benchmarks/bench_search.py --n 100000 --ids 2100 --probes 1000 --csv outputs/bench_search.csv

Data: ``--ids`` synthetic identities (paper: 21,000) with ``n / ids`` images each; probes: ``--present`` of the
probe identities from the base, the others absent, ``--per-probe-id`` images each (:mod:`rfcn_face.search.synthetic`).

Per strategy the index is built once (:func:`rfcn_face.search.build`): the coarse k-means learns from a sample of
``--train-per-list`` vectors per list (per PQ centroid for the codebooks), drawn from the base; IVF-PQ reuses the
IVF-Flat's trained quantizer and list assignment (same ``nlist``), so only its PQ is trained. Then one
``evaluate(..., index=...)`` call: its Faiss search gives ms per probe; everything else it does (label lookup,
top-1, held-out threshold, open-set accuracy, coverage) is the overhead outside Faiss, relative to that search
(goal <= 5%). recall@1: the fraction of probes whose returned neighbour is the flat search's. Memory: the index's
own arrays (:func:`rfcn_face.search.index_bytes`). Last, the work per probe on paper and what it would take on a GPU.
"""
from __future__ import annotations

import os

# Before Faiss / numpy load OpenMP: idle worker threads sleep instead of spinning. On a machine whose cores are
# busy with other work, Faiss' many short parallel loops (k-means, PQ training) otherwise wait on descheduled
# spinning threads: PQ training of 16,384 x 512 took 84 s with two spinning threads, 9.5 s with PASSIVE.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rfcn_face.search import IndexSpec, build, evaluate, format_table, make_search_split, write_csv  # noqa: E402

HEAD = (f"{'strategy':<44} {'recall@1':>8} {'top-1':>6} {'ms/probe':>9} {'outside':>8} {'index MB':>9} "
        f"{'train n':>8} {'train s':>8} {'add s':>7} {'build s':>8}")


def row(res, built, outside) -> str:
    return (f"{res.strategy:<44} {res.recall_at_1:8.4f} {res.top1:6.4f} {res.ms_per_query:9.3f} "
            f"{100 * outside:7.2f}% {res.index_mb:9.1f} {built.train_n:8d} {built.train_s:8.1f} {built.add_s:7.1f} "
            f"{built.build_s:8.1f}")


def gpu_estimate(n, d, nlist, nprobe, m, nbits):
    """FLOPs and bytes read per probe, and the time on a V100-class GPU (15 TFLOP/s fp32, 900 GB/s) for a batch
    of one probe (the larger of compute and memory time) and for large batches (compute only: the vectors are
    read once per batch). Flat: one dot product per base vector. IVF: the coarse centroids, then the vectors of
    ``nprobe`` lists (``n nprobe / nlist``, with their int64 ids). IVF-PQ with Faiss' precomputed residual
    tables: query x codebooks (2 d 2^nbits), per probed list its table row (m 2^nbits adds, read) and one add per
    sub-quantizer per scanned code."""
    scanned = n * nprobe / nlist
    ksub = 2 ** nbits
    rows = {
        "flat": (2 * n * d, 4 * n * d),
        "ivfflat": (2 * nlist * d + 2 * scanned * d, 4 * nlist * d + scanned * (4 * d + 8)),
        "ivfpq": (2 * nlist * d + 2 * d * ksub + nprobe * m * ksub + scanned * m,
                  4 * nlist * d + 4 * d * ksub + 4 * nprobe * m * ksub + scanned * (m * nbits / 8 + 8)),
    }
    out = []
    for name, (flops, nbytes) in rows.items():
        one = max(flops / 15e12, nbytes / 900e9) * 1e3
        batched = flops / 15e12 * 1e3
        out.append(f"  {name:<8} {flops / 1e6:10.1f} MFLOP {nbytes / 2 ** 20:10.2f} MB   batch 1: {one:7.3f} ms   "
                   f"large batches: {batched:7.4f} ms")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="base images (default 1,000,000)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--ids", type=int, default=21_000, help="base identities (paper: 21,000)")
    ap.add_argument("--probes", type=int, default=3_000, help="probe images (default 3,000)")
    ap.add_argument("--per-probe-id", type=int, default=2, help="probe images per identity")
    ap.add_argument("--present", type=float, default=0.8, help="fraction of probe identities in the base")
    ap.add_argument("--spread", type=float, default=2.5, help="synthetic within-identity spread")
    ap.add_argument("--strategies", default="flat,ivfflat,ivfpq")
    ap.add_argument("--nlist", type=int, default=1000)
    ap.add_argument("--nprobe", type=int, default=10)
    ap.add_argument("--m", type=int, default=64)
    ap.add_argument("--nbits", type=int, default=8)
    ap.add_argument("--train-per-list", type=int, default=64, help="k-means sample per list / PQ centroid")
    ap.add_argument("--device", default="cpu", choices=("cpu", "gpu", "auto"))
    ap.add_argument("--csv", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import faiss
    t_all = time.perf_counter()
    print(f"faiss {faiss.__version__}, threads {faiss.omp_get_max_threads()}, GPUs {faiss.get_num_gpus()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}", flush=True)
    n_probe_ids = max(1, args.probes // args.per_probe_id)
    n_present = int(round(args.present * n_probe_ids))
    per_id = np.full(args.ids, args.n // args.ids) + (np.arange(args.ids) < args.n % args.ids)
    t0 = time.perf_counter()
    data = make_search_split(args.ids, per_id, n_present, n_probe_ids - n_present, args.per_probe_id,
                             dim=args.dim, spread=args.spread, seed=args.seed)
    base, base_labels = data["base"], data["base_labels"]
    probe, probe_labels = data["probe"], data["probe_labels"]
    print(f"data: base {base.shape} ({args.ids} ids x {per_id.min()}-{per_id.max()}), probes {probe.shape} "
          f"({n_present} present + {n_probe_ids - n_present} absent ids), generated in "
          f"{time.perf_counter() - t0:.1f} s\n{HEAD}", flush=True)

    results, exact_ids, shared = [], None, None
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        spec = IndexSpec(strategy, nlist=args.nlist, nprobe=args.nprobe, m=args.m, nbits=args.nbits,
                         device=args.device, train_per_list=args.train_per_list)
        reuse = shared if strategy != "flat" and shared is not None else (None, None)
        built = build(spec, base, *reuse)
        if strategy == "ivfflat" or (strategy == "ivfpq" and shared is None):
            shared = (built.quantizer, built.assign)
        t = time.perf_counter()
        res = evaluate(base, base_labels, probe, probe_labels, spec, index=built, exact_ids=exact_ids)
        total = time.perf_counter() - t
        if strategy == "flat":           # the exact search: its neighbours are the reference of recall@1
            exact_ids, res.recall_at_1 = res.neighbours, 1.0
        outside = (total - res.search_s) / res.search_s
        results.append(res)
        print(row(res, built, outside), flush=True)
        del built
    print(f"\n{format_table(results)}")
    print(f"\nper probe on paper (n {args.n}, d {args.dim}, nlist {args.nlist}, nprobe {args.nprobe}, PQ "
          f"{args.m} x {args.nbits} bits) and on a V100-class GPU (15 TFLOP/s, 900 GB/s):\n"
          + gpu_estimate(args.n, args.dim, args.nlist, args.nprobe, args.m, args.nbits))
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        write_csv(results, args.csv)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
