"""Where a search strategy's time goes: inside Faiss calls, or the evaluator's own work around them.

A :class:`FaissClock` measures the wall time of everything run under ``with clock:`` (for a strategy: training,
filling, searching, scoring) and, through :meth:`FaissClock.call`, the part spent inside Faiss calls (train, add,
quantizer search, search). The rest — sampling, label lookups, metrics — is the overhead outside Faiss
(issue 26: at most 5% of the strategy's wall time). Nested calls count once (the outermost).
"""
from __future__ import annotations

import time

__all__ = ["FaissClock"]


class FaissClock:
    def __init__(self, now=time.perf_counter):
        self._now = now
        self.wall = 0.0      # seconds under ``with clock:``
        self.inside = 0.0    # of which inside :meth:`call`
        self._start = None
        self._depth = 0

    def __enter__(self):
        self._start = self._now()
        return self

    def __exit__(self, *exc):
        self.wall += self._now() - self._start
        self._start = None
        return False

    def call(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, its time (also when it raises) counted as inside Faiss."""
        if self._depth:
            return fn(*args, **kwargs)
        self._depth = 1
        t = self._now()
        try:
            return fn(*args, **kwargs)
        finally:
            self.inside += self._now() - t
            self._depth = 0

    @property
    def outside(self) -> float:
        return self.wall - self.inside

    @property
    def outside_fraction(self) -> float:
        """Outside-Faiss share of the wall time (NaN before anything was timed)."""
        return self.outside / self.wall if self.wall > 0 else float("nan")
