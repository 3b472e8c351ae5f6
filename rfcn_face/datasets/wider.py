"""WIDER FACE readers: the official text ground truth, the split ``.mat`` files and the val evaluation ``.mat``.

All readers return :class:`~rfcn_face.datasets.record.FaceRecord` lists with boxes ``(x, y, x + w, y + h)`` in
the continuous convention of :mod:`rfcn_face.boxes`.

Special rows, handled the same way by every reader here
-------------------------------------------------------
* **invalid faces** (WIDER ``invalid`` label = 1): kept as boxes with ``ignore=True``; the raw label is also in
  ``attributes['invalid']``.
* **the dummy ``0 0 0 0`` row**: the released files list an image without faces as ``count 1`` followed by
  one all-zero row (4 val images, 4 train images). Every row is kept as it is, so that the text and the
  ``.mat`` readers agree row for row with the official ``face_bbx_list`` (the counts 39,708 / 159,424 include
  those rows); the dummy row is a zero-size box and therefore ``ignore=True`` (its IoU with anything is 0).
  Later WIDER releases write such an image as ``count 0`` followed by one all-zero row: that row is consumed
  and the image gets **zero** boxes. Any other zero-width or zero-height box is likewise ``ignore=True``.
* a **negative** width or height: the official files contain such rows (train text and ``.mat``:
  ``54_Rescue_rescuepeople_54_29`` ``1050 142 -26 50`` and ``7_Cheering_Cheering_7_17`` ``0 5 -11 5``;
  ``wider_face_val.mat``: ``39_Ice_Skating_iceskiing_39_583`` row 8 ``1026 474 -2 23``, written ``0`` in the
  val text). ``negative_size`` chooses what happens: ``"warn"`` (default) keeps the row as it is (a
  degenerate box, area 0, ``ignore=True``) and emits one :class:`UserWarning` per file naming the file, the
  count and the first line; ``"ignore"`` does the same silently; ``"error"`` (strict validation) raises a
  :class:`ValueError` naming the file and the line.

Errors: every malformed input raises one :class:`ValueError` (or :class:`FileNotFoundError` for a missing
file or image) whose message starts with ``<file>:<line>:``.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .record import FaceRecord, load_mat

__all__ = [
    "read_wider_txt", "read_wider_split_mat", "read_wider_eval_gt", "WIDER_ATTRIBUTES", "TXT_FORMATS",
    "EVAL_SETTINGS", "split_image_name", "write_wider_txt", "write_wider_eval_gt", "write_wider_split_mat",
    "wider_mat_dict", "gt_index_list", "wider_base", "wider_split_records",
]

# Official attribute order of the 10-column text (wider_face_split/readme.txt) and of the .mat label lists.
WIDER_ATTRIBUTES = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
# Column layouts of the text ground truth, keyed by the number of columns.
TXT_FORMATS = {
    10: ("x", "y", "w", "h", "blur", "expression", "illumination", "invalid", "occlusion", "pose"),
    7: ("x", "y", "w", "h", "blur", "invalid", "occlusion"),
}
EVAL_SETTINGS = ("easy", "medium", "hard")


def wider_base(root) -> Path:
    """The WIDER FACE folder of a data root: ``root/widerface`` (the data/README.md layout) or ``root`` itself
    when it holds ``wider_face_split/`` (a WIDER-layout root such as a synthfaces folder)."""
    root = Path(root)
    if not (root / "widerface" / "wider_face_split").is_dir() and (root / "wider_face_split").is_dir():
        return root
    return root / "widerface"


def wider_split_records(base, split: str, check_images: bool = False) -> list:
    """The records of one split of a WIDER-layout folder (:func:`wider_base`): ``train`` / ``val`` from
    ``wider_face_split/wider_face_<split>_bbx_gt.txt``, ``test`` (no boxes) from
    ``wider_face_test_filelist.txt``; images under ``WIDER_<split>/images``."""
    base = Path(base)
    images = base / f"WIDER_{split}" / "images"
    if split == "test":
        from ..evaluation.submission import read_image_list
        lst = base / "wider_face_split" / "wider_face_test_filelist.txt"
        if not lst.is_file():
            raise FileNotFoundError(f"WIDER test image list not found: {lst} (see data/README.md)")
        return [FaceRecord(image_path=str(images / e / f"{n}.jpg"), event=e, name=n) for e, n in read_image_list(lst)]
    txt = base / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt"
    if not txt.is_file():
        raise FileNotFoundError(f"WIDER {split} annotations not found: {txt} (see data/README.md for where WIDER "
                                "FACE goes)")
    return read_wider_txt(txt, image_root=images, check_images=check_images, negative_size="ignore")


def _err(path, line, msg) -> ValueError:
    return ValueError(f"{path}:{line}: {msg}")


def split_image_name(rel: str):
    """``'0--Parade/0_Parade_x_1.jpg'`` -> ``('0--Parade', '0_Parade_x_1')`` (event folder, file stem)."""
    rel = rel.replace("\\", "/")
    event, _, base = rel.rpartition("/")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return event, stem


def _image_path(image_root, rel: str) -> str:
    return os.path.join(str(image_root), rel) if image_root is not None else rel


def _check_image(path_txt, line, image_path):
    if not os.path.isfile(image_path):
        raise FileNotFoundError(f"{path_txt}:{line}: image not found: {image_path}")


def _is_int(s: str) -> bool:
    s = s.strip()
    return s.isdigit() or (s[:1] in "+-" and s[1:].isdigit())


def _parse_rows_slow(path, lines, first, ncols):
    """Row-by-row parse of ``lines[first:first+n]`` that names the first bad line (only used on failure)."""
    out = []
    for k, text in enumerate(lines):
        lineno = first + k + 1
        tok = text.split()
        if len(tok) != ncols:
            raise _err(path, lineno, f"expected {ncols} numbers per face, found {len(tok)}: {text.strip()!r}")
        try:
            out.append([float(t) for t in tok])
        except ValueError:
            raise _err(path, lineno, f"non-numeric field in face row: {text.strip()!r}") from None
    return np.asarray(out, dtype=np.float64).reshape(-1, ncols)


def _looks_like_name(text: str) -> bool:
    t = text.strip()
    return bool(t) and not all(_is_num(x) for x in t.split())


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _is_path_line(text: str) -> bool:
    """Cheap test for an image path line inside a block of face rows (count disagreeing with the lines)."""
    return "/" in text or "\\" in text or text.rstrip().lower().endswith(_IMAGE_SUFFIXES)


def _is_num(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


NEGATIVE_SIZE_POLICIES = ("warn", "ignore", "error")


def _check_policy(negative_size):
    if negative_size not in NEGATIVE_SIZE_POLICIES:
        raise ValueError(f"negative_size must be one of {NEGATIVE_SIZE_POLICIES}, got {negative_size!r}")


def _negative_size_error(where, w, h) -> ValueError:
    return ValueError(f"{where}: negative face size w={w:g} h={h:g} "
                      "(pass negative_size='ignore' to keep such rows as ignored boxes)")


class _NegativeLog:
    """Collects negative-size rows of one file; raises at the first one ("error") or warns once at the end."""

    def __init__(self, policy, path):
        _check_policy(policy)
        self.policy, self.path, self.count, self.first = policy, path, 0, None

    def check(self, xywh, where):
        bad = np.flatnonzero((xywh[:, 2] < 0) | (xywh[:, 3] < 0))
        if not bad.size:
            return
        i = int(bad[0])
        if self.policy == "error":
            raise _negative_size_error(where(i), xywh[i, 2], xywh[i, 3])
        self.count += bad.size
        if self.first is None:
            self.first = where(i)

    def finish(self):
        if self.count and self.policy == "warn":
            warnings.warn(f"{self.path}: {self.count} face row(s) with negative width/height kept as ignored "
                          f"boxes (first: {self.first}; negative_size='error' to reject, 'ignore' to silence)",
                          UserWarning, stacklevel=3)


def read_wider_txt(path, image_root=None, check_images=False, negative_size="warn") -> list:
    """Read ``wider_face_{train,val}_bbx_gt.txt`` (10 columns) or the 7-column variant (auto-detected).

    Parameters
    ----------
    path : the text file: per image a relative path line, a count line, then ``count`` face rows.
    image_root : folder the relative paths are joined to (e.g. ``data/widerface/WIDER_val/images``);
        ``None`` keeps them relative.
    check_images : raise :class:`FileNotFoundError` (file and line) for the first image that does not exist.
    negative_size : ``"warn"`` (default), ``"ignore"`` or ``"error"``; see the module docstring.

    ``attributes`` holds one int64 array per label column the format has; ``ignore`` is the ``invalid`` flag
    or a zero-size box (see the module docstring for the dummy ``0 0 0 0`` row).
    """
    neg = _NegativeLog(negative_size, path)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"WIDER annotation file not found: {path}")
    with open(path, "r", encoding="utf-8-sig", errors="replace") as f:
        lines = f.read().splitlines()
    images = _scan_structure(path, lines)
    ncols = _detect_columns(path, lines, images)
    rows, row_line = _parse_all_rows(path, lines, images, ncols)
    cols = TXT_FORMATS[ncols]
    _check_values(path, lines, rows, row_line)
    # Whole-file columns, sliced per image below.
    xywh = rows[:, :4]
    for k in np.flatnonzero((xywh[:, 2] < 0) | (xywh[:, 3] < 0)):
        neg.check(xywh[k:k + 1], lambda _, k=k: f"{path}:{row_line[k] + 1}")
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    attrs = {c: rows[:, j].astype(np.int64) for j, c in enumerate(cols) if j >= 4}
    ignore = (xywh[:, 2] <= 0) | (xywh[:, 3] <= 0)  # dummy 0 0 0 0, zero or (allowed) negative size
    if "invalid" in attrs:
        ignore |= attrs["invalid"] != 0
    records = []
    offset = 0
    for name_idx, first, nrows, dummy in images:
        sl = slice(offset, offset + (0 if dummy else nrows))
        if dummy and np.any(rows[offset] != 0):
            raise _err(path, first + 1, f"image {lines[name_idx].strip()!r} declares 0 faces but the row after "
                                        "is not all zeros")
        offset += nrows
        name_line = lines[name_idx].strip()
        event, stem = split_image_name(name_line)
        img = _image_path(image_root, name_line)
        if check_images:
            _check_image(path, name_idx + 1, img)
        records.append(FaceRecord(image_path=img, boxes=boxes[sl], ignore=ignore[sl],
                                  attributes={c: v[sl] for c, v in attrs.items()}, event=event, name=stem))
    neg.finish()
    return records


def _check_values(path, lines, rows, row_line):
    """Every number of a face row finite, every label column (after x y w h) an integer: a NaN box would count
    as a face and a label 0.5 would be read as 0."""
    if not len(rows):
        return
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if bad.size:
        k = int(bad[0])
        raise _err(path, row_line[k] + 1, f"NaN or infinite value in face row: {lines[row_line[k]].strip()!r}")
    labels = rows[:, 4:]
    bad = np.flatnonzero((labels != np.round(labels)).any(axis=1))
    if bad.size:
        k = int(bad[0])
        raise _err(path, row_line[k] + 1, f"labels after 'x y w h' must be integers: {lines[row_line[k]].strip()!r}")


def _check_block_for_paths(path, lines, image):
    """Raise if an image path sits inside the face rows of ``image`` (its count is too large)."""
    name_idx, first, nrows, _ = image
    for k in range(first, first + nrows):
        if _is_path_line(lines[k]):
            raise _err(path, k + 1, f"image {lines[name_idx].strip()!r} (line {name_idx + 1}) declares "
                                    f"{nrows} faces but only {k - first} rows follow before the next image path")


def _scan_structure(path, lines):
    """Pass 1 over the text: [(name line index, first row index, number of rows, dummy?)] (0-based).

    Image-path lines are not searched for inside the row blocks here (that costs a test per row); when the
    structure breaks, the previous image's block is checked first so that the error names the real cause.
    """
    images = []
    try:
        _scan_loop(path, lines, images)
    except ValueError:
        for image in images[-2:]:
            _check_block_for_paths(path, lines, image)
        raise
    return images


def _scan_loop(path, lines, images):
    n = len(lines)
    i = 0
    while i < n:
        name_line = lines[i].strip()
        if not name_line:
            i += 1
            continue
        if not _looks_like_name(name_line):
            raise _err(path, i + 1, f"expected an image path, found {name_line!r} "
                                    "(the face count of the previous image may be too small)")
        if i + 1 >= n:
            raise _err(path, i + 1, f"truncated file: image {name_line!r} has no face-count line")
        count_text = lines[i + 1].strip()
        if not _is_int(count_text):
            raise _err(path, i + 2, f"expected the face count of {name_line!r}, found {count_text!r}")
        count = int(count_text)
        if count < 0:
            raise _err(path, i + 2, f"negative face count {count}")
        first = i + 2
        nrows, dummy = count, False
        if count == 0 and first < n and lines[first].strip() and not _looks_like_name(lines[first]):
            nrows, dummy = 1, True         # newer releases: "0" then one all-zero row
        end = first + nrows
        if end > n:
            raise _err(path, n, f"truncated file: image {name_line!r} (line {i + 1}) declares {count} faces "
                                f"but the file ends after {n - first}")
        images.append((i, first, nrows, dummy))
        i = end


def _detect_columns(path, lines, images) -> int:
    """10 (official) or 7 columns, from the first face row of the file."""
    for _, first, nrows, _ in images:
        if nrows:
            ncols = len(lines[first].split())
            if ncols not in TXT_FORMATS:
                raise _err(path, first + 1, f"face rows must have 10 or 7 columns, found {ncols}")
            return ncols
    return 10


def _parse_all_rows(path, lines, images, ncols):
    """Pass 2: every face row of the file in one vectorised parse -> (rows (N, ncols), 0-based line of each).

    :func:`rfcn_face.datasets.numtext.parse_number_lines` when the rows are plainly regular (it then equals the
    row-by-row ``str.split`` + ``float`` parse); otherwise image by image, which names the first bad line: an
    image path inside a block of rows (the count is too large), a wrong number of columns, or a non-numeric field.
    """
    from .numtext import parse_number_lines
    row_idx = [k for _, first, nrows, _ in images for k in range(first, first + nrows)]
    if not row_idx:
        return np.zeros((0, ncols)), row_idx
    rows = parse_number_lines("\n".join([lines[k] for k in row_idx]), len(row_idx))
    if rows is not None and rows.shape == (len(row_idx), ncols):
        return rows, row_idx
    parts = []
    for image in images:
        name_idx, first, nrows, _ = image
        _check_block_for_paths(path, lines, image)
        parts.append(_parse_rows_slow(path, lines[first:first + nrows], first, ncols))
    return np.concatenate(parts), row_idx


# ----------------------------------------------------------------------------------------------- .mat files
def _cell_str(c) -> str:
    a = np.asarray(c).ravel()
    while a.size and a.dtype == object:
        a = np.asarray(a[0]).ravel()
    return str(a[0]) if a.size else ""


def _cells(m, key, path):
    if key not in m:
        raise ValueError(f"{path}: missing variable '{key}'")
    return np.asarray(m[key]).ravel()


def _mat_events(m, path):
    """[(event, [file stems], event index)] in the file's order."""
    events = [_cell_str(e) for e in _cells(m, "event_list", path)]
    files = _cells(m, "file_list", path)
    if len(files) != len(events):
        raise ValueError(f"{path}: event_list has {len(events)} entries but file_list {len(files)}")
    return [(ev, [_cell_str(c) for c in np.asarray(files[k]).ravel()]) for k, ev in enumerate(events)]


