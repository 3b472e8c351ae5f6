"""Face-search benchmark (Tables 3-4 in miniature) at 1,000,000 x 512: per strategy (flat = exact search, IVF-Flat =
IVF + exact re-ranking of the scanned lists on the float vectors, IVF-PQ) recall@1 against exact search, top-1
identity accuracy, ms per probe, the share of the strategy's time outside Faiss, the index's memory, and how the
index was trained; each row is printed (and flushed) when done.

    python benchmarks/bench_search.py                        # 1,000,000 x 512 base, 2,000 probes (~5 min, 2 cores)
    python benchmarks/bench_search.py --n 100000 --ids 2100 --probes 1000 --nlist 256 --csv outputs/bench_search.csv

Data: ``--ids`` synthetic identities (paper: 21,000) with ``n / ids`` images each; probes: ``--present`` of the
probe identities from the base, the others absent, ``--per-probe-id`` images each (:mod:`rfcn_face.search.synthetic`).

The exact search runs once, first: it is the flat row and its neighbours are the reference of every recall@1
(all probes, and ``present``: probes of identities in the base). Per strategy one
:func:`rfcn_face.search.run_strategy`: build (the coarse k-means learns from a seeded sample of
``--train-per-list`` vectors per list, per PQ centroid for the codebooks; IVF-PQ reuses IVF-Flat's trained
quantizer and list assignment, so only its PQ is trained), then search and score, under one
:class:`~rfcn_face.search.FaissClock`: ``outside`` is the share of that wall time not spent in Faiss calls
(train, add, search; goal <= 5%). Memory: the index's own arrays (:func:`rfcn_face.search.index_bytes`). Last,
the work per probe on paper and what it would take on a GPU, and the process's peak memory.
"""
from __future__ import annotations

import os

# Before Faiss / numpy load OpenMP: idle worker threads sleep instead of spinning. On a machine whose cores are
# busy with other work, Faiss' many short parallel loops (k-means, PQ training) otherwise wait on descheduled
# spinning threads: PQ training of 16,384 x 512 took 84 s with two spinning threads, 9.5 s with PASSIVE.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rfcn_face.search import IndexSpec, format_table, make_search_split, run_strategy, write_csv  # noqa: E402

# defaults chosen for ~6 minutes on 2 cores at 1,000,000 x 512 (docs/recognition.md)
SPREAD, NLIST, NPROBE, TRAIN_PER_LIST, RERANK = 0.7, 2048, 64, 40, 64

HEAD = (f"{'strategy':<60} {'recall@1':>8} {'present':>8} {'top-1':>6} {'ms/probe':>9} {'outside':>8} "
        f"{'index MB':>9} {'train n':>8} {'train s':>8} {'add s':>7} {'wall s':>7}")


def row(res, built) -> str:
    return (f"{res.strategy:<60} {res.recall_at_1:8.4f} {res.recall_at_1_present:8.4f} {res.top1:6.4f} "
            f"{res.ms_per_query:9.3f} {100 * res.outside_faiss:7.2f}% {res.index_mb:9.1f} {built.train_n:8d} "
            f"{built.train_s:8.1f} {built.add_s:7.1f} {res.wall_s:7.1f}")


