"""``python -m rfcn_face dataset-info {wider,fddb,afw,pascal,synthfaces} PATH [--json OUT]``: images, faces,
ignored faces and a face-size histogram of a benchmark's annotations."""
from __future__ import annotations

import math
import sys
from pathlib import Path

from . import write_json

HELP = "summary of a dataset's annotations: images, faces, ignored faces, face-size histogram"

DATASETS = ("wider", "fddb", "afw", "pascal", "synthfaces")
# sqrt(w*h) bin edges (px) of the histogram; the last bin is open.
SIZE_EDGES = (0, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512)
AFW_FILES = ("new_annotations_AFW.mat", "anno2.mat")
PASCAL_FILES = ("Annotations_Face_PASCALLayout_large_fixed.mat", "Annotations_Face_PASCALLayout_large.mat")


def add_arguments(p):
    p.add_argument("dataset", choices=DATASETS, help="which benchmark format PATH holds")
    p.add_argument("path", help="wider: *_bbx_gt.txt, split .mat, eval ground_truth/ folder or WIDER root; "
                                "fddb: FDDB-folds/ (or its parent); afw/pascal: the face-eval .mat (or its "
                                "folder); synthfaces: a generated root, or 'default' for the cached set")
    p.add_argument("--split", default="val", choices=("train", "val", "test"),
                   help="split for a WIDER or synthfaces root folder (default val)")
    p.add_argument("--sizes", default=None, help="fddb: FDDB-image-sizes.txt (default: next to the folds)")
    p.add_argument("--json", default=None, metavar="OUT", help="also write the summary as JSON to OUT")


def _need(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"not found: {path}")
    return path


def _wider_records(path: Path, split: str):
    from ..datasets.wider import read_wider_eval_gt, read_wider_split_mat, read_wider_txt
    path = _need(path)
    if path.is_file():
        if path.suffix == ".mat":
            return read_wider_split_mat(path, negative_size="ignore"), str(path)
        return read_wider_txt(path, negative_size="ignore"), str(path)
    if (path / "wider_hard_val.mat").is_file():
        return read_wider_eval_gt(path), str(path)
    for cand in (path / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt",
                 path / "wider_face_split" / f"wider_face_{split}.mat",
                 path / f"wider_face_{split}_bbx_gt.txt", path / f"wider_face_{split}.mat"):
        if cand.is_file():
            return _wider_records(cand, split)
    raise FileNotFoundError(f"{path}: no WIDER annotations found (expected a *_bbx_gt.txt, a split .mat, "
                            f"an eval ground_truth folder or wider_face_split/wider_face_{split}_bbx_gt.txt)")


def _fddb_records(path: Path, sizes):
    from ..datasets.fddb import read_fddb
    path = _need(path)
    folds = path / "FDDB-folds" if (path / "FDDB-folds").is_dir() else path
    if sizes is None:
        for cand in (folds / "FDDB-image-sizes.txt", folds.parent / "FDDB-image-sizes.txt"):
            if cand.is_file():
                sizes = cand
                break
    return read_fddb(folds, sizes_file=sizes), str(folds)


def _face_eval_records(path: Path, names):
    from ..datasets.face_eval import read_face_eval_mat
    path = _need(path)
    if path.is_dir():
        found = [path / n for n in names if (path / n).is_file()]
        if not found:
            raise FileNotFoundError(f"{path}: none of {', '.join(names)} found")
        path = found[0]
    return read_face_eval_mat(path), str(path)


def _synth_records(path: str, split: str):
    from ..datasets.synthfaces import ensure_synthfaces
    from ..datasets.wider import read_wider_txt
    root = ensure_synthfaces() if path == "default" else _need(Path(path))
    txt = root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt"
    if not txt.is_file():
        raise FileNotFoundError(f"{root}: not a synthfaces root (missing {txt})")
    return read_wider_txt(txt), str(root)


def load_records(dataset: str, path: str, split: str = "val", sizes=None):
    """(records, resolved source) for one of :data:`DATASETS`."""
    if dataset == "wider":
        return _wider_records(Path(path), split)
    if dataset == "fddb":
        return _fddb_records(Path(path), sizes)
    if dataset == "afw":
        return _face_eval_records(Path(path), AFW_FILES)
    if dataset == "pascal":
        return _face_eval_records(Path(path), PASCAL_FILES)
    if dataset == "synthfaces":
        return _synth_records(path, split)
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")


def summarize(records, dataset: str = "", source: str = "") -> dict:
    """images / faces (not ignored) / ignored / size histogram of sqrt(w*h) of the counted faces."""
    import numpy as np
    boxes = [r.boxes[~r.ignore] for r in records]
    b = np.concatenate(boxes) if boxes else np.zeros((0, 4))
    size = np.sqrt(np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None))
    edges = list(SIZE_EDGES) + [math.inf]
    counts, _ = np.histogram(size, bins=np.asarray(edges, dtype=float))
    out = {
        "dataset": dataset,
        "source": source,
        "images": len(records),
        "faces": int(sum(r.num_faces for r in records)),
        "ignored": int(sum(int(r.ignore.sum()) for r in records)),
        "images_without_faces": int(sum(r.num_faces == 0 for r in records)),
        "size_histogram": [{"min": float(lo), "max": (None if math.isinf(hi) else float(hi)), "count": int(c)}
                           for lo, hi, c in zip(edges[:-1], edges[1:], counts)],
    }
    if size.size:
        out["size_median"] = float(np.median(size))
    keep = {s: int(sum(int(np.sum(r.attributes[f"keep_{s}"])) for r in records))
            for s in ("easy", "medium", "hard") if records and f"keep_{s}" in records[0].attributes}
    if keep:
        out["kept"] = keep
    return out


def format_summary(s: dict) -> str:
    lines = [f"{s['dataset']}: {s['source']}",
             f"  images   {s['images']:>8,}",
             f"  faces    {s['faces']:>8,}   (not ignored)",
             f"  ignored  {s['ignored']:>8,}   (WIDER invalid / zero-size rows, face-eval ignore regions)"]
    if "kept" in s:
        lines.append("  kept     " + ", ".join(f"{k} {v:,}" for k, v in s["kept"].items()))
    if "size_median" in s:
        lines.append(f"  median face size sqrt(w*h): {s['size_median']:.1f} px")
    lines.append("  face size sqrt(w*h) histogram (px):")
    top = max([h["count"] for h in s["size_histogram"]] + [1])
    for h in s["size_histogram"]:
        label = f"{h['min']:g}-{h['max']:g}" if h["max"] is not None else f"{h['min']:g}+"
        bar = "#" * int(round(40 * h["count"] / top))
        lines.append(f"    {label:>9} {h['count']:>8,} {bar}")
    return "\n".join(lines)


def run(args) -> int:
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # negative-size rows are counted as ignored below
        records, source = load_records(args.dataset, args.path, args.split, args.sizes)
    if not records:
        raise ValueError(f"{source}: no image in these annotations (an empty file?)")
    s = summarize(records, args.dataset, source)
    seen, dup = {}, []
    for r in records:
        key = str(r.image_path)
        if key in seen:
            dup.append(key)
        seen[key] = True
    if dup:           # counted as often as listed (a training loop would see them as often)
        s["duplicate_images"] = len(dup)
        print(f"warning: {source}: {len(dup)} image(s) listed more than once (e.g. {dup[0]}); each listing is "
              "counted as an image with its own faces", file=sys.stderr)
    print(format_summary(s))
    if args.json:
        write_json(args.json, s)
    return 0
