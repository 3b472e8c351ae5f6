"""Benchmark runs of a trained detector: data set -> per-image cached detections -> official files -> evaluation.

:func:`run_test` is the library side of ``python -m rfcn_face test`` (Sec. 5.1 / 5.2 protocols):

* ``wider-val`` / ``synthfaces-val``: the official submission folder ``OUT/predictions/<event>/<name>.txt``
  (checked by :func:`rfcn_face.evaluation.submission.check_submission`), Easy / Medium / Hard AP read back
  from those files (:func:`rfcn_face.evaluation.wider.evaluate_wider`), ``OUT/wider_pr.png`` over the
  published baselines (``--baselines DIR``, else ``$RFCN_FACE_BASELINES`` / ``data/widerface/
  eval_tools_baselines``; for synthfaces only when given), ``OUT/results.json``;
* ``wider-test``: the submission folder only (the server evaluates it);
* ``fddb``: the ten official fold files ``OUT/fddb/fold-XX-out.txt`` (rectangles ``x y w h score``); with
  ``ellipses`` the box -> ellipse regressor of Sec. 5.2 (:mod:`rfcn_face.evaluation.ellipse`, the model applied
  to fold k fit on the other folds, or a saved regressor file) writes ``OUT/fddb/ellipses/fold-XX-out.txt``; DiscROC / ContROC files
  (``OUT/fddb/{rect,ellipse}-{Disc,Cont}ROC.txt``) and ``OUT/fddb_roc.png``;
* ``afw`` / ``pascal``: ``OUT/<dataset>_dets.txt`` in the face-eval format ``image score x1 y1 x2 y2`` (the
  toolbox's inclusive 1-based coordinates), AP by the toolbox protocol and ``OUT/<dataset>_pr.png``.

Resumable: every image's detections are written atomically to ``OUT/cache/<setup>/<index>.npz`` (``setup`` =
hash of the parameters file, the test sizes and every test knob), so an interrupted run continues with the
images it has not done and a rerun with other settings never mixes results. The official files and the
evaluation are rebuilt from the cache at the end. An image that is missing, unreadable or empty is reported by
name, gets no detections (its official file lists none), and the summary's ``unreadable`` list is non-empty —
the command then exits 1.

Data layout under ``--data ROOT`` (default ``data``) is that of data/README.md.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .checkpoint import atomic_write_json, atomic_write_text

__all__ = ["DATASETS", "TestSet", "TestOptions", "load_test_set", "detect_records", "setup_fingerprint",
           "run_test", "write_official_files", "CACHE_DIR", "WIDER_PR_TITLES"]

DATASETS = ("wider-val", "wider-test", "fddb", "afw", "pascal", "synthfaces-val")
CACHE_DIR = "cache"
FACE_EVAL_FILES = {"afw": ("new_annotations_AFW.mat", "anno2.mat"),
                   "pascal": ("Annotations_Face_PASCALLayout_large_fixed.mat",
                              "Annotations_Face_PASCALLayout_large.mat")}
FACE_EVAL_NAMES = {"afw": "AFW", "pascal": "PASCAL Faces"}
WIDER_PR_TITLES = {"wider-val": "WIDER FACE val", "synthfaces-val": "synthfaces val (WIDER protocol)"}


@dataclass
class TestSet:
    """The images of one benchmark (``records``: :class:`rfcn_face.datasets.record.FaceRecord`) and where its
    ground truth is (``gt``: the WIDER ``ground_truth`` folder, the face-eval ``.mat``; FDDB records carry
    their ellipses)."""
    dataset: str
    records: list
    root: Path
    gt: Optional[Path] = None
    notes: List[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return {"fddb": "fddb", "afw": "face_eval", "pascal": "face_eval"}.get(self.dataset, "wider")

    def display_name(self, i: int) -> str:
        r = self.records[i]
        if self.kind == "wider":
            return f"{r.event}/{r.name}.jpg"
        if self.kind == "fddb":
            return r.name
        return os.path.basename(r.image_path)


def load_test_set(dataset: str, data_root=None, limit: int = 0) -> TestSet:
    """The records of a benchmark under ``data_root`` (data/README.md layout); ``limit`` > 0 keeps the first
    ``limit`` images (a quick check; the evaluation then covers only those)."""
    if dataset not in DATASETS:
        raise ValueError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    root = Path(data_root if data_root is not None else "data")
    notes = []
    if dataset in ("wider-val", "wider-test", "synthfaces-val"):
        from .datasets.synthfaces import synthfaces_root
        from .datasets.wider import wider_base, wider_split_records
        base = synthfaces_root(root) if dataset == "synthfaces-val" else wider_base(root)
        split = "test" if dataset == "wider-test" else "val"
        records = wider_split_records(base, split)
        gt = base / "ground_truth" if split == "val" else None
        if gt is not None and not (gt / "wider_face_val.mat").is_file():
            notes.append(f"no evaluation ground truth at {gt}: the submission folder is written, not scored")
            gt = None
        ts = TestSet(dataset, records, base, gt, notes)
    elif dataset == "fddb":
        from .datasets.fddb import read_fddb
        base = root / "fddb"
        folds_dir, sizes = base / "FDDB-folds", base / "FDDB-image-sizes.txt"
        if not folds_dir.is_dir():
            raise FileNotFoundError(f"FDDB folds folder not found: {folds_dir} (see data/README.md)")
        folds = [k for k in range(1, 11) if (folds_dir / f"FDDB-fold-{k:02d}-ellipseList.txt").is_file()]
        if not folds:
            raise FileNotFoundError(f"no FDDB-fold-XX-ellipseList.txt in {folds_dir}")
        if len(folds) < 10:
            notes.append(f"only FDDB folds {', '.join(map(str, folds))} found: the official benchmark has ten")
        records = read_fddb(folds_dir, folds=folds, image_root=base / "originalPics",
                            sizes_file=sizes if sizes.is_file() else None)
        ts = TestSet(dataset, records, base, None, notes)
    else:
        from .datasets.face_eval import read_face_eval_mat
        base = root / dataset
        cands = [base / f for f in FACE_EVAL_FILES[dataset]]
        mat = next((c for c in cands if c.is_file()), None)
        if mat is None:
            raise FileNotFoundError(f"{FACE_EVAL_NAMES[dataset]} annotations not found: "
                                    + " or ".join(str(c) for c in cands) + " (see data/README.md)")
        ts = TestSet(dataset, read_face_eval_mat(mat, image_root=base / "images"), base, mat, notes)
    if not ts.records:
        raise ValueError(f"{dataset}: no images found under {ts.root}")
    if limit and limit > 0 and limit < len(ts.records):
        ts.records = ts.records[:int(limit)]
        ts.notes.append(f"--limit {limit}: only the first {limit} images are detected and evaluated")
    return ts


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
    """np.savez through a temporary file and a rename: a kill never leaves a half-written entry."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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
    from .datasets.loader import load_image
    p = Path(path)
    if not p.is_file():
        return None, "missing"
    if p.stat().st_size == 0:
        return None, "empty file"
    try:
        img = load_image(p)
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
    failed = []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(records), initial=len(records) - len(todo), desc=desc, unit="img", file=sys.stderr,
                   dynamic_ncols=True)
    step = max(1, len(detector.contexts))
    try:
        for start in range(0, len(todo), step):
            group = []
            for i in todo[start:start + step]:
                img, why = _read_image(records[i].image_path)
                if img is None:
                    failed.append((names[i], f"{why}: {records[i].image_path}"))
                    if bar is not None:
                        bar.write(f"warning: {names[i]}: {why} ({records[i].image_path}); no detections")
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


