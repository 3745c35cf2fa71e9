"""The launch limits of a GPU block, checked on candidates before anything is built
(TVM checks them in ``VerifyGPUCode`` when it extracts features, after sampling; checking
here keeps sampling and mutation from filling a population with programs no GPU launches,
the problem of TVM's PR 6713)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ansor_py.search.stage_queries import extent_or_unknown
from ir.dtype import itemsize
from ir.loop_state.enums import THREAD_AXES, ComputeAtKind, IteratorAnnotation, StageKind
from ir.loop_state.state import LoopState
from ir.te import ComputeOp

if TYPE_CHECKING:
    from codegen.target import HardwareParams

#: annotations whose extents multiply into the threads of a block


def block_of(state: LoopState, stage_id: int) -> int:
    """The root stage (kernel) a stage is computed in, following compute_at to the root."""
    while (attach := state.stages[stage_id].attach) is not None:
        stage_id = attach.stage_id
    return stage_id


def fits_gpu_limits(hardware: HardwareParams, state: LoopState) -> bool:
    """Whether every kernel of ``state`` fits one block of the target: threads (the
    product of a stage's threadIdx extents), virtual threads and shared memory (the
    ``.shared`` stages computed in it, each the product of its loop extents times its
    element size) within ``hardware``; ``state`` must be bound (every extent known)."""
    shared: dict[int, int] = {}
    for stage_id, stage in enumerate(state.stages):
        if stage.op_type is StageKind.PLACEHOLDER or stage.compute_at is ComputeAtKind.INLINED:
            continue
        threads = math.prod(
            extent_or_unknown(it.extent) for it in stage.iters if it.annotation in THREAD_AXES
        )
        if threads > hardware.max_threads_per_block:
            return False
        vthreads = math.prod(
            extent_or_unknown(it.extent) for it in stage.iters if it.annotation is IteratorAnnotation.VTHREAD
        )
        if vthreads > hardware.max_vthread_extent:
            return False
        if stage.op.name.endswith(".shared") and isinstance(stage.op, ComputeOp):
            elements = math.prod(extent_or_unknown(it.extent) for it in stage.iters)
            kernel = block_of(state, stage_id)
            shared[kernel] = shared.get(kernel, 0) + elements * itemsize(stage.op.dtype)
    return all(0 <= nbytes <= hardware.max_shared_memory_per_block for nbytes in shared.values())
