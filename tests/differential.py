"""Differential testing of schedules: the one helper every end-to-end test goes through.

As loopy's ``auto_test_vs_ref`` and tinygrad's ``test_kernel_opts`` do, a
transform is only trusted once a program it produced has run and matched numpy. For a DAG
and a schedule (a function applying steps through the ``State`` API),
``check_schedule``

1. evaluates the numpy reference (``ir.reference.evaluate``) on random inputs (never all
   zeros; integers for integer dtypes);
2. builds and runs the naive program (no steps) and compares it with the reference (once
   per workload and seed: the result is cached by workload key);
3. applies the schedule, lowers and builds it, runs it and compares it with the reference;
4. replays ``state.transform_steps`` on the DAG's initial state, and round-trips the step
   records through JSON (``to_record`` / ``from_record``): both must give the same loop
   tree and the same lowered program, and a kernel built from each must return exactly the
   scheduled kernel's result.

Kernels must not write their inputs (checked) and must write every output element (the
output arrays start filled with a sentinel, so a skipped element shows as a mismatch).
Float outputs are compared with ``rtol`` and ``atol = rtol * max|reference|``; integer and
bool outputs exactly. A failure message carries the loop tree, the step script, the lowered
program and, for small workloads, whether the pure-Python interpreter
(``ir.lower.interpreter``) agrees with the reference: that separates a lowering bug (the
program is wrong) from a code generation bug (the program is right, the machine code not).

The shared test workloads live in ``tests/ir/workloads.py`` (declared once);
this module puts that folder on ``sys.path`` and re-exports the module as ``workloads``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codegen.build import build
from codegen.llvm import Kernel
from ir import dtype as dt
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State, get_init_state
from ir.loop_state.replay import replay_steps, state_from_record, state_to_record
from ir.lower import interpreter
from ir.lower.lower import lower
from ir.reference import evaluate, random_inputs
from ir.te import PlaceholderOp, Tensor
from ir.tir import For, ForKind, PrimFunc, walk

_IR_TESTS = str(Path(__file__).resolve().parent / "ir")
if _IR_TESTS not in sys.path:
    sys.path.insert(0, _IR_TESTS)

import workloads  # noqa: E402  (tests/ir/workloads.py, found through the path set above)

#: a schedule: applies steps to the State handle in place (its return value is ignored)
ScheduleFn = Callable[[State], object]

#: what an output element holds before the kernel runs; a skipped element keeps it
FLOAT_SENTINEL = 12345.0
INT_SENTINEL = 77
#: the interpreter diagnosis runs only for workloads this small (it is pure Python)
INTERPRETER_FLOP_LIMIT = 300_000

#: what a failing lowering or interpreter run may raise while a failure is being described
#: (ScheduleError and CodegenError are ValueErrors, InterpreterError a RuntimeError)
DIAGNOSIS_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError)

#: workload keys (with seed) whose naive kernel already matched the reference
_NAIVE_CHECKED: set[tuple[str, int]] = set()


@dataclass
class Checked:
    """What ``check_schedule`` verified: the scheduled state, its lowered program, and the
    outputs it produced (in ``dag.outputs`` order)."""

    state: State
    func: PrimFunc
    outputs: list[np.ndarray]

    def __repr__(self) -> str:
        return f"Checked({self.func.name}: {len(self.state.transform_steps)} steps)\n{self.state}"

    def loops(self, kind: ForKind) -> list[For]:
        """The loops of ``kind`` in the lowered program, outermost first."""
        return [s for s in walk(self.func.body) if isinstance(s, For) and s.kind is kind]

    def count(self, kind: ForKind) -> int:
        """How many loops of ``kind`` the lowered program has."""
        return len(self.loops(kind))


def check_schedule(
    dag: ComputeDAG,
    schedule_fn: ScheduleFn | None = None,
    rtol: float = 1e-4,
    seed: int = 0,
) -> Checked:
    """Build and run ``dag`` naive and as scheduled by ``schedule_fn``; compare both with
    the numpy reference; check that replay and record round trip give the same kernel.

    Raises AssertionError with the loop tree and the lowered program on any mismatch;
    exceptions from scheduling, lowering or compiling propagate with the same context
    attached as a note.
    """
    inputs = random_inputs(dag, seed=seed)
    for tensor, array in zip(dag.placeholders, inputs, strict=True):
        assert array.size == 0 or np.any(array != 0), f"random input '{tensor.name}' is all zeros"
    expected = evaluate(dag, inputs)

    key = (dag.workload_key(), seed)
    if key not in _NAIVE_CHECKED:
        naive = get_init_state(dag)
        _compare(dag, naive, run_kernel(dag, build(dag), inputs), expected, rtol, "naive", inputs)
        _NAIVE_CHECKED.add(key)

    state = get_init_state(dag)
    if schedule_fn is not None:
        with _context(dag, state):  # on an illegal step: the state it was applied to
            schedule_fn(state)
    with _context(dag, state):
        func = lower(dag, state)
        outputs = run_kernel(dag, build(dag, state), inputs)
    _compare(dag, state, outputs, expected, rtol, "scheduled", inputs)

    replayed = State(dag, replay_steps(dag, state.transform_steps))
    record = json.loads(json.dumps(state_to_record(state)))
    from_record = State(dag, state_from_record(dag, record))
    for how, other in (("replayed steps", replayed), ("record round trip", from_record)):
        with _context(dag, state):
            _check_same_program(dag, state, func, other, how)
            again = run_kernel(dag, build(dag, other), inputs)
        for name, a, b in zip([t.name for t in dag.outputs], outputs, again, strict=True):
            if not np.array_equal(a, b, equal_nan=dt.is_float(str(a.dtype))):
                raise AssertionError(
                    f"the kernel built from the {how} gives a different '{name}' than the scheduled "
                    f"kernel\n{describe(dag, state)}"
                )
    return Checked(state, func, outputs)


def run_kernel(dag: ComputeDAG, kernel: Kernel, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Call ``kernel`` with ``inputs`` and fresh sentinel-filled outputs, in ``dag.tensors``
    order; return the outputs. Asserts that the inputs were left untouched."""
    by_name = {t.name: a for t, a in zip(dag.placeholders, inputs, strict=True)}
    copies = {name: a.copy() for name, a in by_name.items()}
    outputs = {t.name: sentinel_array(t.shape, t.dtype) for t in dag.outputs}
    arrays = [by_name[t.name] if isinstance(t.op, PlaceholderOp) else outputs[t.name] for t in dag.tensors]
    kernel(*arrays)
    for name, array in by_name.items():
        assert np.array_equal(array, copies[name], equal_nan=True), f"the kernel wrote its input '{name}'"
    return [outputs[t.name] for t in dag.outputs]


