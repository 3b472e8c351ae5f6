"""Benchmark runs of a trained detector: data set -> per-image cached detections -> official files -> evaluation.

:func:`run_test` is the library side of ``python -m rfcn_face test`` (Sec. 5.1 / 5.2 protocols). What is
tested and how is the benchmark's (:mod:`rfcn_face.benchmarks`: the registered class of ``--dataset`` owns its
records, official files and evaluator): WIDER FACE val / test and synthfaces val write the official submission
folder and score it with the WIDER protocol, FDDB its fold files (and the regressed ellipses) and ROC, AFW /
PASCAL Faces the face-eval detection file and AP (docs/inference.md lists the files). ``OUT/results.json`` has
the summary.

Resumable: every image's detections are written atomically to ``OUT/cache/<setup>/<index>.npz`` (``setup`` =
hash of the parameters file, the test sizes and every test knob), so an interrupted run continues with the
images it has not done and a rerun with other settings never mixes results. The official files and the
evaluation are rebuilt from the cache at the end (prediction folders written whole); ``OUT`` holds one model and
one data set (:mod:`rfcn_face.outputs`: another one is an error) and one writer (:mod:`rfcn_face.locks`);
``results.json`` records the training iteration tested (``checkpoint``). An image that is missing, unreadable or empty is reported by
name, gets no detections (its official file lists none), and the summary's ``unreadable`` list is non-empty —
the command then exits 1.

Data layout under ``--data ROOT`` (default ``data``) is that of data/README.md.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .benchmarks import TestSet, get_benchmark
from .checkpoint import atomic_write_json

__all__ = ["TestSet", "TestOptions", "load_test_set", "detect_records", "setup_fingerprint", "run_test",
           "check_test_options", "CACHE_DIR"]

CACHE_DIR = "cache"


def load_test_set(dataset: str, data_root=None, limit: int = 0) -> TestSet:
    """The records of the benchmark registered as ``dataset`` under ``data_root`` (data/README.md layout);
    ``limit`` > 0 keeps the first ``limit`` images (a quick check; the evaluation then covers only those)."""
    return get_benchmark(dataset).load(data_root, limit)


# ------------------------------------------------------------------------------------------------ the cache
def _file_sha1(path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _params_digest(detector) -> str:
    if detector.params_path is not None:
        return _file_sha1(detector.params_path)
    h = hashlib.sha1()
    for name, p in sorted(detector.net.collect_params().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(p.data(detector.contexts[0]).asnumpy()).tobytes())
    return h.hexdigest()


def setup_fingerprint(detector, sizes) -> dict:
    """What the cached detections depend on: the weights, the test sizes, every test knob, the proposal NMS,
    the pixel normalisation and the box coding."""
    from dataclasses import asdict

    from .proposals import BoxCoding, ProposalParams
    cfg = detector.cfg
    return {"params_sha1": _params_digest(detector), "sizes": [list(s) for s in sizes],
            "test": {k: v for k, v in cfg.test.__dict__.items() if k not in ("sizes", "pyramid", "pyramid_sizes")},
            "proposals": asdict(ProposalParams.from_config(cfg, train=False)),
            "box_coding": {k: list(v) for k, v in asdict(BoxCoding.from_config(cfg)).items()},
            "normalisation": [list(detector.norm.mean), list(detector.norm.std), detector.norm.scale]}


def _save_npz(path: Path, **arrays) -> None:
    """np.savez through :func:`rfcn_face.checkpoint.atomic_write_file`: a kill never leaves a half-written entry."""
    from .checkpoint import atomic_write_file

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    atomic_write_file(path, write, suffix=".tmp")


def _load_entry(path: Path, image: str):
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["image"]) != image:
                return None
            return z["boxes"].reshape(-1, 4), z["scores"].reshape(-1), (int(z["height"]), int(z["width"]))
    except Exception:   # unreadable entry (cannot happen through _save_npz): detect the image again
        return None


def _read_image(path: str):
    """(image, None) or (None, reason)."""
    from .datasets.images import DamagedImage, load_image
    p = Path(path)
    if not p.is_file():
        return None, "missing"
    if p.stat().st_size == 0:
        return None, "empty file"
    try:
        img = load_image(p)
    except DamagedImage as e:
        return None, str(e).split("damaged image: ", 1)[-1]
    except (FileNotFoundError, ValueError):
        return None, f"unreadable ({p.stat().st_size} bytes)"
    if img.size == 0:
        return None, "empty image"
    return img, None


def detect_records(detector, records, cache_dir, sizes, names=None, progress: bool = True, desc: str = "test",
                   on_image=None):
    """Detections of every record, through the per-image cache in ``cache_dir`` (entries ``NNNNNNN.npz``).

    Returns ``(results, failed)``: ``results[i] = (boxes (K, 4) original pixels, scores (K,), (H, W))`` for
    every readable image, ``failed`` = ``[(name, reason)]`` of the others (not cached: retried on a rerun).
    Images go to the detector in groups of one per device (:meth:`FaceDetector.detect_many`)."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.glob(".*.tmp"):          # left by a killed run
        stale.unlink(missing_ok=True)
    names = names or [str(r.image_path) for r in records]
    results: Dict[int, tuple] = {}
    todo = []
    for i, r in enumerate(records):
        e = _load_entry(cache_dir / f"{i:07d}.npz", str(r.image_path))
        if e is None:
            todo.append(i)
        else:
            results[i] = e
    from .logs import get_logger, progress_bar
    failed = []
    bar = progress_bar(progress, total=len(records), initial=len(records) - len(todo), desc=desc, unit="img")
    step = max(1, len(detector.contexts))
    try:
        for start in range(0, len(todo), step):
            group = []
            for i in todo[start:start + step]:
                img, why = _read_image(records[i].image_path)
                if img is None:
                    failed.append((names[i], f"{why}: {records[i].image_path}"))
                    get_logger().warning(f"warning: {names[i]}: {why} ({records[i].image_path}); no detections")
                    if bar is not None:
                        bar.update(1)
                    continue
                group.append((i, img))
            if not group:
                continue
            dets = detector.detect_many([img for _, img in group], sizes)
            for (i, img), (boxes, scores) in zip(group, dets):
                _save_npz(cache_dir / f"{i:07d}.npz", boxes=boxes, scores=scores, height=img.shape[0],
                          width=img.shape[1], image=str(records[i].image_path))
                results[i] = (boxes, scores, img.shape[:2])
                if on_image is not None:
                    on_image(i)
            if bar is not None:
                bar.update(len(group))
    finally:
        if bar is not None:
            bar.close()
    return results, failed


