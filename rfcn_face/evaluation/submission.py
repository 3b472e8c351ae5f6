"""WIDER FACE submission folders: read (as the official ``read_pred.m`` does), write, and check before upload.

Layout: ``DIR/<event>/<image name>.txt``, one file per image::

    <image name>
    <count>
    x y w h score        (count lines)

The official reader ignores the first line, reads the count from the second line and then exactly ``count``
box lines (the first five numbers of each; extra lines after them are ignored). A file it cannot parse (count
missing or not an integer, fewer box lines than the count, a line with fewer than five numbers) is reported
as "Invalid format" and that image gets no predictions; so does a missing file. :func:`read_submission`
does the same and returns the reasons as warnings; :func:`check_submission` is stricter and lists every
problem with its file and line.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

Key = Tuple[str, str]
_SEP = re.compile(r"[\s,]+")


# --------------------------------------------------------------------------------------------------------------
# image lists
def key_of(item) -> Key:
    """``(event, name)`` from a tuple, ``"event/name[.jpg]"``, a path ``.../event/name.jpg`` or a record."""
    if hasattr(item, "event") and hasattr(item, "name") and getattr(item, "name", ""):
        return str(item.event), _stem(str(item.name))
    if hasattr(item, "image_path"):
        item = item.image_path
    if isinstance(item, tuple) and len(item) == 2:
        return str(item[0]), _stem(str(item[1]))
    parts = str(item).replace("\\", "/").rstrip("/").split("/")
    if len(parts) < 2:
        raise ValueError(f"cannot tell the event folder of image {item!r} (expected 'event/name.jpg')")
    return parts[-2], _stem(parts[-1])


def _stem(name: str) -> str:
    base = name.replace("\\", "/").split("/")[-1]
    return base[:-4] if base.lower().endswith((".jpg", ".png", ".txt")) else base


def read_image_list(path) -> List[Key]:
    """Images of a WIDER list file: every line ending in ``.jpg`` (the test file list, or the
    ``wider_face_*_bbx_gt.txt`` annotation files, whose count and box lines are skipped), in file order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"WIDER image list not found: {path}")
    keys = []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            s = line.strip()
            if s.lower().endswith(".jpg"):
                if "/" not in s.replace("\\", "/"):
                    raise ValueError(f"{path}:{lineno}: image {s!r} has no event folder")
                keys.append(key_of(s))
    if not keys:
        raise ValueError(f"{path}: no image names (lines ending in .jpg) found")
    return keys


def default_list_file(split: str) -> Optional[Path]:
    """The official list of a split under ``$RFCN_FACE_DATA/widerface`` or the project's ``data/widerface``
    (working directory, then the checkout's own ``data/``); None when absent (the user passes ``--filelist``)."""
    rel = {"test": "wider_face_split/wider_face_test_filelist.txt",
           "val": "wider_face_split/wider_face_val_bbx_gt.txt"}.get(split)
    if rel is None:
        raise ValueError(f"unknown WIDER split {split!r} (val or test)")
    repo = Path(__file__).resolve().parents[2]
    roots = [Path(os.environ["RFCN_FACE_DATA"]) / "widerface"] if os.environ.get("RFCN_FACE_DATA") else []
    roots += [Path("data/widerface"), repo / "data" / "widerface"]
    for r in roots:
        if (r / rel).is_file():
            return r / rel
    return None


def split_image_list(split: str, filelist=None) -> List[Key]:
    """The image keys of ``split`` from ``filelist`` or the default list file."""
    path = Path(filelist) if filelist else default_list_file(split)
    if path is None:
        raise FileNotFoundError(f"no image list for WIDER {split}: pass --filelist "
                                f"(e.g. wider_face_split/wider_face_{split}_filelist.txt or "
                                f"wider_face_{split}_bbx_gt.txt) or put it under data/widerface/wider_face_split/")
    return read_image_list(path)


# --------------------------------------------------------------------------------------------------------------
# reading (official semantics)
def _lines(path: Path) -> List[str]:
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        text = f.read()
    return [s for s in (l.strip() for l in text.splitlines()) if s]


