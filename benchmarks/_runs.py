"""Whole-command runs of the evaluator benchmarks (bench_wider_eval.py, bench_fddb_eval.py): the timed process, its
environment, the printed medians."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


class RunStats:
    """Wall time, peak RSS and CPU time of each named tree's whole-CLI runs (and the floor's)."""

    def __init__(self, names):
        self.times, self.mem, self.cpu = ({n: [] for n in names} for _ in range(3))

    def add(self, name: str, wall: float, mb: float, cpu: float):
        self.times[name].append(wall)
        self.mem[name].append(mb)
        self.cpu[name].append(cpu)

    def print_medians(self, verb: str, repeat: int) -> tuple:
        """Prints the median wall time, CPU time and peak RSS of each tree; returns the wall and CPU medians by
        tree name."""
        med = {n: statistics.median(v) for n, v in self.times.items()}
        med_cpu = {n: statistics.median(v) for n, v in self.cpu.items()}
        print(f"whole `{verb}` run, median of {repeat} (fresh process each, peak RSS = ru_maxrss, CPU = user + "
              "system):")
        for name in self.times:
            print(f"  {name:<6} {med[name]:6.2f} s   CPU {med_cpu[name]:5.2f} s   peak {max(self.mem[name]):6.1f} MB   "
                  f"(runs: {' '.join(f'{t:.2f}' for t in self.times[name])})")
        return med, med_cpu


def child_env(tree: Path, env_extra: dict) -> dict:
    """The environment of a timed process: ``PYTHONPATH`` = the tree; bytecode cached (in ``PYTHONPYCACHEPREFIX``,
    outside the trees) as for an installed package, whatever ``PYTHONDONTWRITEBYTECODE`` says here."""
    env = dict(os.environ, PYTHONPATH=str(tree), **env_extra)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# Timed through a small launcher process: a child forked from this (large) benchmark process would inherit its
# resident size as its ru_maxrss high-water mark; the launcher is small, so its RUSAGE_CHILDREN is the command's own.
_LAUNCHER = """
import json, os, resource, subprocess, sys, time
with open(sys.argv[1], "wb") as log:
    t0 = time.perf_counter()
    rc = subprocess.call(sys.argv[2:], stdout=log, stderr=log)
    wall = time.perf_counter() - t0
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": rc, "wall": wall, "cpu": u.ru_utime + u.ru_stime, "maxrss_kb": u.ru_maxrss}))
"""


def run_process(cmd, cwd: Path, env: dict):
    """One fresh process: (wall seconds, peak RSS MB = its ``ru_maxrss``, CPU seconds = user + system), read with
    ``getrusage(RUSAGE_CHILDREN)`` in a launcher that ran only this command. The CPU time is the steadier
    figure while other jobs share the cores."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log"
        out = subprocess.run([sys.executable, "-c", _LAUNCHER, str(log)] + [str(c) for c in cmd], cwd=str(cwd),
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"launcher failed: {out.stderr}")
        r = json.loads(out.stdout)
        if r["rc"] != 0:
            raise SystemExit(f"{cwd}: {' '.join(map(str, cmd[1:5]))} failed ({r['rc']}):\n{log.read_text()}")
    return r["wall"], r["maxrss_kb"] / 1024, r["cpu"]
