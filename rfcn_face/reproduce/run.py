"""``reproduce --table``: every selected row trained, tested, plotted; the tables and Fig. 10 rebuilt after each."""
from __future__ import annotations

import time
from pathlib import Path

from ..checkpoint import atomic_write_json
from .common import display_path, run_dir_of
from .fig10 import fig10
from .plan import missing_inputs, plan
from .rows import GROUP_TITLES, ReproduceOptions, rows_for
from .steps import ensure_plotted, ensure_tested, ensure_trained, test_status, train_status
from .tables import write_tables

__all__ = ["reproduce"]


def reproduce(opts: ReproduceOptions, log=None) -> dict:
    """Run (or continue) the reproduction of ``opts.table``; returns the summary (also ``OUT/summary.json``).
    With ``opts.dry_run`` returns :func:`plan` without running anything. Messages go to ``log`` (default: the
    project's logger) and ``OUT/log.txt``."""
    from ..logs import get_logger, run_log
    log = log or get_logger().info
    if opts.dry_run:
        return plan(opts)
    opts.check()
    all_rows, rows = rows_for(opts)
    by_stem = {r.stem: r for r in all_rows}
    out = Path(opts.out)
    missing = []
    for r in rows:
        t = by_stem[r.train_stem]
        need_train = train_status(run_dir_of(t, out), t.cfg, opts.max_iters)["status"] != "done"
        missing += missing_inputs(r.cfg, train=need_train, test=test_status(r, out, opts)["status"] != "done")
    missing = list(dict.fromkeys(missing))
    if missing:
        raise FileNotFoundError("reproduce needs: " + "; ".join(missing) + " (REPRODUCE.md, data/README.md)")
    from ..locks import folder_lock
    with folder_lock(out, "reproduce"), run_log(out):
        log(f"reproduce --table {opts.table}: {len(rows)} row(s), preset {opts.preset}, results in {out}/")
        t_start = time.time()
        done = []
        for k, r in enumerate(rows, 1):
            log(f"[{r.id}] ({k}/{len(rows)}) {GROUP_TITLES[r.group]}: {r.label} — {display_path(r.path)}")
            ts = ensure_trained(by_stem[r.train_stem], opts, log)
            m = ensure_tested(r, opts, log, ts)
            ensure_plotted(r, opts, m, log)
            write_tables(all_rows, out, which=tuple(sorted({"2" if x.group == "2" else "1" for x in rows})))
            done.append({"id": r.id, "ap": m["ap"], "paper": r.paper, "run": display_path(run_dir_of(r, out))})
            log(f"[{r.id}] done")
        fig = fig10(all_rows, out, opts.gpu_tflops)
        summary = {"table": opts.table, "rows": done, "tables": [str(p) for p in sorted(out.glob("table*.md"))],
                   "fig10": fig["plot"] if fig else None, "seconds": round(time.time() - t_start, 1)}
        atomic_write_json(out / "summary.json", summary)
        log(f"wrote {', '.join(summary['tables'])}" + (f" and {summary['fig10']}" if fig else ""))
        return summary