def _parse_count(s: str) -> Optional[int]:
    try:
        v = float(s.split()[0]) if len(s.split()) == 1 else None
    except ValueError:
        return None
    if v is None or not math.isfinite(v) or v != int(v):
        return None
    return int(v)


def parse_prediction_file(path) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """One prediction file the way ``read_pred.m`` reads it.

    Returns ``(array (k, 5) x y w h score in file order, None)`` or ``(None, reason)`` when the official
    tool would report "Invalid format" (the image then has no predictions). Blank lines are skipped, CRLF
    and trailing spaces are tolerated, numbers may be separated by spaces, tabs or commas.
    """
    lines = _lines(Path(path))
    if len(lines) < 2:
        return None, "no count line"
    count = _parse_count(lines[1])
    if count is None:
        return None, f"count line {lines[1]!r} is not an integer"
    if count <= 0:
        return np.zeros((0, 5)), None
    rows = lines[2:2 + count]
    if len(rows) < count:
        return None, f"count says {count} boxes but only {len(rows)} box lines follow"
    toks = [_SEP.split(r) for r in rows]
    if all(len(t) == 5 for t in toks):
        try:
            return np.array(toks, dtype=np.float64), None
        except ValueError:
            pass
    out = np.empty((count, 5))
    for k, r in enumerate(rows):
        try:
            vals = [float(t) for t in _SEP.split(r) if t]
        except ValueError:
            return None, f"box line {k + 3} {r!r} is not numeric"
        if len(vals) < 5:
            return None, f"box line {k + 3} has {len(vals)} numbers, 5 needed"
        out[k] = vals[:5]
    return out, None


def read_submission(pred_dir, keys: Iterable[Key], warn=None) -> Tuple[Dict[Key, np.ndarray], List[str]]:
    """Read ``pred_dir/<event>/<name>.txt`` for every key. Missing or unreadable files give no predictions
    for that image (as in the official tool) and one warning each (also passed to ``warn`` if given)."""
    pred_dir = Path(pred_dir)
    if pred_dir.is_file():
        raise ValueError(f"{pred_dir}: is a file; the predictions are a folder of <event>/<image>.txt files")
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction folder not found: {pred_dir}")
    preds, warnings = {}, []

    def _w(msg):
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    for e, n in keys:
        path = pred_dir / e / f"{n}.txt"
        if not path.is_file():
            _w(f"missing prediction file {path} (no predictions for this image)")
            continue
        arr, reason = parse_prediction_file(path)
        if arr is None:
            _w(f"invalid format {path}: {reason} (no predictions for this image, as in the official tool)")
            continue
        preds[(e, n)] = arr
    return preds, warnings


def _content_line_numbers(path: Path) -> List[int]:
    """1-based line numbers of the non-blank lines of a prediction file (what :func:`_lines` keeps)."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        return [i for i, l in enumerate(f.read().splitlines(), 1) if l.strip()]


def _find_submission_below(pred_dir: Path, keys: Sequence[Key], depth: int = 2) -> Optional[Path]:
    """A folder under ``pred_dir`` (up to ``depth`` levels) that holds the first image's prediction file."""
    if not keys:
        return None
    e, n = keys[0]
    level = [pred_dir]
    for _ in range(depth):
        level = [d for p in level for d in sorted(p.iterdir()) if d.is_dir()] if level else []
        for d in level:
            if (d / e / f"{n}.txt").is_file():
                return d
    return None


def require_some_predictions(pred_dir, keys: Sequence[Key], preds: Mapping, warnings: Sequence[str]) -> None:
    """A submission folder from which not one prediction file could be read is an error, not AP 0: the folder is
    empty, is the parent of the submission folder, holds another split, or every file is malformed."""
    if preds:
        return
    pred_dir = Path(pred_dir)
    keys = list(keys)
    nested = _find_submission_below(pred_dir, keys)
    if nested is not None:
        raise ValueError(f"{pred_dir}: no prediction file for any of the {len(keys)} images, but {nested} holds "
                         f"them: pass --pred {nested}")
    if not any(pred_dir.rglob("*.txt")):
        raise ValueError(f"{pred_dir}: no prediction file (<event>/<image>.txt) for any of the {len(keys)} images: "
                         "the folder holds no .txt file")
    first = warnings[0] if warnings else ""
    raise ValueError(f"{pred_dir}: no usable prediction file for any of the {len(keys)} images (another split, or "
                     f"every file malformed?); first: {first}")