def sentinel_array(shape: Sequence[int], dtype: str) -> np.ndarray:
    """An output array filled with a value the kernel must overwrite."""
    array = np.empty(tuple(shape), dtype=dt.to_numpy(dtype))
    if dt.is_bool(dtype):
        array[...] = True
    elif dt.is_float(dtype):
        array[...] = FLOAT_SENTINEL
    else:
        array[...] = INT_SENTINEL
    return array


def describe(dag: ComputeDAG, state: State) -> str:
    """The loop tree, the step script and the lowered program of ``state`` (or why the
    program could not be lowered)."""
    try:
        program = str(lower(dag, state))
    except DIAGNOSIS_ERRORS as error:
        program = f"<lower() raised {type(error).__name__}: {error}>"
    return (
        f"--- DAG\n{dag}\n--- loop state\n{state}--- steps\n{state.to_python()}\n"
        f"--- lowered program\n{program}"
    )


# ------------------------------------------------------------------------------------------
# small readers for assertions, and workloads not in tests/ir/workloads.py


def iter_names(state: State, stage: str) -> list[str]:
    """The names of ``stage``'s iterators, outer to inner."""
    return [it.name for it in state[stage].iters]


def iter_extents(state: State, stage: str) -> list[int | None]:
    """The extents of ``stage``'s iterators, outer to inner (None: not inferred)."""
    return [it.extent for it in state[stage].iters]


