"""``build_network``: a graph compiled into kernels over one planned arena, and run.

The graph executor of TVM (``relay.build`` + ``graph_executor``) in miniature, for the
Ansor flow of paper section 6: the network is cut into subgraphs (``tasks.partition_network``,
the same cut ``extract_tasks`` makes, so workload keys match the tuning log), and each
distinct subgraph (by workload key) is compiled once:

- with the best record of the log for its workload key on the target, when there is one
  (``ApplyHistoryBest.query``, replayed on the subgraph's DAG): "tuned";
- else with ``default_schedule(dag, target)``: "default". One warning says how many of
  the tasks have no record, so an untuned build is never silent.

Identical subgraphs (a ResNet stage's repeated blocks) share one kernel.

Layout rewrite (``layout_rewrite_option``, TVM's ``LayoutRewriteOption``; default
REWRITE_FOR_PRE_TRANSFORMED): a kernel whose schedule tiles a constant weight marked
layout-free (fusion marks the constant operands of convolutions, dense and matmuls) is
compiled from the DAG rewritten for its state (``ir.layout_rewrite``), and each of its
calls reads that weight transformed once here, at build time, into the order its tiles
read it: a new constant ``<value>#<kernel symbol>`` replaces the call's operand (the
original constant stays only while something else reads it).

The ``Network`` owns all its memory, allocated once at build time:

- ONE arena (``memory_plan``) holding the input buffers and every intermediate and output
  value; values with disjoint lifetimes share bytes;
- the constants (weights), kept as the C-contiguous arrays of the optimised graph;
- per kernel call a ``BoundCall``: the kernel's argument pointer array built once, so
  running the network is a loop of C calls, with no per-call checks or allocation.

A call checks the inputs (names, shapes, dtypes: ``reference.check_inputs``, InputError
naming the input and what the network takes), copies them into their buffers, runs every
kernel in order and returns the outputs. The outputs are read-only views into the arena,
overwritten by the next call; ``copy=True`` returns fresh arrays instead. A graph output
that is a graph input or a constant is copied into its own arena buffer each call.

``export.export_library(network, path)`` takes a ``Network`` (one shared library with a C
entry point; kept out of this module, so the executor needs no C toolchain). It reads:
``Network.calls``, the kernel calls in order (each a ``KernelCall``: the subgraph, whose
``inputs + outputs`` are the argument values, and its ``CompiledKernel`` with the symbol,
DAG, state and the compiled ``LLVMModule``, whose ``get_object()`` is the object file);
``Network.plan``, each arena value's byte offset (``plan.offsets``); ``Network.constants``,
the weights; ``Network.value_types``; ``Network.output_buffers``, the arena buffer of each
output, and ``Network.constant_outputs``, which of them are filled from a constant at the
start of a call.
"""

from __future__ import annotations

import os
import re
import statistics
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ansor_py.network.default_schedule import default_schedule
from ansor_py.network.graph import Graph, unique_name
from ansor_py.network.memory_plan import BufferRequest, MemoryPlan, format_bytes, lifetimes, plan_memory
from ansor_py.network.openmp_team import pin_team_workers
from ansor_py.network.reference import InputError, check_inputs
from ansor_py.network.subgraph import Subgraph
from ansor_py.network.tasks import partition_network
from ansor_py.network.types import GraphError, TensorType
from ansor_py.records import ApplyHistoryBest
from codegen.llvm import LLVMModule
from codegen.llvm import build as llvm_build
from codegen.llvm.errors import CodegenError
from codegen.llvm.kernel import BoundCall, Kernel
from codegen.target import Target, as_target
from ir import dtype as dt
from ir.compute_dag import ComputeDAG
from ir.layout_rewrite import LayoutRewriteOption, PlaceholderLayout, rewrite_dag
from ir.layout_rewrite import placeholder_layouts as find_layouts
from ir.loop_state.replay import replay_steps
from ir.loop_state.state import LoopState, ScheduleError
from ir.lower.lower import lower

RecordsLike = ApplyHistoryBest | str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None

#: suffix of the arena buffer a constant graph output is copied into
CONSTANT_OUTPUT_SUFFIX = "#output"


class NetworkBuildWarning(UserWarning):
    """Some tasks of a network have no tuning record and run the default schedule."""


