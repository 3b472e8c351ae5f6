"""rfcn_face.datasets.numtext: the short-decimal parse against float() token by token and np.loadtxt, bit for bit."""
import io

import numpy as np
import pytest

from rfcn_face.datasets import numtext
from rfcn_face.datasets.numtext import _short_decimals, parse_number_lines


def _by_float(text: bytes, lines: int):
    """The definition: str.split + float, line by line."""
    rows = [[float(t) for t in line.split()] for line in text.decode().splitlines()]
    assert len(rows) == lines
    return np.array(rows, dtype=np.float64)


def _same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


def _random_number(rng, long_share):
    n = int(rng.integers(1, 16 if rng.random() < long_share else 7))
    digits = "".join(rng.choice(list("0123456789"), n))
    kind = rng.random()
    if kind < 0.3:
        s = digits
    else:
        q = int(rng.integers(0, n + 1))
        s = digits[:q] + "." + digits[q:]
    if rng.random() < 0.3:
        s = str(rng.choice(["-", "+"])) + s
    return s


@pytest.mark.parametrize("seed", range(40))
def test_short_decimals_equal_float_bit_for_bit(seed, monkeypatch):
    if seed % 3 == 0:
        monkeypatch.setattr(numtext, "_PIECE", 50)          # many pieces, cut at line ends
    rng = np.random.default_rng(seed)
    lines, cols = int(rng.integers(1, 300)), int(rng.integers(1, 7))
    long_share = 0.0 if seed % 2 else 0.01
    sep = [" ", "  ", "\t", " \t "]
    body = []
    for _ in range(lines):
        toks = [_random_number(rng, long_share) for _ in range(cols)]
        lead = " " if rng.random() < 0.1 else ""
        end = "\r\n" if seed % 5 == 0 else ("  \n" if rng.random() < 0.1 else "\n")
        body.append(lead + str(rng.choice(sep)).join(toks) + end)
    text = "".join(body).encode()
    got = _short_decimals(text, lines)
    ref = _by_float(text, lines)
    n_long = sum(len(t) > 8 for t in text.split())
    if n_long * 50 > ref.size or (seed % 3 == 0 and n_long):  # many long numbers (in a piece): np.loadtxt's
        return
    assert got is not None                                   # every number in the fast path's grammar
    assert _same_bits(got, ref)
    assert _same_bits(got, np.loadtxt(io.BytesIO(text), ndmin=2))
    assert _same_bits(parse_number_lines(text, lines), ref)


def test_short_decimals_literal_values():
    text = b"0 -0 +0 .5 -.5 5. -5. 007\n12345678 1234567. .1234567 -1234567 +9.99999 0.1 0.3 1\n"
    rows = text.split(b"\n")
    a = _short_decimals(rows[0] + b"\n", 1)
    assert a.tolist() == [[0.0, -0.0, 0.0, 0.5, -0.5, 5.0, -5.0, 7.0]]
    assert list(np.signbit(a[0])) == [False, True, False, False, True, False, True, False]
    b = _short_decimals(rows[1] + b"\n", 1)
    assert b.tolist() == [[12345678.0, 1234567.0, 0.1234567, -1234567.0, 9.99999, 0.1, 0.3, 1.0]]
    assert b[0, 5] == float("0.1") and b[0, 6] == float("0.3")


@pytest.mark.parametrize("text, lines", [
    (b"1 2\n3\n", 2),                 # lines of different lengths
    (b"1 2\n\n3 4\n", 3),             # a blank line
    (b"1 2\n3 4", 2),                 # no final line break (parse_number_lines adds it)
    (b"1e5 2\n", 1),                  # an exponent: not in the short grammar
    (b"1.2.3 4\n", 1),                # two dots
    (b"1-2 4\n", 1),                  # a sign inside
    (b"- 4\n", 1), (b". 4\n", 1), (b"+ 4\n", 1),   # no digit
    (b"--1 4\n", 1),
    (b"nan 1\n", 1),
    (b"1,2\n", 1),                    # a comma (parse_number_lines replaces them first when asked)
    (b"1 2\n", 2),                    # fewer lines than said
])
def test_short_decimals_leave_irregular_text_to_the_caller(text, lines):
    assert _short_decimals(text, lines) is None


def test_parse_number_lines_agrees_with_loadtxt_where_the_short_path_declines():
    # exponents, long numbers and commas: np.loadtxt as before
    text = b"1e5, 2.5,-3\n123456789.123, 0.000000001, 4\n"
    got = parse_number_lines(text, 2, commas=True)
    assert _same_bits(got, np.array([[1e5, 2.5, -3.0], [123456789.123, 1e-9, 4.0]]))
    assert parse_number_lines(b"1.2.3 4\n", 1) is None
    assert _same_bits(parse_number_lines("1 2.5\n-3 4", 2), np.array([[1.0, 2.5], [-3.0, 4.0]]))   # str, no final \n
    assert parse_number_lines(b"1 2\n3\n", 2) is None


def test_many_long_numbers_go_to_loadtxt(monkeypatch):
    calls = []
    real = np.loadtxt
    monkeypatch.setattr(numtext.np, "loadtxt", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    long_text = b"".join(b"%r %r\n" % (0.1 * i + 1e-9, 1.0 / (i + 3)) for i in range(100))
    assert _same_bits(parse_number_lines(long_text, 100), _by_float(long_text, 100))
    assert calls == [1]
    short_text = b"".join(b"%d.5 %d\n" % (i, -i) for i in range(100))
    assert _same_bits(parse_number_lines(short_text, 100), _by_float(short_text, 100))
    assert calls == [1]                                      # the short path, no loadtxt


def test_a_few_long_numbers_stay_on_the_short_path(monkeypatch):
    monkeypatch.setattr(numtext.np, "loadtxt", lambda *a, **kw: pytest.fail("np.loadtxt called"))
    text = b"".join(b"%d.5 %d\n" % (i, -i) for i in range(99)) + b"0.30000000000000004 -123456789.25\n"
    got = parse_number_lines(text, 100)
    assert _same_bits(got, _by_float(text, 100))
    assert got[99, 0] == 0.30000000000000004 and got[99, 0] != 0.3
    assert _short_decimals(b"".join(b"1 2\n" for _ in range(99)) + b"1.2.3.4.5 2\n", 100) is None