def _mat_boxes(m, path, e, j, event, stem, neg):
    cell = np.asarray(np.asarray(_cells(m, "face_bbx_list", path)[e]).ravel()[j])
    if cell.ndim == 2 and cell.size and cell.shape[1] != 4:     # reshape would silently mix the coordinates
        hint = " (transposed? the official cells are n x 4: one x y w h row per face)" if cell.shape[0] == 4 else ""
        raise ValueError(f"{path}: face_bbx_list {event}/{stem}: a {cell.shape[0]} x {cell.shape[1]} matrix{hint}")
    try:
        xywh = cell.astype(np.float64).reshape(-1, 4) if cell.size else np.zeros((0, 4))
    except (TypeError, ValueError):
        raise ValueError(f"{path}: face_bbx_list {event}/{stem}: expected an n x 4 numeric matrix, got "
                         f"{cell.dtype} {cell.shape}") from None
    bad = np.flatnonzero(~np.isfinite(xywh).all(axis=1))
    if bad.size:
        raise ValueError(f"{path}: face_bbx_list {event}/{stem} row {int(bad[0]) + 1}: NaN or infinite value "
                         f"({xywh[bad[0]].tolist()})")
    neg.check(xywh, lambda k: f"{path}: face_bbx_list {event}/{stem} row {k + 1}")
    return xywh


