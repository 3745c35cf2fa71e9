"""``State``: the mutable handle users and search rules schedule with (TVM's Python State).

It wraps the immutable ``LoopState`` and replaces it on every call, so scheduling code
reads like Ansor's:

    s = get_init_state(dag)
    i, j, k = s["C"].iters
    io, ii = s.split("C", i, [32])
    s.parallel("C", io)
    print(s)                  # the loop tree
    print(s.to_python())      # the steps as a script

Stages may be given as an int id, a name, a Tensor, an Operation or a Stage (resolved by
name, so a tensor of the task's DAG still finds its stage after cache steps replaced its
op). Iterators may be given as Iterator objects or names (resolved by name in the stage's
current iterators) or as int positions; an Iterator object of another stage is refused
(stages often share iterator names: split("Z", s["X"].iters[0], ...) would split Z's "i").
numpy integers are accepted wherever an int is (ids, positions, lengths, factors).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ir.loop_state.enums import THREAD_BINDINGS, IteratorAnnotation, StageKind
from ir.loop_state.python_printer import state_to_python
from ir.loop_state.state import Iterator, LoopState, ScheduleError, Stage, initial_state
from ir.loop_state.steps import (
    AnnotationStep,
    ComputeAtStep,
    ComputeInlineStep,
    ComputeRootStep,
    FollowFusedSplitStep,
    FollowSplitStep,
    FuseStep,
    PragmaStep,
    ReorderStep,
    SplitStep,
    Step,
    StorageAlignStep,
)
from ir.loop_state.steps.cache import CacheReadStep, CacheWriteStep
from ir.loop_state.steps.rfactor import RfactorStep
from ir.te import Operation, Tensor

if TYPE_CHECKING:
    from ir.compute_dag import ComputeDAG

StageRef = int | str | Tensor | Operation | Stage
IterRef = Iterator | str | int


def get_init_state(dag: ComputeDAG) -> State:
    """A State handle on ``dag``'s initial loop state (TVM's ``ComputeDAG.get_init_state``)."""
    return State(dag)


class State:
    """A mutable handle on a LoopState of ``dag`` (its initial state when none is given);
    each step method replaces ``loop_state``."""

    def __init__(self, dag: ComputeDAG, loop_state: LoopState | None = None):
        self.dag = dag
        self.loop_state: LoopState = initial_state(dag) if loop_state is None else loop_state

    # views ------------------------------------------------------------------------------
    @property
    def stages(self) -> tuple[Stage, ...]:
        return self.loop_state.stages

    @property
    def transform_steps(self) -> tuple[Step, ...]:
        return self.loop_state.transform_steps

    @property
    def stage_ops(self) -> list[Operation]:
        return [stage.op for stage in self.loop_state.stages]

    @property
    def concrete(self) -> bool:
        return self.loop_state.concrete

    def __getitem__(self, stage: StageRef) -> Stage:
        return self.loop_state.stages[self.stage_id(stage)]

    def copy(self) -> State:
        """An independent handle on the same (immutable) loop state."""
        return State(self.dag, self.loop_state)

    def __str__(self) -> str:
        return str(self.loop_state)

    def __repr__(self) -> str:
        return f"State({len(self.stages)} stages, {len(self.transform_steps)} steps)\n{self.loop_state}"

    def to_python(self) -> str:
        """The step history as a script that rebuilds this state from ``dag``."""
        return state_to_python(self.dag, self.loop_state)

    # resolution -------------------------------------------------------------------------
    def stage_id(self, stage: StageRef) -> int:
        """The current id of ``stage`` (int id, name, Tensor, Operation or Stage)."""
        n = len(self.loop_state.stages)
        stage = _plain_int(stage)
        if isinstance(stage, int) and not isinstance(stage, bool):
            if not 0 <= stage < n:
                raise ScheduleError(f"stage id {stage} is out of range (the state has {n} stages)")
            return stage
        if isinstance(stage, str):
            return self.loop_state.stage_id(stage)
        if isinstance(stage, (Tensor, Operation, Stage)):
            return self.loop_state.stage_id(stage.name)
        raise ScheduleError(
            f"cannot find a stage from {stage!r}: give an int id, a name, a Tensor or an Operation"
        )

    def iter_id(self, stage_id: int, it: IterRef) -> int:
        """The current position of iterator ``it`` in stage ``stage_id``."""
        stage = self.loop_state.stages[stage_id]
        if stage.op_type is StageKind.PLACEHOLDER:
            raise ScheduleError(f"stage '{stage.name}' is a placeholder and has no loops")
        it = _plain_int(it)
        if isinstance(it, int) and not isinstance(it, bool):
            if not 0 <= it < len(stage.iters):
                raise ScheduleError(
                    f"iterator index {it} of stage '{stage.name}' is out of range "
                    f"(it has {len(stage.iters)} iterators: {', '.join(x.name for x in stage.iters)})"
                )
            return it
        if isinstance(it, Iterator):
            self._check_iterator_owner(stage, it)
            for index, x in enumerate(stage.iters):
                if x.name == it.name:
                    return index
            raise ScheduleError(
                f"iterator '{it.name}' of stage '{stage.name}' no longer exists "
                f"(its iterators: {', '.join(x.name for x in stage.iters)})"
            )
        if isinstance(it, str):
            return stage.iter_index(it)
        raise ScheduleError(f"cannot find an iterator of stage '{stage.name}' from {it!r}")

    def _check_iterator_owner(self, stage: Stage, it: Iterator) -> None:
        """ScheduleError when ``it`` is an iterator object of another stage of this state
        (and not of ``stage``); an object from an earlier state of ``stage`` still
        resolves by name."""
        if any(x is it for x in stage.iters):
            return
        for other in self.loop_state.stages:
            if other is not stage and any(x is it for x in other.iters):
                raise ScheduleError(
                    f"iterator '{it.name}' given for stage '{stage.name}' is an iterator of stage "
                    f"'{other.name}'; pass one of {stage.name}'s iterators "
                    f"({', '.join(x.name for x in stage.iters)})"
                )

    def _apply(self, step: Step) -> LoopState:
        self.loop_state = step.apply(self.loop_state, self.dag)
        return self.loop_state

    # splits -----------------------------------------------------------------------------
    def split(
        self, stage: StageRef, iterator: IterRef, lengths: Sequence[int | None], inner_to_outer: bool = True
    ) -> list[Iterator]:
        """Split ``iterator`` into len(lengths) + 1 iterators ``x.0 .. x.n`` (outer to inner);
        returns them."""
        sid = self.stage_id(stage)
        iid = self.iter_id(sid, iterator)
        extent = self.loop_state.stages[sid].iters[iid].extent
        plain = tuple(_plain_int(x) for x in lengths)
        state = self._apply(SplitStep(sid, iid, extent, plain, inner_to_outer))
        return list(state.stages[sid].iters[iid : iid + len(lengths) + 1])

    def follow_split(
        self, stage: StageRef, iterator: IterRef, src_step_id: int, n_split: int
    ) -> list[Iterator]:
        """Split like the earlier split step ``src_step_id`` into n_split + 1 iterators."""
        sid = self.stage_id(stage)
        iid = self.iter_id(sid, iterator)
        state = self._apply(FollowSplitStep(sid, iid, _plain_int(src_step_id), _plain_int(n_split)))
        return list(state.stages[sid].iters[iid : iid + n_split + 1])

    def follow_fused_split(
        self,
        stage: StageRef,
        iterator: IterRef,
        src_step_ids: Sequence[int],
        level: int,
        factor_or_nparts: bool,
    ) -> list[Iterator]:
        """Split in two by the product of the source splits' lengths at ``level``."""
        sid = self.stage_id(stage)
        iid = self.iter_id(sid, iterator)
        src_ids = tuple(_plain_int(x) for x in src_step_ids)
        state = self._apply(FollowFusedSplitStep(sid, iid, src_ids, _plain_int(level), factor_or_nparts))
        return list(state.stages[sid].iters[iid : iid + 2])

    # loop order -------------------------------------------------------------------------
    def fuse(self, stage: StageRef, iters: Sequence[IterRef]) -> Iterator:
        """Fuse consecutive iterators (outer to inner) into one; returns it."""
        sid = self.stage_id(stage)
        ids = tuple(self.iter_id(sid, it) for it in iters)
        state = self._apply(FuseStep(sid, ids))
        return state.stages[sid].iters[ids[0]]

    def reorder(self, stage: StageRef, order: Sequence[IterRef]) -> None:
        """Put the stage's iterators in ``order`` (all of them)."""
        sid = self.stage_id(stage)
        self._apply(ReorderStep(sid, tuple(self.iter_id(sid, it) for it in order)))

    # annotations ------------------------------------------------------------------------
    def annotate(self, stage: StageRef, iterator: IterRef, annotation: str | IteratorAnnotation) -> Iterator:
        """Annotate ``iterator`` with any of the twelve annotations; returns it."""
        sid = self.stage_id(stage)
        iid = self.iter_id(sid, iterator)
        try:
            parsed = IteratorAnnotation.parse(annotation)
        except ValueError as error:
            it = self.loop_state.stages[sid].iters[iid]
            raise ScheduleError(
                f"cannot annotate iterator '{it.name}' of stage '{self.loop_state.stages[sid].name}': {error}"
            ) from None
        state = self._apply(AnnotationStep(sid, iid, parsed))
        return state.stages[sid].iters[iid]

    def parallel(self, stage: StageRef, iterator: IterRef) -> Iterator:
        return self.annotate(stage, iterator, IteratorAnnotation.PARALLEL)

    def vectorize(self, stage: StageRef, iterator: IterRef) -> Iterator:
        return self.annotate(stage, iterator, IteratorAnnotation.VECTORIZE)

    def unroll(self, stage: StageRef, iterator: IterRef, max_unroll: int | None = None) -> Iterator:
        """Unroll ``iterator``; with ``max_unroll``, leave it alone when its known extent is
        larger (TVM's behaviour)."""
        sid = self.stage_id(stage)
        it = self.loop_state.stages[sid].iters[self.iter_id(sid, iterator)]
        if max_unroll is not None and it.extent is not None and it.extent > max_unroll:
            return it
        return self.annotate(sid, iterator, IteratorAnnotation.UNROLL)

    def bind(self, stage: StageRef, iterator: IterRef, thread_name: str) -> Iterator:
        """Bind ``iterator`` to a GPU axis: vthread, blockIdx.x/y/z, threadIdx.x/y/z."""
        names = sorted(a.value for a in THREAD_BINDINGS)
        if thread_name not in names:
            sid = self.stage_id(stage)
            raise ScheduleError(
                f"cannot bind an iterator of stage '{self.loop_state.stages[sid].name}' to {thread_name!r}: "
                f"expected one of {', '.join(names)}"
            )
        return self.annotate(stage, iterator, thread_name)

    def pragma(self, stage: StageRef, iterator: IterRef, pragma_type: str) -> None:
        sid = self.stage_id(stage)
        self._apply(PragmaStep(sid, self.iter_id(sid, iterator), pragma_type))

    def storage_align(self, stage: StageRef, iterator: IterRef, factor: int, offset: int) -> None:
        sid = self.stage_id(stage)
        iid = self.iter_id(sid, iterator)
        self._apply(StorageAlignStep(sid, iid, _plain_int(factor), _plain_int(offset)))

    # compute location -------------------------------------------------------------------
    def compute_at(self, stage: StageRef, target_stage: StageRef, target_iter: IterRef) -> None:
        """Compute ``stage`` inside loop ``target_iter`` of its consumer ``target_stage``."""
        sid = self.stage_id(stage)
        tid = self.stage_id(target_stage)
        self._apply(ComputeAtStep(sid, tid, self.iter_id(tid, target_iter)))

    def compute_inline(self, stage: StageRef) -> None:
        self._apply(ComputeInlineStep(self.stage_id(stage)))

    def compute_root(self, stage: StageRef) -> None:
        self._apply(ComputeRootStep(self.stage_id(stage)))

    # stage-inserting steps --------------------------------------------------------------
    def cache_read(self, stage: StageRef, scope_name: str, reader_stages: Sequence[StageRef]) -> Tensor:
        """Insert stage ``T.<scope>`` copying ``stage``'s output, read by ``reader_stages``
        instead of it; returns the new tensor."""
        sid = self.stage_id(stage)
        readers = tuple(self.stage_id(r) for r in reader_stages)
        state = self._apply(CacheReadStep(sid, scope_name, readers))
        return state.stages[sid + 1].op.output

    def cache_write(self, stage: StageRef, scope_name: str) -> Tensor:
        """Insert stage ``T.<scope>`` computing ``stage``'s body; ``stage`` becomes a copy
        of it. Returns the new (cache) tensor."""
        sid = self.stage_id(stage)
        state = self._apply(CacheWriteStep(sid, scope_name))
        return state.stages[sid].op.output

    def rfactor(self, stage: StageRef, iterator: IterRef, factor_iter_id: int) -> Tensor:
        """Factor the reduction of ``stage`` over the reduction leaf ``iterator`` into a new
        stage ``T.rf`` (the leaf becomes its spatial axis ``factor_iter_id``); returns it."""
        sid = self.stage_id(stage)
        state = self._apply(RfactorStep(sid, self.iter_id(sid, iterator), _plain_int(factor_iter_id)))
        return state.stages[sid].op.output


