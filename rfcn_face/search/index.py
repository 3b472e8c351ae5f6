"""The search strategies of Tables 3-4 as Faiss indexes.

=========  ==============  ===========================================================================
strategy   paper           Faiss index
=========  ==============  ===========================================================================
flat       *_search_0      ``IndexFlatL2``: exact L2 over the whole base set.
ivfflat    *_search_1      ``IndexIVFFlat``: coarse k-means quantizer with ``nlist`` centroids; the
                           ``nprobe`` nearest lists are scanned with exact L2 on the stored full vectors
                           (the "exact post-verification").
ivfpq      *_search_2      ``IndexIVFPQ``: same coarse quantizer, residuals to the centroid coded by a
                           product quantizer (``m`` sub-vectors x ``nbits``); distances are approximate.
                           ``rerank=K`` (not in the paper, default 0) wraps it in ``IndexRefine``:
                           a shortlist of ``K * k`` PQ candidates is re-ranked with exact L2.
=========  ==============  ===========================================================================

``device="gpu"`` moves the index to every GPU Faiss sees (``faiss.get_num_gpus()``); ``"auto"`` uses them
when present. Vectors are float32 rows; L2-normalised features make L2 order equal cosine order.

Training: the coarse k-means (and the PQ codebooks) learn from a seeded sample of the base, ``train_per_list``
vectors per list (per PQ centroid if that is more), as Faiss advises (39-256 per centroid): at 1,000,000 x 512
and 1,000 lists, 64,000 vectors instead of the whole base. :func:`build` reports the sample size and the
training and adding times; a trained coarse quantizer and the base's list assignment can be passed on to the
next index of the same ``nlist`` (IVF-Flat and IVF-PQ share both; the PQ is still trained on its own).

``spherical=True``: the coarse k-means normalises its centroids after every iteration (Faiss ``cp.spherical``),
so for unit-norm features a vector's list is the centroid of largest cosine. Plain L2 k-means on such features
leaves centroids of different norms, and the short ones (averages of many unrelated identities) are close to
everything: at 1,000,000 x 512 synthetic identities (spread 0.7) and 2,048 lists the largest list held 16,141
vectors (mean 488) and a probe's 32 lists 105,000 (6.7x the even share); spherical: largest 813, 15,661 scanned.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .clock import FaissClock

__all__ = ["STRATEGIES", "IndexSpec", "Built", "build", "build_index", "training_sample", "index_bytes",
           "gpu_count"]

STRATEGIES = ("flat", "ivfflat", "ivfpq")


@dataclass
class IndexSpec:
    strategy: str = "flat"
    nlist: int = 1000      # coarse centroids (paper: 1,000 and 21,000)
    nprobe: int = 10       # inverted lists scanned per query
    m: int = 64            # PQ sub-quantizers (ivfpq); must divide the dimension
    nbits: int = 8         # bits per PQ code (ivfpq)
    rerank: int = 0        # ivfpq only: exact re-ranking of rerank * k PQ candidates (0 = off, as the paper)
    device: str = "cpu"    # cpu | gpu | auto
    seed: int = 1234       # k-means seed (and the training sample's)
    train_per_list: int = 64   # training sample: this many base vectors per list / PQ centroid (Faiss: 39-256)
    spherical: bool = False    # coarse k-means with unit-norm centroids (cosine lists for L2-normalised features)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}")
        if self.device not in ("cpu", "gpu", "auto"):
            raise ValueError(f"unknown device {self.device!r}; expected cpu, gpu or auto")
        for name in ("nlist", "nprobe", "m", "nbits", "train_per_list"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.rerank < 0:
            raise ValueError(f"rerank must be >= 0 (0 = off), got {self.rerank}")

    @property
    def label(self):
        if self.strategy == "flat":
            return "flat"
        s = f"{self.strategy}(nlist={self.nlist},nprobe={self.nprobe}"
        if self.strategy == "ivfpq":
            s += f",m={self.m},nbits={self.nbits}" + (f",rerank={self.rerank}" if self.rerank else "")
        return s + (",spherical" if self.spherical else "") + ")"


def gpu_count():
    import faiss
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def _use_gpu(device):
    n = gpu_count()
    if device == "gpu" and n == 0:
        raise ValueError("--device gpu: Faiss sees no GPU (faiss.get_num_gpus() == 0; faiss-cpu installed?)")
    return device == "gpu" or (device == "auto" and n > 0)


def _check(spec, n, d):
    if spec.strategy == "flat":
        return
    if spec.nlist > n:
        raise ValueError(f"nlist={spec.nlist} exceeds the {n} base vectors")
    if spec.strategy == "ivfpq":
        if d % spec.m:
            raise ValueError(f"PQ m={spec.m} must divide the feature dimension {d}")
        if n < 2 ** spec.nbits:
            raise ValueError(f"PQ with nbits={spec.nbits} needs >= {2 ** spec.nbits} base vectors, got {n}")


def training_sample(spec: IndexSpec, base: np.ndarray) -> np.ndarray:
    """The base vectors the k-means (coarse and PQ) train on: ``train_per_list`` per list, or per PQ centroid
    when that is more, drawn without replacement with the spec's seed (the whole base when it is not larger)."""
    per = spec.nlist if spec.strategy != "ivfpq" else max(spec.nlist, 2 ** spec.nbits)
    n_train = min(len(base), spec.train_per_list * per)
    if n_train >= len(base):
        return base
    rng = np.random.default_rng([spec.seed, 1])
    return base[np.sort(rng.choice(len(base), n_train, replace=False))]


