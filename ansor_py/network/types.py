"""The two leaf types of the network layer: ``TensorType`` (a value's static shape and
dtype) and ``GraphError`` (a malformed graph, or an op rejecting its inputs). The op
registry and the graph both build on them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ir import dtype as dt


class GraphError(ValueError):
    """A malformed graph, or a node whose op rejects its inputs or attributes."""


@dataclass(frozen=True)
class TensorType:
    """The static type of a value: its shape (a tuple of positive ints; () for a scalar)
    and its dtype name (``ir.dtype``: "float32", "int64", "bool", ...)."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.shape)
        if any(d < 0 for d in shape):
            raise GraphError(f"TensorType: shape {list(shape)} has a negative dimension")
        object.__setattr__(self, "shape", shape)
        dt.to_numpy(self.dtype)  # raises on an unknown dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(dt.to_numpy(self.dtype)).itemsize

    @classmethod
    def of(cls, array: np.ndarray) -> TensorType:
        return cls(tuple(array.shape), dt.from_numpy(array.dtype))

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"