def check_prediction_values(pred_dir, preds: Dict[Key, np.ndarray], drop_nonfinite: bool = False):
    """Refuse values the evaluator would silently misread, naming the file and line: NaN / infinite numbers
    (dropped instead, row by row, with ``drop_nonfinite``) and negative widths or heights. Returns
    ``(predictions, rows dropped, files with a dropped row)``; the input mapping is not changed."""
    pred_dir = Path(pred_dir)
    out, dropped, files = {}, 0, 0
    for (e, n), a in preds.items():
        bad = ~np.isfinite(a).all(axis=1)
        if bad.any():
            if not drop_nonfinite:
                path = pred_dir / e / f"{n}.txt"
                k = int(np.flatnonzero(bad)[0])
                line = _content_line_numbers(path)[2 + k]
                raise ValueError(f"{path}:{line}: NaN or infinite value in 'x y w h score' "
                                 f"({' '.join(f'{v:g}' for v in a[k])}); fix the file, or pass --drop-nonfinite to "
                                 "leave such rows out (their count is printed)")
            a = a[~bad]
            dropped += int(bad.sum())
            files += 1
        neg = (a[:, 2] < 0) | (a[:, 3] < 0)
        if neg.any():
            path = pred_dir / e / f"{n}.txt"
            k = int(np.flatnonzero(neg)[0])
            rows = np.flatnonzero(np.isfinite(preds[(e, n)]).all(axis=1)) if drop_nonfinite else np.arange(len(a))
            line = _content_line_numbers(path)[2 + int(rows[k])]
            raise ValueError(f"{path}:{line}: negative box size w={a[k, 2]:g} h={a[k, 3]:g} (a line is "
                             "'x y w h score')")
        out[(e, n)] = a
    return out, dropped, files