@dataclass
class Built:
    """An index and how it was made: ``train_n`` vectors trained on (0: nothing to train) in ``train_s`` s,
    ``add_s`` s to add the base; ``quantizer`` / ``assign``: the trained coarse quantizer and the base's list of
    each vector, to pass to :func:`build` for another IVF index with the same ``nlist``."""
    index: object
    build_s: float
    train_n: int = 0
    train_s: float = 0.0
    add_s: float = 0.0
    quantizer: object = None
    assign: Optional[np.ndarray] = None


def build(spec: IndexSpec, base, quantizer=None, assign: Optional[np.ndarray] = None, clock=None,
          filled: Optional[Built] = None) -> Built:
    """Train (on :func:`training_sample`) and fill an index with ``base`` (n, d) float32.

    ``quantizer``: an already trained coarse quantizer of ``spec.nlist`` centroids (then only a PQ is trained);
    ``assign``: the list of every base vector under that quantizer (then the base is added without searching
    the quantizer again). Both come from a previous :class:`Built` (CPU only). ``clock``: a
    :class:`~.clock.FaissClock` that times the Faiss calls (train, quantizer search, add). ``filled``: a built
    IVF-PQ of this spec but without re-ranking, already trained and filled with ``base``: only the exact
    re-ranking layer of ``spec.rerank`` is added (so one PQ serves both rows of the benchmark).
    """
    import faiss
    call = (clock or FaissClock()).call
    base = np.ascontiguousarray(base, dtype=np.float32)
    n, d = base.shape
    _check(spec, n, d)
    t0 = time.perf_counter()
    if filled is not None:
        if spec.strategy != "ivfpq" or spec.rerank == 0 or filled.index.ntotal != n:
            raise ValueError(f"filled: a re-ranking layer goes on an IVF-PQ of the {n} base vectors with rerank > 0, "
                             f"got {spec.label} on an index of {filled.index.ntotal}")
        index = _with_rerank(filled.index, base, spec.rerank, call)
        add_s = time.perf_counter() - t0
        return Built(index, add_s, add_s=add_s, quantizer=filled.quantizer, assign=filled.assign)
    gpu = _use_gpu(spec.device)
    shared = quantizer is not None and not gpu
    if spec.strategy == "flat":
        index = faiss.IndexFlatL2(d)
    else:
        if shared and (quantizer.ntotal != spec.nlist or quantizer.d != d):
            raise ValueError(f"the shared quantizer has {quantizer.ntotal} centroids of dimension {quantizer.d}, "
                             f"the spec {spec.nlist} of dimension {d}")
        quantizer = quantizer if shared else faiss.IndexFlatL2(d)  # the Python wrapper keeps it alive
        if spec.strategy == "ivfflat":
            index = faiss.IndexIVFFlat(quantizer, d, spec.nlist, faiss.METRIC_L2)
        else:
            index = faiss.IndexIVFPQ(quantizer, d, spec.nlist, spec.m, spec.nbits)  # by_residual = True
        index.cp.seed = spec.seed
        index.cp.spherical = bool(spec.spherical)
        if spec.strategy == "ivfpq":
            index.pq.cp.seed = spec.seed
    if gpu:
        index = call(faiss.index_cpu_to_all_gpus, index)
    train_n, train_s = 0, 0.0
    if not index.is_trained:
        t = time.perf_counter()
        sample = training_sample(spec, base)
        call(index.train, sample)             # a trained shared quantizer is kept: only the PQ learns
        train_n, train_s = len(sample), time.perf_counter() - t
        del sample
    if spec.strategy != "flat":
        space = faiss.GpuParameterSpace() if gpu else faiss.ParameterSpace()
        space.set_index_parameter(index, "nprobe", spec.nprobe)
    ivf = index if spec.strategy != "flat" and not gpu else None
    t = time.perf_counter()
    if ivf is None:
        call(index.add, base)
    else:                                     # what IndexIVF.add does, with the list assignment kept (or given)
        if assign is None or len(assign) != n:
            assign = call(quantizer.search, base, 1)[1][:, 0]
        from faiss.contrib.ivf_tools import add_preassigned
        call(add_preassigned, ivf, base, assign)
    if spec.strategy == "ivfpq" and spec.rerank > 0:
        index = _with_rerank(index, base, spec.rerank, call)
    add_s = time.perf_counter() - t
    return Built(index, time.perf_counter() - t0, train_n, train_s, add_s, None if ivf is None else quantizer,
                 None if ivf is None else assign)