def _toolbox_lines(records, results) -> List[str]:
    from .datasets.face_eval import continuous_to_toolbox
    lines = []
    for i, r in enumerate(records):
        if i not in results:
            continue
        boxes, scores, _ = results[i]
        if len(boxes) == 0:
            continue
        tb = continuous_to_toolbox(boxes)
        name = os.path.basename(str(r.image_path))
        lines += [f"{name} {float(s)!r} " + " ".join(repr(float(v)) for v in b) for b, s in zip(tb, scores)]
    return lines


def _fddb_dets(records, results):
    from .boxes import xyxy_to_xywh
    from .evaluation.fddb_format import FddbImageDets
    out = []
    for i, r in enumerate(records):
        boxes, scores, _ = results.get(i, (np.zeros((0, 4)), np.zeros(0), None))
        xywh = xyxy_to_xywh(boxes) if len(boxes) else np.zeros((0, 4))
        out.append(FddbImageDets(r.name, "rect", np.concatenate([xywh, np.asarray(scores).reshape(-1, 1)], 1)))
    return out


def write_official_files(ts: TestSet, results, out, ellipses: bool = False, regressor=None) -> dict:
    """The benchmark's official detection files from ``results`` (see the module docstring); returns paths.
    FDDB with ``ellipses``: the regressor file ``regressor`` if given, else one fit here (held-out folds)."""
    out = Path(out)
    files = {}
    if ts.kind == "wider":
        from .evaluation.submission import write_submission
        keys = [(r.event, r.name) for r in ts.records]
        dets = {keys[i]: (b, s) for i, (b, s, _) in results.items()}
        pred = out / "predictions"
        write_submission(dets, pred, keys)
        files["predictions"] = str(pred)
    elif ts.kind == "fddb":
        from .evaluation.fddb_format import write_fddb_detections
        dets = _fddb_dets(ts.records, results)
        folds = sorted({r.event for r in ts.records})
        for f in folds:
            p = out / "fddb" / f"{f}-out.txt"
            write_fddb_detections(p, [d for d, r in zip(dets, ts.records) if r.event == f])
        files["folds"] = [str(out / "fddb" / f"{f}-out.txt") for f in folds]
        files["dets"] = str(write_fddb_detections(out / "fddb" / "dets.txt", dets))
        model = None
        if ellipses and regressor:
            from .evaluation import ellipse as ell
            model = ell.load_regressor(regressor)
            files["regressor"] = str(regressor)
        elif ellipses:
            from .evaluation import ellipse as ell
            try:
                model = ell.fit_cross_validated(ts.records, dets)
            except ValueError as e:   # too few detections matching a face (e.g. an untrained model)
                ts.notes.append(f"ellipse regressor not fitted ({e}): only rectangle files written")
            else:
                files["regressor"] = str(ell.save_regressor(out / "fddb" / "ellipse_regressor.json", model))
        if model is not None:
            edets = ell.apply_to_detections(model, ts.records, dets)
            for f in folds:
                write_fddb_detections(out / "fddb" / "ellipses" / f"{f}-out.txt",
                                      [d for d, r in zip(edets, ts.records) if r.event == f])
            files["ellipse_folds"] = [str(out / "fddb" / "ellipses" / f"{f}-out.txt") for f in folds]
            files["ellipse_dets"] = str(write_fddb_detections(out / "fddb" / "ellipses" / "dets.txt", edets))
            files["_ellipse_dets"] = edets
            if len(folds) < 2:
                ts.notes.append("only one FDDB fold: the ellipse regressor is fit and applied on the same fold")
        files["_dets"] = dets
    else:
        p = out / f"{ts.dataset}_dets.txt"
        atomic_write_text(p, "".join(l + "\n" for l in _toolbox_lines(ts.records, results)))
        files["dets"] = str(p)
    return files


