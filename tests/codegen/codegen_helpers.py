"""Shared helpers of the LLVM back-end tests: hand-built loop nests and random inputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from codegen.llvm import build
from ir.expr import Expr, Var, const
from ir.tir import Buffer, For, ForKind, PrimFunc, Stmt


def loop(var: Var, extent: int | Expr, body: Stmt, kind: ForKind = ForKind.SERIAL, **annotations: Any) -> For:
    """``for var in [0, extent)`` of ``kind``."""
    extent_expr = const(extent) if isinstance(extent, int) else extent
    return For(var, const(0), extent_expr, kind, body, annotations=dict(annotations))


def random_array(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: str, low=-4.0, high=4.0
) -> np.ndarray:
    """Random values (never all zeros); integers uniform in [low, high)."""
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if np.issubdtype(np.dtype(dtype), np.integer):
        return rng.integers(int(low), int(high), size=shape).astype(dtype)
    return rng.uniform(low, high, size=shape).astype(dtype)


def run(func: PrimFunc, *arrays: np.ndarray, target: str = "llvm") -> None:
    """Build ``func`` for ``target`` and call it on ``arrays`` (outputs written in place)."""
    build(func, target)(*arrays)


def empty_like_buffer(buffer: Buffer) -> np.ndarray:
    """An output array pre-filled with a sentinel, so untouched elements show up."""
    out = np.empty(buffer.shape, dtype=buffer.dtype)
    out[...] = 77 if buffer.dtype != "bool" else False
    return out
