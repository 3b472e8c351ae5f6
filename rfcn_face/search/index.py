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
                           ``rerank=K`` (not in the paper, default 0) wraps it in ``IndexRefineFlat``:
                           a shortlist of ``K * k`` PQ candidates is re-ranked with exact L2.
=========  ==============  ===========================================================================

``device="gpu"`` moves the index to every GPU Faiss sees (``faiss.get_num_gpus()``); ``"auto"`` uses them
when present. Vectors are float32 rows; L2-normalised features make L2 order equal cosine order.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

__all__ = ["STRATEGIES", "IndexSpec", "build_index", "gpu_count"]

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
    seed: int = 1234       # k-means seed

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)}")
        if self.device not in ("cpu", "gpu", "auto"):
            raise ValueError(f"unknown device {self.device!r}; expected cpu, gpu or auto")
        for name in ("nlist", "nprobe", "m", "nbits"):
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
        return s + ")"


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


def build_index(spec: IndexSpec, base):
    """Train (when needed) and fill an index with ``base`` (n, d) float32. Returns (index, seconds)."""
    import faiss
    base = np.ascontiguousarray(base, dtype=np.float32)
    n, d = base.shape
    _check(spec, n, d)
    t0 = time.perf_counter()
    if spec.strategy == "flat":
        index = faiss.IndexFlatL2(d)
    else:
        quantizer = faiss.IndexFlatL2(d)  # the Python wrapper keeps it alive with the index
        if spec.strategy == "ivfflat":
            index = faiss.IndexIVFFlat(quantizer, d, spec.nlist, faiss.METRIC_L2)
        else:
            index = faiss.IndexIVFPQ(quantizer, d, spec.nlist, spec.m, spec.nbits)  # by_residual = True
        index.cp.seed = spec.seed
    gpu = _use_gpu(spec.device)
    if gpu:
        index = faiss.index_cpu_to_all_gpus(index)
    if not index.is_trained:
        index.train(base)
    if spec.strategy != "flat":
        space = faiss.GpuParameterSpace() if gpu else faiss.ParameterSpace()
        space.set_index_parameter(index, "nprobe", spec.nprobe)
    if spec.strategy == "ivfpq" and spec.rerank > 0:
        index = faiss.IndexRefineFlat(index)  # keeps the original vectors for exact re-ranking
        index.k_factor = float(spec.rerank)
    index.add(base)
    return index, time.perf_counter() - t0
