"""Scalar data types of the declaration DSL and the loop-nest IR.

A dtype is its name as a string ("float32", "int64", "bool"), as in TVM and numpy, so that
printing, records and numpy all agree without a mapping kept in sync by hand. This module
only answers questions about those names.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = ("float16", "float32", "float64")
INT_DTYPES = ("int8", "int16", "int32", "int64")
UINT_DTYPES = ("uint8", "uint16", "uint32", "uint64")
BOOL_DTYPE = "bool"
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + UINT_DTYPES + (BOOL_DTYPE,)


class DTypeError(TypeError):
    """A dtype name that is not supported, or two operands whose dtypes do not agree."""


def check_dtype(dtype: str) -> str:
    """Return ``dtype`` if it is a supported name, else raise a DTypeError naming the choices."""
    if dtype not in ALL_DTYPES:
        raise DTypeError(f"unsupported dtype {dtype!r}; expected one of {', '.join(ALL_DTYPES)}")
    return dtype


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def is_int(dtype: str) -> bool:
    """Signed or unsigned integer (not bool)."""
    return dtype in INT_DTYPES or dtype in UINT_DTYPES


def is_signed_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


def is_bool(dtype: str) -> bool:
    return dtype == BOOL_DTYPE


def bits(dtype: str) -> int:
    """Width in bits; bool counts as 8 (one byte in memory), as in numpy."""
    return 8 if dtype == BOOL_DTYPE else int(np.dtype(dtype).itemsize * 8)


def itemsize(dtype: str) -> int:
    return int(np.dtype(dtype).itemsize)


def to_numpy(dtype: str) -> np.dtype:
    return np.dtype(check_dtype(dtype))


def from_numpy(dtype: np.dtype | type) -> str:
    return check_dtype(np.dtype(dtype).name)