def _mat_labels(m, path, e, j, n):
    attrs = {}
    for a in WIDER_ATTRIBUTES:
        key = f"{a}_label_list"
        if key not in m:
            continue
        v = np.asarray(np.asarray(m[key]).ravel()[e]).ravel()[j]
        v = np.asarray(v).astype(np.int64).ravel()
        if v.size != n:
            raise ValueError(f"{path}: {key} has {v.size} labels for an image with {n} boxes")
        attrs[a] = v
    return attrs


def _mat_record(xywh, attrs, image_root, event, stem):
    boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    ignore = (xywh[:, 2] <= 0) | (xywh[:, 3] <= 0)  # zero or (allowed) negative size: degenerate
    if "invalid" in attrs:
        ignore = ignore | (attrs["invalid"] != 0)
    return FaceRecord(image_path=_image_path(image_root, f"{event}/{stem}.jpg"), boxes=boxes, ignore=ignore,
                      attributes=attrs, event=event, name=stem)


def read_wider_split_mat(path, image_root=None, negative_size="warn") -> list:
    """Read ``wider_face_{train,val,test}.mat`` (the test file lists images only: records have no boxes).

    Same row policies as :func:`read_wider_txt` (``negative_size``).

    Order: ``event_list`` order, then ``file_list`` order within an event. ``image_path`` is
    ``<image_root>/<event>/<stem>.jpg``.
    """
    neg = _NegativeLog(negative_size, path)
    m = load_mat(path, "WIDER .mat")
    has_boxes = "face_bbx_list" in m
    records = []
    for e, (event, stems) in enumerate(_mat_events(m, path)):
        for j, stem in enumerate(stems):
            if has_boxes:
                xywh = _mat_boxes(m, path, e, j, event, stem, neg)
                attrs = _mat_labels(m, path, e, j, len(xywh))
            else:
                xywh, attrs = np.zeros((0, 4)), {}
            records.append(_mat_record(xywh, attrs, image_root, event, stem))
    neg.finish()
    return records


