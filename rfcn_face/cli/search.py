"""``python -m rfcn_face search``: evaluate a Faiss search strategy on feature files (Tables 3-4)."""
from __future__ import annotations

from pathlib import Path

from . import write_json

HELP = "face search evaluation over .npy features: top-1, open-set accuracy, coverage@P99/P95, ms/query"


def add_arguments(p):
    p.add_argument("--base", required=True, help="base features, .npy (n, d) float")
    p.add_argument("--base-labels", required=True, help="base identity labels, .npy (n,)")
    p.add_argument("--probe", required=True, help="probe features, .npy (m, d)")
    p.add_argument("--probe-labels", required=True,
                   help="probe labels, .npy (m,); a label absent from the base labels marks an identity "
                        "that should be rejected")
    p.add_argument("--strategy", choices=("flat", "ivfflat", "ivfpq"), default="flat",
                   help="flat = exact L2; ivfflat = IVF with exact post-verification; ivfpq = IVF + PQ on "
                        "residuals (default flat)")
    p.add_argument("--nlist", type=int, default=1000, help="IVF centroids (paper: 1000, 21000; default 1000)")
    p.add_argument("--nprobe", type=int, default=10, help="inverted lists scanned per query (default 10)")
    p.add_argument("--pq-m", type=int, default=64, help="PQ sub-quantizers, must divide d (default 64)")
    p.add_argument("--pq-nbits", type=int, default=8, help="bits per PQ code (default 8)")
    p.add_argument("--rerank", type=int, default=0,
                   help="ivfpq: re-rank RERANK x k PQ candidates with exact L2 (default 0 = off, as the paper)")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu", help="default cpu")
    p.add_argument("--heldout", type=float, default=0.5,
                   help="fraction of probe identities used to choose the rejection threshold (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    p.add_argument("--normalize", action="store_true", help="L2-normalise base and probe features first")
    p.add_argument("--json", default=None, help="write the result as JSON here")
    p.add_argument("--csv", default=None, help="write the result row as CSV here")


def _load(path, what):
    import numpy as np
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file not found: {path}")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # corrupt or not a .npy
        raise ValueError(f"{path}: cannot read {what} as .npy ({e})") from None


def run(args) -> int:
    import numpy as np

    from ..search import IndexSpec, evaluate, format_table, write_csv
    from ..search.synthetic import l2_normalize

    base, base_labels = _load(args.base, "base features"), _load(args.base_labels, "base labels")
    probe, probe_labels = _load(args.probe, "probe features"), _load(args.probe_labels, "probe labels")
    for arr, path in ((base, args.base), (probe, args.probe)):
        if arr.ndim != 2 or arr.dtype.kind not in "fiu":
            raise ValueError(f"{path}: expected a 2-D numeric (n, d) array, got {arr.dtype} {arr.shape}")
    if args.normalize:
        base, probe = l2_normalize(base), l2_normalize(probe)
    spec = IndexSpec(strategy=args.strategy, nlist=args.nlist, nprobe=args.nprobe, m=args.pq_m,
                     nbits=args.pq_nbits, rerank=args.rerank, device=args.device)
    res = evaluate(base, base_labels, probe, probe_labels, spec, heldout_fraction=args.heldout, seed=args.seed)
    print(format_table([res]))
    if args.json:
        write_json(args.json, res.as_dict(), indent=2)
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        write_csv([res], args.csv)
    return 0
