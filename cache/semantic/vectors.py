"""Dense vectors as plain float lists: dot products, normalisation, packing.

Vectors are L2-normalised when they enter the cache, so cosine similarity is a
plain dot product. Packing uses little-endian float32, half the bytes of a
double and plenty of precision for a similarity threshold in the 0.8-0.99 range.
"""

from __future__ import annotations

import math
import operator
import sys
from array import array
from collections.abc import Sequence
from typing import Any, cast

Vector = list[float]

_FLOAT32 = "f"
_UINT32 = "I" if array("I").itemsize == 4 else "L"
_DENSE = b"D"
_SPARSE = b"S"


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    """Dot product of two vectors of equal length."""
    return float(sum(map(operator.mul, a, b)))


def l2_normalised(values: Sequence[float]) -> Vector:
    """``values`` scaled to unit length; the zero vector stays zero."""
    norm = math.sqrt(dot(values, values))
    if norm == 0.0:
        return [0.0] * len(values)
    scale = 1.0 / norm
    return [v * scale for v in values]


def pack(vector: Sequence[float]) -> bytes:
    """Little-endian float32 bytes of ``vector``, sparse when that is smaller.

    Dense: tag ``D`` then every component. Sparse: tag ``S``, the dimension
    as uint32, then uint32 indexes and float32 values of the non-zero
    components. A hashed embedding of a short text fills a fifth of its
    buckets, so sparse packing stores it in a third of the bytes.
    """
    nonzero = [i for i, v in enumerate(vector) if v != 0.0]
    if 8 * len(nonzero) + 4 < 4 * len(vector):
        indexes = array(_UINT32, nonzero)
        values = array(_FLOAT32, [vector[i] for i in nonzero])
        return _SPARSE + _le(array(_UINT32, [len(vector)])) + _le(indexes) + _le(values)
    return _DENSE + _le(array(_FLOAT32, vector))


def unpack(data: bytes) -> Vector:
    """The vector packed by :func:`pack`; ``ValueError`` for anything else."""
    tag, body = data[:1], data[1:]
    if tag == _DENSE:
        return cast(Vector, _from_le(_FLOAT32, body).tolist())
    if tag != _SPARSE or len(body) < 4 or (len(body) - 4) % 8:
        raise ValueError("not a packed vector")
    dim = _from_le(_UINT32, body[:4])[0]
    count = (len(body) - 4) // 8
    indexes = _from_le(_UINT32, body[4 : 4 + 4 * count])
    values = _from_le(_FLOAT32, body[4 + 4 * count :])
    vector = [0.0] * dim
    for index, value in zip(indexes, values, strict=True):
        vector[index] = value
    return vector


def _le(values: array[Any]) -> bytes:
    if sys.byteorder != "little":
        values.byteswap()
    return values.tobytes()


def _from_le(typecode: str, data: bytes) -> array[Any]:
    values = array(typecode)
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values
