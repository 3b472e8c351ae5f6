"""WIDER FACE submission folders: read (as the official ``read_pred.m`` does), write, and check before upload.

Layout: ``DIR/<event>/<image name>.txt``, one file per image::

    <image name>
    <count>
    x y w h score        (count lines)

The official reader ignores the first line, reads the count from the second line and then exactly ``count``
box lines (the first five numbers of each; extra lines after them are ignored). A file it cannot parse (count
missing or not an integer, fewer box lines than the count, a line with fewer than five numbers) is reported
as "Invalid format" and that image gets no predictions; so does a missing file. :func:`read_submission`
does the same and returns the reasons as warnings; :func:`rfcn_face.evaluation.submission_check.check_submission` is stricter and lists every
problem with its file and line.

Speed: :func:`read_submission` reads every file's bytes, takes the files of the regular shape (a name line, a
count line, then exactly ``count`` lines of five numbers, no blank or odd line breaks) and parses all their
box lines in one numpy call; any other file is read by :func:`parse_prediction_file`, the one definition of
the official semantics. The result is a :class:`Predictions` mapping over one ``(N, 5)`` array.
"""
from __future__ import annotations

import math
import os
import re
from collections import abc
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..datasets.numtext import parse_number_lines

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
    with open(path, "r", encoding="utf-8-sig", errors="replace") as f:
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
    with open(path, "r", encoding="utf-8-sig", errors="replace") as f:
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


def parse_prediction_file(path, notes: Optional[List[str]] = None) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """One prediction file the way ``read_pred.m`` reads it.

    Returns ``(array (k, 5) x y w h score in file order, None)`` or ``(None, reason)`` when the official
    tool would report "Invalid format" (the image then has no predictions). Blank lines are skipped, CRLF
    and trailing spaces are tolerated, numbers may be separated by spaces, tabs or commas. Box lines beyond the
    count are not read (as by the official tool); ``notes`` (a list) is told so.
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
    if len(lines) > 2 + count and notes is not None:
        extra = (f"{path}: count says {count} boxes but {len(lines) - 2} box lines follow; the last "
                 f"{len(lines) - 2 - count} are not read (as in the official tool)")
    else:
        extra = None
    toks = [_SEP.split(r) for r in rows]
    if all(len(t) == 5 for t in toks):
        try:
            arr = np.array(toks, dtype=np.float64)
        except ValueError:
            arr = None
        if arr is not None:
            if extra:
                notes.append(extra)
            return arr, None
    out = np.empty((count, 5))
    for k, r in enumerate(rows):
        try:
            vals = [float(t) for t in _SEP.split(r) if t]
        except ValueError:
            return None, f"box line {k + 3} {r!r} is not numeric"
        if len(vals) < 5:
            return None, f"box line {k + 3} has {len(vals)} numbers, 5 needed"
        out[k] = vals[:5]
    if extra:
        notes.append(extra)
    return out, None


class Predictions(abc.Mapping):
    """Per-image ``(k, 5)`` arrays ``x y w h score`` (file order) held as one ``(N, 5)`` array: ``rows`` and
    ``counts`` (per key, in key order). ``preds[key]`` is a read-only view of that image's rows."""

    def __init__(self, keys: Sequence[Key], rows: np.ndarray, counts):
        self._keys = list(keys)
        self.rows = np.asarray(rows, dtype=np.float64).reshape(-1, 5).view()
        self.rows.setflags(write=False)                 # on this view only: the caller's array stays writable
        self.counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        if len(self.counts) != len(self._keys) or int(self.counts.sum()) != len(self.rows):
            raise ValueError(f"Predictions: {len(self._keys)} keys, {len(self.counts)} counts for "
                             f"{len(self.rows)} rows")
        self.offsets = np.concatenate(([0], np.cumsum(self.counts)))
        self._index = {k: i for i, k in enumerate(self._keys)}
        if len(self._index) != len(self._keys):
            raise ValueError("Predictions: an image is given twice")

    @classmethod
    def from_arrays(cls, arrays: Mapping) -> "Predictions":
        """From a mapping ``key -> (k, 5)`` array (its iteration order)."""
        keys = list(arrays)
        parts = [np.asarray(arrays[k], dtype=np.float64).reshape(-1, 5) for k in keys]
        return cls(keys, np.concatenate(parts) if parts else np.zeros((0, 5)), [len(p) for p in parts])

    def __getitem__(self, key) -> np.ndarray:
        i = self._index[key]
        return self.rows[self.offsets[i]:self.offsets[i + 1]]

    def __iter__(self) -> Iterator[Key]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key) -> bool:
        return key in self._index

    def image_of_rows(self) -> np.ndarray:
        """(N,) the position in :meth:`keys` of each row's image."""
        return np.repeat(np.arange(len(self._keys)), self.counts)

    def aligned(self, keys: Sequence[Key]):
        """``(rows (M, 5), image (M,))``: the rows of the images in ``keys`` and each row's position in ``keys``
        (rows of other images left out), images in ``keys`` order, file order within an image."""
        where = {k: i for i, k in enumerate(keys)}
        pos = np.array([where.get(k, -1) for k in self._keys], dtype=np.int64)
        img = np.repeat(pos, self.counts)
        rows = self.rows
        if (pos < 0).any():
            rows, img = rows[img >= 0], img[img >= 0]
        if len(pos) > 1 and np.any(np.diff(pos[pos >= 0]) < 0):
            order = np.argsort(img, kind="stable")
            rows, img = rows[order], img[order]
        return rows, img

    def select_rows(self, keep: np.ndarray) -> "Predictions":
        """The same images with only the rows where ``keep`` (N,) is True."""
        owner = self.image_of_rows()
        return Predictions(self._keys, self.rows[keep], np.bincount(owner[keep], minlength=len(self._keys)))


