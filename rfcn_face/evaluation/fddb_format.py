"""FDDB detection files in the official output format: per image its name, the detection count, then one line
per detection (``x y w h score`` rectangles or ``major minor angle cx cy score`` ellipses)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from ..datasets.fddb import iter_fddb_blocks

__all__ = ["FddbImageDets", "read_fddb_detections", "write_fddb_detections", "select_images"]


@dataclass
class FddbImageDets:
    """Detections of one image: ``kind`` 'rect' (k, 5) ``x y w h score`` or 'ellipse' (k, 6)
    ``major minor angle cx cy score`` exactly as in the file. ``dropped``: lines left out by
    ``read_fddb_detections(..., drop_nonfinite=True)``."""

    name: str
    kind: str
    dets: np.ndarray
    dropped: int = 0

    @property
    def scores(self) -> np.ndarray:
        return self.dets[:, -1]


def read_fddb_detections(path, det_format: str = "auto", drop_nonfinite: bool = False) -> List[FddbImageDets]:
    """Official FDDB output file: per image its name, the detection count, then one line per detection.

    ``det_format`` 'rect' (``x y w h score``), 'ellipse' (``major minor angle cx cy score``) or 'auto'
    (decided from the first detection line: 5 numbers = rect, 6 = ellipse). Like the official reader, only the
    first 5 / 6 numbers of a line are used (every line must have as many numbers as the first); a count may be written as a float with an integer value (``1.0``),
    and control characters after the last image (a DOS Ctrl-Z) are ignored. CRLF and trailing spaces are
    tolerated. A NaN or infinite number is an error naming the line, unless ``drop_nonfinite`` (the line is then
    left out and counted in ``FddbImageDets.dropped``); an ellipse with a negative radius and an empty file are
    errors too.
    """
    from ..datasets.fddb import strip_trailing_control
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FDDB detections file not found: {path}")
    lines = strip_trailing_control(path.read_text(encoding="utf-8-sig", errors="replace")).splitlines()
    if not any(line.strip() for line in lines):
        raise ValueError(f"{path}: no detections: the file is empty (it needs, per image, its name, the detection "
                         "count and one line per detection)")
    blocks = list(iter_fddb_blocks(path, lines, "detections"))
    fast = _read_regular(blocks, det_format)
    if fast is not None:
        return fast
    out = []
    kind = None if det_format == "auto" else {"rect": "rect", "ellipse": "ellipse"}[det_format]
    width = None               # (number of fields, line) of the first detection line: every line has as many
    for name, _, first, row_lines in blocks:
        rows, dropped = [], 0
        for j, text in enumerate(row_lines):
            tok = text.replace(",", " ").split()
            if width is None:
                width = (len(tok), first + j)
            elif len(tok) != width[0]:
                try:
                    [float(t) for t in tok]
                except ValueError:
                    raise ValueError(f"{path}:{first + j}: non-numeric detection {text!r} (is the detection count "
                                     f"of {name!r} too large?)") from None
                raise ValueError(f"{path}:{first + j}: {len(tok)} numbers where the first detection line (line "
                                 f"{width[1]}) has {width[0]}: rectangles and ellipses mixed in one file?")
            if kind is None:
                if len(tok) not in (5, 6):
                    raise ValueError(f"{path}:{first + j}: cannot tell rectangle (5 numbers) from ellipse "
                                     f"(6 numbers): {text!r}; use --det-format")
                kind = "rect" if len(tok) == 5 else "ellipse"
            m = 5 if kind == "rect" else 6
            try:
                row = [float(t) for t in tok[:m]]
            except ValueError:
                raise ValueError(f"{path}:{first + j}: non-numeric detection {text!r}") from None
            if len(row) != m:
                raise ValueError(f"{path}:{first + j}: expected {m} numbers "
                                 f"({'x y w h score' if m == 5 else 'major minor angle cx cy score'}), found {text!r}")
            if not np.all(np.isfinite(row)):
                if not drop_nonfinite:
                    raise ValueError(f"{path}:{first + j}: NaN or infinite value in detection {text.strip()!r}; fix "
                                     "the file, or pass --drop-nonfinite to leave such lines out (their count is "
                                     "printed)")
                dropped += 1
                continue
            if (kind or "rect") == "ellipse" and (row[0] <= 0 or row[1] <= 0):
                raise ValueError(f"{path}:{first + j}: zero or negative ellipse radius in {text.strip()!r}")
            if (kind or "rect") == "rect" and (row[2] < 0 or row[3] < 0):
                raise ValueError(f"{path}:{first + j}: negative width or height in {text.strip()!r} (x y w h score)")
            rows.append(row)
        m = 5 if (kind or "rect") == "rect" else 6
        out.append(FddbImageDets(name, kind or "rect", np.asarray(rows, dtype=np.float64).reshape(-1, m), dropped))
    kind = kind or "rect"
    for d in out:
        d.kind = kind
    return out


def _read_regular(blocks, det_format: str) -> Optional[List[FddbImageDets]]:
    """All detection lines in one numpy parse when the file is regular (same count of numbers on every line,
    a known width, every number finite, no zero or negative ellipse radius, no negative width); None otherwise, and the line-by-line reader
    above, which names the line of any problem, decides."""
    from ..datasets.numtext import parse_number_lines
    counts = [len(rows) for _, _, _, rows in blocks]
    n = sum(counts)
    if n == 0:
        return None
    rows = parse_number_lines("\n".join(line for _, _, _, r in blocks for line in r), n, commas=True)
    if rows is None:
        return None
    kind = {5: "rect", 6: "ellipse"}.get(rows.shape[1]) if det_format == "auto" else det_format
    m = {"rect": 5, "ellipse": 6}.get(kind)
    if m is None or rows.shape[1] < m:
        return None
    rows = rows[:, :m]
    if not np.isfinite(rows).all() or (kind == "ellipse" and (rows[:, :2] <= 0).any()) or \
            (kind == "rect" and (rows[:, 2:4] < 0).any()):
        return None
    ends = np.cumsum(counts)
    return [FddbImageDets(name, kind, rows[e - c:e]) for (name, _, _, _), c, e in zip(blocks, counts, ends)]


def select_images(dets: Sequence[FddbImageDets], names: Sequence[str]) -> List[FddbImageDets]:
    """The detections of the images ``names`` (in the file's order): ``--fold 3 5`` on a detections file that
    covers all ten folds. Images of ``names`` absent from ``dets`` are left for the evaluator to report."""
    wanted = set(names)
    return [d for d in dets if d.name in wanted]


def _fmt(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def write_fddb_detections(path, dets: Sequence[FddbImageDets]) -> Path:
    """Write detections in the official format (full precision numbers)."""
    from ..checkpoint import atomic_write_text
    lines = []
    for d in dets:
        lines.append(f"{d.name}\n{len(d.dets)}\n")
        lines += [" ".join(_fmt(v) for v in row) + "\n" for row in d.dets]
    return atomic_write_text(path, "".join(lines))