# ------------------------------------------------------------------------------------------------ options
@dataclass
class TestOptions:
    dataset: str
    out: str
    data_root: Optional[str] = None
    sizes: Optional[list] = None         # [[S, L], ...]; None = the run's test.sizes / test.pyramid_sizes
    pyramid: Optional[bool] = None       # None = the run's test.pyramid
    ellipses: bool = False               # FDDB: also the box -> ellipse regressor (Sec. 5.2)
    ellipse_regressor: Optional[str] = None   # FDDB: apply this saved regressor instead of fitting one
    baselines: Optional[str] = None      # WIDER: folder of the published PR curves
    limit: int = 0
    label: str = "ours"
    progress: bool = True
    replace_other: bool = False          # the caller owns OUT (reproduce, demo): another model's record is replaced


# ------------------------------------------------------------------------------------------------ the command
def check_test_options(opts: TestOptions) -> TestSet:
    """The checks that need no network (``--limit``, ``--out``, ``--baselines``, ``--ellipse-regressor``, the data
    set's files), so bad input fails before a detector loads or an image is read; returns the test set."""
    if opts.limit < 0:
        raise ValueError(f"--limit must be >= 0, got {opts.limit}")
    out = Path(opts.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if opts.baselines and not Path(opts.baselines).is_dir():
        raise FileNotFoundError(f"baselines folder not found: {opts.baselines}")
    if opts.ellipse_regressor:
        from .evaluation.ellipse import load_regressor
        load_regressor(opts.ellipse_regressor)
    return load_test_set(opts.dataset, opts.data_root, opts.limit)


def run_test(detector, opts: TestOptions, log=None, on_image=None, test_set: Optional[TestSet] = None) -> dict:
    """Detect a benchmark with ``detector`` (resumable), write its official files and evaluate them; writes
    ``OUT/results.json`` and returns the same summary (``unreadable`` lists the images that failed). Messages go
    to ``log`` (default: the project's logger, also into ``OUT/log.txt``). ``test_set``: what
    :func:`check_test_options` returned for these options (checked here when not given)."""
    from .locks import folder_lock
    from .logs import get_logger, run_log
    ts = test_set if test_set is not None else check_test_options(opts)
    with folder_lock(opts.out, "test"):
        sizes = detector.sizes(opts.sizes, opts.pyramid)
        fp = setup_fingerprint(detector, sizes)
        from .outputs import claim_output          # before anything is written into OUT
        claim_output(opts.out, {"verb": "test", "params_sha1": fp["params_sha1"], "dataset": opts.dataset},
                     replace=opts.replace_other)
        with run_log(opts.out):
            return _run_test(detector, opts, log or get_logger().info, on_image, ts, sizes, fp)


def _tested_checkpoint(detector, log) -> Optional[dict]:
    """Which training iteration is tested (``final.params`` of the run, :func:`final_params_info`), said in the
    log; a newer checkpoint than ``final.params`` is a warning. ``None`` for a detector not loaded from a run."""
    from .checkpoint import FINAL_PARAMS, final_params_info
    p = detector.params_path
    if p is None or Path(p).name != FINAL_PARAMS:
        return None
    info = final_params_info(Path(p).parent)
    it = info["iteration"]
    log(f"testing {p} (training iteration {it if it is not None else 'unknown: no final.json'})")
    if info["warning"]:
        log(f"warning: {info['warning']}")
    return info


def _run_test(detector, opts: TestOptions, log, on_image, ts: TestSet, sizes, fp) -> dict:
    out = Path(opts.out)
    key = hashlib.sha1(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:12]
    cache = out / CACHE_DIR / key
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cache / "setup.json", fp)
    log(f"{opts.dataset}: {len(ts.records)} images, test sizes {' + '.join('x'.join(map(str, s)) for s in sizes)}"
        f" on {len(detector.contexts)} device(s); cache {cache}")
    ckpt = _tested_checkpoint(detector, log)
    names = [ts.display_name(i) for i in range(len(ts.records))]
    results, failed = detect_records(detector, ts.records, cache, sizes, names, opts.progress,
                                     f"test {opts.dataset}", on_image)
    if (opts.ellipses or opts.ellipse_regressor) and not ts.benchmark.takes_ellipses:
        ts.notes.append("--ellipses applies to FDDB only")
    evaluator = ts.benchmark.evaluator(ts, out, opts, log)        # detectron2's reset / process / evaluate
    evaluator.reset()
    for i in sorted(results):
        evaluator.process(i, results[i])
    ev = evaluator.evaluate()
    summary = {"dataset": opts.dataset, "images": len(ts.records), "detected": len(results),
               "detections": int(sum(len(v[1]) for v in results.values())), "sizes": sizes,
               "cache": str(cache), "checkpoint": ckpt, "files": evaluator.files,
               "evaluation": ev, "unreadable": [{"image": n, "reason": why} for n, why in failed],
               "notes": ts.notes}
    atomic_write_json(out / "results.json", summary)
    for n in ts.notes:
        log(f"note: {n}")
    return summary


