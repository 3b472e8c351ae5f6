"""The results tables, rebuilt from the test markers in ``OUT/tests``: ``OUT/table1.md`` / ``.json`` (Table 1
incl. the pyramid rows) and ``OUT/table2.md`` / ``.json``: ours beside the paper's ``paper:`` block, the
difference, the run folder and the setup."""
from __future__ import annotations

from pathlib import Path
from typing import List

from ..benchmarks import BENCHMARKS
from ..benchmarks.base import fmt
from ..checkpoint import atomic_write_json, atomic_write_text
from ..evaluation.wider import SETTINGS
from .common import display_path, pr_png_of, read_marker, run_dir_of, size_arg, test_dir_of
from .rows import Row

__all__ = ["write_tables"]


def _d(ours, paper) -> str:
    return "—" if ours is None or paper is None else f"{ours - paper:+.3f}"


def _setup_note(m: dict) -> str:
    s = m["setup"]
    parts = []
    if m.get("preset") != "paper":
        parts.append(f"preset {m.get('preset')}")
    bench = BENCHMARKS.get_or_none(s["dataset"])
    if bench is None or not bench.paper_tables:
        parts.append(s["dataset"])
    if m.get("schedule") and m.get("iterations") is not None and m["iterations"] < m["schedule"]:
        parts.append(f"{m['iterations']}/{m['schedule']} it")
    elif m.get("iterations") is not None and m.get("preset") != "paper":
        parts.append(f"{m['iterations']} it")
    if s["limit"]:
        parts.append(f"first {s['limit']} images")
    if m.get("overrides"):
        parts.append("--set " + " ".join(o for o in m["overrides"]))
    return "paper setup" if not parts else "; ".join(parts)


def write_tables(all_rows: List[Row], out, which=("1", "2")) -> dict:
    """``OUT/table1.md`` / ``table1.json`` (Table 1 incl. the pyramid rows) and ``OUT/table2.md`` / ``.json``
    from the markers in ``OUT/tests``; rows without results are listed as not run. Returns {table: json}."""
    out = Path(out)
    written = {}
    for t in which:
        groups = ("1", "pyramid") if t == "1" else ("2",)
        rows = [r for r in all_rows if r.group in groups]
        if not rows:
            continue
        entries = []
        for r in rows:
            m = read_marker(test_dir_of(r, out))
            ours = m["ap"] if m else None
            entries.append({"id": r.id, "row": r.label, "yaml": display_path(r.path), "group": r.group,
                            "sizes": r.sizes, "paper": r.paper, "ours": ours,
                            "diff": {s: (None if not ours or ours.get(s) is None or r.paper.get(s) is None
                                         else ours[s] - r.paper[s]) for s in SETTINGS},
                            "run": display_path(run_dir_of(r, out)) if m else None,
                            "test": display_path(test_dir_of(r, out)) if m else None,
                            "pr_plot": display_path(pr_png_of(r, out)) if m and pr_png_of(r, out).is_file() else None,
                            "setup": _setup_note(m) if m else None,
                            "ms_per_image": m.get("ms_per_image") if m else None})
        doc = {"table": t, "rows": entries}
        atomic_write_json(out / f"table{t}.json", doc)
        atomic_write_text(out / f"table{t}.md", _table_md(t, entries))
        written[t] = doc
    return written


def _table_md(t: str, entries: list) -> str:
    done = [e for e in entries if e["ours"]]
    lines = [f"# Table {t} — WIDER FACE val AP: ours beside the paper", ""]
    if t == "1":
        lines += ["Ablation of Zhu et al., CVPR 2018, Table 1 (single-scale rows, then the pyramid rows). "
                  "Δ = ours − paper."]
    else:
        lines += ["Zhu et al., CVPR 2018, Table 2: the Final model tested at four maximum sizes (shorter x longer "
                  "side); the paper reports Hard AP only. Δ = ours − paper."]
    setups = sorted({e["setup"] for e in done})
    if any(s != "paper setup" for s in setups):
        lines += ["", "**Not the paper's setup for the rows marked in the last column: the numbers are not "
                      "comparable in value.**"]
    lines += ["", f"{len(done)} of {len(entries)} rows have results.", ""]
    if t == "1":
        lines += ["| # | row | ours easy | ours medium | ours hard | paper easy | paper medium | paper hard "
                  "| Δ easy | Δ medium | Δ hard | run | setup |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    else:
        lines += ["| max size | ours hard | paper hard | Δ hard | ours easy | ours medium | run | setup |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in entries:
        o, p = e["ours"] or {}, e["paper"]
        run = f"`{e['run']}`" if e["run"] else "not run"
        setup = e["setup"] or ""
        if t == "1":
            lines.append(f"| {e['id']} | {e['row']} | {fmt(o.get('easy'))} | {fmt(o.get('medium'))} "
                         f"| {fmt(o.get('hard'))} "
                         f"| {fmt(p.get('easy'))} | {fmt(p.get('medium'))} | {fmt(p.get('hard'))} "
                         f"| {_d(o.get('easy'), p.get('easy'))} | {_d(o.get('medium'), p.get('medium'))} "
                         f"| {_d(o.get('hard'), p.get('hard'))} | {run} | {setup} |")
        else:
            size = " + ".join(size_arg(s) for s in e["sizes"])
            lines.append(f"| {size} | {fmt(o.get('hard'))} | {fmt(p.get('hard'))} | {_d(o.get('hard'), p.get('hard'))} "
                         f"| {fmt(o.get('easy'))} | {fmt(o.get('medium'))} | {run} | {setup} |")
    return "\n".join(lines) + "\n"
