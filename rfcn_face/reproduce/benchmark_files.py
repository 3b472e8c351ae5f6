"""``reproduce --benchmarks``: from one trained Final run, the files of every benchmark of the registry marked
``in_reproduce`` (:mod:`rfcn_face.benchmarks`: WIDER val and test, FDDB, AFW, PASCAL Faces, in registration
order) — each tested at its default sizes (:meth:`~rfcn_face.benchmarks.base.Benchmark.default_sizes`: Sec. 5.2's
original size, WIDER FACE at the run's test size) with its ``reproduce_options`` (FDDB: the ellipses), then its
extra files (:meth:`~rfcn_face.benchmarks.base.Benchmark.package`: the WIDER test submission zip, checked before
and after zipping; the WIDER val PR plot with the paper's own curve) and its summary line. A benchmark whose data
is not under any given root is skipped with a note; a finished one (same run, sizes, root, limit) is not redone."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from ..benchmarks import get_benchmark, reproduced_benchmarks
from ..checkpoint import atomic_write_json, atomic_write_text
from .common import (MARKER, command_line, contexts_of, device_args, display_path, params_fingerprint,
                     read_marker, size_arg)

__all__ = ["BenchmarkOptions", "find_benchmark_root", "benchmark_plan", "format_benchmark_plan",
           "reproduce_benchmarks"]


@dataclass
class BenchmarkOptions:
    run: str
    data: Sequence[str] = ("data",)          # data roots (data/README.md layout), searched in order per benchmark
    out: str = "RESULTS"
    sizes: Optional[list] = None             # [[S, L], ...]; default: each benchmark's default_sizes
    gpus: Optional[str] = None
    cpus: Optional[int] = None
    limit: int = 0
    dry_run: bool = False
    progress: bool = True


def find_benchmark_root(bench, roots: Sequence) -> tuple:
    """``(root, None)`` of the first data root holding everything ``bench`` needs (its ``required_paths``),
    else ``(None, note)``."""
    notes = []
    for r in roots:
        miss = [p for p in bench.required_paths(Path(r)) if not p.exists()]
        if not miss:
            return Path(r), None
        notes.append(", ".join(str(m) for m in miss))
    return None, f"skipped: not found under {' or '.join(map(str, roots))} (missing {'; '.join(notes)})"


def _sizes(bench, opts: BenchmarkOptions, cfg) -> list:
    return [list(s) for s in opts.sizes] if opts.sizes else bench.default_sizes(cfg)


def _flags(options: dict) -> List[str]:
    """``test`` flags of a benchmark's ``reproduce_options`` ({"ellipses": True} -> --ellipses)."""
    return [f"--{k.replace('_', '-')}" for k, v in options.items() if v is True]


def _test_args(bench, root, sizes, opts) -> List[str]:
    a = ["test", "--run", display_path(opts.run), "--dataset", bench.name, "--data", str(root),
         "--out", display_path(Path(opts.out) / "benchmarks" / bench.name), "--sizes"] + [size_arg(s) for s in sizes]
    a += _flags(bench.reproduce_options) + device_args(opts)
    return a + (["--limit", str(opts.limit)] if opts.limit else [])


def benchmark_plan(opts: BenchmarkOptions) -> dict:
    """The test command of every benchmark for the trained run ``opts.run`` (its files must exist: run_files)."""
    from ..config import load_config
    from ..detector import run_files
    cfg = load_config(run_files(opts.run)[0])
    entries = []
    for bench in reproduced_benchmarks():
        root, note = find_benchmark_root(bench, opts.data)
        entries.append({"benchmark": bench.name, "root": str(root) if root else None, "note": note,
                        "command": command_line(_test_args(bench, root or opts.data[0], _sizes(bench, opts, cfg),
                                                           opts))})
    return {"run": str(opts.run), "benchmarks": entries}


def format_benchmark_plan(p: dict) -> str:
    lines = [f"reproduce --benchmarks from {p['run']}"]
    for e in p["benchmarks"]:
        lines.append(f"[{e['benchmark']}] " + (f"data {e['root']}" if e["root"] else e["note"]))
        lines.append(f"     {e['command']}")
    return "\n".join(lines)


