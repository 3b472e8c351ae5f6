"""Build a strategy's index on the base set, search the probes, score and time it (Tables 3-4)."""
from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from .clock import FaissClock
from .index import Built, IndexSpec, build, index_bytes
from .metrics import best_threshold, coverage_at_precision, held_out_split, open_set_accuracy, top1_present

__all__ = ["SearchResult", "evaluate", "run_strategy", "nearest", "format_table", "write_csv", "COLUMNS"]

COLUMNS = ("strategy", "top1", "recall_at_1", "recall_at_1_present", "outside_faiss", "open_set_accuracy",
           "threshold", "coverage_at_p99", "coverage_at_p95", "build_s", "wall_s", "train_n", "train_s", "search_s",
           "ms_per_query", "index_mb", "n_base", "n_probe", "n_present", "n_absent")


@dataclass
class SearchResult:
    strategy: str
    top1: float
    open_set_accuracy: float
    threshold: float
    coverage_at_p99: float
    coverage_at_p95: float
    build_s: float
    search_s: float
    ms_per_query: float
    n_base: int
    n_probe: int
    n_present: int
    n_absent: int
    recall_at_1: float = float("nan")   # top-1 neighbour == the exact search's (when ``exact_ids`` is given)
    recall_at_1_present: float = float("nan")   # the same over probes of identities in the base
    outside_faiss: float = float("nan")  # share of the strategy's wall time outside Faiss calls (run_strategy)
    wall_s: float = float("nan")         # run_strategy: the strategy's wall time (build, search, scoring)
    train_n: int = 0                    # vectors the k-means trained on
    train_s: float = 0.0
    index_mb: float = float("nan")      # the index's own arrays (index_bytes), MB
    extra: dict = field(default_factory=dict)
    neighbours: Optional[np.ndarray] = field(default=None, repr=False, compare=False)   # top-1 base row per probe

    def as_dict(self):
        d = asdict(self)
        d.pop("extra")
        d.pop("neighbours")
        d.update(self.extra)
        return d


def _as_features(x, name):
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (n, d) feature array, got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def present_in(probe_labels, base_labels):
    """Mask of probe labels that occur among the base labels (O(n) table for small non-negative ints)."""
    if (probe_labels.dtype.kind in "iu" and base_labels.dtype.kind in "iu" and len(base_labels)
            and base_labels.min() >= 0 and base_labels.max() < 4 * len(base_labels) + 1024):
        table = np.zeros(int(base_labels.max()) + 1, bool)
        table[base_labels] = True
        ok = (probe_labels >= 0) & (probe_labels < len(table))
        return ok & table[np.where(ok, probe_labels, 0)]
    return np.isin(probe_labels, base_labels)


def nearest(index, probe, clock=None):
    """Top-1 neighbour ids and squared L2 distances of every probe row, and the search time."""
    t0 = time.perf_counter()
    dist, ids = (clock or FaissClock()).call(index.search, probe, 1)
    return ids[:, 0], dist[:, 0], time.perf_counter() - t0


