"""FDDB reader: the 10 folds' image lists and ellipse lists, plus the image-size table.

Files (the official ``FDDB-folds`` folder)::

    FDDB-fold-XX.txt              one image name per line, e.g. 2002/08/11/big/img_591
    FDDB-fold-XX-ellipseList.txt  per image: name, face count, then per face
                                  ``major_radius minor_radius angle center_x center_y 1``

Ellipses are stored exactly as in the file (``angle`` in radians, the angle of the major axis with the image
x axis). ``boxes`` are the ellipse's exact axis-aligned bounding box in the file's coordinates::

    hx = sqrt((a cos t)^2 + (b sin t)^2),  hy = sqrt((a sin t)^2 + (b cos t)^2)
    box = (cx - hx, cy - hy, cx + hx, cy + hy)

(no clipping to the image: 527 ellipses cross a border and the official evaluator clips them itself).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .record import FaceRecord

__all__ = ["read_fddb", "read_fddb_sizes", "ellipse_bounding_boxes", "image_sizes_from_folder", "load_fddb_gt",
           "FDDB_FOLDS"]

FDDB_FOLDS = tuple(range(1, 11))


def _err(path, line, msg) -> ValueError:
    return ValueError(f"{path}:{line}: {msg}")


def ellipse_bounding_boxes(ellipses) -> np.ndarray:
    """(N, 5) ``(major_radius, minor_radius, angle, cx, cy)`` -> (N, 4) exact axis-aligned bounding boxes."""
    e = np.asarray(ellipses, dtype=np.float64).reshape(-1, 5)
    a, b, t, cx, cy = e.T
    hx = np.sqrt((a * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2)
    hy = np.sqrt((a * np.sin(t)) ** 2 + (b * np.cos(t)) ** 2)
    return np.stack([cx - hx, cy - hy, cx + hx, cy + hy], axis=1)


def read_fddb_sizes(path) -> dict:
    """``name width height`` per line -> ``{name: (width, height)}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FDDB image-size file not found: {path}")
    sizes = {}
    with open(path, "r", encoding="utf-8-sig", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            tok = line.split()
            if not tok:
                continue
            if len(tok) != 3:
                raise _err(path, lineno, f"expected 'name width height', found {line.strip()!r}")
            try:
                w, h = int(tok[1]), int(tok[2])
            except ValueError:
                raise _err(path, lineno, f"non-numeric width/height: {line.strip()!r}") from None
            if w <= 0 or h <= 0:
                raise _err(path, lineno, f"image size must be positive, got {w} x {h}")
            if tok[0] in sizes and sizes[tok[0]][:2] != (w, h):
                raise _err(path, lineno, f"{tok[0]} listed again with another size ({w} x {h}; line "
                                         f"{sizes[tok[0]][2]}: {sizes[tok[0]][0]} x {sizes[tok[0]][1]})")
            sizes.setdefault(tok[0], (w, h, lineno))
    return {k: v[:2] for k, v in sizes.items()}


def _read_fold_list(path):
    with open(path, "r", encoding="utf-8-sig", errors="replace") as f:
        return [ln.strip() for ln in f if ln.strip()]


def _parse_ellipse_row(path, lineno, text):
    tok = text.split()
    if len(tok) not in (5, 6):
        raise _err(path, lineno, f"expected 'major minor angle cx cy 1', found {text.strip()!r}")
    try:
        v = [float(t) for t in tok[:5]]
    except ValueError:
        raise _err(path, lineno, f"non-numeric field in ellipse row: {text.strip()!r}") from None
    if not all(np.isfinite(v)):
        raise _err(path, lineno, f"NaN or infinite value in ellipse row: {text.strip()!r}")
    if v[0] <= 0 or v[1] <= 0:           # a zero radius is a face of no area: every IoU with it is 0 / NaN
        raise _err(path, lineno, f"zero or negative ellipse radius: {text.strip()!r}")
    return v


def _parse_count(text: str):
    """A count as the official ``evaluate`` reads it: ``3``, or a float with an integer value such as ``3.0``
    (some published detection files write one); None for anything else (negative, fractional, not a number, a
    superscript digit such as ``²`` that ``str.isdigit`` accepts but no number parser reads)."""
    try:
        v = float(text)
    except ValueError:
        return None
    if not np.isfinite(v) or v < 0 or v != int(v):
        return None
    return int(v)


def strip_trailing_control(text: str) -> str:
    """Text without the control characters (Ctrl-Z end-of-file marks of DOS editors, NULs) and blank space after
    its last line, which the official tools never read."""
    end = len(text)
    while end and (text[end - 1].isspace() or ord(text[end - 1]) < 32 or text[end - 1] == "\x7f"):
        end -= 1
    return text[:end]


def iter_fddb_blocks(path, lines, what: str = "faces"):
    """The FDDB list layout, shared by ellipse lists and detection files: an image-name line, a count line,
    then that many rows. Yields ``(name, name_lineno, first_row_lineno, row_lines)``; blank lines between
    blocks are skipped; a malformed block raises one ValueError naming the file and line."""
    i, n = 0, len(lines)
    while i < n:
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        if len(name.split()) != 1:
            raise _err(path, i + 1, f"expected an image name, found {name!r} "
                                    f"(the {what} count of the previous image may be too small)")
        if i + 1 >= n:
            raise _err(path, i + 1, f"truncated file: image {name!r} has no {what}-count line")
        count_text = lines[i + 1].strip()
        tok = count_text.split()
        count = _parse_count(tok[0]) if tok else None
        if count is None:
            raise _err(path, i + 2, f"expected the {what} count of {name!r} (a non-negative integer), found "
                                    f"{count_text!r}")
        if i + 2 + count > n:
            raise _err(path, n, f"truncated file: image {name!r} (line {i + 1}) declares {count} {what} but the "
                                f"file ends after {n - i - 2}")
        yield name, i + 1, i + 3, lines[i + 2:i + 2 + count]
        i += 2 + count


def _read_ellipse_list(path):
    """[(name, name line, ellipses (N, 5))] of one ``FDDB-fold-XX-ellipseList.txt``."""
    from .numtext import parse_number_lines
    with open(path, "r", encoding="utf-8-sig", errors="replace") as f:
        lines = strip_trailing_control(f.read()).splitlines()
    blocks = list(iter_fddb_blocks(path, lines))
    counts = [len(rows) for _, _, _, rows in blocks]
    # all rows in one numpy parse when they are regular; else row by row, which names the line of a problem
    fast = parse_number_lines("\n".join(t for _, _, _, rows in blocks for t in rows), sum(counts))
    if fast is not None and fast.shape[1] in (5, 6) and np.isfinite(fast[:, :5]).all() and (fast[:, :2] > 0).all():
        ends = np.cumsum(counts)
        return [(name, line, fast[e - c:e, :5]) for (name, line, _, _), c, e in zip(blocks, counts, ends)]
    return [(name, line, np.asarray([_parse_ellipse_row(path, first + k, text) for k, text in enumerate(rows)],
                                    dtype=np.float64).reshape(-1, 5))
            for name, line, first, rows in blocks]


def read_fddb(folds_dir, folds=None, image_root=None, sizes_file=None) -> list:
    """Read FDDB folds (1..10 in order by default) from ``folds_dir`` (the ``FDDB-folds`` folder).

    ``name`` is the FDDB image name (``2002/08/11/big/img_591``), ``image_path`` is
    ``<image_root>/<name>.jpg`` (relative when ``image_root`` is None), ``ellipses`` (N, 5) as in the file,
    ``boxes`` their exact bounding boxes, ``ignore`` all False. With ``sizes_file`` (``name width height``)
    ``width``/``height`` are filled and a missing name is an error. When ``FDDB-fold-XX.txt`` is present,
    its image list must equal the ellipse list's names in order.
    """
    folds_dir = Path(folds_dir)
    if not folds_dir.is_dir():
        raise FileNotFoundError(f"FDDB folds folder not found: {folds_dir}")
    folds = FDDB_FOLDS if folds is None else tuple(int(k) for k in folds)
    twice = sorted({k for k in folds if folds.count(k) > 1})
    if twice:
        raise ValueError(f"FDDB fold {twice[0]} is given twice (each fold is evaluated once)")
    sizes = read_fddb_sizes(sizes_file) if sizes_file is not None else None
    records = []
    for k in folds:
        if k not in FDDB_FOLDS:
            raise ValueError(f"FDDB fold must be in 1..10, got {k}")
        ell_path = folds_dir / f"FDDB-fold-{k:02d}-ellipseList.txt"
        if not ell_path.is_file():
            raise FileNotFoundError(f"FDDB ellipse list not found: {ell_path}")
        entries = _read_ellipse_list(ell_path)
        list_path = folds_dir / f"FDDB-fold-{k:02d}.txt"
        if list_path.is_file():
            names = _read_fold_list(list_path)
            got = [e[0] for e in entries]
            if names != got:
                j = next((j for j, (a, b) in enumerate(zip(names, got)) if a != b), min(len(names), len(got)))
                raise ValueError(f"{ell_path}: image {j + 1} of the ellipse list "
                                 f"({got[j] if j < len(got) else 'missing'!r}) differs from {list_path} line {j + 1} "
                                 f"({names[j] if j < len(names) else 'missing'!r})")
        ends = np.cumsum([len(ell) for _, _, ell in entries], dtype=np.int64)
        boxes = ellipse_bounding_boxes(np.concatenate([ell for _, _, ell in entries])) if entries else None
        for (name, lineno, ell), e in zip(entries, ends):
            w = h = 0
            if sizes is not None:
                if name not in sizes:
                    raise ValueError(f"{ell_path}:{lineno}: image {name!r} not in the size file {sizes_file}")
                w, h = sizes[name]
                cx, cy = ell[:, 3], ell[:, 4]
                if ((cx < 0) | (cx > w) | (cy < 0) | (cy > h)).any():
                    raise ValueError(f"{ell_path}:{lineno}: an ellipse of {name!r} is centred outside the image "
                                     f"size {w} x {h} given in {sizes_file}: the size file contradicts the "
                                     "annotations")
            path = os.path.join(str(image_root), name + ".jpg") if image_root is not None else name + ".jpg"
            records.append(FaceRecord(image_path=path, boxes=boxes[e - len(ell):e],
                                      ignore=np.zeros(len(ell), dtype=bool), ellipses=ell,
                                      event=f"fold-{k:02d}", name=name, height=h, width=w))
    return records


def image_sizes_from_folder(image_root, names) -> dict:
    """``{name: (width, height)}`` from the images' headers (``<root>/<name>.jpg``)."""
    from PIL import Image
    sizes = {}
    for n in names:
        p = Path(image_root) / (n + ".jpg")
        if not p.is_file():
            raise FileNotFoundError(f"FDDB image not found: {p}")
        with Image.open(p) as im:
            sizes[n] = im.size
    return sizes


def load_fddb_gt(folds_dir, folds=None, sizes=None, images=None):
    """FDDB records with image sizes, from a sizes file (``sizes``) or from the images' headers (``images``)."""
    recs = read_fddb(folds_dir, folds=folds, sizes_file=sizes)
    if images is not None:
        table = image_sizes_from_folder(images, [r.name for r in recs])
        for r in recs:
            r.width, r.height = table[r.name]
    return recs