# ------------------------------------------------------------------------------------------------ evaluation
def _evaluate_wider(ts, out, opts, log) -> dict:
    from .evaluation.plots import default_baselines_dir, load_baselines, plot_wider_pr
    from .evaluation.submission import check_submission, read_submission
    from .evaluation.wider import WiderGroundTruth, evaluate_wider, format_result
    pred = Path(out) / "predictions"
    keys = [(r.event, r.name) for r in ts.records]
    problems = check_submission(pred, keys)
    res = {"submission": str(pred), "submission_problems": problems}
    log(f"submission check: {'OK' if not problems else f'{len(problems)} problem(s)'} ({len(keys)} files in {pred})")
    for p in problems[:10]:
        log(f"  {p}")
    if ts.gt is None:
        return res
    gt = WiderGroundTruth.load(ts.gt)
    if opts.limit:
        want = set(keys)
        gt = gt.subset([i for i, k in enumerate(gt.keys()) if k in want])
    preds, warns = read_submission(pred, gt.keys())
    for w in warns[:10]:
        log(f"warning: {w}")
    r = evaluate_wider(preds, gt)
    log(format_result(r))
    res.update({s: r.ap[s] for s in r.ap})
    base_dir = opts.baselines or (default_baselines_dir() if ts.dataset == "wider-val" else None)
    baselines = load_baselines(base_dir) if base_dir else []
    title = WIDER_PR_TITLES[ts.dataset]
    png = plot_wider_pr(Path(out) / "wider_pr.png", {s: (r.precision[s], r.recall[s]) for s in r.ap}, opts.label,
                        baselines, title=title)
    res["plot"] = str(png)
    res["baselines"] = str(base_dir) if base_dir else None
    atomic_write_json(Path(out) / "wider_eval.json", r.to_json())
    return res