@dataclass(frozen=True)
class CompiledKernel:
    """One distinct subgraph compiled: ``symbol`` is its exported C name, ``state`` the
    schedule it was compiled with (``tuned``: from a record, else the default schedule),
    ``dag`` the DAG it was compiled from: the subgraph's, or with ``layouts`` (placeholder
    name -> its new layout) the one rewritten for the state."""

    symbol: str
    workload_key: str
    dag: ComputeDAG
    state: LoopState
    tuned: bool
    module: LLVMModule
    kernel: Kernel
    layouts: Mapping[str, PlaceholderLayout] = field(default_factory=dict)


@dataclass(frozen=True)
class KernelCall:
    """One step of the network: ``kernel`` applied to the values ``arguments`` (the
    subgraph's inputs, then its outputs: the DAG's tensor order)."""

    subgraph: Subgraph
    kernel: CompiledKernel

    @property
    def arguments(self) -> tuple[str, ...]:
        return self.subgraph.inputs + self.subgraph.outputs


def build_network(
    graph: Graph,
    target: str | Target = "llvm",
    records: RecordsLike = None,
    layout: str = "NHWC",
    layout_rewrite_option: LayoutRewriteOption | None = None,
) -> Network:
    """Optimise, fuse and compile ``graph`` for ``target`` (module docstring).

    ``records``: tuning records as a log path, a list of paths or an ``ApplyHistoryBest``;
    None uses the ``ApplyHistoryBest`` entered with ``with`` around the call, if any.
    ``layout``: the layout convolutions are converted to (``passes.optimize``).
    ``layout_rewrite_option``: None is the network default, REWRITE_FOR_PRE_TRANSFORMED
    (weights transformed once here); NO_REWRITE keeps every constant's layout
    (INSERT_TRANSFORM_STAGE is treated as NO_REWRITE: constants need no in-kernel stage).
    """
    optimized, subgraphs = partition_network(graph, layout)
    return _assemble(
        subgraphs,
        optimized.inputs,
        optimized.outputs,
        optimized.constants,
        target,
        records,
        graph.name,
        layout_rewrite_option,
    )


def build_subgraphs(
    subgraphs: Sequence[Subgraph],
    inputs: Mapping[str, TensorType],
    outputs: Sequence[str],
    constants: Mapping[str, np.ndarray],
    target: str | Target = "llvm",
    records: RecordsLike = None,
    name: str = "network",
    layout_rewrite_option: LayoutRewriteOption | None = None,
) -> Network:
    """Compile ``subgraphs`` (in execution order) into a Network taking ``inputs`` and
    returning ``outputs``; ``constants`` are the values no subgraph computes
    (``layout_rewrite_option`` as in ``build_network``)."""
    return _assemble(subgraphs, inputs, outputs, constants, target, records, name, layout_rewrite_option)


def _assemble(
    subgraphs: Sequence[Subgraph],
    inputs: Mapping[str, TensorType],
    outputs: Sequence[str],
    constants: Mapping[str, np.ndarray],
    target: str | Target,
    records: RecordsLike,
    name: str,
    layout_rewrite_option: LayoutRewriteOption | None = None,
) -> Network:
    """The body of both public builders (each calls it directly: the warning's stack
    level points at their caller)."""
    parsed = as_target(target)
    if parsed.kind != "llvm":
        raise CodegenError(f"build_network compiles for 'llvm' targets only; target '{parsed}' is not one")
    history = _as_history(records)
    option = LayoutRewriteOption.get_target_default(network=True)
    if layout_rewrite_option is not None:
        option = LayoutRewriteOption(layout_rewrite_option)
    rewritable = _rewritable(subgraphs, constants) if option is option.REWRITE_FOR_PRE_TRANSFORMED else {}
    kernels, untuned = _compile_kernels(subgraphs, parsed, history, rewritable)
    if untuned:
        shown = "; ".join(untuned[:5]) + ("; ..." if len(untuned) > 5 else "")
        warnings.warn(
            f"network '{name}': {len(untuned)} of {len(kernels)} tasks have no tuning record for "
            f"target '{parsed}' and use the default schedule: {shown}",
            NetworkBuildWarning,
            stacklevel=3,
        )
    calls, constants = _rewrite_constants(subgraphs, kernels, constants, outputs)
    return Network(name, parsed, inputs, outputs, constants, calls)