def read_wider_eval_gt(gt_dir, image_root=None, negative_size="ignore") -> list:
    """Read the official val evaluation ground truth of ``gt_dir`` (the eval_tools ``ground_truth`` folder).

    Reads ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``. Records come in the official order
    (``event_list``, then ``file_list`` within an event). Every row of ``face_bbx_list`` is kept as it is and
    in order (the 4 dummy ``0 0 0 0`` rows too: they are zero-size, so ``ignore=True`` and IoU 0 with any
    detection; an evaluator that indexes rows the official way needs them). ``attributes`` has the six label
    lists plus ``keep_easy`` / ``keep_medium`` / ``keep_hard``: bool per box, True where the box's 1-based
    index is in that setting's ``gt_list`` (the other boxes are ignored in that setting, not false positives).
    ``ignore`` is the ``invalid`` label or a zero-size box; the official evaluator uses the keep lists.
    The one negative-width row of the official file (``1026 474 -2 23``) is kept as it is, silently
    (``negative_size="ignore"`` by default here), because the evaluator needs the raw rows.
    """
    gt_dir = Path(gt_dir)
    base_path = gt_dir / "wider_face_val.mat"
    neg = _NegativeLog(negative_size, base_path)
    base = load_mat(base_path, "WIDER .mat")
    events = _mat_events(base, base_path)
    keep_lists = {}
    for s in EVAL_SETTINGS:
        p = gt_dir / f"wider_{s}_val.mat"
        m = load_mat(p, "WIDER .mat")
        if [ev for ev, _ in _mat_events(m, p)] != [ev for ev, _ in events]:
            raise ValueError(f"{p}: event_list differs from {base_path}")
        keep_lists[s] = (p, _cells(m, "gt_list", p))
    records, off_nest = [], []

    def nested(a):     # the official files: a face kept by easy is kept by medium, one kept by medium by hard
        return not ((a["keep_easy"] & ~a["keep_medium"]).any() or (a["keep_medium"] & ~a["keep_hard"]).any())
    for e, (event, stems) in enumerate(events):
        for j, stem in enumerate(stems):
            xywh = _mat_boxes(base, base_path, e, j, event, stem, neg)
            attrs = _mat_labels(base, base_path, e, j, len(xywh))
            for s, (p, gl) in keep_lists.items():
                idx = np.asarray(np.asarray(gl[e]).ravel()[j]).astype(np.int64).ravel()
                if idx.size and (idx.min() < 1 or idx.max() > len(xywh)):
                    raise ValueError(f"{p}: gt_list of {event}/{stem} has index {int(idx.max())} outside "
                                     f"1..{len(xywh)}")
                keep = np.zeros(len(xywh), dtype=bool)
                keep[idx - 1] = True
                attrs[f"keep_{s}"] = keep
            if not nested(attrs):
                off_nest.append(f"{event}/{stem}")
            records.append(_mat_record(xywh, attrs, image_root, event, stem))
    neg.finish()
    if off_nest:
        warnings.warn(f"{gt_dir}: the settings' gt_list do not nest (easy within medium within hard) in "
                      f"{len(off_nest)} image(s), first {off_nest[0]}; each setting is scored on its own list, as "
                      "the official evaluator does", UserWarning, stacklevel=2)
    return records


