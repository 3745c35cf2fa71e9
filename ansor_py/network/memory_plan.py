"""Static memory planning: every intermediate tensor of a network in ONE preallocated arena.

A compiled network runs its kernels in a fixed order, so when each value is written and
last read is known before the first run. Two values whose lifetimes do not overlap can
share bytes; the planner places each value at a byte offset of one arena so that values
alive at the same time never overlap, and the arena is as small as a greedy rule finds.

Lifetimes (``lifetimes``) count steps: step 0 copies the network's inputs into their
buffers, step ``i + 1`` runs kernel ``i``, and step ``n + 1`` is the caller reading the
outputs. A value lives from the step that writes it to the last step that reads it,
inclusive; a graph output lives to step ``n + 1``. Inclusive ends are what keep a kernel
from reading and writing the same bytes: its inputs are alive at its own step, where its
outputs begin.

Placement (``plan_memory``) is the "greedy by size" planner of TensorFlow Lite
(``GreedyMemoryPlanner``) and of TVM's graph executor storage rewrite: buffers are placed
largest first; each goes into the smallest gap (best fit) between the already placed
buffers whose lifetimes overlap its own, or after the last of them when no gap fits.
Offsets and sizes are multiples of ``alignment`` (64 bytes: a cache line and an AVX-512
vector), so every buffer is as aligned as the arena's start. The result is never larger
than the sum of the buffers and never smaller than the most bytes alive at one step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

#: the byte alignment of every buffer (a cache line; the widest x86-64 vector)
ALIGNMENT = 64


class MemoryPlanError(ValueError):
    """A request the planner cannot take: a negative size, an inverted lifetime, a bad
    alignment or a value read before it is written."""


@dataclass(frozen=True)
class BufferRequest:
    """A value needing ``nbytes`` from step ``first`` (its writer) through step ``last``
    (its last reader), both inclusive."""

    name: str
    nbytes: int
    first: int
    last: int

    def __post_init__(self) -> None:
        if self.nbytes < 0:
            raise MemoryPlanError(f"buffer {self.name!r}: size {self.nbytes} bytes is negative")
        if self.last < self.first:
            raise MemoryPlanError(
                f"buffer {self.name!r}: lifetime ends at step {self.last}, before it starts at {self.first}"
            )

    def overlaps(self, other: BufferRequest) -> bool:
        """Whether the two lifetimes share a step (then the buffers may not share bytes)."""
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class MemoryPlan:
    """Byte offsets of every requested buffer in one arena of ``arena_bytes``.

    ``total_bytes`` is what one buffer per value would take (the sum of the aligned
    sizes): ``arena_bytes <= total_bytes``; their ratio is the saving.
    """

    requests: tuple[BufferRequest, ...]
    offsets: Mapping[str, int]
    arena_bytes: int
    alignment: int = ALIGNMENT

    @property
    def total_bytes(self) -> int:
        return sum(aligned_size(r.nbytes, self.alignment) for r in self.requests)

    def offset(self, name: str) -> int:
        if name not in self.offsets:
            raise KeyError(f"the memory plan has no buffer {name!r}")
        return self.offsets[name]

    def live_bytes_bound(self) -> int:
        """The most aligned bytes alive at one step: no placement can use fewer."""
        steps = {step for r in self.requests for step in (r.first, r.last)}
        return max(
            (
                sum(aligned_size(r.nbytes, self.alignment) for r in self.requests if r.first <= s <= r.last)
                for s in steps
            ),
            default=0,
        )

    def __str__(self) -> str:
        saved = 1 - self.arena_bytes / self.total_bytes if self.total_bytes else 0.0
        lines = [
            f"memory plan: {len(self.requests)} buffers, arena {format_bytes(self.arena_bytes)} "
            f"(one buffer each: {format_bytes(self.total_bytes)}, {saved:.0%} saved)"
        ]
        for r in sorted(self.requests, key=lambda r: (self.offsets[r.name], r.first)):
            size = format_bytes(r.nbytes)
            lines.append(f"  {self.offsets[r.name]:>12}  {size:>10}  steps {r.first}..{r.last}  {r.name}")
        return "\n".join(lines)


def aligned_size(nbytes: int, alignment: int = ALIGNMENT) -> int:
    """``nbytes`` rounded up to a multiple of ``alignment``."""
    return -(-nbytes // alignment) * alignment


def format_bytes(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} B"


def lifetimes(
    steps: Sequence[tuple[Sequence[str], Sequence[str]]],
    inputs: Iterable[str],
    outputs: Iterable[str],
    unplanned: Iterable[str] = (),
) -> dict[str, tuple[int, int]]:
    """``value -> (first, last)`` step of every value to plan, in order of first write.

    ``steps[i] = (reads, writes)`` of kernel ``i`` (step ``i + 1``); ``inputs`` are written
    at step 0; ``outputs`` are read at step ``len(steps) + 1``. Values in ``unplanned``
    (constants: they live outside the arena) are skipped. A value read before any step
    writes it, or written twice, is a MemoryPlanError.
    """
    skip = set(unplanned)
    spans: dict[str, list[int]] = {}
    for name in inputs:
        if name not in skip:
            spans.setdefault(name, [0, 0])

    def read(name: str, step: int, unwritten: str) -> None:
        """``name`` is read at ``step`` (a MemoryPlanError ``unwritten`` if nothing wrote it)."""
        if name in skip:
            return
        if name not in spans:
            raise MemoryPlanError(unwritten)
        spans[name][1] = step

    for index, (reads, writes) in enumerate(steps, start=1):
        for name in reads:
            read(name, index, f"step {index} reads {name!r}, which no earlier step writes")
        for name in writes:
            if name in spans or name in skip:
                raise MemoryPlanError(f"step {index} writes {name!r}, which is already defined")
            spans[name] = [index, index]
    for name in outputs:
        read(name, len(steps) + 1, f"output {name!r} is written by no step")
    return {name: (first, last) for name, (first, last) in spans.items()}


def plan_memory(requests: Sequence[BufferRequest], alignment: int = ALIGNMENT) -> MemoryPlan:
    """Place ``requests`` in one arena, greedy by size with best fit (module docstring)."""
    if alignment <= 0 or alignment & (alignment - 1):
        raise MemoryPlanError(f"alignment {alignment} is not a positive power of two")
    names = [r.name for r in requests]
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise MemoryPlanError(f"buffers {repeated} are requested more than once")
    placed: list[tuple[int, int, BufferRequest]] = []  # (offset, aligned size, request)
    offsets: dict[str, int] = {}
    arena = 0
    by_size = sorted(requests, key=lambda r: (-aligned_size(r.nbytes, alignment), r.first, r.name))
    for request in by_size:
        size = aligned_size(request.nbytes, alignment)
        conflicts = sorted((off, sz) for off, sz, other in placed if sz > 0 and other.overlaps(request))
        best_offset, best_gap = None, 0
        gap_start = 0
        for off, sz in conflicts:
            gap = off - gap_start
            if gap >= size and (best_offset is None or gap < best_gap):
                best_offset, best_gap = gap_start, gap
            gap_start = max(gap_start, off + sz)
        offset = gap_start if best_offset is None else best_offset
        placed.append((offset, size, request))
        offsets[request.name] = offset
        arena = max(arena, offset + size)
    return MemoryPlan(tuple(requests), offsets, arena, alignment)
