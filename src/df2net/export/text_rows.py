"""Rows of numbers as text, fast: the vectorised ``%d`` / ``%.Nf`` formatter of the OBJ writer."""

from __future__ import annotations

import re

import numpy as np

#: A conversion of :func:`format_rows`: ``%d`` or ``%.<digits>f``.
_CONVERSION = re.compile(r"%(?:\.(\d+))?([df])")

#: Largest magnitude :func:`format_rows` formats with integer arithmetic (below 2**53 / 10**6).
_FAST_LIMIT = 1e9


def format_rows(fmt: str, rows: np.ndarray) -> str:
    """Format every row of a 2D array with ``fmt`` (one ``%`` per column), concatenated.

    ``fmt`` may hold only ``%d`` and ``%.Nf`` conversions between literal text (no ``%%``).
    Equivalent to ``(fmt * len(rows)) % tuple(rows.ravel())`` but vectorised, about five times
    faster for a face mesh: each value is rounded to a whole number of its last decimal, its
    digits are cut out with integer arithmetic into a table of characters, one row per row, and
    the table is joined without its padding. (A value exactly halfway between two printed
    decimals may round the other way, and ``-0.0`` prints without its sign.) Non-finite or very
    large values fall back to Python's ``%``.
    """
    rows = np.asarray(rows)
    if len(rows) == 0:
        return ""
    specs = [(kind, int(digits or 6) if kind == "f" else 0) for digits, kind in _CONVERSION.findall(fmt)]
    literals = _CONVERSION.split(fmt)[::3]  # split() interleaves the two groups of each match
    if rows.ndim != 2 or rows.shape[1] != len(specs) or "%" in "".join(literals):
        raise ValueError(f"format {fmt!r} does not fit rows of shape {rows.shape}")
    if rows.dtype.kind == "f" and (not np.isfinite(rows).all() or np.abs(rows).max() >= _FAST_LIMIT):
        return (fmt * len(rows)) % tuple(rows.ravel().tolist())
    if all(kind == "d" for kind, _ in specs):
        text = _small_int_rows(rows, literals)
        if text is not None:
            return text
    n = len(rows)
    # The characters of every column, computed together for the columns of one kind, laid out
    # character-major ((W, N) planes) so that every step reads and writes contiguous memory.
    chars: dict[int, np.ndarray] = {}
    for key in sorted(set(specs)):
        cols = [i for i, spec in enumerate(specs) if spec == key]
        kind, decimals = key
        block = np.ascontiguousarray(rows[:, cols].T)  # (C, N)
        if kind == "f":
            scaled = np.rint(block * 10.0**decimals).astype(np.int64)
        else:
            scaled = block.astype(np.int64) if block.dtype.kind in "iub" else np.trunc(block).astype(np.int64)
        low, high = int(scaled.min()), int(scaled.max())
        if low >= 0 and high < scaled.size // 2:
            # Small non-negative integers (mesh indices): format each value once, then look up.
            text = fixed_point_chars(np.arange(high + 1)[None], decimals)[:, 0][:, scaled]
        else:
            text = fixed_point_chars(scaled, decimals)  # (W, C, N)
        for j, i in enumerate(cols):
            chars[i] = text[:, j]
    widths = [len(lit) for lit in literals] + [c.shape[0] for c in chars.values()]
    table = np.empty((sum(widths), n), np.uint8)
    at = 0
    for i, literal in enumerate(literals):
        for code in literal.encode("ascii"):
            table[at] = code
            at += 1
        if i < len(specs):
            table[at : at + chars[i].shape[0]] = chars[i]
            at += chars[i].shape[0]
    text = np.ascontiguousarray(table.T).reshape(-1)  # one row of text per row
    return text[text != 0].tobytes().decode("ascii")


def _small_int_rows(rows: np.ndarray, literals: list[str]) -> str | None:
    """:func:`format_rows` of ``%d`` columns of small non-negative integers (mesh indices), or
    None when they are not that.

    Each number is printed once; every row is then one 8-byte word per column, looked up: the
    number right-aligned with the text that follows it (zero bytes before), after a word for
    the row's leading text. The words are read back as bytes without their zeros. Twice as fast
    as the general path for OBJ faces, which does the same byte by byte.
    """
    ints = (rows if rows.dtype.kind in "iub" else np.trunc(rows)).astype(np.int64)
    high = int(ints.max())
    if int(ints.min()) < 0 or high >= ints.size // 2:
        return None
    digits = fixed_point_chars(np.arange(high + 1)[None], 0)[:, 0].T  # (high + 1, W)
    width = digits.shape[1]
    encoded = [lit.encode("ascii") for lit in literals]
    if len(encoded[0]) > 8 or any(width + len(lit) > 8 for lit in encoded[1:]):
        return None
    words = np.empty((len(ints), len(encoded)), np.uint64)
    words[:, 0] = np.frombuffer(encoded[0].rjust(8, b"\0"), np.uint64)[0]
    tables: dict[bytes, np.ndarray] = {}
    for i, lit in enumerate(encoded[1:]):
        if lit not in tables:  # the number with this text after it, as one word per number
            table = np.zeros((high + 1, 8), np.uint8)
            table[:, 8 - len(lit) - width : 8 - len(lit)] = digits
            table[:, 8 - len(lit) :] = np.frombuffer(lit, np.uint8)
            tables[lit] = table.view(np.uint64)[:, 0]
        words[:, i + 1] = tables[lit][ints[:, i]]
    text = words.view(np.uint8).reshape(-1)
    return text[text != 0].tobytes().decode("ascii")


def fixed_point_chars(scaled: np.ndarray, decimals: int) -> np.ndarray:
    """ASCII codes of ``scaled / 10**decimals`` printed with ``decimals`` decimals.

    ``scaled`` is an int64 array ``(C, N)``; the result is uint8 ``(W, C, N)``: character ``k``
    of every number, each number right-aligned and padded on the left with 0 bytes (the caller
    drops them): an optional ``-``, the integer digits (at least one), then ``.`` and the
    decimals when ``decimals > 0``.
    """
    magnitude = np.abs(scaled)
    width = max(len(str(int(magnitude.max()))), decimals + 1)
    digits = np.empty((width, *scaled.shape), np.uint8)
    # Unsigned division by a constant is several times faster than int64's % and //.
    rest = magnitude.astype(np.uint32 if int(magnitude.max()) < 2**32 else np.uint64)
    for k in range(width - 1, -1, -1):
        quotient = rest // 10
        digits[k] = rest - quotient * 10
        rest = quotient
    digits += ord("0")
    # Blank the leading zeros, keeping at least one digit before the decimal point.
    length = np.full(scaled.shape, decimals + 1, np.int64)
    for k in range(decimals + 1, width):
        length += magnitude >= 10**k
    digits *= np.arange(width).reshape(width, 1, 1) >= (width - length)[None]
    sign = np.where(scaled < 0, ord("-"), 0).astype(np.uint8)
    parts = [sign[None], digits[: width - decimals]]
    if decimals:
        parts += [np.full((1, *scaled.shape), ord("."), np.uint8), digits[width - decimals :]]
    return np.concatenate(parts)