def elementwise_chain(m: int = 7, n: int = 13) -> list[Tensor]:
    """Three elementwise stages on one input: ``out = exp(-|A * 2 + 1|) - A``."""
    a = te.placeholder((m, n), name="A")
    scaled = te.compute((m, n), lambda i, j: a[i, j] * 2.0 + 1.0, name="scaled")
    mag = te.compute((m, n), lambda i, j: te.max(scaled[i, j], -scaled[i, j]), name="mag")
    out = te.compute((m, n), lambda i, j: te.exp(-mag[i, j]) - a[i, j], name="out")
    return [a, out]


# ------------------------------------------------------------------------------------------
# helpers


def _compare(
    dag: ComputeDAG,
    state: State,
    outputs: Sequence[np.ndarray],
    expected: Sequence[np.ndarray],
    rtol: float,
    what: str,
    inputs: Sequence[np.ndarray] | None = None,
) -> None:
    for tensor, got, want in zip(dag.outputs, outputs, expected, strict=True):
        try:
            if dt.is_float(tensor.dtype):
                scale = float(np.max(np.abs(want))) if want.size else 1.0
                np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * (scale or 1.0))
            else:
                np.testing.assert_array_equal(got, want)
        except AssertionError as error:
            diagnosis = _interpreter_diagnosis(dag, state, inputs, expected, rtol) if inputs else ""
            raise AssertionError(
                f"{what} kernel: output '{tensor.name}' differs from the numpy reference\n"
                f"{error}\n{diagnosis}{describe(dag, state)}"
            ) from None


def _check_same_program(dag: ComputeDAG, state: State, func: PrimFunc, other: State, how: str) -> None:
    if str(other) != str(state):
        raise AssertionError(
            f"the {how} give a different loop state\n--- original\n{state}--- {how}\n{other}"
            f"{describe(dag, state)}"
        )
    other_program = str(lower(dag, other))
    if other_program != str(func):
        raise AssertionError(
            f"the {how} lower to a different program\n--- original\n{func}\n--- {how}\n{other_program}"
        )


def _interpreter_diagnosis(
    dag: ComputeDAG, state: State, inputs: Sequence[np.ndarray], expected: Sequence[np.ndarray], rtol: float
) -> str:
    """One line: does the lowered program, run by the Python interpreter, match?"""
    if dag.flop_ct > INTERPRETER_FLOP_LIMIT:
        return "(workload too large for the interpreter diagnosis)\n"
    try:
        func = lower(dag, state)
        by_name = {t.name: a.copy() for t, a in zip(dag.placeholders, inputs, strict=True)}
        outputs = {t.name: sentinel_array(t.shape, t.dtype) for t in dag.outputs}
        interpreter.run(func, {**by_name, **outputs})
    except DIAGNOSIS_ERRORS as error:
        return f"diagnosis: the interpreter failed on the lowered program: {type(error).__name__}: {error}\n"
    for tensor, want in zip(dag.outputs, expected, strict=True):
        got = outputs[tensor.name]
        scale = float(np.max(np.abs(want))) if want.size and dt.is_float(tensor.dtype) else 1.0
        if not np.allclose(got, want, rtol=rtol, atol=rtol * (scale or 1.0)):
            return "diagnosis: the interpreter gives the same wrong answer: the lowered program is wrong\n"
    return (
        "diagnosis: the interpreter matches the reference: the lowered program is right, codegen is wrong\n"
    )


@contextlib.contextmanager
def _context(dag: ComputeDAG, state: State) -> Iterator[None]:
    """Attach the loop tree and the lowered program to an error raised inside (as a note,
    so its type and message stay what the failing module raised)."""
    try:
        yield
    except AssertionError:
        raise
    except Exception as error:
        error.add_note(describe(dag, state))
        raise


__all__ = [
    "Checked",
    "ScheduleFn",
    "check_schedule",
    "describe",
    "elementwise_chain",
    "iter_extents",
    "iter_names",
    "run_kernel",
    "sentinel_array",
    "workloads",
]
