"""Deterministic hashing of unit ids into [0, 1), compatible with GrowthBook's SDKs.

FNV-1a 32 (Fowler, Noll, Vo; draft-eastlake-fnv, section 2): start at the offset basis
0x811C9DC5 and, for each input unit, XOR it in and multiply by the prime 0x01000193 modulo
2**32. GrowthBook's JavaScript reference iterates over UTF-16 code units (``charCodeAt``),
so non-ASCII strings are hashed code unit by code unit, not byte by byte.

Two hash versions, as in GrowthBook's ``hash`` (sdk-js ``util.ts``):

* version 1: ``(fnv(value + seed) mod 1000) / 1000``;
* version 2: ``(fnv(str(fnv(seed + value))) mod 10000) / 10000``: the first hash is
  hashed again through its decimal string, which spreads sequential ids better.

Any other version gives ``None`` (``NaN`` in the vectorized form): "not in experiment".

The scalar path uses the C implementation from ``fnv-hash-fast`` for ASCII input; the
vectorized path (:func:`hash_batch`) processes a fixed-width numpy array of code units
column by column with uint32 wraparound, and is identical to the scalar path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Final

import numpy as np
from fnv_hash_fast import fnv1a_32 as fnv1a32_bytes
from numpy.typing import NDArray

from proving.errors import AssignmentError

FNV_OFFSET_BASIS: Final = 0x811C9DC5
FNV_PRIME: Final = 0x01000193
_MASK32: Final = 0xFFFFFFFF
_PRIME_U32: Final = np.uint32(FNV_PRIME)

__all__ = ["FNV_OFFSET_BASIS", "FNV_PRIME", "fnv1a32", "fnv1a32_bytes", "hash_batch", "hash_value"]


def _fnv1a32_code_units(value: str, start: int = FNV_OFFSET_BASIS) -> int:
    """FNV-1a 32 over UTF-16 code units, from an arbitrary start state."""
    h = start
    data = value.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h = ((h ^ (data[i] | (data[i + 1] << 8))) * FNV_PRIME) & _MASK32
    return h


def fnv1a32(value: str) -> int:
    """FNV-1a 32-bit hash of a string over its UTF-16 code units, like GrowthBook's JS SDK.

    Args:
        value: the string to hash.

    Returns:
        The hash as an integer in [0, 2**32).

    Example:
        >>> fnv1a32("a")
        3826002220
    """
    if value.isascii():
        # For ASCII, UTF-16 code units equal the bytes: use the C implementation.
        return fnv1a32_bytes(value.encode("ascii"))
    return _fnv1a32_code_units(value)


def hash_value(seed: str, value: str, version: int) -> float | None:
    """Hash a unit id with a seed into [0, 1), GrowthBook hash versions 1 and 2.

    Args:
        seed: the experiment seed (its key unless set otherwise).
        value: the unit id (the hash attribute's value as a string).
        version: 1 or 2; any other version gives ``None``.

    Returns:
        A float in [0, 1) with 3 (version 1) or 4 (version 2) decimals, or ``None`` for an
        unknown version, which means "not in the experiment".

    Example:
        >>> hash_value("seed", "a", 2)
        0.0505
        >>> hash_value("", "a", 1)
        0.22
    """
    # fnv1a32 inlined (this runs per request): ASCII text goes straight to the C hash.
    if version == 2:
        text = seed + value
        first = fnv1a32_bytes(text.encode()) if text.isascii() else _fnv1a32_code_units(text)
        return (fnv1a32_bytes(str(first).encode()) % 10000) / 10000
    if version == 1:
        text = value + seed
        n = fnv1a32_bytes(text.encode()) if text.isascii() else _fnv1a32_code_units(text)
        return (n % 1000) / 1000
    return None


def _as_code_units(
    values: Sequence[str] | NDArray[np.generic],
) -> tuple[NDArray[np.uint32], NDArray[np.intp] | None]:
    """(n, width) uint32 code points, zero-padded on the right, and each row's length
    (``None`` when it is to be read from the padding, block by block)."""
    from_python = not isinstance(values, np.ndarray)
    if from_python:
        bad_types = set(map(type, values)) - {str}
        if bad_types:
            bad = next(v for v in values if not isinstance(v, str))
            raise AssignmentError(
                f"hash_batch: every unit id must be a string; got {type(bad).__name__} "
                f"{bad!r}. Convert ids first, e.g. [str(v) for v in ids]."
            )
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise AssignmentError(
            f"hash_batch: `values` must be one-dimensional (a column of unit ids); got shape "
            f"{arr.shape}. Pass a flat list or array, e.g. ids.ravel()."
        )
    if arr.dtype.kind == "S":
        arr = np.char.decode(arr, "utf-8")
    elif arr.dtype.kind != "U":
        items = arr.tolist()
        bad = next((v for v in items if not isinstance(v, str)), None)
        if bad is not None or (arr.size and arr.dtype.kind != "O"):
            shown = bad if bad is not None else items[0]
            raise AssignmentError(
                f"hash_batch: every unit id must be a string; got {type(shown).__name__} "
                f"{shown!r}. Convert ids first, e.g. [str(v) for v in ids]."
            )
        arr = np.array(items, dtype=str) if arr.size else np.zeros(0, dtype="<U1")
    width = max(arr.dtype.itemsize // 4, 1)
    arr = np.ascontiguousarray(arr, dtype=f"<U{width}")
    codes = arr.view(np.uint32).reshape(arr.shape[0], width)
    if from_python and arr.dtype.kind == "U" and len(values):
        # numpy drops trailing NUL characters; the true lengths restore them as zero
        # code units, which is exactly what the padding holds.
        lengths = np.fromiter(map(len, values), dtype=np.intp, count=len(values))
        longest = int(lengths.max())
        if longest > width:
            codes = np.pad(codes, ((0, 0), (0, longest - width)))
        return codes, lengths
    return codes, None


def _lengths(codes: NDArray[np.uint32]) -> NDArray[np.intp]:
    """Length of each zero-padded row (numpy's own ``str_len``: trailing NULs are padding)."""
    if codes.size == 0:
        return np.zeros(codes.shape[0], dtype=np.intp)
    as_text = np.ascontiguousarray(codes).view(f"<U{codes.shape[1]}").reshape(codes.shape[0])
    return np.strings.str_len(as_text).astype(np.intp)


def _fnv_columns(
    h: NDArray[np.uint32], columns: NDArray[np.uint32], lengths: NDArray[np.intp]
) -> NDArray[np.uint32]:
    """Advance FNV-1a states ``h`` over the code units in ``columns`` (width, n), in place.

    Row i only consumes its first ``lengths[i]`` units. Rather than a masked multiply
    (slow in numpy), padding positions use multiplier 1: there the code unit is 0, so
    ``(h ^ 0) * 1 == h`` leaves the state unchanged, and every step is two plain ufuncs.
    """
    width = columns.shape[0]
    if lengths.size and bool((lengths == width).all()):
        for j in range(width):
            np.bitwise_xor(h, columns[j], out=h)
            np.multiply(h, _PRIME_U32, out=h)
        return h
    positions = np.arange(width, dtype=np.intp)[:, None]
    multipliers = np.where(positions < lengths[None, :], _PRIME_U32, np.uint32(1))
    for j in range(width):
        np.bitwise_xor(h, columns[j], out=h)
        np.multiply(h, multipliers[j], out=h)
    return h


def _fnv_suffix(h: NDArray[np.uint32], suffix: str) -> NDArray[np.uint32]:
    """Advance every state over the same suffix string (the seed in hash version 1)."""
    data = suffix.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        np.bitwise_xor(h, np.uint32(data[i] | (data[i + 1] << 8)), out=h)
        np.multiply(h, _PRIME_U32, out=h)
    return h


def _fnv_decimal_direct(h: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """FNV-1a 32 of the decimal string of each uint32, digit by digit (builds the table).

    Each number is laid out as 10 digit positions, most significant first; leading-zero
    positions are not part of the string, so they get code 0 and multiplier 1 (a no-op
    step, as in :func:`_fnv_columns`).
    """
    n = h.shape[0]
    chars = np.empty((10, n), dtype=np.uint32)
    multipliers = np.empty((10, n), dtype=np.uint32)
    q = h.copy()
    nxt = np.empty_like(q)
    for k in range(10):  # position 9 - k holds the 10**k digit
        np.floor_divide(q, np.uint32(10), out=nxt)  # division by a constant: fast in numpy
        row = chars[9 - k]
        np.multiply(nxt, np.uint32(10), out=row)
        np.subtract(q, row, out=row)  # the digit
        row += np.uint32(48)  # ASCII "0"
        q, nxt = nxt, q
        if k:
            active = h >= np.uint32(10**k)
            row *= active
            np.multiply(active, np.uint32(FNV_PRIME - 1), out=multipliers[9 - k])
            multipliers[9 - k] += np.uint32(1)
        else:
            multipliers[9] = _PRIME_U32
    out = np.full(n, FNV_OFFSET_BASIS, dtype=np.uint32)
    for j in range(10):
        np.bitwise_xor(out, chars[j], out=out)
        np.multiply(out, multipliers[j], out=out)
    return out


@lru_cache(maxsize=1)
def _decimal_table() -> NDArray[np.uint32]:
    """``fnv(str(v))`` for every v < 100000 (400 kB, built once)."""
    return _fnv_decimal_direct(np.arange(100_000, dtype=np.uint32))


def _fnv_decimal(h: NDArray[np.uint32]) -> NDArray[np.uint32]:
    """FNV-1a 32 of the decimal string of each uint32 (hash version 2's second pass).

    Split ``h = high * 100000 + low``: the state after the digits of ``high`` is
    ``fnv(str(high))``, a table lookup (high < 42950); then the 5 digits of ``low``,
    zero-padded, are 5 FNV steps. Numbers below 100000 have no high part: their hash is
    the table entry itself. (Half the work of :func:`_fnv_decimal_direct`.)
    """
    table = _decimal_table()
    high = h // np.uint32(100_000)
    low = h - high * np.uint32(100_000)
    out = np.take(table, high.astype(np.intp))
    chars = np.empty((5, h.shape[0]), dtype=np.uint32)
    q, nxt = low, np.empty_like(low)
    for k in range(5):  # chars[4 - k] is the 10**k digit of low
        np.floor_divide(q, np.uint32(10), out=nxt)  # division by a constant: fast in numpy
        row = chars[4 - k]
        np.multiply(nxt, np.uint32(10), out=row)
        np.subtract(q, row, out=row)
        q, nxt = nxt, (q if k else np.empty_like(low))  # never overwrite `low`
    chars += np.uint32(48)  # ASCII "0"
    for k in range(5):
        np.bitwise_xor(out, chars[k], out=out)
        np.multiply(out, _PRIME_U32, out=out)
    small = high == 0
    if small.any():
        out[small] = table[low[small]]
    return out


# Rows per block: a block's transposed code units (block x width x 4 bytes) and its state
# vectors stay in cache while the columns are walked.
_BLOCK: Final = 1 << 15
# Threads for large batches (one per core, at most this many).
_MAX_WORKERS: Final = 8


def _hash_block(
    seed: str,
    codes: NDArray[np.uint32],
    lengths: NDArray[np.intp] | None,
    version: int,
) -> NDArray[np.float64]:
    """Hash one block of rows (version 1 or 2), astral rows on the scalar path."""
    if lengths is None:
        lengths = _lengths(codes)
    width = int(lengths.max()) if lengths.size else 0
    columns = np.ascontiguousarray(codes[:, :width].T)
    if version == 1:
        h = np.full(codes.shape[0], FNV_OFFSET_BASIS, dtype=np.uint32)
        h = _fnv_suffix(_fnv_columns(h, columns, lengths), seed)
        result = (h % np.uint32(1000)).astype(np.float64) / 1000.0
    else:
        h = np.full(codes.shape[0], fnv1a32(seed), dtype=np.uint32)
        h = _fnv_decimal(_fnv_columns(h, columns, lengths))
        result = (h % np.uint32(10000)).astype(np.float64) / 10000.0
    # Code points above the BMP are two UTF-16 code units in the JS reference: hash those
    # rows on the scalar path (rare), all others column by column.
    if width and int(columns.max()) > 0xFFFF:
        for i in np.flatnonzero((columns > 0xFFFF).any(axis=0)):
            text = "".join(chr(c) for c in codes[i, : lengths[i]])
            result[i] = hash_value(seed, text, version)
    return result


def hash_batch(
    seed: str, values: Sequence[str] | NDArray[np.generic], version: int
) -> NDArray[np.float64]:
    """Vectorized :func:`hash_value` over a column of unit ids.

    Args:
        seed: the experiment seed.
        values: unit ids, a sequence of ``str`` or a numpy string array (``U`` or ``S``;
            bytes are decoded as UTF-8). A numpy ``U`` array is fastest.
        version: 1 or 2; any other version gives an array of ``NaN``.

    Returns:
        float64 array of the same length, equal element by element to
        ``hash_value(seed, v, version)`` (``NaN`` where that is ``None``).

    Raises:
        AssignmentError: ``values`` is not one-dimensional or holds a non-string.

    Example:
        >>> hash_batch("seed", ["a", "b"], 2).tolist()
        [0.0505, 0.2696]
    """
    codes, lengths = _as_code_units(values)
    n = codes.shape[0]
    if version not in (1, 2):
        return np.full(n, np.nan, dtype=np.float64)
    _decimal_table()  # built once, before any worker thread needs it
    result = np.empty(n, dtype=np.float64)

    def hash_rows(start: int) -> None:
        stop = min(start + _BLOCK, n)
        block_lengths = None if lengths is None else lengths[start:stop]
        result[start:stop] = _hash_block(seed, codes[start:stop], block_lengths, version)

    starts = range(0, n, _BLOCK)
    workers = min(os.cpu_count() or 1, _MAX_WORKERS, len(starts))
    if workers > 1:
        # numpy releases the GIL inside each ufunc, so blocks hash in parallel threads;
        # each block writes its own slice of the result, so the output is the same.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(hash_rows, starts))
    else:
        for start in starts:
            hash_rows(start)
    return result
