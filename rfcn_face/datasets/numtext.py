"""Lines of numbers parsed at numpy speed, for readers whose line-by-line parse is the definition.

A reader calls :func:`parse_number_lines` on the lines it already identified (text of ``\\n``-separated lines);
the result is used only when the text is plainly regular, so that it cannot differ from what the reader's own
line-by-line parse (``str.split`` + ``float``) gives; otherwise None, and the reader parses line by line as
always (that is also where its errors, with file and line, come from).
"""
from __future__ import annotations

import io
from typing import Optional, Union

import numpy as np

__all__ = ["parse_number_lines"]

# ASCII characters that str.split() / str.splitlines() treat as blanks or line breaks but numpy does not
_ODD = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")


def parse_number_lines(text: Union[bytes, str], lines: int, commas: bool = False) -> Optional[np.ndarray]:
    """``(lines, n)`` float64 from ``text`` when each of its ``lines`` lines holds the same number ``n`` of numbers
    separated by blanks or tabs (also commas with ``commas``); None when the text is not that regular: not ASCII,
    another blank or line-break character, a lone CR, a blank line, a token that is not a number to numpy (for
    which ``float`` would decide), or lines of different lengths."""
    b = text.encode("ascii", "replace") if isinstance(text, str) else text
    if lines == 0 or not b.isascii() or any(c in b for c in _ODD):
        return None
    if b"\r" in b and b.count(b"\r") != b.count(b"\r\n"):     # a lone CR: a line break to str.splitlines()
        return None
    if commas and b"," in b:
        b = b.replace(b",", b" ")
    try:
        rows = np.loadtxt(io.BytesIO(b), dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        return None
    return rows if rows.shape[0] == lines else None
