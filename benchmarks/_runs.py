"""Shared printing of the evaluator benchmarks (bench_wider_eval.py, bench_fddb_eval.py)."""
from __future__ import annotations

import statistics


def print_run_medians(verb: str, trees, times: dict, mem: dict, repeat: int) -> dict:
    """The median wall time and peak RSS of each tree's whole-CLI runs; returns the medians by tree name."""
    med = {n: statistics.median(v) for n, v in times.items()}
    print(f"whole `{verb}` run, median of {repeat} (fresh process each, peak RSS = ru_maxrss):")
    for name, _ in trees:
        print(f"  {name:<6} {med[name]:6.2f} s   peak {max(mem[name]):6.1f} MB   "
              f"(runs: {' '.join(f'{t:.2f}' for t in times[name])})")
    return med