def _rewritable(subgraphs: Sequence[Subgraph], constants: Mapping[str, np.ndarray]) -> dict[str, set[str]]:
    """Per workload key, the placeholders whose value is a constant in every subgraph of
    that key (only those can be transformed ahead of time)."""
    allowed: dict[str, set[str]] = {}
    for sg in subgraphs:
        names = {
            t.name for t, value in zip(sg.dag.placeholders, sg.inputs, strict=True) if value in constants
        }
        key = sg.workload_key
        allowed[key] = allowed[key] & names if key in allowed else names
    return allowed


def _rewrite_constants(
    subgraphs: Sequence[Subgraph],
    kernels: Mapping[str, CompiledKernel],
    constants: Mapping[str, np.ndarray],
    outputs: Sequence[str],
) -> tuple[list[KernelCall], dict[str, np.ndarray]]:
    """The calls, each reading its rewritten weights (module docstring), and the constants
    then needed: the transformed ones, and the originals something still reads."""
    calls: list[KernelCall] = []
    result = dict(constants)
    for sg in subgraphs:
        kernel = kernels[sg.workload_key]
        if not kernel.layouts:
            calls.append(KernelCall(sg, kernel))
            continue
        inputs = list(sg.inputs)
        for position, tensor in enumerate(sg.dag.placeholders):
            layout = kernel.layouts.get(tensor.name)
            if layout is not None:
                value = sg.inputs[position]
                inputs[position] = f"{value}#{kernel.symbol}"
                if inputs[position] not in result:
                    result[inputs[position]] = layout.transform(np.asarray(constants[value]))
        calls.append(KernelCall(replace(sg, inputs=tuple(inputs), dag=kernel.dag), kernel))
    read = {v for call in calls for v in call.arguments} | set(outputs)
    return calls, {name: array for name, array in result.items() if name in read}


def _as_history(records: RecordsLike) -> ApplyHistoryBest | None:
    if records is None:
        return ApplyHistoryBest.current()
    if isinstance(records, ApplyHistoryBest):
        return records
    return ApplyHistoryBest(records)


def _compile_kernels(
    subgraphs: Sequence[Subgraph],
    target: Target,
    history: ApplyHistoryBest | None,
    rewritable: Mapping[str, set[str]],
) -> tuple[dict[str, CompiledKernel], list[str]]:
    """One kernel per distinct workload key, with the record's state or the default one,
    compiled from the DAG rewritten for the state's layouts of the placeholders
    ``rewritable`` names for its key; and the tasks that had no (usable) record."""
    kernels: dict[str, CompiledKernel] = {}
    untuned: list[str] = []
    for subgraph in subgraphs:
        key = subgraph.workload_key
        if key in kernels:
            continue
        state, problem = _recorded_state(history, target, subgraph)
        tuned = state is not None
        if state is None:
            untuned.append(f"{subgraph.name} ({subgraph.desc}){problem}")
            state = default_schedule(subgraph.dag, target)
        symbol = unique_name(_c_identifier(subgraph.name), (k.symbol for k in kernels.values()))
        dag, layouts = subgraph.dag, {}
        if rewritable.get(key):
            found = find_layouts(subgraph.dag, state)
            layouts = {name: layout for name, layout in found.items() if name in rewritable[key]}
            if layouts:
                dag = rewrite_dag(subgraph.dag, layouts)
                state = replay_steps(dag, state.transform_steps)
        module = llvm_build(lower(dag, state, name=symbol), target)
        kernels[key] = CompiledKernel(symbol, key, dag, state, tuned, module, module.get_kernel(), layouts)
    return kernels, untuned


def _recorded_state(
    history: ApplyHistoryBest | None, target: Target, subgraph: Subgraph
) -> tuple[LoopState | None, str]:
    """The best recorded state of the subgraph, or None and why a record was not used."""
    if history is None:
        return None, ""
    try:
        return history.query(target, subgraph.workload_key, subgraph.dag), ""
    except ScheduleError as error:
        return None, f" [its record does not replay: {error}]"