def evaluate(base, base_labels, probe, probe_labels, spec: IndexSpec | None = None, heldout_fraction=0.5,
             seed=0, index=None, build_s=None, exact_ids=None, clock=None):
    """Evaluate one search strategy.

    top1: over probes whose label is in ``base_labels``; open-set accuracy: rejection threshold on the
    confidence (minus squared L2 distance) chosen on a held-out half of the probe identities
    (:func:`held_out_split`), accuracy reported on the other half; coverage at 99% / 95% precision over all
    probes; build time (train + add) and milliseconds per query (one batched search of all probes); with
    ``exact_ids`` (the exact nearest base row of every probe, e.g. the flat strategy's) recall@1 = the fraction of
    probes whose returned neighbour is that row (``recall_at_1_present``: over present probes only; an absent
    identity's exact neighbour is a near tie among unrelated images). Pass a prebuilt ``index`` (a
    :class:`~.index.Built`, or an index with its ``build_s``) to reuse it: the base is then not read again (its
    labels are), only its shape checked.
    ``clock``: a :class:`~.clock.FaissClock` timing the Faiss calls (build when not given an index, search).
    """
    spec = spec or IndexSpec()
    probe = _as_features(probe, "probe")
    base_labels, probe_labels = np.asarray(base_labels).ravel(), np.asarray(probe_labels).ravel()
    shape = np.shape(base)
    if len(shape) != 2:
        raise ValueError(f"base: expected a 2-D (n, d) feature array, got shape {shape}")
    if len(base_labels) != shape[0]:
        raise ValueError(f"{len(base_labels)} base labels for {shape[0]} base features")
    if len(probe_labels) != len(probe):
        raise ValueError(f"{len(probe_labels)} probe labels for {len(probe)} probe features")
    if shape[1] != probe.shape[1]:
        raise ValueError(f"base dimension {shape[1]} != probe dimension {probe.shape[1]}")
    for n, name in ((shape, "base"), (probe.shape, "probe")):
        if n[0] == 0 or n[1] == 0:
            raise ValueError(f"the {name} set is empty (shape {n})")
    if not np.isfinite(probe).all():
        raise ValueError("the probe features hold NaN or infinite values")
    if (base_labels.dtype.kind in "US") != (probe_labels.dtype.kind in "US"):
        raise ValueError(f"probe labels ({probe_labels.dtype}) and base labels ({base_labels.dtype}) are of "
                         "different kinds (strings vs numbers): they never compare equal")
    if not 0.0 < float(heldout_fraction) < 1.0:
        raise ValueError(f"heldout_fraction must be strictly between 0 and 1, got {heldout_fraction}")
    if index is None:
        base = _as_features(base, "base")
        if not np.isfinite(base).all():
            raise ValueError("the base features hold NaN or infinite values")
        index = build(spec, base, clock=clock)
    built = index if isinstance(index, Built) else Built(index, float(build_s or 0.0))
    if built.index.ntotal != shape[0]:
        raise ValueError(f"the index holds {built.index.ntotal} vectors, the base {shape[0]}")
    ids, dist, search_s = nearest(built.index, probe, clock)
    pred = np.where(ids >= 0, base_labels[np.maximum(ids, 0)], -1 if base_labels.dtype.kind in "iu" else "")
    conf = np.where(ids >= 0, -dist, -np.inf)
    present = present_in(probe_labels, base_labels)
    tune = held_out_split(probe_labels, heldout_fraction, seed)
    threshold, _ = best_threshold(pred[tune], conf[tune], probe_labels[tune], present[tune])
    test = ~tune
    osa = open_set_accuracy(pred[test], conf[test], probe_labels[test], present[test], threshold)
    size = index_bytes(built.index)
    same = None if exact_ids is None else ids == np.asarray(exact_ids).ravel()
    return SearchResult(
        strategy=spec.label, top1=top1_present(pred, probe_labels, present), open_set_accuracy=osa,
        threshold=threshold, coverage_at_p99=coverage_at_precision(pred, conf, probe_labels, 0.99),
        coverage_at_p95=coverage_at_precision(pred, conf, probe_labels, 0.95), build_s=built.build_s,
        search_s=search_s, ms_per_query=1000.0 * search_s / max(len(probe), 1), n_base=shape[0],
        n_probe=len(probe), n_present=int(present.sum()), n_absent=int((~present).sum()),
        recall_at_1=float("nan") if same is None else float(np.mean(same)),
        recall_at_1_present=float("nan") if same is None or not present.any() else float(np.mean(same[present])),
        train_n=built.train_n, train_s=built.train_s, index_mb=float("nan") if size is None else size / 2 ** 20,
        neighbours=ids,
    )


def run_strategy(spec: IndexSpec, base, base_labels, probe, probe_labels, quantizer=None, assign=None,
                 exact_ids=None, clock=None, filled=None, **kwargs):
    """One strategy as the benchmark times it: :func:`build` (``quantizer`` / ``assign`` / ``filled`` passed on)
    then :func:`evaluate` with the built index, under one :class:`~.clock.FaissClock` (``clock``, or a new one); the
    result's ``outside_faiss`` is the share of that wall time spent outside Faiss calls and ``wall_s`` the wall
    time. Returns (SearchResult, Built)."""
    with clock or FaissClock() as clock:
        base = _as_features(base, "base")          # no copy for C-contiguous float32
        built = build(spec, base, quantizer, assign, clock=clock, filled=filled)
        res = evaluate(base, base_labels, probe, probe_labels, spec, index=built, exact_ids=exact_ids, clock=clock,
                       **kwargs)
    res.outside_faiss, res.wall_s = clock.outside_fraction, clock.wall
    return res, built


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.1f}"
    return str(v)


def format_table(results):
    """Plain-text table of :data:`COLUMNS` for a list of :class:`SearchResult`."""
    rows = [[_fmt(r.as_dict()[c]) for c in COLUMNS] for r in results]
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(COLUMNS)]
    line = lambda cells: "  ".join(x.ljust(w) for x, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(COLUMNS), line(["-" * w for w in widths])] + [line(r) for r in rows])


def write_csv(results, path):
    from ..checkpoint import atomic_write_file

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for r in results:
                d = r.as_dict()
                w.writerow([d[c] for c in COLUMNS])
    atomic_write_file(path, write)