def _evaluate_fddb(ts, out, files, results, opts, log) -> dict:
    from .evaluation.fddb import evaluate_fddb, tpr_at_fp, write_roc_files
    from .evaluation.plots import plot_roc
    for i, r in enumerate(ts.records):          # sizes from the images when there is no FDDB-image-sizes.txt
        if (r.width <= 0 or r.height <= 0) and i in results:
            r.height, r.width = results[i][2]
    if any(r.width <= 0 or r.height <= 0 for r in ts.records):
        ts.notes.append("FDDB ROC skipped: image sizes unknown for unreadable images (put FDDB-image-sizes.txt "
                        "in the fddb folder)")
        return {}
    res, curves = {}, {}
    kinds = [("rect", files["_dets"])] + ([("ellipse", files["_ellipse_dets"])] if "_ellipse_dets" in files else [])
    for kind, dets in kinds:
        r = evaluate_fddb(ts.records, dets, progress=opts.progress)
        dp, cp = write_roc_files(Path(out) / "fddb" / f"{kind}-", r)
        d, c = tpr_at_fp(r)
        log(f"FDDB ({kind}): discrete TPR at 1000 FP {d:.4f}, continuous {c:.4f} ({r.num_faces} faces)")
        res[kind] = {"disc_roc": str(dp), "cont_roc": str(cp), "tpr_disc_1000fp": d, "tpr_cont_1000fp": c}
        curves[f"{opts.label} ({'ellipse regressor' if kind == 'ellipse' else 'rectangles'})"] = r
    res["plot"] = str(plot_roc(Path(out) / "fddb_roc.png", curves))
    return res


def _evaluate_face_eval(ts, out, files, opts, log) -> dict:
    from .evaluation.plots import plot_pr
    from .evaluation.pr import evaluate_face_eval, read_detections
    if Path(files["dets"]).read_text().strip():
        keys, dets = read_detections(files["dets"])
    else:                                   # we wrote it: no face found anywhere is AP 0, not a bad file
        keys, dets = [], np.zeros((0, 5))
    r = evaluate_face_eval(ts.records, keys, dets)      # the tested records (--limit applied)
    name = FACE_EVAL_NAMES[ts.dataset]
    log(f"{name} AP: {r.ap:.4f} ({r.num_faces} faces, {r.num_detections} detections)")
    png = plot_pr(Path(out) / f"{ts.dataset}_pr.png", r.recall, r.precision, opts.label, name, r.ap)
    atomic_write_json(Path(out) / f"{ts.dataset}_eval.json", r.to_json())
    return {"ap": r.ap, "plot": str(png), "faces": r.num_faces}


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


