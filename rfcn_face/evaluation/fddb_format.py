"""FDDB detection files in the official output format: per image its name, the detection count, then one line
per detection (``x y w h score`` rectangles or ``major minor angle cx cy score`` ellipses)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np

from ..datasets.fddb import iter_fddb_blocks

__all__ = ["FddbImageDets", "read_fddb_detections", "write_fddb_detections"]


@dataclass
class FddbImageDets:
    """Detections of one image: ``kind`` 'rect' (k, 5) ``x y w h score`` or 'ellipse' (k, 6)
    ``major minor angle cx cy score`` exactly as in the file."""

    name: str
    kind: str
    dets: np.ndarray

    @property
    def scores(self) -> np.ndarray:
        return self.dets[:, -1]


def read_fddb_detections(path, det_format: str = "auto") -> List[FddbImageDets]:
    """Official FDDB output file: per image its name, the detection count, then one line per detection.

    ``det_format`` 'rect' (``x y w h score``), 'ellipse' (``major minor angle cx cy score``) or 'auto'
    (decided from the first detection line: 5 numbers = rect, 6 = ellipse). Like the official reader, only the
    first 5 / 6 numbers of a line are used. CRLF and trailing spaces are tolerated.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FDDB detections file not found: {path}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    out = []
    kind = None if det_format == "auto" else {"rect": "rect", "ellipse": "ellipse"}[det_format]
    for name, _, first, row_lines in iter_fddb_blocks(path, lines, "detections"):
        rows = []
        for j, text in enumerate(row_lines):
            tok = text.replace(",", " ").split()
            if kind is None:
                if len(tok) not in (5, 6):
                    raise ValueError(f"{path}:{first + j}: cannot tell rectangle (5 numbers) from ellipse "
                                     f"(6 numbers): {text!r}; use --det-format")
                kind = "rect" if len(tok) == 5 else "ellipse"
            m = 5 if kind == "rect" else 6
            try:
                rows.append([float(t) for t in tok[:m]])
            except ValueError:
                raise ValueError(f"{path}:{first + j}: non-numeric detection {text!r}") from None
            if len(rows[-1]) != m:
                raise ValueError(f"{path}:{first + j}: expected {m} numbers, found {text!r}")
        m = 5 if (kind or "rect") == "rect" else 6
        out.append(FddbImageDets(name, kind or "rect", np.asarray(rows, dtype=np.float64).reshape(-1, m)))
    kind = kind or "rect"
    for d in out:
        d.kind = kind
    return out


def _fmt(v: float) -> str:
    v = float(v)
    return str(int(v)) if v.is_integer() else repr(v)


def write_fddb_detections(path, dets: Sequence[FddbImageDets]) -> Path:
    """Write detections in the official format (full precision numbers)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for d in dets:
            f.write(f"{d.name}\n{len(d.dets)}\n")
            for row in d.dets:
                f.write(" ".join(_fmt(v) for v in row) + "\n")
    return path

