"""The memory planner alone: lifetimes from kernel steps, and the arena placement
(no two buffers alive at one step share a byte; the arena lies between the live-bytes
lower bound and the sum of the buffers)."""

from __future__ import annotations

import numpy as np
import pytest

from ansor_py.network.memory_plan import (
    BufferRequest,
    MemoryPlan,
    MemoryPlanError,
    aligned_size,
    lifetimes,
    plan_memory,
)


def check_plan(plan: MemoryPlan) -> None:
    """The invariants every plan must meet."""
    requests = plan.requests
    for r in requests:
        offset = plan.offsets[r.name]
        assert offset % plan.alignment == 0
        assert offset + r.nbytes <= plan.arena_bytes
    for i, a in enumerate(requests):
        for b in requests[i + 1 :]:
            if a.overlaps(b) and a.nbytes and b.nbytes:
                a0, b0 = plan.offsets[a.name], plan.offsets[b.name]
                assert a0 + a.nbytes <= b0 or b0 + b.nbytes <= a0, f"{a} and {b} overlap in memory"
    assert plan.live_bytes_bound() <= plan.arena_bytes <= plan.total_bytes


@pytest.mark.parametrize("seed", range(40))
def test_random_lifetimes_never_share_live_bytes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 40))
    requests = []
    for i in range(count):
        first = int(rng.integers(0, 30))
        last = first + int(rng.integers(0, 8))
        nbytes = int(rng.choice([0, 1, 63, 64, 100, 4096, int(rng.integers(1, 100_000))]))
        requests.append(BufferRequest(f"v{i}", nbytes, first, last))
    plan = plan_memory(requests)
    check_plan(plan)


def test_a_chain_reuses_memory() -> None:
    # a -> b -> c -> d, each read only by the next: two buffers suffice at any step
    requests = [BufferRequest(n, 1000, i, i + 1) for i, n in enumerate("abcd")]
    plan = plan_memory(requests)
    check_plan(plan)
    assert plan.arena_bytes == 2 * aligned_size(1000)
    assert plan.total_bytes == 4 * aligned_size(1000)
    assert plan.offsets["a"] == plan.offsets["c"]


def test_best_fit_takes_the_smallest_gap() -> None:
    # placed largest first, the short-lived holes end up between the long-lived buffers;
    # "late" fits both holes and must take the smaller one (first fit would take the other)
    requests = [
        BufferRequest("long_a", 4096, 0, 10),
        BufferRequest("hole_big", 2048, 0, 1),
        BufferRequest("long_b", 1024, 0, 10),
        BufferRequest("hole_small", 512, 0, 1),
        BufferRequest("long_c", 384, 0, 10),
        BufferRequest("late", 256, 2, 10),
    ]
    plan = plan_memory(requests)
    check_plan(plan)
    assert plan.offsets["late"] == plan.offsets["hole_small"]
    assert plan.arena_bytes == sum(aligned_size(r.nbytes) for r in requests[:5])


def test_lifetimes_count_steps_inclusively() -> None:
    steps = [(("x", "w"), ("a",)), (("a",), ("b",)), (("a", "b"), ("c",)), (("c",), ("d", "unused"))]
    spans = lifetimes(steps, inputs=["x"], outputs=["d", "b"], unplanned=["w"])
    assert spans == {"x": (0, 1), "a": (1, 3), "b": (2, 5), "c": (3, 4), "d": (4, 5), "unused": (4, 4)}


def test_lifetime_errors_name_the_value() -> None:
    with pytest.raises(MemoryPlanError, match="step 1 reads 'y', which no earlier step writes"):
        lifetimes([(("y",), ("z",))], inputs=["x"], outputs=["z"])
    with pytest.raises(MemoryPlanError, match="step 2 writes 'z', which is already defined"):
        lifetimes([(("x",), ("z",)), (("x",), ("z",))], inputs=["x"], outputs=["z"])
    with pytest.raises(MemoryPlanError, match="output 'q' is written by no step"):
        lifetimes([(("x",), ("z",))], inputs=["x"], outputs=["q"])


def test_request_errors() -> None:
    with pytest.raises(MemoryPlanError, match="ends at step 1, before it starts at 2"):
        BufferRequest("v", 8, 2, 1)
    with pytest.raises(MemoryPlanError, match="size -1 bytes is negative"):
        BufferRequest("v", -1, 0, 0)
    with pytest.raises(MemoryPlanError, match="alignment 48"):
        plan_memory([BufferRequest("v", 8, 0, 0)], alignment=48)
    with pytest.raises(MemoryPlanError, match=r"\['v'\] are requested more than once"):
        plan_memory([BufferRequest("v", 8, 0, 0), BufferRequest("v", 8, 1, 1)])


def test_plan_prints_offsets() -> None:
    plan = plan_memory([BufferRequest("a", 100, 0, 1), BufferRequest("b", 100, 2, 3)])
    text = str(plan)
    assert "2 buffers, arena 128 B (one buffer each: 256 B, 50% saved)" in text
    assert "steps 2..3  b" in text
