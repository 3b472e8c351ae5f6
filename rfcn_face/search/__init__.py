"""Faiss face-search evaluator (Qi, Liu & Su, Sec. 4-5, Tables 3-4).

* :mod:`.index` — the three search strategies (exact L2 ``flat``, IVF with exact post-verification
  ``ivfflat``, IVF + PQ on residuals ``ivfpq``), CPU or GPU.
* :mod:`.metrics` — top-1 on present identities, open-set accuracy with a held-out rejection threshold,
  coverage at a precision (MS-Celeb-1M challenge 2).
* :mod:`.evaluate` — one call that builds, searches, scores and times a strategy; table and CSV.
* :mod:`.clock` — time inside Faiss calls vs the strategy's wall time (the evaluator's own overhead).
* :mod:`.synthetic` — deterministic identity clusters on the unit sphere with planted mislabels.
"""
from .clock import FaissClock  # noqa: F401
from .evaluate import evaluate, format_table, run_strategy, write_csv, SearchResult  # noqa: F401
from .index import STRATEGIES, Built, IndexSpec, build, build_index, index_bytes, training_sample  # noqa: F401
from .synthetic import SyntheticFaces, make_search_split  # noqa: F401