def _c_identifier(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return text if re.match(r"[A-Za-z_]", text) else f"k_{text}"


class Network:
    """A compiled network over its preallocated memory (module docstring).

    ``net.run(**inputs)`` / ``net(*arrays)`` (inputs in ``input_types`` order) return the
    outputs in graph order: read-only views into the arena, overwritten by the next call,
    or fresh arrays with ``copy=True``. ``run_inputs(mapping)`` takes the inputs as a dict
    (also for an input named ``copy``). A network runs one call at a time: its buffers are
    shared by all calls, so threads need a network each.
    """

    def __init__(
        self,
        name: str,
        target: Target,
        inputs: Mapping[str, TensorType],
        outputs: Sequence[str],
        constants: Mapping[str, np.ndarray],
        calls: Sequence[KernelCall],
    ):
        self.name = name
        self.target = target
        self.input_types: dict[str, TensorType] = dict(inputs)
        self.output_names: tuple[str, ...] = tuple(outputs)
        self.constants: dict[str, np.ndarray] = {k: np.asarray(v, order="C") for k, v in constants.items()}
        self.calls: tuple[KernelCall, ...] = tuple(calls)
        self.value_types = _value_types(self.input_types, self.constants, self.calls)
        self._interface = Graph(self.input_types, (), (), {}, name)  # what check_inputs reads

        # constant outputs get an arena buffer of their own, filled at the start of a call
        self.constant_outputs: dict[str, str] = {
            out + CONSTANT_OUTPUT_SUFFIX: out for out in dict.fromkeys(outputs) if out in self.constants
        }
        self.output_buffers: tuple[str, ...] = tuple(
            out + CONSTANT_OUTPUT_SUFFIX if out in self.constants else out for out in outputs
        )
        self.plan = self._plan_memory()
        self.arena = np.empty(self.plan.arena_bytes + self.plan.alignment, dtype=np.uint8)
        start = -self.arena.ctypes.data % self.plan.alignment
        self.buffers: dict[str, np.ndarray] = {}
        for request in self.plan.requests:
            ttype = self.value_types[self.constant_outputs.get(request.name, request.name)]
            begin = start + self.plan.offsets[request.name]
            raw = self.arena[begin : begin + ttype.nbytes]
            self.buffers[request.name] = raw.view(dt.to_numpy(ttype.dtype)).reshape(ttype.shape)

        self._inputs = [
            (name, ttype.shape, np.dtype(dt.to_numpy(ttype.dtype)), self.buffers[name])
            for name, ttype in self.input_types.items()
        ]
        self._fills = [
            (self.buffers[buf], self.constants[value]) for buf, value in self.constant_outputs.items()
        ]
        self.bound_calls: tuple[BoundCall, ...] = tuple(
            call.kernel.kernel.bind([self.array_of(v) for v in call.arguments]) for call in self.calls
        )
        self._outputs = [self.buffers[buf].view() for buf in self.output_buffers]
        for view in self._outputs:
            view.flags.writeable = False
        self._team_pinned = False

    # --- building ----------------------------------------------------------------------

    def _plan_memory(self) -> MemoryPlan:
        steps = [(call.subgraph.inputs, call.subgraph.outputs) for call in self.calls]
        computed = [buf for buf in self.output_buffers if buf not in self.constant_outputs]
        spans = lifetimes(steps, self.input_types, computed, unplanned=self.constants)
        end = len(steps) + 1
        spans.update({buf: (0, end) for buf in self.constant_outputs})
        requests = [
            BufferRequest(
                value, self.value_types[self.constant_outputs.get(value, value)].nbytes, first, last
            )
            for value, (first, last) in spans.items()
        ]
        return plan_memory(requests)

    def array_of(self, value: str) -> np.ndarray:
        """The array holding ``value``: a constant, or its view into the arena."""
        if value in self.constants:
            return self.constants[value]
        return self.buffers[value]

    @property
    def kernels(self) -> list[CompiledKernel]:
        """The distinct compiled kernels, in order of first call."""
        return list({id(call.kernel): call.kernel for call in self.calls}.values())

    @property
    def peak_memory_bytes(self) -> int:
        """Bytes of the arena (inputs, intermediates and outputs; constants not included)."""
        return self.plan.arena_bytes

    # --- running ----------------------------------------------------------------------

    def run(self, *, copy: bool = False, **inputs: np.ndarray) -> list[np.ndarray]:
        """The outputs for ``inputs`` given by name (see the class docstring)."""
        return self.run_inputs(inputs, copy=copy)

    def __call__(self, *arrays: np.ndarray, copy: bool = False) -> list[np.ndarray]:
        """The outputs for ``arrays``, one per input in ``input_types`` order."""
        if len(arrays) != len(self._inputs):
            raise InputError(
                f"network '{self.name}' takes {len(self._inputs)} inputs ({', '.join(self.input_types)}), "
                f"got {len(arrays)}"
            )
        return self.run_inputs(dict(zip(self.input_types, arrays, strict=True)), copy=copy)

    def run_inputs(self, inputs: Mapping[str, np.ndarray], copy: bool = False) -> list[np.ndarray]:
        """``run`` with the inputs as a mapping. The first run in a process pins the
        OpenMP team's worker threads (``openmp_team.pin_team_workers``)."""
        self._load_inputs(inputs)
        if not self._team_pinned:
            pin_team_workers()
            self._team_pinned = True
        for call in self.bound_calls:
            call()
        if copy:
            return [out.copy() for out in self._outputs]
        return list(self._outputs)

    def _load_inputs(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Copy the inputs into their buffers after the cheap exact check; anything it
        does not accept goes through ``check_inputs`` (which names the problem)."""
        exact = len(inputs) == len(self._inputs)
        if exact:
            for name, shape, dtype, _ in self._inputs:
                array = inputs.get(name)
                if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
                    exact = False
                    break
        source = inputs if exact else check_inputs(self._interface, inputs)
        for name, _, _, buffer in self._inputs:
            np.copyto(buffer, source[name])
        for buffer, constant in self._fills:
            np.copyto(buffer, constant)

    # --- reports ---------------------------------------------------------------------

    def summary(self) -> str:
        """A table of the kernel calls (subgraph, task, tuned or default, buffer sizes)
        and the memory totals."""
        rows = [("#", "subgraph", "task", "schedule", "kernel", "reads", "writes")]
        for index, call in enumerate(self.calls):
            sg = call.subgraph
            rows.append(
                (
                    str(index),
                    sg.name,
                    sg.desc,
                    "tuned" if call.kernel.tuned else "default",
                    call.kernel.symbol,
                    format_bytes(sum(self.value_types[v].nbytes for v in sg.inputs)),
                    format_bytes(sum(self.value_types[v].nbytes for v in sg.outputs)),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        tuned = sum(k.tuned for k in self.kernels)
        saved = 1 - self.plan.arena_bytes / self.plan.total_bytes if self.plan.total_bytes else 0.0
        lines += [
            f"network '{self.name}' on {self.target}: {len(self.calls)} kernel calls, "
            f"{len(self.kernels)} distinct kernels ({tuned} tuned, {len(self.kernels) - tuned} default)",
            f"arena {format_bytes(self.plan.arena_bytes)} for {len(self.plan.requests)} buffers "
            f"(one buffer each: {format_bytes(self.plan.total_bytes)}, {saved:.0%} saved); "
            f"constants {format_bytes(sum(a.nbytes for a in self.constants.values()))}",
        ]
        return "\n".join(lines)

    def profile(
        self, inputs: Mapping[str, np.ndarray] | None = None, repeat: int = 20, seed: int = 0
    ) -> ProfileReport:
        """Median time of each kernel call and of whole calls (``ProfileReport``)."""
        if repeat < 1:
            raise ValueError(f"profile: repeat must be >= 1, got {repeat}")
        if inputs is None:
            inputs = random_inputs(self.input_types, seed)
        self.run_inputs(inputs)  # warm-up; checks the inputs once
        whole: list[float] = []
        per_call: list[list[float]] = [[] for _ in self.bound_calls]
        for _ in range(repeat):  # interleaved, so both see the same machine load
            start = time.perf_counter()
            self.run_inputs(inputs)
            whole.append(time.perf_counter() - start)
            for times, call in zip(per_call, self.bound_calls, strict=True):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
        kernels = tuple(
            (c.subgraph.name, c.kernel.symbol, statistics.median(t))
            for c, t in zip(self.calls, per_call, strict=True)
        )
        kernel_sum = statistics.median(sum(run) for run in zip(*per_call, strict=True)) if per_call else 0.0
        return ProfileReport(self.name, kernels, kernel_sum, statistics.median(whole), repeat)

    def export_library(
        self, path: str | os.PathLike[str], target: str | Target | None = None, weights: str = "embed"
    ) -> Path:
        """Write this network as ONE shared object with a C entry point
        (``ansor_py.network.export.export_library``: weights embedded, or ``weights="file"``
        beside it; ``target`` defaults to the network's, e.g. an AArch64 board's)."""
        from ansor_py.network.export import export_library  # the C toolchain only when asked

        return export_library(self, Path(path), target=target, weights=weights)

    def __repr__(self) -> str:
        return (
            f"Network({self.name!r}, {len(self.calls)} calls, {len(self.kernels)} kernels, "
            f"arena {self.plan.arena_bytes} bytes)"
        )


@dataclass(frozen=True)
class ProfileReport:
    """Median seconds of each kernel call (``kernels``: subgraph, symbol, seconds), of the
    kernel calls of one repeat together (``kernel_sum``: the median of the per-repeat sums,
    the same statistic as the next) and of whole network calls (``network``: input copies,
    kernels and the executor's loop). ``overhead``: the fraction of a network call not
    spent in kernels."""

    name: str
    kernels: tuple[tuple[str, str, float], ...]
    kernel_sum: float
    network: float
    repeat: int

    @property
    def overhead(self) -> float:
        return (self.network - self.kernel_sum) / self.network if self.network > 0 else 0.0

    def __str__(self) -> str:
        width = max((len(name) for name, _, _ in self.kernels), default=8)
        lines = [f"profile of '{self.name}' (median of {self.repeat} runs)"]
        for name, symbol, seconds in self.kernels:
            share = seconds / self.network if self.network > 0 else 0.0
            lines.append(f"  {name.ljust(width)}  {seconds * 1e3:10.4f} ms  {share:6.1%}  {symbol}")
        lines.append(f"  {'sum of kernels'.ljust(width)}  {self.kernel_sum * 1e3:10.4f} ms")
        lines.append(
            f"  {'whole network'.ljust(width)}  {self.network * 1e3:10.4f} ms  overhead {self.overhead:.1%}"
        )
        return "\n".join(lines)


def random_inputs(types: Mapping[str, TensorType], seed: int = 0) -> dict[str, np.ndarray]:
    """Random arrays of the given types: floats in [-1, 1), integers in [0, 8), booleans."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for name, ttype in types.items():
        dtype = np.dtype(dt.to_numpy(ttype.dtype))
        if dtype.kind == "f":
            arrays[name] = rng.uniform(-1, 1, ttype.shape).astype(dtype)
        elif dtype.kind == "b":
            arrays[name] = rng.random(ttype.shape) < 0.5
        else:
            arrays[name] = rng.integers(0, 8, ttype.shape).astype(dtype)
    return arrays


def _value_types(
    inputs: Mapping[str, TensorType], constants: Mapping[str, np.ndarray], calls: Sequence[KernelCall]
) -> dict[str, TensorType]:
    """Every value's type, from the inputs, the constants and the DAG tensors of the calls
    (which must agree where they meet)."""
    types: dict[str, TensorType] = dict(inputs)
    types.update({name: TensorType.of(array) for name, array in constants.items()})
    for call in calls:
        if len(call.arguments) != len(call.subgraph.dag.tensors):
            raise GraphError(
                f"subgraph {call.subgraph.name!r} has {len(call.arguments)} inputs and outputs "
                f"but its DAG has {len(call.subgraph.dag.tensors)} tensors"
            )
        for value, tensor in zip(call.arguments, call.subgraph.dag.tensors, strict=True):
            ttype = TensorType(tuple(tensor.shape), tensor.dtype)
            known = types.setdefault(value, ttype)
            if known != ttype:
                raise GraphError(
                    f"subgraph {call.subgraph.name!r}: value {value!r} is {known} in the network "
                    f"but its DAG tensor '{tensor.name}' is {ttype}"
                )
    return types