# ------------------------------------------------------------------------------------------------ detect IMG...
def draw_detections(image_rgb: np.ndarray, boxes, scores) -> np.ndarray:
    """A BGR copy of the image (for cv2.imwrite) with each box and its score drawn (green, best on top)."""
    import cv2
    img = np.ascontiguousarray(image_rgb[:, :, ::-1]).copy()
    h, w = img.shape[:2]
    t = max(1, int(round(max(h, w) / 400)))
    font = 0.35 * t + 0.05
    for b, s in sorted(zip(np.asarray(boxes).reshape(-1, 4), np.asarray(scores).reshape(-1)), key=lambda p: p[1]):
        x1, y1, x2, y2 = (int(round(v)) for v in b)
        cv2.rectangle(img, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), (0, 255, 0), t)
        label = f"{s:.2f}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, 1)
        ty = y1 - 2 if y1 - th - 2 >= 0 else min(h - 1, y1 + th + 2)
        cv2.rectangle(img, (x1, ty - th - 1), (x1 + tw + 1, ty + base - 1), (0, 255, 0), -1)
        cv2.putText(img, label, (x1 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def check_detect_inputs(paths, out_dir, thresh: float = 0.5) -> List[Path]:
    """The checks of :func:`detect_images` that need no network (``--thresh``, ``--out``, two images of one name),
    so bad input fails before a detector loads or an image is read; returns the image paths."""
    if not 0.0 <= float(thresh) <= 1.0:
        raise ValueError(f"--thresh must be in [0, 1], got {thresh}")
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no image given")
    stems: Dict[str, Path] = {}
    for p in paths:
        if p.stem in stems and stems[p.stem] != p:
            raise ValueError(f"two images share the name {p.stem!r} ({stems[p.stem]}, {p}): their outputs would "
                             "overwrite each other; run them separately")
        stems[p.stem] = p
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    return paths


def detect_images(detector, paths, out_dir, thresh: float = 0.5, sizes=None, pyramid=None, progress: bool = True,
                  log=None) -> dict:
    """``python -m rfcn_face detect``: per image ``OUT/<stem>.png`` (boxes and scores drawn) and ``OUT/<stem>.json``
    = ``[{"box": [x1, y1, x2, y2], "score": s}, ...]`` in original-image pixels, best first, ``score >=
    thresh``. Unreadable images are reported by name and skipped (summary ``unreadable``). The inputs are checked
    by :func:`check_detect_inputs`; the folder is locked while it is written (:mod:`rfcn_face.locks`) and may
    hold the outputs of one model, threshold and test setup only (:func:`rfcn_face.outputs.claim_output`)."""
    from .locks import folder_lock
    paths = check_detect_inputs(paths, out_dir, thresh)
    sizes = detector.sizes(sizes, pyramid)
    with folder_lock(out_dir, "detect"):
        from .outputs import claim_output
        fp = setup_fingerprint(detector, sizes)
        setup = {k: v for k, v in fp.items() if k not in ("params_sha1", "sizes")}
        claim_output(out_dir, {"verb": "detect", "params_sha1": fp["params_sha1"], "thresh": float(thresh),
                               "sizes": fp["sizes"],
                               "settings": hashlib.sha1(json.dumps(setup, sort_keys=True).encode()).hexdigest()[:12]})
        return _detect_images(detector, paths, Path(out_dir), thresh, sizes, progress, log)


def _imwrite(path, image) -> None:
    import cv2
    if not cv2.imwrite(str(path), image):
        raise OSError(0, "cv2.imwrite failed (disk full or no encoder)", str(path))


def _detect_images(detector, paths, out, thresh, sizes, progress, log) -> dict:
    from .checkpoint import atomic_write_file
    done, failed = [], []
    from .logs import get_logger, progress_bar
    log = log or get_logger().info
    bar = progress_bar(progress and len(paths) > 1, total=len(paths), desc="detect", unit="img")
    it = paths
    step = max(1, len(detector.contexts))
    pending = []

    def flush():
        if not pending:
            return
        dets = detector.detect_many([img for _, img in pending], sizes)
        for (p, img), (boxes, scores) in zip(pending, dets):
            keep = scores >= float(thresh)
            boxes, scores = boxes[keep], scores[keep]
            rows = [{"box": [float(v) for v in b], "score": float(s)} for b, s in zip(boxes, scores)]
            atomic_write_json(out / f"{p.stem}.json", rows)
            png = out / f"{p.stem}.png"
            atomic_write_file(png, lambda tmp: _imwrite(tmp, draw_detections(img, boxes, scores)))
            done.append({"image": str(p), "json": str(out / f"{p.stem}.json"), "png": str(png),
                         "faces": len(rows), "best": rows[0]["score"] if rows else None})
        pending.clear()

    for p in it:
        img, why = _read_image(str(p))
        if bar is not None:
            bar.update(1)
        if img is None:
            failed.append({"image": str(p), "reason": why})
            log(f"warning: {p}: {why}; skipped")
            continue
        pending.append((p, img))
        if len(pending) == step:
            flush()
    flush()
    if bar is not None:
        bar.close()
    return {"images": done, "unreadable": failed, "sizes": sizes, "thresh": float(thresh)}