# ----------------------------------------------------------------------------------------------- writers
def _group_by_event(records):
    events, groups = [], {}
    for r in records:
        if r.event not in groups:
            events.append(r.event)
            groups[r.event] = []
        groups[r.event].append(r)
    return events, groups


def _xywh_int(r) -> np.ndarray:
    b = np.asarray(r.boxes, dtype=np.float64).reshape(-1, 4)
    xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
    if not np.allclose(xywh, np.round(xywh)):
        raise ValueError(f"{r.event}/{r.name}: WIDER files hold integer x y w h, got {xywh.tolist()}")
    return np.round(xywh).astype(np.int64)


def _labels(r, name, n):
    v = r.attributes.get(name)
    if v is None:
        return np.asarray(r.ignore, dtype=np.int64) if name == "invalid" else np.zeros(n, dtype=np.int64)
    return np.asarray(v, dtype=np.int64).ravel()


def write_wider_txt(path, records) -> Path:
    """Write records as an official 10-column ``*_bbx_gt.txt`` (integer boxes; missing labels written 0,
    ``invalid`` from ``ignore`` when absent; an image without boxes as count ``0`` + one all-zero row, the
    later releases' form, which :func:`read_wider_txt` reads back as zero boxes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = []
    for r in records:
        xywh = _xywh_int(r)
        labels = np.stack([_labels(r, a, len(xywh)) for a in WIDER_ATTRIBUTES], axis=1).reshape(-1, 6)
        out.append(f"{r.event}/{r.name}.jpg")
        if len(xywh) == 0:
            out += ["0", "0 0 0 0 0 0 0 0 0 0 "]
            continue
        out.append(str(len(xywh)))
        out += [" ".join(str(int(v)) for v in row) + " " for row in np.concatenate([xywh, labels], axis=1)]
    from ..checkpoint import atomic_write_text
    return atomic_write_text(path, "\n".join(out) + "\n")


def _mat_cells(values):
    """A (n, 1) MATLAB cell (numpy object array) of the given values."""
    c = np.empty((len(values), 1), dtype=object)
    for k, v in enumerate(values):
        c[k, 0] = v
    return c


def gt_index_list(keep) -> np.ndarray:
    """A ``gt_list`` cell: the 1-based indices of the kept faces as an (n, 1) column, stored as the official files
    store them: uint8, uint16 when an index exceeds 255 (as read by ``scipy.io.loadmat``)."""
    idx = np.flatnonzero(np.asarray(keep, dtype=bool)) + 1
    dtype = np.uint8 if idx.size == 0 or idx.max() <= 255 else np.uint16 if idx.max() <= 65535 else np.uint32
    return idx.reshape(-1, 1).astype(dtype)


def wider_mat_dict(records, keep=None) -> dict:
    """The variables of ``wider_face_val.mat`` (and of a setting file when ``keep`` = per-record bool keep
    arrays is given: adds ``gt_list``, 1-based indices) in the official cell layout and dtypes: ``face_bbx_list``
    cells (n, 4) int32 ``x y w h``, the ``*_label_list`` cells (n, 1) uint8, ``gt_list`` cells
    :func:`gt_index_list` (a float index list breaks evaluators that index with it)."""
    events, groups = _group_by_event(records)
    d = {"event_list": _mat_cells([np.array([e]) for e in events]),
         "file_list": _mat_cells([_mat_cells([np.array([r.name]) for r in groups[e]]) for e in events]),
         "face_bbx_list": _mat_cells([_mat_cells([_xywh_int(r).astype(np.int32) for r in groups[e]])
                                      for e in events])}
    for a in WIDER_ATTRIBUTES:
        d[f"{a}_label_list"] = _mat_cells([_mat_cells([_labels(r, a, len(r.boxes)).reshape(-1, 1).astype(np.uint8)
                                                       for r in groups[e]]) for e in events])
    if keep is not None:
        index = {id(r): k for k, r in enumerate(records)}
        d["gt_list"] = _mat_cells([_mat_cells([gt_index_list(keep[index[id(r)]]) for r in groups[e]])
                                   for e in events])
    return d


def write_wider_eval_gt(gt_dir, records, keep_easy, keep_medium, keep_hard) -> Path:
    """Write ``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat`` (official layout) to ``gt_dir``.

    ``keep_*``: one bool array per record (True = the face counts in that setting). Records must be grouped
    by event (records of one event contiguous) so that the official order is the given order.
    """
    import scipy.io
    gt_dir = Path(gt_dir)
    gt_dir.mkdir(parents=True, exist_ok=True)
    events, _ = _group_by_event(records)
    order = [r.event for r in records]
    if order != sorted(order, key=events.index):
        raise ValueError("write_wider_eval_gt: records of one event must be contiguous")
    scipy.io.savemat(str(gt_dir / "wider_face_val.mat"), wider_mat_dict(records))
    for s, keep in zip(EVAL_SETTINGS, (keep_easy, keep_medium, keep_hard)):
        scipy.io.savemat(str(gt_dir / f"wider_{s}_val.mat"), wider_mat_dict(records, keep))
    return gt_dir


def write_wider_split_mat(path, records) -> Path:
    """Write a ``wider_face_{train,val}.mat`` split file (official layout, no ``gt_list``)."""
    import scipy.io
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), wider_mat_dict(records))
    return path
