"""``explain(dag, state)``: one kernel shown at every stage, from declaration to a timed run.

Ansor turns a compute DAG and a loop state into a program in a fixed pipeline (paper
section 4.1: a state is lowered and compiled, and every candidate is measured); a reader who
wants to know why a kernel is fast or wrong looks at each step of it. ``explain`` prints,
each under a numbered header, in pipeline order:

1. the compute DAG, as ``print(dag)`` shows it;
2. the loop tree of the state, with extents from bound inference (TVM's
   ``dag.infer_bound_from_state(state)``);
3. the state's step history as the Python schedule a user would write
   (``ir.loop_state.python_printer``, TVM's ``print_python_code_from_state``);
4. the lowered program after each pass of ``ir.lower.lower`` (``PASSES``, in order);
5. the LLVM IR as emitted and after the O3 pipeline;
6. the assembly of the machine code;
7. a run: random inputs (never zeros), the outputs checked against the numpy reference
   (``ir.reference.evaluate``) with the tolerances every runner uses, and the median time of
   several repeats in seconds and GFLOP/s (the DAG's flop count).

Stages 5 to 7 belong to one compiled module: the last lowered program is the one
compiled, the IR and assembly are the kernel's own (``Kernel.llvm_ir``,
``Kernel.assembly``), and that kernel is the one run. For a target this process cannot
run (AArch64 here), ``run=False`` shows stages 1 to 6, the assembly being that of the
exported object. ``explain_record`` explains the best record of a tuning log.

The module is ``explainer``, not ``explain``: importing a submodule binds its name on the
package, which would hide the function ``ansor_py.explain`` that the package exports.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from ansor_py.measure.local import output_tolerances
from ansor_py.measure.run_worker import compare_output
from ansor_py.records import ApplyHistoryBest, PathLike, load_best_record
from ansor_py.search_task import SearchTask
from ansor_py.timing import time_repeats
from codegen.llvm import CodegenError, Kernel
from codegen.llvm import build as llvm_build
from codegen.target import Target, as_target
from ir import dtype as dt
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State, as_loop_state, check_state_of
from ir.loop_state.python_printer import state_to_python
from ir.loop_state.replay import replay_steps
from ir.loop_state.state import LoopState
from ir.lower.bound import BoundCache, infer_bound_from_state
from ir.lower.lower import PASSES, lower
from ir.reference import evaluate, random_inputs


@dataclass(frozen=True)
class RunReport:
    """A verified, timed run of a kernel.

    ``seconds``: the median of ``repeats`` (each the mean of several calls); ``flop``: the
    DAG's count (``ComputeDAG.flop_ct``), ``gflops`` = flop / seconds / 1e9; ``max_error``:
    the largest ``|kernel - reference|`` over all outputs (inf where one is NaN);
    ``mismatch``: None when every output is within the runners' tolerance
    (``ansor_py.measure.local.output_tolerances``), else the first failing output's report.
    """

    seconds: float
    repeats: tuple[float, ...]
    flop: float
    gflops: float
    max_error: float
    mismatch: str | None
    inputs: str

    @property
    def verified(self) -> bool:
        return self.mismatch is None

    def __str__(self) -> str:
        verdict = "OK" if self.mismatch is None else f"WRONG: {self.mismatch}"
        repeats = ", ".join(f"{s * 1e6:.1f}" for s in self.repeats)
        return (
            f"inputs: {self.inputs}\n"
            f"check against the numpy reference: max |error| {self.max_error:.3g}, {verdict}\n"
            f"time: median {self.seconds * 1e6:.1f} us of {len(self.repeats)} repeats ({repeats} us)\n"
            f"throughput: {self.gflops:.2f} GFLOP/s ({self.flop:.0f} floating-point operations a run)\n"
        )


@dataclass(frozen=True)
class Explanation:
    """The text of every stage of one kernel (``explain``), and its run (None: not run).

    ``lowered`` maps each pass of ``ir.lower.PASSES`` to the program right after it, in
    order; ``assembly_of`` says whose assembly ``assembly`` is ("in-process kernel" or
    "exported object").
    """

    kernel_name: str
    target: str
    dag: str
    loop_tree: str
    python: str
    lowered: dict[str, str]
    llvm_ir_unoptimized: str
    llvm_ir: str
    assembly: str
    assembly_of: str
    run: RunReport | None

    @property
    def seconds(self) -> float | None:
        return None if self.run is None else self.run.seconds

    @property
    def max_error(self) -> float | None:
        return None if self.run is None else self.run.max_error

    def sections(self) -> list[tuple[str, str]]:
        """(header, text) of each stage, in pipeline order: what ``explain`` prints."""
        sections = [
            ("1. compute DAG", self.dag),
            ("2. loop tree (extents from bound inference)", self.loop_tree),
            ("3. schedule as Python steps", self.python),
        ]
        for number, (pass_name, program) in enumerate(self.lowered.items(), start=1):
            sections.append((f"4.{number} lowered program after pass '{pass_name}'", program))
        sections += [
            ("5.1 LLVM IR as emitted", self.llvm_ir_unoptimized),
            ("5.2 LLVM IR after the O3 pipeline (what is compiled)", self.llvm_ir),
            (f"6. assembly ({self.assembly_of}, target {self.target})", self.assembly),
            ("7. run", "not run (run=False)" if self.run is None else str(self.run)),
        ]
        return sections

    def __str__(self) -> str:
        return "".join(_format_section(header, text) for header, text in self.sections())


def explain(
    task_or_dag: SearchTask | ComputeDAG,
    state: State | LoopState | None = None,
    target: str | Target | None = None,
    *,
    run: bool = True,
    out: TextIO | None = None,
    name: str = "default_function",
    repeat: int = 5,
    min_repeat_ms: float = 20.0,
    seed: int = 0,
) -> Explanation:
    """Print every stage of the kernel of ``state`` (None: the naive schedule) to ``out``
    (default ``sys.stdout``; each stage as it is made) and return them.

    ``task_or_dag``: a ``SearchTask`` (its DAG, its target when ``target`` is None, and its
    reference inputs and outputs, ``task.reference()``) or a ``ComputeDAG`` (target
    default ``llvm``; inputs ``ir.reference.random_inputs(dag, seed)``). The kernel is
    compiled under ``name``. ``run``: verify and time it (``repeat`` repeats, each at least
    ``min_repeat_ms``); the target must then run in this process.

    Raises TypeError for a ``task_or_dag`` or ``state`` of the wrong type, ScheduleError
    for a state of another DAG, ValueError for a target that does not parse, CodegenError
    for a non-LLVM target or ``run=True`` with a target this process cannot run; all before
    anything is printed.
    """
    dag, task = _dag_and_task(task_or_dag)
    parsed = _check_target(target if target is not None else (task.target if task else "llvm"), run)
    check_state_of(dag, state)
    loop_state = as_loop_state(dag, state)
    if repeat < 1:
        raise ValueError(f"explain(): repeat {repeat} must be >= 1")
    out = sys.stdout if out is None else out

    def show(header: str, text: str) -> str:
        out.write(_format_section(header, text))
        out.flush()
        return text

    cache = BoundCache()
    dag_text = show("1. compute DAG", str(dag))
    loop_tree = show(
        "2. loop tree (extents from bound inference)", str(infer_bound_from_state(dag, loop_state, cache))
    )
    python = show("3. schedule as Python steps", state_to_python(dag, loop_state))
    lowered: dict[str, str] = {}
    for number, pass_name in enumerate(PASSES, start=1):
        func = lower(dag, loop_state, name=name, stop_after=pass_name, cache=cache)
        lowered[pass_name] = show(f"4.{number} lowered program after pass '{pass_name}'", str(func))

    module = llvm_build(func, parsed)  # the program of the last pass, as printed above
    ir_emitted = show("5.1 LLVM IR as emitted", module.get_ir(optimized=False))
    kernel = module.get_kernel() if run else None
    ir_optimized = show(
        "5.2 LLVM IR after the O3 pipeline (what is compiled)",
        kernel.llvm_ir if kernel is not None else module.get_ir(),
    )
    if kernel is not None:
        assembly_of, assembly = "in-process kernel", kernel.assembly
    else:
        assembly_of, assembly = "exported object", module.get_asm()
    show(f"6. assembly ({assembly_of}, target {parsed})", assembly)

    report = None
    if kernel is not None:
        report = run_kernel(kernel, dag, task, repeat=repeat, min_repeat_ms=min_repeat_ms, seed=seed)
    show("7. run", "not run (run=False)" if report is None else str(report))
    return Explanation(
        kernel_name=name,
        target=str(parsed),
        dag=dag_text,
        loop_tree=loop_tree,
        python=python,
        lowered=lowered,
        llvm_ir_unoptimized=ir_emitted,
        llvm_ir=ir_optimized,
        assembly=assembly,
        assembly_of=assembly_of,
        run=report,
    )


def explain_record(
    log: PathLike,
    workload_key: str | None = None,
    target: str | Target | None = None,
    *,
    out: TextIO | None = None,
    **kwargs: Any,
) -> Explanation:
    """``explain`` the best error-free record of ``log`` (``load_best_record``): of
    ``workload_key`` and of ``target``'s class when given (``workload_key`` may be left out
    for a log of one workload on one target class). The kernel is built for ``target``, by
    default the record's own. ``kwargs`` go to ``explain`` (``run``, ``out``, ...).

    Raises ValueError when the log has no such record or, without ``workload_key``, holds
    several workloads; WorkloadError when the record's workload is not registered here.
    """
    if workload_key is None:
        groups = len(ApplyHistoryBest(log))
        if groups > 1:
            raise ValueError(
                f"explain_record(): {log} holds the best records of {groups} (workload, target class) "
                "pairs; name one with workload_key (the first field of a record's 'i' entry)"
            )
    inp, res = load_best_record(log, workload_key, target)
    if inp is None or res is None:
        which = "" if workload_key is None else f" of workload {workload_key}"
        where = "" if target is None else f" for target '{as_target(target)}'"
        raise ValueError(f"explain_record(): no error-free record{which}{where} in {log}")
    task = inp.task
    state = replay_steps(task.compute_dag, inp.state.transform_steps)
    _check_target(target if target is not None else task.target, bool(kwargs.get("run", True)))
    out = sys.stdout if out is None else out
    out.write(
        f"best record of {log}: workload {task.workload_key}, target {task.target}, "
        f"measured {res.median_cost * 1e6:.1f} us\n\n"
    )
    return explain(task, state, target, out=out, **kwargs)


def run_kernel(
    kernel: Kernel,
    dag: ComputeDAG,
    task: SearchTask | None = None,
    *,
    repeat: int = 5,
    min_repeat_ms: float = 20.0,
    seed: int = 0,
) -> RunReport:
    """Run ``kernel`` (compiled from ``dag``) once on reference inputs, compare each output
    with the numpy reference, then time it: the median of ``repeat`` repeats.

    Inputs: ``task.reference()`` for a task, else ``random_inputs(dag, seed)`` with the
    reference evaluated here. Outputs start as NaN (floats) or the dtype's largest value,
    so an element the kernel never writes shows as an error."""
    if task is not None:
        inputs, expected = task.reference()
        described = f"the task's reference inputs ({task.workload_key})"
    else:
        inputs = random_inputs(dag, seed=seed)
        expected = evaluate(dag, inputs)
        described = f"random, floats uniform in [-1, 1), seed {seed}"
    outputs = [_unwritten(t.shape, t.dtype) for t in dag.outputs]
    arrays = [np.ascontiguousarray(a) for a in inputs] + outputs
    kernel(*arrays)

    max_error, mismatch = 0.0, None
    for tensor, got, want in zip(dag.outputs, outputs, expected, strict=True):
        error = np.abs(got.astype(np.float64) - want.astype(np.float64))
        worst = float(np.nanmax(np.where(np.isnan(error), np.inf, error))) if error.size else 0.0
        max_error = max(max_error, worst)
        if mismatch is None:
            mismatch = compare_output(tensor.name, got, want, *output_tolerances(dag, tensor.dtype))

    repeats = time_repeats(kernel.bind(arrays), number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)
    seconds = float(np.median(repeats))
    return RunReport(
        seconds=seconds,
        repeats=tuple(repeats),
        flop=dag.flop_ct,
        gflops=dag.flop_ct / seconds / 1e9,
        max_error=max_error,
        mismatch=mismatch,
        inputs=described,
    )


def _dag_and_task(task_or_dag: object) -> tuple[ComputeDAG, SearchTask | None]:
    if isinstance(task_or_dag, SearchTask):
        return task_or_dag.compute_dag, task_or_dag
    if isinstance(task_or_dag, ComputeDAG):
        return task_or_dag, None
    raise TypeError(f"explain() takes a SearchTask or a ComputeDAG, got {type(task_or_dag).__name__}")


def _check_target(target: str | Target, run: bool) -> Target:
    """The parsed target: an LLVM one, and one this process runs when ``run``."""
    parsed = as_target(target)
    if parsed.kind != "llvm":
        raise CodegenError(
            f"explain(): target '{parsed}' is not an LLVM target; explain shows the LLVM IR and "
            "assembly of CPU kernels (kind 'llvm')"
        )
    if run and not parsed.is_host:
        raise CodegenError(
            f"explain(): target '{parsed}' cannot run in this process (its triple is not this "
            "machine's); pass run=False to see its code without running it"
        )
    missing = parsed.missing_host_features() if run else []
    if missing:
        raise CodegenError(
            f"explain(): target '{parsed}' uses CPU features this machine lacks ({', '.join(missing)}); "
            "pass run=False to see its code without running it"
        )
    return parsed


def _unwritten(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """An output array holding a value no correct kernel leaves there by accident."""
    np_dtype = dt.to_numpy(dtype)
    if dt.is_float(dtype):
        return np.full(shape, np.nan, np_dtype)
    if dt.is_bool(dtype):
        return np.ones(shape, np_dtype)
    return np.full(shape, np.iinfo(np_dtype).max, np_dtype)


def _format_section(header: str, text: str) -> str:
    rule = "=" * max(8, min(88, len(header) + 6))
    return f"{rule}\n== {header}\n{rule}\n{text.rstrip()}\n\n"
