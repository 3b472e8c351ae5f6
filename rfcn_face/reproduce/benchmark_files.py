"""``reproduce --benchmarks``: from one trained Final run, the WIDER test submission zip (``event/name.txt``,
checked with :func:`rfcn_face.evaluation.submission.check_submission` before and after zipping), FDDB fold +
ellipse files and ROC, AFW and PASCAL Faces detection files, AP and PR curves; a benchmark whose data is not under
any given root is skipped with a note."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from ..checkpoint import atomic_write_json, atomic_write_text
from ..evaluation.published import paper_published_baseline
from ..evaluation.wider import SETTINGS
from .common import (MARKER, command_line, contexts_of, device_args, display_path, fmt, params_fingerprint,
                     read_marker, size_arg, tee)

__all__ = ["BENCHMARKS", "BenchmarkOptions", "find_benchmark_root", "package_submission", "benchmark_plan",
           "format_benchmark_plan", "reproduce_benchmarks"]

BENCHMARKS = ("wider-val", "wider-test", "fddb", "afw", "pascal")


@dataclass
class BenchmarkOptions:
    run: str
    data: Sequence[str] = ("data",)          # data roots (data/README.md layout), searched in order per benchmark
    out: str = "RESULTS"
    sizes: Optional[list] = None             # [[S, L], ...]; default: original size (WIDER: the run's test sizes)
    gpus: Optional[str] = None
    cpus: Optional[int] = None
    limit: int = 0
    dry_run: bool = False
    progress: bool = True


def _benchmark_needs(name: str, root: Path) -> List[Path]:
    """The files / folders a benchmark needs under a data root (data/README.md)."""
    from ..datasets.wider import wider_base
    w = wider_base(root)
    if name == "wider-val":
        return [w / "wider_face_split" / "wider_face_val_bbx_gt.txt", w / "WIDER_val" / "images",
                w / "ground_truth" / "wider_face_val.mat"]
    if name == "wider-test":
        return [w / "wider_face_split" / "wider_face_test_filelist.txt", w / "WIDER_test" / "images"]
    if name == "fddb":
        return [root / "fddb" / "FDDB-folds", root / "fddb" / "originalPics"]
    from ..inference import FACE_EVAL_FILES
    mats = [root / name / f for f in FACE_EVAL_FILES[name]]
    return [next((m for m in mats if m.is_file()), mats[0]), root / name / "images"]


def find_benchmark_root(name: str, roots: Sequence) -> tuple:
    """``(root, None)`` of the first data root holding everything ``name`` needs, else ``(None, note)``."""
    notes = []
    for r in roots:
        miss = [p for p in _benchmark_needs(name, Path(r)) if not p.exists()]
        if not miss:
            return Path(r), None
        notes.append(", ".join(str(m) for m in miss))
    return None, f"skipped: not found under {' or '.join(map(str, roots))} (missing {'; '.join(notes)})"


def package_submission(pred_dir, keys, zip_path) -> List[str]:
    """Zip a WIDER submission folder as the evaluation server expects (members ``event/name.txt``), after
    checking it with :func:`~rfcn_face.evaluation.submission.check_submission`, then unzip it into a
    temporary folder and check that again. Returns every problem (empty = ready to upload)."""
    import tempfile
    import zipfile
    from ..evaluation.submission import check_submission
    pred_dir, zip_path = Path(pred_dir), Path(zip_path)
    problems = check_submission(pred_dir, keys)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_name(f".{zip_path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for e, n in keys:
            f = pred_dir / e / f"{n}.txt"
            if f.is_file():
                z.write(f, f"{e}/{n}.txt")
    os.replace(tmp, zip_path)
    with tempfile.TemporaryDirectory() as d:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(d)
        problems += [f"in {zip_path.name}: {p}" for p in check_submission(d, keys)]
    return problems


def _bench_sizes(name: str, opts: BenchmarkOptions, cfg) -> list:
    from ..transforms import inference_sizes
    if opts.sizes:
        return [list(s) for s in opts.sizes]
    return inference_sizes(cfg) if name.startswith("wider") else [[0, 0]]   # Sec. 5.2: original size


def _bench_test_args(name, root, sizes, opts) -> List[str]:
    a = ["test", "--run", display_path(opts.run), "--dataset", name, "--data", str(root),
         "--out", display_path(Path(opts.out) / "benchmarks" / name), "--sizes"] + [size_arg(s) for s in sizes]
    if name == "fddb":
        a.append("--ellipses")
    return a + device_args(opts) + (["--limit", str(opts.limit)] if opts.limit else [])


def benchmark_plan(opts: BenchmarkOptions) -> dict:
    """The test command of every benchmark for the trained run ``opts.run`` (its files must exist: run_files)."""
    from ..config import load_config
    from ..detector import run_files
    cfg = load_config(run_files(opts.run)[0])
    entries = []
    for name in BENCHMARKS:
        root, note = find_benchmark_root(name, opts.data)
        entries.append({"benchmark": name, "root": str(root) if root else None, "note": note,
                        "command": command_line(_bench_test_args(name, root or opts.data[0],
                                                                 _bench_sizes(name, opts, cfg), opts))})
    return {"run": str(opts.run), "benchmarks": entries}


def format_benchmark_plan(p: dict) -> str:
    lines = [f"reproduce --benchmarks from {p['run']}"]
    for e in p["benchmarks"]:
        lines.append(f"[{e['benchmark']}] " + (f"data {e['root']}" if e["root"] else e["note"]))
        lines.append(f"     {e['command']}")
    return "\n".join(lines)


def reproduce_benchmarks(opts: BenchmarkOptions, log=print) -> dict:
    """The benchmark files of one trained run (see the module docstring): ``OUT/benchmarks/<benchmark>/`` (the
    ``test`` outputs), ``OUT/benchmarks/wider_test_submission.zip``, ``OUT/benchmarks/wider_val_pr.png`` (ZCC
    overlaid), ``OUT/benchmarks.md`` / ``.json``. A benchmark absent from every data root is skipped with a note."""
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
    bdir.mkdir(parents=True, exist_ok=True)
    log = tee(log, out / "reproduce.log")
    det = None
    results = []
    for name in BENCHMARKS:
        root, note = find_benchmark_root(name, opts.data)
        entry = {"benchmark": name, "root": str(root) if root else None, "status": "skipped", "note": note}
        results.append(entry)
        if root is None:
            log(f"[{name}] {note}")
            continue
        sizes = _bench_sizes(name, opts, cfg)
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
                dataset=name, out=str(tdir), data_root=str(root), sizes=sizes, ellipses=name == "fddb",
                limit=opts.limit, label="ours (Final)", progress=opts.progress), log=lambda x: None)
            atomic_write_json(tdir / MARKER, {"setup": setup, "summary": s}, default=str)
        entry.update(status="done", note=None, out=display_path(tdir), files=s["files"], evaluation=s["evaluation"],
                     notes=s["notes"], unreadable=len(s["unreadable"]))
        if s["unreadable"]:
            log(f"[{name}] warning: {len(s['unreadable'])} image(s) could not be read (no detections), e.g. "
                f"{s['unreadable'][0]['image']}")
        ev = s["evaluation"]
        if name == "wider-test":
            keys = [(r.event, r.name) for r in inference.load_test_set(name, root, opts.limit).records]
            z = bdir / "wider_test_submission.zip"
            problems = package_submission(tdir / "predictions", keys, z)
            entry.update(zip=display_path(z), submission_problems=problems[:50], verified=not problems)
            ok = "verified with check_submission (ready to upload)"
            log(f"[{name}] {z}: {len(keys)} files, " + (ok if not problems else
                                                        f"{len(problems)} problem(s): {problems[0]}"))
        elif name == "wider-val" and (tdir / "wider_eval.json").is_file():
            from ..evaluation.plots import plot_wider_pr
            from ..evaluation.wider import WiderResult
            r = WiderResult.from_json(json.loads((tdir / "wider_eval.json").read_text()))
            pr = {k: (r.precision[k], r.recall[k]) for k in r.ap}
            entry["pr_plot"] = str(plot_wider_pr(bdir / "wider_val_pr.png", pr, "ours (Final)",
                                                 [paper_published_baseline()]))
            log(f"[{name}] AP easy {fmt(ev.get('easy'))}  medium {fmt(ev.get('medium'))}  hard {fmt(ev.get('hard'))}")
        elif name == "fddb":
            for kind in ("rect", "ellipse"):
                if kind in ev:
                    log(f"[{name}] {kind}: TPR at 1000 FP discrete {ev[kind]['tpr_disc_1000fp']:.4f}, continuous "
                        f"{ev[kind]['tpr_cont_1000fp']:.4f}")
        elif "ap" in ev:
            log(f"[{name}] AP {ev['ap']:.4f}")
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
        ev = e.get("evaluation") or {}
        if e["benchmark"] == "wider-test":
            res = "submission zip " + ("verified (check_submission)" if e.get("verified") else
                                       f"{len(e.get('submission_problems', []))} problem(s)")
            files = f"`{e.get('zip')}`"
        elif e["benchmark"] == "wider-val":
            res = " / ".join(f"{s} {fmt(ev.get(s))}" for s in SETTINGS)
            files = f"`{e['out']}/predictions`, `{e.get('pr_plot', '')}`"
        elif e["benchmark"] == "fddb":
            res = "; ".join(f"{k}: TPR@1000FP disc {ev[k]['tpr_disc_1000fp']:.4f} cont {ev[k]['tpr_cont_1000fp']:.4f}"
                            for k in ("rect", "ellipse") if k in ev) or "not evaluated"
            files = f"`{e['out']}/fddb/` (fold-XX-out.txt, ellipses/, *ROC.txt), `{ev.get('plot', '')}`"
        else:
            res = f"AP {fmt(ev.get('ap'), 4)}" if "ap" in ev else "not evaluated"
            files = f"`{e['out']}/{e['benchmark']}_dets.txt`, `{ev.get('plot', '')}`"
        note = f" (unreadable images: {e['unreadable']})" if e.get("unreadable") else ""
        lines.append(f"| {e['benchmark']} | done{note} | {res} | {files} |")
    return "\n".join(lines) + "\n"