# in the name and count lines: anything but printable ASCII, tabs and the line ends (a CR only before LF)
_ODD_HEADER = re.compile(rb"[^\x20-\x7e\t\r\n]|\r(?!\n)")


def _regular_rows(data: bytes):
    """``(count, box-line bytes)`` when a file has the regular shape, else None (the caller then reads it with
    :func:`parse_prediction_file`): a non-blank name line and an integer count line, both plain ASCII (so that
    they are the first two lines :func:`_lines` keeps), then exactly ``count`` lines (``\n`` or ``\r\n``).
    Whether each box line holds five numbers, and no other line break, is checked by the numpy parse. The box
    lines are returned as a view of ``data`` (no copy)."""
    i = data.find(b"\n")
    if i < 0:
        return None
    j = data.find(b"\n", i + 1)
    head = data[:j] if j >= 0 else data
    if _ODD_HEADER.search(head) or not head[:i].strip():
        return None
    try:
        count = int(head[i + 1:])                     # as _parse_count for plain ASCII: blanks, a sign, 1_000
    except ValueError:
        return None
    if count <= 0:
        return count, b""
    if j < 0 or j + 1 == len(data):
        return None
    ends = data.endswith(b"\n")
    if data.count(b"\n", j + 1) + (0 if ends else 1) != count:
        return None
    return count, memoryview(data)[j + 1:] if ends else data[j + 1:] + b"\n"


def _parse_rows(chunks: Sequence[bytes], lines: int) -> Optional[np.ndarray]:
    """The box lines of several files (``lines`` in all) in one numpy parse; None unless every line holds exactly
    five numbers (separated by blanks, tabs or commas) and none is blank."""
    rows = parse_number_lines(b"".join(chunks), lines, commas=True)
    return rows if rows is not None and rows.shape[1] == 5 else None


def _parse_regular(chunks: Sequence[bytes], counts: Sequence[int], first: int = 0) -> List[Tuple[int, int, object]]:
    """Blocks ``(first chunk, end chunk, rows or None)`` covering ``chunks``: the files are parsed together and a
    failing group is split in halves until the irregular files (rows None) are isolated."""
    if not chunks:
        return []
    rows = _parse_rows(chunks, int(sum(counts)))
    if rows is not None or len(chunks) == 1:
        return [(first, first + len(chunks), rows)]
    h = len(chunks) // 2
    return _parse_regular(chunks[:h], counts[:h], first) + _parse_regular(chunks[h:], counts[h:], first + h)


