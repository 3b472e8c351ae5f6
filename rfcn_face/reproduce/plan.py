"""The dry run (``reproduce --dry-run``): per row the exact ``python -m rfcn_face train / test / evaluate``
commands, its state in the results folder and a GPU-hour estimate (:mod:`.estimate`: a symbol is built and its
shapes inferred; no weight, image or annotation is read), plus what is missing on this machine."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import List

from ..evaluation.wider import SETTINGS
from .commands import evaluate_args, launch_args, test_args, train_args
from .common import command_line, display_path, run_dir_of, size_arg, test_dir_of
from .estimate import (FWD_BWD_FACTOR, GPU_NAME, HOST_MS_PER_IMAGE, TYPICAL_IMAGE_HW, WIDER_TRAIN_IMAGES,
                       WIDER_VAL_IMAGES, estimate_row, project_step)
from .rows import GROUP_TITLES, ReproduceOptions, rows_for
from .steps import test_status, train_status

__all__ = ["missing_inputs", "plan", "format_plan"]


def missing_inputs(cfg, train: bool = True, test: bool = True) -> List[str]:
    """What this machine lacks for a row's training / testing (file and folder checks only)."""
    from ..datasets.wider import wider_base
    miss = []
    if cfg.data.dataset == "wider":
        root = Path(cfg.data.root)
        if train:
            base = wider_base(root)
            txt = base / "wider_face_split" / "wider_face_train_bbx_gt.txt"
            if not txt.is_file():
                other = (sorted(p.name for p in txt.parent.glob("wider_face_train_bbx_gt*.txt"))
                         if txt.parent.is_dir() else [])
                miss.append(f"WIDER FACE train annotations: {txt}"
                            + (f" (found {other[0]}: link or copy it to that name)" if other else ""))
            if not (base / "WIDER_train" / "images").is_dir():
                miss.append(f"WIDER FACE train images: {base / 'WIDER_train' / 'images'}/<event>/<name>.jpg")
        if test:
            base = wider_base(root)
            txt = base / "wider_face_split" / "wider_face_val_bbx_gt.txt"
            if not txt.is_file():
                miss.append(f"WIDER FACE val annotations: {txt}")
            if not (base / "WIDER_val" / "images").is_dir():
                miss.append(f"WIDER FACE val images: {base / 'WIDER_val' / 'images'}/<event>/<name>.jpg")
            gt = base / "ground_truth"
            for f in ("wider_face_val.mat", "wider_easy_val.mat", "wider_medium_val.mat", "wider_hard_val.mat"):
                if not (gt / f).is_file():
                    miss.append(f"WIDER FACE val evaluation ground truth: {gt / f}")
    if train and cfg.model.pretrained and not Path(cfg.model.pretrained).is_file():
        miss.append(f"ImageNet checkpoint (model.pretrained): {cfg.model.pretrained}")
    return miss


# ------------------------------------------------------------------------------------------------ the plan
def plan(opts: ReproduceOptions) -> dict:
    """The dry run: per selected row its commands, its state in ``opts.out``, its GPU-hour estimate; what is
    missing; totals. Reads YAMLs and run-folder metadata only (no data, no weights)."""
    opts.check()
    all_rows, rows = rows_for(opts)
    by_stem = {r.stem: r for r in all_rows}
    trained, entries, missing = set(), [], []
    for r in rows:
        t = by_stem[r.train_stem]
        shared = r.train_stem in trained
        trained.add(r.train_stem)
        est = estimate_row(r, opts, shared=shared)
        ts = train_status(run_dir_of(t, opts.out), t.cfg, opts.max_iters)
        st = test_status(r, opts.out, opts)["status"]
        need_train, need_test = ts["status"] != "done", st != "done"
        missing += missing_inputs(r.cfg, train=need_train, test=need_test)
        entries.append({
            "id": r.id, "group": r.group, "table": GROUP_TITLES[r.group], "yaml": display_path(r.path),
            "label": r.label,
            "name": r.name, "paper": r.paper, "sizes": r.sizes, "train_row": t.id, "train_yaml": display_path(t.path),
            "shared_training": r.shares_training, "run": display_path(run_dir_of(r, opts.out)),
            "test_dir": display_path(test_dir_of(r, opts.out)), "train_status": ts, "test_status": st,
            "commands": {"train": command_line((launch_args if opts.workers else train_args)(
                t, opts, resume=ts["status"] == "partial")),
                         "test": command_line(test_args(r, opts)),
                         "evaluate": command_line(evaluate_args(r, opts)) if evaluate_args(r, opts) else None},
            "estimate": asdict(est) | {"gpu_hours": est.gpu_hours}})
    tot_train = sum(e["estimate"]["train_gpu_hours"] for e in entries)
    tot_test = sum(e["estimate"]["test_gpu_hours"] for e in entries)
    gpus = opts.devices * max(1, int(opts.workers)) if opts.gpus else 1
    per_worker = opts.devices if opts.gpus else 1      # one worker drives its machine's GPUs (estimate.project_step)
    wall = 0.0
    for e in entries:
        est = e["estimate"]
        util = project_step(est["train_gflops"], per_worker, opts.gpu_tflops).utilisation
        est["train_utilisation"] = util
        wall += (est["train_gpu_hours"] / util + est["test_gpu_hours"]) / gpus
    return {"table": opts.table, "preset": opts.preset, "out": display_path(opts.out), "rows": entries,
            "trainings": len(trained), "missing": list(dict.fromkeys(missing)),
            "assumptions": {"gpu": GPU_NAME, "gpu_tflops": opts.gpu_tflops, "fwd_bwd_factor": FWD_BWD_FACTOR,
                            "image_hw": list(TYPICAL_IMAGE_HW), "train_images": WIDER_TRAIN_IMAGES,
                            "host_ms_per_image": HOST_MS_PER_IMAGE,
                            "val_images": WIDER_VAL_IMAGES, "flops": "2 x MACs of every convolution / "
                            "deconvolution from the layer shapes (symbols.flops)"},
            "total": {"train_gpu_hours": tot_train, "test_gpu_hours": tot_test, "gpu_hours": tot_train + tot_test,
                      "gpus": gpus, "gpus_per_worker": per_worker, "wall_hours": wall}}


