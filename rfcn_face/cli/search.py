"""``python -m rfcn_face search``: evaluate a Faiss search strategy on feature files (Tables 3-4)."""
from __future__ import annotations

import sys
from pathlib import Path

from . import write_json
from .common import number_arg

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
    p.add_argument("--nlist", type=number_arg("--nlist", lo=1), default=1000,
                   help="IVF centroids (paper: 1000, 21000; default 1000)")
    p.add_argument("--nprobe", type=number_arg("--nprobe", lo=1), default=10,
                   help="inverted lists scanned per query, at most --nlist (default 10)")
    p.add_argument("--pq-m", type=number_arg("--pq-m", lo=1), default=64,
                   help="PQ sub-quantizers, must divide d (default 64)")
    p.add_argument("--pq-nbits", type=number_arg("--pq-nbits", lo=1, hi=16), default=8,
                   help="bits per PQ code, 1..16 (default 8)")
    p.add_argument("--rerank", type=number_arg("--rerank", lo=0), default=0,
                   help="ivfpq: re-rank RERANK x k PQ candidates with exact L2 (default 0 = off, as the paper)")
    p.add_argument("--train-per-list", type=number_arg("--train-per-list", lo=1), default=64,
                   help="k-means training sample: this many base vectors per IVF list (or per PQ centroid, if more); "
                        "Faiss advises 39-256 (default 64)")
    p.add_argument("--spherical", action="store_true",
                   help="IVF: coarse k-means with unit-norm centroids (lists by cosine; for L2-normalised features)")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu", help="default cpu")
    p.add_argument("--heldout", type=number_arg("--heldout", float, lo=0, hi=1, lo_open=True, hi_open=True),
                   default=0.5, help="fraction of probe identities used to choose the rejection threshold, strictly "
                                     "between 0 and 1 (default 0.5)")
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


def _check_features(arr, path, what):
    import numpy as np
    if arr.ndim != 2 or arr.dtype.kind not in "fiu":
        raise ValueError(f"{path}: expected a 2-D numeric (n, d) array of {what}, got {arr.dtype} {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{path}: the {what} set is empty (shape {arr.shape})")
    if arr.shape[1] == 0:
        raise ValueError(f"{path}: {what} have dimension 0 (shape {arr.shape})")
    bad = ~np.isfinite(arr).all(axis=1) if arr.dtype.kind == "f" else np.zeros(len(arr), bool)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        kind = "a NaN" if np.isnan(arr[k]).any() else "an inf"
        raise ValueError(f"{path}: row {k} of the {what} has {kind} value ({int(bad.sum())} row(s) with NaN or "
                         "inf values)")
    sq = np.square(arr.astype(np.float64)).sum(axis=1)       # Faiss computes in float32: |x|^2 must fit
    big = ~(sq <= np.finfo(np.float32).max)
    if big.any():
        k = int(np.flatnonzero(big)[0])
        raise ValueError(f"{path}: row {k} of the {what} has a squared norm {sq[k]:.3g} beyond float32's range "
                         f"({int(big.sum())} row(s)): distances would be inf / NaN; scale the features (e.g. "
                         "L2-normalise them)")


def _label_kind(a) -> str:
    return {"i": "integer", "u": "integer", "b": "integer", "f": "float", "U": "string", "S": "string"}.get(
        a.dtype.kind, a.dtype.kind)


def _check_labels(arr, path, what, n):
    """Labels as a 1-D integer or string array; float labels must hold integers (they are compared as such)."""
    import numpy as np
    if arr.ndim != 1:
        raise ValueError(f"{path}: {what} must be a 1-D array (one label per row), got shape {arr.shape}")
    if len(arr) != n:
        raise ValueError(f"{path}: {len(arr)} {what} for {n} feature rows")
    kind = _label_kind(arr)
    if kind not in ("integer", "float", "string"):
        raise ValueError(f"{path}: {what} must be integers or strings, got dtype {arr.dtype}")
    if kind == "float":
        if not np.isfinite(arr).all() or np.any(arr != np.round(arr)):
            raise ValueError(f"{path}: {what} are floats that are not all integers (e.g. "
                             f"{arr[~np.isfinite(arr) | (arr != np.round(arr))][0]!r}): an identity label must be an "
                             "integer or a string")
        print(f"warning: {path}: {what} are floats ({arr.dtype}); read as the integers they hold", file=sys.stderr)
        return arr.astype(np.int64)
    if arr.dtype.kind == "b":
        print(f"warning: {path}: {what} are booleans; read as two identities, False = 0 and True = 1",
              file=sys.stderr)
        return arr.astype(np.int64)
    return arr


def run(args) -> int:
    import numpy as np

    from ..search import IndexSpec, format_table, run_strategy, write_csv
    from ..search.synthetic import l2_normalize

    if args.rerank and args.strategy != "ivfpq":
        raise ValueError(f"--rerank applies to --strategy ivfpq only, got --strategy {args.strategy}")
    if args.strategy != "flat" and args.nprobe > args.nlist:
        raise ValueError(f"--nprobe {args.nprobe} exceeds --nlist {args.nlist} (at most every list can be scanned)")
    base, base_labels = _load(args.base, "base features"), _load(args.base_labels, "base labels")
    probe, probe_labels = _load(args.probe, "probe features"), _load(args.probe_labels, "probe labels")
    _check_features(base, args.base, "base features")
    _check_features(probe, args.probe, "probe features")
    if base.shape[1] != probe.shape[1]:
        raise ValueError(f"{args.probe}: probe dimension {probe.shape[1]} != base dimension {base.shape[1]} "
                         f"({args.base})")
    base_labels = _check_labels(base_labels, args.base_labels, "base labels", len(base))
    probe_labels = _check_labels(probe_labels, args.probe_labels, "probe labels", len(probe))
    if _label_kind(base_labels) != _label_kind(probe_labels):
        raise ValueError(f"{args.probe_labels}: probe labels have dtype {probe_labels.dtype} but the base labels "
                         f"({args.base_labels}) dtype {base_labels.dtype}: {_label_kind(probe_labels)} and "
                         f"{_label_kind(base_labels)} labels never compare equal; save both with the same type")
    n_ids = len(np.unique(probe_labels))
    n_tune = int(round(args.heldout * n_ids))
    if n_tune == 0 or n_tune == n_ids:
        raise ValueError(f"{args.probe_labels}: --heldout {args.heldout:g} of the {n_ids} probe identities leaves "
                         f"{'no identity to pick the threshold' if n_tune == 0 else 'no identity to score'}")
    if args.normalize:
        for arr, path, what in ((base, args.base, "base"), (probe, args.probe, "probe")):
            zero = np.flatnonzero(~np.any(arr != 0, axis=1))
            if zero.size:
                raise ValueError(f"{path}: --normalize: {what} row {int(zero[0])} is all zero and has no direction "
                                 f"({zero.size} such row(s))")
        base, probe = l2_normalize(base), l2_normalize(probe)
    spec = IndexSpec(strategy=args.strategy, nlist=args.nlist, nprobe=args.nprobe, m=args.pq_m,
                     nbits=args.pq_nbits, rerank=args.rerank, device=args.device, train_per_list=args.train_per_list,
                     spherical=args.spherical)
    res, _ = run_strategy(spec, base, base_labels, probe, probe_labels, heldout_fraction=args.heldout, seed=args.seed)
    print(format_table([res]))
    if args.json:
        write_json(args.json, res.as_dict(), indent=2)
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        write_csv([res], args.csv)
    return 0
