"""Lines of numbers parsed at numpy speed, for readers whose line-by-line parse is the definition.

A reader calls :func:`parse_number_lines` on the lines it already identified (text of ``\\n``-separated lines);
the result is used only when the text is plainly regular, so that it cannot differ from what the reader's own
line-by-line parse (``str.split`` + ``float``) gives; otherwise None, and the reader parses line by line as
always (that is also where its errors, with file and line, come from).

Two parses, the same values: short plain decimals (``[+-]digits[.digits]``, at most 8 characters — what detectors
and annotation files write) by :func:`_short_decimals`, eight bytes per number at once; anything else (exponents,
longer numbers, odd tokens) by ``np.loadtxt``. The short path is exact: its integer mantissa (< 10^8) and
``10^k`` are exact doubles, so ``mantissa / 10^k`` is the correctly rounded value, which is what ``float`` and
``np.loadtxt`` give (Clinger's fast path).
"""
from __future__ import annotations

import io
from typing import Optional, Union

import numpy as np

__all__ = ["parse_number_lines"]

# ASCII characters that str.split() / str.splitlines() treat as blanks or line breaks but numpy does not
_ODD = (b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")
_SHORT_ALPHABET = b"0123456789.+- \t\r\n"
_POW10 = 10.0 ** np.arange(8)
_CHUNK = 1 << 15            # numbers per chunk of the short parse
_PIECE = 1 << 20            # bytes of text per piece
_LONG_SHARE = 50            # more than 1 in 50 numbers longer than 8 characters: np.loadtxt for the whole text


def _bytes8(byte: int) -> np.uint64:
    return np.uint64(int.from_bytes(bytes([byte]) * 8, "little"))


_X30, _X7F, _X80, _X76 = _bytes8(0x30), _bytes8(0x7F), _bytes8(0x80), _bytes8(0x76)
_DOT, _MINUS, _PLUS = _bytes8(ord(".") ^ 0x30), _bytes8(ord("-") ^ 0x30), _bytes8(ord("+") ^ 0x30)
_U8, _ALL = np.uint64(8), np.uint64(2 ** 64 - 1)


def _zero_bytes(y: np.ndarray) -> np.ndarray:
    """The high bit of every zero byte of ``y`` (bytes below 0x80: no carry between bytes, exact)."""
    return ~((y + _X7F) | y) & _X80


def _short_chunk(words: np.ndarray, ends: np.ndarray, lens: np.ndarray, out: np.ndarray) -> bool:
    """The values of the numbers ending at ``ends`` (of ``lens`` characters) into ``out``; False when one is not in
    the short grammar (a sign inside, two dots, no digit). ``words[i]``: the 8 bytes before ``i`` as one
    little-endian word, so byte j is column j and a number fills the high ``8 - len .. 7`` columns."""
    x = words[ends] ^ _X30                                          # digits 0..9; the alphabet stays below 0x80
    shift = _U8 * (_U8 - np.minimum(lens, 8).astype(np.uint64))
    inside = _ALL << shift
    first = np.uint64(0x80) << shift                                # the high bit of the number's first byte
    nondigit = (x + _X76) & _X80 & inside                           # bytes >= 10
    dot = _zero_bytes(x ^ _DOT) & inside
    minus = _zero_bytes(x ^ _MINUS) & first
    sign = (_zero_bytes(x ^ _PLUS) & first) | minus
    has_dot = dot != 0
    ok = (nondigit == dot | sign) & (dot & (dot - np.uint64(1)) == 0) & (lens - has_dot - (sign != 0) >= 1)
    if not ok[lens <= 8].all():                                     # longer ones: float() decides later
        return False
    d = x & inside & ~((nondigit >> np.uint64(7)) * np.uint64(0xFF))   # digit values, every other byte 0
    p = (np.frexp(dot.astype(np.float64))[1] - 8) // 8             # the dot's column (bit 8p + 7); -1: none
    low = (np.uint64(1) << (_U8 * np.maximum(p, 0).astype(np.uint64))) - np.uint64(1)
    low[~has_dot] = 0
    d = ((d & low) << _U8) | (d & ~low)                             # the digits left of the dot move onto it
    d = (d * np.uint64(10) + (d >> _U8)) & np.uint64(0x00FF00FF00FF00FF)          # pairs, then 4, then 8 digits
    d = (d * np.uint64(100) + (d >> np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    d = (d * np.uint64(10000) + (d >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    np.divide(d.astype(np.float64), _POW10[np.where(has_dot, 7 - p, 0)], out=out)   # exact / exact: rounded once
    np.negative(out, out=out, where=minus != 0)
    return True


def _short_decimals(b: bytes, lines: int) -> Optional[np.ndarray]:
    """:func:`_short_text` over pieces of about :data:`_PIECE` bytes cut at line ends (small temporaries)."""
    if len(b) <= _PIECE:
        return _short_text(b, lines)
    parts, start, done = [], 0, 0
    while start < len(b):
        end = b.find(b"\n", min(start + _PIECE, len(b) - 1)) + 1 or len(b)
        piece = b[start:end]
        k = piece.count(b"\n")
        rows = _short_text(piece, k) if k else None
        if rows is None or (parts and rows.shape[1] != parts[0].shape[1]):
            return None
        parts.append(rows)
        start, done = end, done + k
    return np.concatenate(parts) if done == lines else None


def _short_text(b: bytes, lines: int) -> Optional[np.ndarray]:
    """``(lines, n)`` float64 when ``b`` is ``lines`` lines of ``n`` numbers each, every number ``[+-]digits``,
    ``[+-]digits.[digits]`` or ``[+-].digits``, separated by blanks / tabs, every line ending in ``\\n`` (or
    ``\\r\\n``); numbers longer than 8 characters are read by ``float`` (when rare). None otherwise (the caller
    decides)."""
    if not b.endswith(b"\n") or b.translate(None, _SHORT_ALPHABET) or b.count(b"\n") != lines:
        return None
    a = np.frombuffer(b, np.uint8)
    edges = np.flatnonzero(np.diff((a > 32).view(np.int8), prepend=np.int8(0)))   # token starts and ends, alternating
    starts, ends = edges[0::2], edges[1::2]
    n = len(starts) // lines
    if n == 0 or n * lines != len(starts):
        return None
    if not (np.diff(np.searchsorted(starts, np.flatnonzero(a == 10)), prepend=0) == n).all():
        return None                                                 # a line with another count of numbers
    lens = ends - starts
    long_ = np.flatnonzero(lens > 8)
    if len(long_) * _LONG_SHARE > len(starts):
        return None
    padded = np.concatenate((np.zeros(8, np.uint8), a))
    words = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
    v = np.empty(len(starts))
    for c in range(0, len(starts), _CHUNK):                         # small temporaries, in cache
        if not _short_chunk(words, ends[c:c + _CHUNK], lens[c:c + _CHUNK], v[c:c + _CHUNK]):
            return None
    try:
        for i in long_:
            v[i] = float(b[starts[i]:ends[i]])
    except ValueError:                                              # e.g. two signs: not a number
        return None
    return v.reshape(lines, n)


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
    rows = _short_decimals(b if b.endswith(b"\n") else b + b"\n", lines)
    if rows is not None:
        return rows
    try:
        rows = np.loadtxt(io.BytesIO(b), dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        return None
    return rows if rows.shape[0] == lines else None