def _read_bytes(path: str) -> bytes:
    """A file's bytes by plain system calls (no file object: about half the time of ``open().read()`` on the
    small files of a submission)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        parts = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return chunk.join(parts) if len(parts) != 1 else parts[0]
            parts.append(chunk)
    finally:
        os.close(fd)


def read_submission(pred_dir, keys: Iterable[Key], warn=None, notes: Optional[List[str]] = None
                    ) -> Tuple[Predictions, List[str]]:
    """Read ``pred_dir/<event>/<name>.txt`` for every key. Missing or unreadable files give no predictions
    for that image (as in the official tool) and one warning each (also passed to ``warn`` if given).
    Returns a :class:`Predictions` mapping ``(event, name) -> (k, 5)`` and the warnings. ``notes`` (a list) is
    told about files read but not whole (box lines beyond the count)."""
    pred_dir = Path(pred_dir)
    if pred_dir.is_file():
        raise ValueError(f"{pred_dir}: is a file; the predictions are a folder of <event>/<image>.txt files")
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"prediction folder not found: {pred_dir}")
    warnings = []

    def _w(msg):
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    root = str(pred_dir)
    found, chunks, counts = [], [], []      # per key: (key, path, count (None: irregular, -1: missing), chunk or -1)
    usual = True                            # every file there and regular
    for key in keys:
        path = f"{root}/{key[0]}/{key[1]}.txt"
        try:
            data = _read_bytes(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            found.append((key, path, -1, -1))                 # warned below, in key order
            usual = False
            continue
        r = _regular_rows(data)
        if r is not None and r[0] > 0:
            found.append((key, path, r[0], len(chunks)))
            chunks.append(r[1])
            counts.append(r[0])
        else:
            found.append((key, path, None if r is None else 0, -1))
            usual = usual and r is not None
    blocks = _parse_regular(chunks, counts)
    if usual and len(blocks) <= 1 and all(b[2] is not None for b in blocks):   # the rows are in key order already
        rows = blocks[0][2] if blocks else np.zeros((0, 5))
        return Predictions([f[0] for f in found], rows, [f[2] for f in found]), warnings
    block_of = np.zeros(len(chunks), dtype=np.int64)
    row_of = np.zeros(len(chunks), dtype=np.int64)               # first row of a chunk in its block
    for i, (a, b, _) in enumerate(blocks):
        block_of[a:b] = i
        row_of[a:b] = np.cumsum(counts[a:b]) - counts[a:b]
    out_keys, out_counts, parts, run = [], [], [], None          # run: consecutive rows of one block
    for key, path, count, j in found:
        if j >= 0 and blocks[block_of[j]][2] is not None:
            i, r0 = int(block_of[j]), int(row_of[j])
            if run is not None and run[0] == i and run[2] == r0:
                run[2] = r0 + count
            else:
                if run is not None:
                    parts.append(blocks[run[0]][2][run[1]:run[2]])
                run = [i, r0, r0 + count]
            out_keys.append(key)
            out_counts.append(count)
            continue
        if count == -1:
            _w(f"missing prediction file {Path(path)} (no predictions for this image)")
            continue
        arr = np.zeros((0, 5)) if count == 0 else None
        if arr is None:
            arr, reason = parse_prediction_file(path, notes)
            if arr is None:
                _w(f"invalid format {Path(path)}: {reason} (no predictions for this image, as in the official tool)")
                continue
        if run is not None:
            parts.append(blocks[run[0]][2][run[1]:run[2]])
            run = None
        parts.append(arr)
        out_keys.append(key)
        out_counts.append(len(arr))
    if run is not None:
        parts.append(blocks[run[0]][2][run[1]:run[2]])
    rows = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros((0, 5))
    return Predictions(out_keys, rows, out_counts), warnings


def _content_line_numbers(path: Path) -> List[int]:
    """1-based line numbers of the non-blank lines of a prediction file (what :func:`_lines` keeps)."""
    with open(path, "r", encoding="utf-8-sig", errors="replace") as f:
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
    if isinstance(preds, Predictions):                 # all rows at once; the loop below names the first problem
        finite = np.isfinite(preds.rows).all(axis=1)
        negative = (preds.rows[:, 2] < 0) | (preds.rows[:, 3] < 0)
        if finite.all() and not negative.any():
            return preds, 0, 0
        if drop_nonfinite and not negative[finite].any():
            files = len(np.unique(preds.image_of_rows()[~finite]))
            return preds.select_rows(finite), int((~finite).sum()), files
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
    return (Predictions.from_arrays(out) if isinstance(preds, Predictions) else out), dropped, files


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