def _with_rerank(index, base, k_factor, call):
    """``index`` (filled) behind exact re-ranking: a search asks it for ``k_factor * k`` candidates and orders them
    by exact L2 on a flat copy of ``base`` (Faiss ``IndexRefine``; its Python wrapper keeps both indexes alive)."""
    import faiss
    flat = faiss.IndexFlatL2(base.shape[1])
    call(flat.add, base)
    refined = faiss.IndexRefine(index, flat)
    refined.k_factor = float(k_factor)
    return refined


def build_index(spec: IndexSpec, base):
    """Train (when needed) and fill an index with ``base`` (n, d) float32. Returns (index, seconds)."""
    b = build(spec, base)
    return b.index, b.build_s


def index_bytes(index) -> Optional[int]:
    """Bytes of the index's own arrays (vectors or codes, ids, centroids, PQ codebooks and tables), from the sizes
    Faiss reports; None for an index type not listed here (e.g. on a GPU)."""
    import faiss
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexRefine):
        return _sum(index_bytes(index.base_index), index_bytes(index.refine_index))
    if isinstance(index, faiss.IndexFlatCodes):
        return int(index.ntotal) * int(index.code_size)
    if isinstance(index, faiss.IndexIVF):
        b = _sum(int(index.ntotal) * (int(index.code_size) + 8), index_bytes(index.quantizer))   # codes + int64 ids
        if isinstance(index, faiss.IndexIVFPQ):
            b = _sum(b, 4 * (int(index.pq.centroids.size()) + int(index.precomputed_table.size())))
        return b
    return None


def _sum(*parts):
    return None if any(p is None for p in parts) else sum(parts)