def reproduce_benchmarks(opts: BenchmarkOptions, log=None) -> dict:
    """The benchmark files of one trained run (see the module docstring): ``OUT/benchmarks/<benchmark>/`` (the
    ``test`` outputs), what each benchmark's ``package`` adds (``OUT/benchmarks/wider_test_submission.zip``,
    ``OUT/benchmarks/wider_val_pr.png``), ``OUT/benchmarks.md`` / ``.json``; messages to ``log`` (default: the
    project's logger) and ``OUT/log.txt``."""
    from ..logs import get_logger, run_log
    log = log or get_logger().info
    if opts.dry_run:
        return benchmark_plan(opts)          # the plan of one trained run: it must exist
    from .. import inference
    from ..config import load_config
    from ..detector import FaceDetector, run_files
    if opts.limit < 0:
        raise ValueError(f"--limit must be >= 0, got {opts.limit}")
    cfg_path, _ = run_files(opts.run)
    cfg = load_config(cfg_path)
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is a file, not a folder")
    bdir = out / "benchmarks"
    from ..locks import folder_lock
    with folder_lock(out, "reproduce --benchmarks"), run_log(out):
        bdir.mkdir(parents=True, exist_ok=True)
        det = None
        results = []
        for bench in reproduced_benchmarks():
            name = bench.name
            root, note = find_benchmark_root(bench, opts.data)
            entry = {"benchmark": name, "root": str(root) if root else None, "status": "skipped", "note": note}
            results.append(entry)
            if root is None:
                log(f"[{name}] {note}")
                continue
            sizes = _sizes(bench, opts, cfg)
            tdir = bdir / name
            setup = {"run": str(Path(opts.run)), "params": params_fingerprint(opts.run), "sizes": sizes,
                     "root": str(root), "limit": int(opts.limit)}
            m = read_marker(tdir)
            if m is not None and m.get("setup") == setup:
                log(f"[{name}] done: {tdir} — skipped")
                s = m["summary"]
            else:
                if det is None:
                    det = FaceDetector.from_run(opts.run, ctx=contexts_of(opts))
                log(f"[{name}] testing at {' + '.join(size_arg(x) for x in sizes)} -> {tdir}")
                s = inference.run_test(det, inference.TestOptions(
                    dataset=name, out=str(tdir), data_root=str(root), sizes=sizes, limit=opts.limit,
                    label="ours (Final)", progress=opts.progress, replace_other=True, **bench.reproduce_options),
                    log=lambda x: None)
                atomic_write_json(tdir / MARKER, {"setup": setup, "summary": s}, default=str)
            entry.update(status="done", note=None, out=display_path(tdir), files=s["files"], evaluation=s["evaluation"],
                         notes=s["notes"], unreadable=len(s["unreadable"]))
            if s["unreadable"]:
                log(f"[{name}] warning: {len(s['unreadable'])} image(s) could not be read (no detections), e.g. "
                    f"{s['unreadable'][0]['image']}")
            extra = bench.package(tdir, bdir, root, opts.limit, lambda line, n=name: log(f"[{n}] {line}"))
            entry.update({k: display_path(v) if isinstance(v, Path) else v for k, v in extra.items()})
            for line in bench.summary_lines(s["evaluation"]):
                log(f"[{name}] {line}")
        doc = {"run": str(opts.run), "benchmarks": results}
        atomic_write_json(out / "benchmarks.json", doc, default=str)
        atomic_write_text(out / "benchmarks.md", _benchmarks_md(doc))
        log(f"wrote {out / 'benchmarks.md'}")
        return doc


def _benchmarks_md(doc: dict) -> str:
    lines = [f"# Benchmarks of `{doc['run']}`", "",
             "Sec. 5.2 protocols: AFW, PASCAL Faces and FDDB at original size; WIDER FACE at the run's test size. "
             "The only published curve the project ships is this paper's own WIDER val curve (ZCC, overlaid on "
             "the WIDER val plot); FDDB / AFW / PASCAL results are compared against nothing here.", "",
             "| benchmark | status | result | files |", "| --- | --- | --- | --- |"]
    for e in doc["benchmarks"]:
        if e["status"] != "done":
            lines.append(f"| {e['benchmark']} | skipped | {e['note']} | |")
            continue
        res, files = get_benchmark(e["benchmark"]).report_cells(e)
        note = f" (unreadable images: {e['unreadable']})" if e.get("unreadable") else ""
        lines.append(f"| {e['benchmark']} | done{note} | {res} | {files} |")
    return "\n".join(lines) + "\n"