def _fmt_hours(h: float) -> str:
    return "0" if h == 0 else "<0.01" if h < 0.01 else f"{h:.2f}" if h < 10 else f"{h:.0f}"


def format_plan(p: dict) -> str:
    """The dry run as text (what ``reproduce --dry-run`` prints)."""
    a = p["assumptions"]
    n = len(p["rows"])
    groups = {}
    for e in p["rows"]:
        groups.setdefault(e["group"], []).append(e)
    lines = [f"reproduce --table {p['table']}: {n} row(s) ("
             + ", ".join(f"{GROUP_TITLES[g]}: {len(v)}" for g, v in groups.items())
             + f"), {p['trainings']} training(s); preset {p['preset']}; results in {p['out']}/",
             f"estimate: GPU-hours = FLOPs / ({a['gpu_tflops']:g} TFLOP/s effective, one {a['gpu']}); training = "
             f"{a['fwd_bwd_factor']:g} x forward FLOPs (forward + backward) of a {a['image_hw'][1]}x{a['image_hw'][0]} "
             f"WIDER image x {a['train_images']:,} train images x train.epochs; test = forward FLOPs at the test "
             f"size(s) x {a['val_images']:,} val images; FLOPs = {a['flops']}"]
    if p["missing"]:
        lines.append("missing on this machine (needed by the commands below; the plan is printed anyway):")
        lines += [f"  - {m}" for m in p["missing"]]
    else:
        lines.append("inputs: everything the pending steps need is present")
    for g, entries in groups.items():
        lines.append("")
        title = GROUP_TITLES[g]
        if g == "2":
            trs = sorted({e["train_row"] for e in entries})
            title += f" (the training of row {', '.join(trs)}, trained once, tested at {len(entries)} size(s))"
        lines.append(f"== {title} ==")
        for e in entries:
            pp = e["paper"]
            paper = " / ".join(f"{s} {pp[s]:.3f}" for s in SETTINGS if pp.get(s) is not None) or "—"
            ts = e["train_status"]
            tstate = {"done": f"trained ({ts['iteration']} it)", "new": "not trained",
                      "partial": f"partial ({ts['iteration']}/{ts['target'] or '?'} it): resumed"}[ts["status"]]
            lines.append(f"[{e['id']}] {e['label']} — {e['yaml']}")
            size = " + ".join("0x0 (original)" if s == [0, 0] else size_arg(s) for s in e["sizes"])
            lines.append(f"     paper AP: {paper}; test size: {size}; "
                         f"state: {tstate}, {'tested' if e['test_status'] == 'done' else 'not tested'}")
            est = e["estimate"]
            if est["shared"] or e["shared_training"]:
                lines.append(f"     train: shared with row [{e['train_row']}] ({e['run']}), trained once"
                             + ("" if est["shared"] else ":"))
                if not est["shared"]:
                    lines.append(f"       {e['commands']['train']}")
            else:
                lines.append(f"     train: {e['commands']['train']}")
            lines.append(f"     test:  {e['commands']['test']}")
            if e["commands"]["evaluate"]:
                lines.append(f"     eval:  {e['commands']['evaluate']}   (test scores the folder too)")
            tr = ("0 (shared)" if est["shared"] else
                  f"{est['train_gflops']:.0f} GFLOPs x {FWD_BWD_FACTOR:g} x {est['train_images']:,} images = "
                  f"{_fmt_hours(est['train_gpu_hours'])}")
            lines.append(f"     GPU-hours: train {tr}; test {est['test_gflops']:.0f} GFLOPs x {est['test_images']:,}"
                         f" images = {_fmt_hours(est['test_gpu_hours'])}; row {_fmt_hours(est['gpu_hours'])}"
                         + ("" if est["shared"] else f"; GPU busy {est['train_utilisation']:.0%} of a training step"))
    t = p["total"]
    lines += ["", f"total: {_fmt_hours(t['gpu_hours'])} GPU-hours ({_fmt_hours(t['train_gpu_hours'])} training, "
                  f"{_fmt_hours(t['test_gpu_hours'])} testing) = {t['gpu_hours'] / 24:.1f} GPU-days; "
                  f"{_fmt_hours(t['wall_hours'])} h wall on {t['gpus']} GPU(s), {t['gpus_per_worker']} per worker: "
                  f"training at the projected GPU utilisation (the worker's main thread needs "
                  f"{a['host_ms_per_image']:g} ms per image, measured; docs/training.md), testing GPU-bound"]
    return "\n".join(lines)