# --------------------------------------------------------------------------------------------------------------
# writing
def _as_xywh_score(det, key) -> np.ndarray:
    """Detections of one image → (k, 5) ``x y w h score``. Accepts a (k, 5) array ``x1 y1 x2 y2 score`` (the
    project's box convention, :mod:`rfcn_face.boxes`), a ``(boxes_xyxy, scores)`` pair, or a record with
    ``boxes`` and ``attributes['scores']``."""
    if hasattr(det, "boxes"):
        scores = det.attributes.get("scores", det.attributes.get("score"))
        if scores is None:
            raise ValueError(f"{key}: record has no attributes['scores']")
        det = (det.boxes, scores)
    if isinstance(det, tuple):
        boxes = np.asarray(det[0], dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(det[1], dtype=np.float64).reshape(-1)
        if len(boxes) != len(scores):
            raise ValueError(f"{key}: {len(boxes)} boxes but {len(scores)} scores")
        a = np.concatenate([boxes, scores[:, None]], axis=1)
    else:
        a = np.asarray(det, dtype=np.float64)
        if a.size == 0:
            a = a.reshape(0, 5)
        if a.ndim != 2 or a.shape[1] != 5:
            raise ValueError(f"{key}: detections must be (k, 5) x1 y1 x2 y2 score, got shape {a.shape}")
    out = a.copy()
    out[:, 2] = a[:, 2] - a[:, 0]
    out[:, 3] = a[:, 3] - a[:, 1]
    return out


def _fmt(v: float, decimals: Optional[int]) -> str:
    if decimals is None:
        r = repr(float(v))                 # shortest text that reads back to the same double
        return r[:-2] if r.endswith(".0") else r
    return f"{v:.{decimals}f}"


def write_submission(detections, out_dir, image_list: Sequence[Key], decimals: Optional[int] = None,
                     score_decimals: Optional[int] = None) -> int:
    """Write the official folder layout for every image of ``image_list`` (images without detections get a
    count of 0). ``detections``: mapping image → detections (keys as :func:`key_of` accepts) or an iterable of
    records. Boxes are sorted by score (descending) in the files. Returns the number of boxes written."""
    if isinstance(detections, Mapping):
        items = detections.items()
    else:
        items = ((r, r) for r in detections)
    by_key = {}
    for k, det in items:
        key = key_of(k)
        if key in by_key:
            raise ValueError(f"detections given twice for image {key[0]}/{key[1]}")
        by_key[key] = _as_xywh_score(det, f"{key[0]}/{key[1]}")
    wanted = set(image_list)
    extra = [k for k in by_key if k not in wanted]
    if extra:
        raise ValueError(f"{len(extra)} images with detections are not in the image list, e.g. "
                         f"{extra[0][0]}/{extra[0][1]}")
    out_dir = Path(out_dir)
    total = 0
    for e, n in image_list:
        a = by_key.get((e, n), np.zeros((0, 5)))
        a = a[np.argsort(-a[:, 4], kind="stable")]
        (out_dir / e).mkdir(parents=True, exist_ok=True)
        lines = [n, str(len(a))]
        lines += [" ".join([_fmt(v, decimals) for v in r[:4]] + [_fmt(r[4], score_decimals)]) for r in a]
        (out_dir / e / f"{n}.txt").write_text("\n".join(lines) + "\n")
        total += len(a)
    return total


# --------------------------------------------------------------------------------------------------------------
# checking
def _check_file(path: str, raw_text: str, key: Key) -> List[str]:
    """The problems of one prediction file (``path``: how messages name it; ``raw_text``: its content)."""
    problems = []
    lines = [(i + 1, l.strip()) for i, l in enumerate(raw_text.splitlines())]
    content = [(i, l) for i, l in lines if l]
    if not content:
        return [f"{path}: empty file"]
    first_no, first = content[0]
    if _stem(first) != key[1]:
        problems.append(f"{path}:{first_no}: first line {first!r} does not name the image {key[1]}")
    if len(content) < 2:
        return problems + [f"{path}: no count line"]
    count_no, count_s = content[1]
    count = _parse_count(count_s)
    if count is None or count < 0:
        return problems + [f"{path}:{count_no}: count {count_s!r} is not a non-negative integer"]
    boxes = content[2:]
    if len(boxes) != count:
        problems.append(f"{path}:{count_no}: count is {count} but {len(boxes)} box lines follow")
    for no, l in boxes:
        toks = [t for t in _SEP.split(l) if t]
        try:
            vals = [float(t) for t in toks]
        except ValueError:
            problems.append(f"{path}:{no}: not numeric: {l!r}")
            continue
        if len(vals) != 5:
            problems.append(f"{path}:{no}: {len(vals)} numbers, expected 5 (x y w h score)")
            continue
        if not all(math.isfinite(v) for v in vals):
            problems.append(f"{path}:{no}: NaN or infinite value: {l!r}")
            continue
        if vals[2] < 0 or vals[3] < 0:
            problems.append(f"{path}:{no}: negative size w={vals[2]:g} h={vals[3]:g}")
        if vals[4] < 0:
            problems.append(f"{path}:{no}: negative score {vals[4]:g} (the official tool drops it)")
    return problems


class _FolderSubmission:
    """A submission folder: its ``.txt`` files as paths relative to it, named ``DIR/<rel>`` in messages."""

    def __init__(self, root: Path):
        self.root, self.problems = root, []

    def txt_files(self) -> List[str]:
        return [p.relative_to(self.root).as_posix() for p in sorted(self.root.rglob("*.txt"))]

    def name(self, rel: str) -> str:
        return str(self.root / rel)

    def read(self, rel: str) -> Optional[str]:
        with open(self.root / rel, "r", encoding="utf-8", errors="replace") as f:
            return f.read()

    def close(self) -> None:
        pass


class _ZipSubmission:
    """A submission zip, read in memory (nothing extracted): members ``<event>/<image>.txt`` at its top level,
    named ``ZIP:<member>`` in messages. Unsafe member names, unreadable and oversized members are problems."""
    MAX_MEMBER = 64 << 20              # a prediction file is kilobytes; more is not a submission (or a zip bomb)

    def __init__(self, path: Path):
        import zipfile
        self.path, self.problems = path, []
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile) as e:
            raise ValueError(f"--pred {path}: not a readable zip archive ({e})") from None
        self.members = {}
        for info in self.zip.infolist():
            n = info.filename
            if info.is_dir():
                continue
            if n.startswith("/") or "\\" in n or ".." in n.split("/"):
                self.problems.append(f"{self.name(n)}: unsafe member name (absolute, '..' or a backslash)")
            elif info.file_size > self.MAX_MEMBER:
                self.problems.append(f"{self.name(n)}: {info.file_size} bytes uncompressed, not a prediction file")
            elif n in self.members:
                self.problems.append(f"{self.name(n)}: stored twice in the zip")
            else:
                self.members[n] = info

    def txt_files(self) -> List[str]:
        return sorted(n for n in self.members if n.endswith(".txt"))

    def name(self, rel: str) -> str:
        return f"{self.path}:{rel}"

    def read(self, rel: str) -> Optional[str]:
        import zipfile
        try:
            return self.zip.read(self.members[rel]).decode("utf-8", errors="replace")
        except (zipfile.BadZipFile, RuntimeError, OSError, EOFError) as e:   # CRC error, encrypted, truncated
            self.problems.append(f"{self.name(rel)}: cannot be read from the zip ({e})")
            return None

    def close(self) -> None:
        self.zip.close()