def _plain_int(value: Any) -> Any:
    """A numpy integer as a Python int (records store ints); anything else unchanged, for
    the step's own check to judge."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    return value


# the state kinds functions accept ----------------------------------------------------------


def as_loop_state(dag: ComputeDAG, state: State | LoopState | None) -> LoopState:
    """The LoopState that ``state`` stands for: None is ``dag``'s naive initial state, a
    State handle its current ``loop_state``, a LoopState itself. TypeError for anything else."""
    if state is None:
        return initial_state(dag)
    if isinstance(state, LoopState):
        return state
    if isinstance(state, State):
        return state.loop_state
    raise TypeError(f"state must be a State, a LoopState or None, got {type(state).__name__}")


def check_state_of(dag: ComputeDAG, state: State | LoopState | None) -> None:
    """Raise ScheduleError unless ``state`` has a program for ``dag``'s tensors.

    Lowering trusts the state: a state scheduled on another declaration (say a larger
    matmul) would lower to loops that run past this DAG's buffers, and a sketch's unknown
    split lengths have no program. So: every tensor of ``dag`` has a stage of the same
    name, shape and dtype; a State handle's DAG is ``dag`` or declares the same workload;
    every split length is known.
    """
    loop_state = as_loop_state(dag, state)
    stages = {stage.name: stage for stage in loop_state.stages}
    for tensor in dag.tensors:
        stage = stages.get(tensor.op.name)  # T for the outputs T.v0, T.v1 of a tuple reduction
        if stage is None:
            raise ScheduleError(
                f"cannot lower: the state has no stage '{tensor.name}' for tensor '{tensor.name}' of the "
                f"DAG (its stages: {', '.join(stages)}); was it made from another DAG?"
            )
        shape = tuple(getattr(stage.op, "shape", ()))
        dtypes = getattr(stage.op, "dtypes", (getattr(stage.op, "dtype", None),))
        dtype = dtypes[tensor.value_index] if tensor.value_index < len(dtypes) else None
        if shape != tuple(tensor.shape) or dtype != tensor.dtype:
            raise ScheduleError(
                f"cannot lower: stage '{stage.name}' of the state is {dtype}{list(shape)} but the DAG's "
                f"tensor '{tensor.name}' is {tensor.dtype}{list(tensor.shape)}; the state was made from "
                "another DAG"
            )
    if isinstance(state, State) and state.dag is not dag and state.dag.workload_key() != dag.workload_key():
        raise ScheduleError(
            "cannot lower: the State was made from another DAG\n"
            f"--- its DAG\n{state.dag}\n--- this DAG\n{dag}"
        )
    if not loop_state.concrete:
        raise ScheduleError(
            "cannot lower a state with unknown split lengths (a sketch): fill every length first\n"
            f"{loop_state}"
        )