def gpu_estimate(n, d, nlist, nprobe, m, nbits, rerank=0):
    """FLOPs and bytes read per probe, and the time on a V100-class GPU (15 TFLOP/s fp32, 900 GB/s) for a batch
    of one probe (the larger of compute and memory time) and for large batches (compute only: the vectors are
    read once per batch). Flat: one dot product per base vector. IVF: the coarse centroids, then the vectors of
    ``nprobe`` lists (``n nprobe / nlist``, with their int64 ids). IVF-PQ with Faiss' precomputed residual
    tables: query x codebooks (2 d 2^nbits), per probed list its table row (m 2^nbits adds, read) and one add per
    sub-quantizer per scanned code; with ``rerank``: exact L2 on ``rerank`` shortlisted float vectors more."""
    scanned = n * nprobe / nlist
    ksub = 2 ** nbits
    rows = {
        "flat": (2 * n * d, 4 * n * d),
        "ivfflat": (2 * nlist * d + 2 * scanned * d, 4 * nlist * d + scanned * (4 * d + 8)),
        "ivfpq": (2 * nlist * d + 2 * d * ksub + nprobe * m * ksub + scanned * m,
                  4 * nlist * d + 4 * d * ksub + 4 * nprobe * m * ksub + scanned * (m * nbits / 8 + 8)),
    }
    if rerank:
        flops, nbytes = rows["ivfpq"]
        rows[f"ivfpq+rerank {rerank}"] = (flops + 2 * rerank * d, nbytes + 4 * rerank * d)
    out = []
    for name, (flops, nbytes) in rows.items():
        one = max(flops / 15e12, nbytes / 900e9) * 1e3
        batched = flops / 15e12 * 1e3
        out.append(f"  {name:<16} {flops / 1e6:10.1f} MFLOP {nbytes / 2 ** 20:10.2f} MB   batch 1: {one:7.3f} ms   "
                   f"large batches: {batched:7.4f} ms")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="base images (default 1,000,000)")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--ids", type=int, default=21_000, help="base identities (paper: 21,000)")
    ap.add_argument("--probes", type=int, default=2_000, help="probe images (default 2,000)")
    ap.add_argument("--per-probe-id", type=int, default=2, help="probe images per identity")
    ap.add_argument("--present", type=float, default=0.8, help="fraction of probe identities in the base")
    ap.add_argument("--spread", type=float, default=SPREAD, help="synthetic within-identity spread")
    ap.add_argument("--strategies", default="flat,ivfflat,ivfpq", help="flat (the exact search) always runs first")
    ap.add_argument("--nlist", type=int, default=NLIST)
    ap.add_argument("--nprobe", type=int, default=NPROBE)
    ap.add_argument("--m", type=int, default=64)
    ap.add_argument("--nbits", type=int, default=8)
    ap.add_argument("--rerank", type=int, default=RERANK, help="after the IVF-PQ row (the paper's, no re-ranking), "
                    "the same index with exact re-ranking of rerank x k PQ candidates on a float copy of the base "
                    f"(default {RERANK}; 0: no such row)")
    ap.add_argument("--train-per-list", type=int, default=TRAIN_PER_LIST,
                    help="k-means sample per list / PQ centroid")
    ap.add_argument("--spherical", action=argparse.BooleanOptionalAction, default=True,
                    help="coarse k-means with unit-norm centroids (default on; --no-spherical: plain L2 k-means)")
    ap.add_argument("--threads", type=int, default=2, help="faiss.omp_set_num_threads (default 2)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "gpu", "auto"))
    ap.add_argument("--csv", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    strategies = ["flat"] + [s for s in strategies if s != "flat"]

    import faiss
    faiss.omp_set_num_threads(args.threads)
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
    del data
    print(f"data: base {base.shape} ({args.ids} ids x {per_id.min()}-{per_id.max()}, spread {args.spread}), "
          f"probes {probe.shape} ({n_present} present + {n_probe_ids - n_present} absent ids), generated in "
          f"{time.perf_counter() - t0:.1f} s\n{HEAD}", flush=True)

    results, exact_ids, shared = [], None, (None, None)
    for strategy in strategies:
        spec = IndexSpec(strategy, nlist=args.nlist, nprobe=args.nprobe, m=args.m, nbits=args.nbits,
                         device=args.device, train_per_list=args.train_per_list, spherical=args.spherical)
        res, built = run_strategy(spec, base, base_labels, probe, probe_labels,
                                  *(shared if strategy != "flat" else (None, None)), exact_ids=exact_ids)
        if strategy == "flat":          # the one exact pass: the reference of every recall@1
            exact_ids, res.recall_at_1, res.recall_at_1_present = res.neighbours, 1.0, 1.0
        elif shared[0] is None and built.quantizer is not None:
            shared = (built.quantizer, built.assign)     # the next IVF index reuses the coarse k-means
        results.append(res)
        print(row(res, built), flush=True)
        if strategy == "ivfpq" and args.rerank > 0:     # the same PQ behind exact re-ranking: no training
            res, built = run_strategy(replace(spec, rerank=args.rerank), base, base_labels, probe, probe_labels,
                                      exact_ids=exact_ids, filled=built)
            results.append(res)
            print(row(res, built), flush=True)
        del built
    print(f"\n{format_table(results)}")
    print(f"\nper probe on paper (n {args.n}, d {args.dim}, nlist {args.nlist}, nprobe {args.nprobe}, PQ "
          f"{args.m} x {args.nbits} bits) and on a V100-class GPU (15 TFLOP/s, 900 GB/s):\n"
          + gpu_estimate(args.n, args.dim, args.nlist, args.nprobe, args.m, args.nbits,
                         args.rerank if "ivfpq" in strategies else 0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s, peak memory {peak:.1f} GB", flush=True)
    if args.csv:
        write_csv(results, args.csv)
        print(f"wrote {args.csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