def run_test(detector, opts: TestOptions, log=print, on_image=None, test_set: Optional[TestSet] = None) -> dict:
    """Detect a benchmark with ``detector`` (resumable), write its official files and evaluate them; writes
    ``OUT/results.json`` and returns the same summary (``unreadable`` lists the images that failed).
    ``test_set``: what :func:`check_test_options` returned for these options (checked here when not given)."""
    out = Path(opts.out)
    ts = test_set if test_set is not None else check_test_options(opts)
    sizes = detector.sizes(opts.sizes, opts.pyramid)
    fp = setup_fingerprint(detector, sizes)
    key = hashlib.sha1(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:12]
    cache = out / CACHE_DIR / key
    cache.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cache / "setup.json", fp)
    log(f"{opts.dataset}: {len(ts.records)} images, test sizes {' + '.join('x'.join(map(str, s)) for s in sizes)}"
        f" on {len(detector.contexts)} device(s); cache {cache}")
    names = [ts.display_name(i) for i in range(len(ts.records))]
    results, failed = detect_records(detector, ts.records, cache, sizes, names, opts.progress,
                                     f"test {opts.dataset}", on_image)
    ellipses = bool(opts.ellipses or opts.ellipse_regressor)
    files = write_official_files(ts, results, out, ellipses=ellipses and ts.kind == "fddb",
                                 regressor=opts.ellipse_regressor)
    if ellipses and ts.kind != "fddb":
        ts.notes.append("--ellipses applies to FDDB only")
    if ts.kind == "wider":
        ev = _evaluate_wider(ts, out, opts, log)
    elif ts.kind == "fddb":
        ev = _evaluate_fddb(ts, out, files, results, opts, log)
    else:
        ev = _evaluate_face_eval(ts, out, files, opts, log)
    summary = {"dataset": opts.dataset, "images": len(ts.records), "detected": len(results),
               "detections": int(sum(len(v[1]) for v in results.values())), "sizes": sizes,
               "cache": str(cache), "files": {k: v for k, v in files.items() if not k.startswith("_")},
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
                  log=print) -> dict:
    """``python -m rfcn_face detect``: per image ``OUT/<stem>.png`` (boxes and scores drawn) and ``OUT/<stem>.json``
    = ``[{"box": [x1, y1, x2, y2], "score": s}, ...]`` in original-image pixels, best first, ``score >=
    thresh``. Unreadable images are reported by name and skipped (summary ``unreadable``). The inputs are checked
    by :func:`check_detect_inputs`."""
    import cv2
    paths = check_detect_inputs(paths, out_dir, thresh)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sizes = detector.sizes(sizes, pyramid)
    done, failed = [], []
    it = paths
    if progress and len(paths) > 1:
        from tqdm import tqdm
        it = tqdm(paths, desc="detect", unit="img", file=sys.stderr, dynamic_ncols=True)
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
            if not cv2.imwrite(str(png), draw_detections(img, boxes, scores)):
                raise ValueError(f"cannot write {png}")
            done.append({"image": str(p), "json": str(out / f"{p.stem}.json"), "png": str(png),
                         "faces": len(rows), "best": rows[0]["score"] if rows else None})
        pending.clear()

    for p in it:
        img, why = _read_image(str(p))
        if img is None:
            failed.append({"image": str(p), "reason": why})
            log(f"warning: {p}: {why}; skipped")
            continue
        pending.append((p, img))
        if len(pending) == step:
            flush()
    flush()
    return {"images": done, "unreadable": failed, "sizes": sizes, "thresh": float(thresh)}