def _open_submission(pred):
    pred = Path(pred)
    if pred.is_dir():
        return _FolderSubmission(pred)
    if pred.is_file():
        import zipfile
        if zipfile.is_zipfile(pred) or pred.suffix.lower() == ".zip":
            return _ZipSubmission(pred)
        raise ValueError(f"--pred {pred} is a file but not a zip archive: give the submission folder or its .zip")
    raise FileNotFoundError(f"prediction folder not found: {pred}")


def check_submission(pred, image_list: Sequence[Key]) -> List[str]:
    """Every problem of a submission folder or of its zip (members ``<event>/<image>.txt``, read in memory), each
    naming its file (and line): images missing or present more than once (or in the wrong event folder), files
    not in the list, first line not naming the image, count not equal to the number of box lines, non-numeric,
    NaN / infinite values, negative sizes or scores; in a zip also unsafe, duplicate or unreadable members.
    An empty list means the folder (zip) is ready to upload."""
    sub = _open_submission(pred)
    try:
        return _check(sub, image_list)
    finally:
        sub.close()


def _check(sub, image_list: Sequence[Key]) -> List[str]:
    found: Dict[str, List[str]] = {}
    for rel in sub.txt_files():
        found.setdefault(_stem(rel), []).append(rel)
    problems = []
    expected = {}
    for e, n in image_list:
        if n in expected:
            problems.append(f"image list names {e}/{n} twice")
        expected[n] = e
    for n, e in expected.items():
        rels = found.get(n, [])
        want = f"{e}/{n}.txt"
        if not rels:
            problems.append(f"{sub.name(want)}: missing")
            continue
        if len(rels) > 1:
            problems.append(f"{sub.name(want)}: image present {len(rels)} times: "
                            + ", ".join(sub.name(r) for r in rels))
        if want not in rels:
            problems.append(f"{sub.name(rels[0])}: in the wrong folder, expected {sub.name(want)}")
            continue
        text = sub.read(want)
        if text is not None:
            problems.extend(_check_file(sub.name(want), text, (e, n)))
    for n, rels in found.items():
        if n not in expected:
            problems.extend(f"{sub.name(r)}: not an image of the list" for r in rels)
    return sub.problems + problems
