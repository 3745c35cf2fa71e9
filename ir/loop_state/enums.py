"""Closed enums of the loop state (Ansor's ``loop_state.h``), each value its printed word.

The record form of an annotation is its position in ``IteratorAnnotation`` (0..11), as in
TVM's logs, so ``list(IteratorAnnotation).index(a)`` is the record code.
"""

from __future__ import annotations

import enum


class StageKind(enum.Enum):
    PLACEHOLDER = "placeholder"
    COMPUTE = "compute"


class ComputeAtKind(enum.Enum):
    """Where a stage's loops live: at the root, inlined into consumers, or under an
    iterator of another stage."""

    ROOT = "root"
    INLINED = "inlined"
    ITER = "iter"


class IteratorKind(enum.Enum):
    SPATIAL = "spatial"
    REDUCTION = "reduction"
    MIXED = "mixed"
    SPECIAL = "special"


class IteratorAnnotation(enum.Enum):
    """The twelve annotations; the value is the word printed in the loop tree."""

    NONE = "for"
    UNROLL = "unroll"
    VECTORIZE = "vectorize"
    PARALLEL = "parallel"
    VTHREAD = "vthread"
    BLOCK_X = "blockIdx.x"
    THREAD_X = "threadIdx.x"
    BLOCK_Y = "blockIdx.y"
    THREAD_Y = "threadIdx.y"
    BLOCK_Z = "blockIdx.z"
    THREAD_Z = "threadIdx.z"
    TENSORIZE = "tensorize"

    @property
    def record_code(self) -> int:
        return _ANNOTATION_ORDER.index(self)

    @classmethod
    def from_record_code(cls, code: int) -> IteratorAnnotation:
        return _ANNOTATION_ORDER[code]

    @classmethod
    def parse(cls, name: str | IteratorAnnotation) -> IteratorAnnotation:
        """Accept the enum, its printed word, or TVM's Python names ("none", "vthread")."""
        if isinstance(name, IteratorAnnotation):
            return name
        if name == "none":
            return cls.NONE
        try:
            return cls(name)
        except ValueError:
            words = ", ".join(a.value for a in cls)
            raise ValueError(f"unknown annotation {name!r}; expected one of: none, {words}") from None


_ANNOTATION_ORDER = list(IteratorAnnotation)

#: annotations binding a loop to a GPU grid or block axis
THREAD_BINDINGS = frozenset(
    {
        IteratorAnnotation.VTHREAD,
        IteratorAnnotation.BLOCK_X,
        IteratorAnnotation.THREAD_X,
        IteratorAnnotation.BLOCK_Y,
        IteratorAnnotation.THREAD_Y,
        IteratorAnnotation.BLOCK_Z,
        IteratorAnnotation.THREAD_Z,
    }
)
#: annotations binding a loop to a block of the grid
BLOCK_AXES = frozenset({IteratorAnnotation.BLOCK_X, IteratorAnnotation.BLOCK_Y, IteratorAnnotation.BLOCK_Z})
#: annotations binding a loop to a thread of a block
THREAD_AXES = frozenset(
    {IteratorAnnotation.THREAD_X, IteratorAnnotation.THREAD_Y, IteratorAnnotation.THREAD_Z}
)
