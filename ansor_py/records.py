"""Tuning records: one JSON line per measurement, in TVM's v0.6 layout
(TVM ``python/tvm/auto_scheduler/measure_record.py``, ``src/auto_scheduler/measure_record.cc``).

    {"i": [[workload_key, target, [8 hardware params], "", layout_rewrite, []], [[], [steps...]]],
     "r": [[costs...], error_no, all_cost, timestamp], "v": "v0.6"}

The log is the search's memory (Ansor paper section 6.1): ``RecordToFile`` appends and
flushes a line per measurement, so a killed run loses nothing; a later run reads it back
to apply the best schedule (``load_best_record``, ``ApplyHistoryBest``,
``tuning.apply_best``), to resume (preloading measured states, retraining the cost
model) or to distill a log to its best lines. The reader accepts TVM's shorter task forms
(``[key, target]``, ``[key, target, hw]``) and target strings with options this project
ignores (``-keys=cpu``).

The best program of a workload is the one with the smallest median cost, each program
judged by its latest record (``ranked_programs``): the search measures a program once,
so a later record of the same program is a re-measurement (``ansor_py.remeasure``, more
samples, taken beside its rivals) and supersedes the one noisy sample of the search. The
line is an ordinary record, so TVM reads it too. TVM ranks a line by the mean of its
costs, ansor-py by their median (``MeasureResult.median_cost``).

What a damaged log does:

- Lines starting with ``#`` or a space are comments (as TVM's ``RecordReader``), even when
  the rest would parse: a commented-out record is not read.
- Any other line that cannot be read is skipped with a ``RecordWarning`` naming
  ``file:line`` and the reason, and the rest of the log is read: a truncated or glued
  line, bytes that are not UTF-8, JSON nested too deep to parse, a bad step or error code,
  costs that are not seconds (``MeasureResult.cost_error``: 0, negative, NaN, inf), or a
  workload whose registered function fails on the key's arguments (whatever it raises).
- Every append starts on a fresh line, so a line left without its newline by a killed run
  stays one bad line and the next record is whole.
- The writer refuses a result whose costs are not seconds (``ValueError``);
  ``ProgramMeasurer`` turns such a runner result into a RUNTIME_DEVICE error first, so
  the tuner records it as an error instead of losing it. ``RecordToFile`` checks its path
  when it is made, not after the first measurement.

A record read back carries a ``SearchTask`` rebuilt from its workload key when the key
names a function registered in this process (or a task passed in ``tasks``), else an
``IncompleteTask`` holding only the key, target and hardware params. Its ``state`` is the
LoopState replayed on that task's DAG; when that is impossible (no DAG, or a step fails)
the state has no stages and only the steps, as TVM's "incomplete" inputs.
"""

from __future__ import annotations

import itertools
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ansor_py.measure.measurer import MeasureCallback
from ansor_py.measure.types import MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.search_task import SearchTask
from ansor_py.workload_registry import WORKLOAD_FUNCS, WorkloadError, decode_workload_key
from codegen.target import HardwareParams, Target, as_target
from ir.compute_dag import ComputeDAG
from ir.layout_rewrite import LayoutRewriteOption
from ir.loop_state.replay import replay_steps, state_to_record
from ir.loop_state.state import LoopState, ScheduleError
from ir.loop_state.steps import RecordError, Step, step_from_record

#: the log format version written (TVM's AUTO_SCHEDULER_LOG_VERSION)
LOG_VERSION = "v0.6"

PathLike = str | os.PathLike[str]


class RecordWarning(UserWarning):
    """A record line that was skipped (corrupt, truncated, or naming a bad workload)."""


class RecordFormatError(ValueError):
    """A string that is not a record line."""


class IncompleteTask(SearchTask):
    """The task of a record whose workload cannot be rebuilt here: key, target and
    hardware params only. Its ``compute_dag`` (and ``reference()``) raise WorkloadError;
    register the workload function, or pass the task to the reader, to get a full one."""

    def __init__(
        self,
        workload_key: str,
        target: Target,
        hardware_params: HardwareParams,
        layout_rewrite_option: LayoutRewriteOption = LayoutRewriteOption.NO_REWRITE,
    ):
        self.workload_key = workload_key
        self.target = target
        self.hardware_params = hardware_params
        self.layout_rewrite_option = layout_rewrite_option
        self.desc = ""
        self.task_inputs = {}
        self._reference = None

    @property  # type: ignore[override]
    def compute_dag(self) -> ComputeDAG:
        raise WorkloadError(
            f"the record's workload {self.workload_key!r} is not registered in this process, so its "
            "DAG cannot be rebuilt; register the workload function or pass the task to the reader"
        )

    @compute_dag.setter
    def compute_dag(self, value: ComputeDAG) -> None:
        raise AttributeError("an IncompleteTask has no DAG")

    def __repr__(self) -> str:
        return f"IncompleteTask({self.workload_key}, target={self.target})"


def is_complete(inp: MeasureInput) -> bool:
    """True when ``inp``'s task has a DAG and its state was replayed on it."""
    return not isinstance(inp.task, IncompleteTask) and bool(inp.state.stages)


# ------------------------------------------------------------------------------------------
# one line


@dataclass(frozen=True)
class RawRecord:
    """A parsed line before any task or state is built (cheap: no DAG, no replay)."""

    workload_key: str
    target: Target
    hardware_params: HardwareParams
    steps: tuple[Step, ...]
    result: MeasureResult
    line: str
    #: the line's number in its file (1-based; 0 for a string not read from a file)
    lineno: int = 0
    #: the task's layout rewrite option (the task record's 5th field, TVM's
    #: ``LayoutRewriteOption`` value; 0, no rewrite, when absent)
    layout_rewrite: int = 0

    @property
    def target_class(self) -> tuple[str, str]:
        return target_class(self.target)


def target_class(target: Target) -> tuple[str, str]:
    """(kind, architecture): records apply across targets of one class, e.g. any x86-64
    ``llvm`` target (the options only tune code generation, not the schedule)."""
    return target.kind, target.arch_name


def normalize_key(key: str) -> str:
    """A workload key re-dumped in ``json.dumps`` spacing, so hand-written keys compare."""
    try:
        return json.dumps(json.loads(key))
    except json.JSONDecodeError:
        return key


def parse_target(text: str) -> Target:
    """``Target.parse``, dropping options this project does not know (TVM writes
    ``-keys=cpu``, ``-link-params=0``, ...)."""
    try:
        return Target.parse(text)
    except ValueError:
        words = text.split()
        if not words:
            raise
        kept = [words[0]]
        for word in words[1:]:
            try:
                Target.parse(" ".join([*kept, word]))
            except ValueError:
                continue
            kept.append(word)
        return Target.parse(" ".join(kept))


def parse_record(line: str) -> RawRecord:
    """Parse one record line; RecordFormatError says what is wrong with it, including
    costs that are not seconds (``MeasureResult.cost_error``)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise RecordFormatError(f"not JSON ({error})") from None
    except RecursionError:
        raise RecordFormatError("JSON nested too deep to parse") from None
    try:
        task, state = record["i"]
        key, target_text = task[0], task[1]
        if not isinstance(key, str) or not isinstance(target_text, str):
            raise RecordFormatError(f"workload key and target must be strings, got {task[:2]!r}")
        target = parse_target(target_text)
        hw = task[2] if len(task) > 2 else None
        if isinstance(hw, list) and len(hw) == 8 and all(isinstance(v, int) for v in hw):
            hardware_params = HardwareParams(*hw)
        else:
            hardware_params = target.hardware_params
        if not isinstance(state, list) or len(state) != 2 or not isinstance(state[1], list):
            raise RecordFormatError(f"the state must be [[], [steps...]], got {state!r}")
        steps = tuple(step_from_record(s) for s in state[1])
        costs, error_no, all_cost, timestamp = record["r"]
        result = MeasureResult(
            tuple(float(c) for c in costs),
            MeasureErrorNo(int(error_no)),
            "",
            float(all_cost),
            float(timestamp),
        )
    except RecordFormatError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, RecursionError) as error:
        # RecordError (bad step), MeasureErrorNo(99), Target.parse ... are ValueErrors;
        # int(Infinity) is an OverflowError
        raise RecordFormatError(f"{type(error).__name__}: {error}") from None
    problem = result.cost_error
    if problem is not None:
        raise RecordFormatError(f"costs {list(result.costs)}: {problem}")
    layout = task[4] if len(task) > 4 and isinstance(task[4], int) else 0
    if layout not in tuple(LayoutRewriteOption):
        raise RecordFormatError(
            f"layout rewrite option {layout} is not one of {[int(o) for o in LayoutRewriteOption]}"
        )
    return RawRecord(key, target, hardware_params, steps, result, line.rstrip("\r\n"), layout_rewrite=layout)


def dump_record_to_string(inp: MeasureInput, res: MeasureResult) -> str:
    """The record line (without newline) of one measurement. Raises ValueError for a
    result whose costs are not seconds (``MeasureResult.cost_error``): the reader would
    skip that line, and a cost of 0 or below would rank first."""
    task = inp.task
    problem = res.cost_error
    if problem is not None:
        raise ValueError(
            f"refusing to write a {res.error_no.name} record of workload {task.workload_key} "
            f"with costs {list(res.costs)}: {problem}"
        )
    record = {
        "i": [
            [
                task.workload_key,
                str(task.target),
                task.hardware_params.to_record(),
                "",
                int(task.layout_rewrite_option),
                [],
            ],
            state_to_record(inp.state),
        ],
        "r": [list(res.costs), int(res.error_no), res.all_cost, res.timestamp],
        "v": LOG_VERSION,
    }
    return json.dumps(record)


def load_record_from_string(
    line: str, tasks: Iterable[SearchTask] = ()
) -> tuple[MeasureInput, MeasureResult]:
    """Read one record line back (raises RecordFormatError if it is not one, WorkloadError
    when its registered workload function fails on the key's arguments)."""
    raw = parse_record(line)
    return _TaskBinder(tasks).bind(raw)


# ------------------------------------------------------------------------------------------
# tasks and states of records read back


class _TaskBinder:
    """Turns raw records into (MeasureInput, MeasureResult): one task object per (key,
    target, hardware params), one DAG per key, preferring the ``tasks`` given. ``bind``
    raises WorkloadError when the key's registered function fails on its arguments."""

    def __init__(self, tasks: Iterable[SearchTask] = ()):
        self._given = {(normalize_key(t.workload_key), target_class(t.target)): t for t in tasks}
        self._tasks: dict[tuple[str, str, tuple[int, ...], int], SearchTask] = {}
        self._dags: dict[str, ComputeDAG | None] = {}
        self._failed: dict[str, str] = {}  # key -> why its function failed

    def task(self, raw: RawRecord) -> SearchTask:
        key = normalize_key(raw.workload_key)
        given = self._given.get((key, raw.target_class))
        if given is not None:
            return given
        cache_key = (key, str(raw.target), tuple(raw.hardware_params.to_record()), raw.layout_rewrite)
        if cache_key not in self._tasks:
            dag = self._dag(raw.workload_key)
            if dag is None:
                task: SearchTask = IncompleteTask(
                    raw.workload_key, raw.target, raw.hardware_params, LayoutRewriteOption(raw.layout_rewrite)
                )
            else:
                task = SearchTask(
                    compute_dag=dag,
                    workload_key=raw.workload_key,
                    target=raw.target,
                    hardware_params=raw.hardware_params,
                    layout_rewrite_option=LayoutRewriteOption(raw.layout_rewrite),
                )
            self._tasks[cache_key] = task
        return self._tasks[cache_key]

    def _dag(self, key: str) -> ComputeDAG | None:
        """The DAG of a registered workload key, else None; WorkloadError (remembered,
        so the function runs once per key) when the function fails on the key's args."""
        if key in self._failed:
            raise WorkloadError(self._failed[key])
        if key not in self._dags:
            try:
                name, args = decode_workload_key(key)
            except WorkloadError:
                name, args = "", []
            if name not in WORKLOAD_FUNCS:
                self._dags[key] = None
            else:
                try:
                    self._dags[key] = ComputeDAG(WORKLOAD_FUNCS[name](*args))
                except Exception as error:  # user code: whatever it raises costs a record, not the log
                    self._failed[key] = (
                        f"workload function {name!r} fails on the key's arguments {args!r}: "
                        f"{type(error).__name__}: {error}"
                    )
                    raise WorkloadError(self._failed[key]) from error
        return self._dags[key]

    def bind(self, raw: RawRecord) -> tuple[MeasureInput, MeasureResult]:
        task = self.task(raw)
        return MeasureInput(task, replay_or_steps(task, raw.steps)), raw.result


def replay_or_steps(task: SearchTask, steps: Sequence[Step]) -> LoopState:
    """``steps`` replayed on the task's DAG; a stage-less LoopState holding only the steps
    when the task has no DAG or a step fails (an INSTANTIATION_ERROR record)."""
    if not isinstance(task, IncompleteTask):
        try:
            return replay_steps(task.compute_dag, steps)
        except (ScheduleError, RecordError):
            pass
    return LoopState(stages=(), transform_steps=tuple(steps), current_compute_dag=None, concrete=False)


# ------------------------------------------------------------------------------------------
# files


def read_raw_records(filename: PathLike) -> Iterator[RawRecord]:
    """The records of a file, comments skipped, bad lines skipped with a RecordWarning.
    The file is read as bytes and decoded line by line, so one non-UTF-8 byte costs one
    line, not the log."""
    with open(filename, "rb") as f:
        for number, data in enumerate(f, start=1):
            try:
                line = data.decode("utf-8")
                if not line.strip() or line[0] in "# ":
                    continue  # a blank line or a comment (TVM's rule: '#' or ' ' first)
                raw = parse_record(line)
            except (UnicodeDecodeError, RecordFormatError) as error:
                warnings.warn(
                    f"{filename}:{number}: skipping a corrupt record line ({error})",
                    RecordWarning,
                    stacklevel=3,
                )
                continue
            yield replace(raw, lineno=number)


def _bound(
    filename: PathLike, raws: Iterable[RawRecord], binder: _TaskBinder
) -> Iterator[tuple[MeasureInput, MeasureResult]]:
    """``raws`` bound to tasks and states; a record whose workload function fails on the
    key's arguments is skipped with a RecordWarning naming ``file:line``."""
    for raw in raws:
        try:
            pair = binder.bind(raw)
        except (ValueError, TypeError) as error:
            # WorkloadError (the function failed), or a SearchTask the key cannot make
            warnings.warn(
                f"{filename}:{raw.lineno}: skipping a record of workload {raw.workload_key}: {error}",
                RecordWarning,
                stacklevel=3,
            )
            continue
        yield pair


class RecordReader:
    """Reads a log file (TVM ``RecordReader``): iterate for (MeasureInput, MeasureResult)
    pairs, or ``read_lines`` for two lists. ``tasks``: tasks that records of their
    workload key and target class are bound to (their DAG is used for replay)."""

    def __init__(self, filename: PathLike, tasks: Iterable[SearchTask] = ()):
        self.filename = filename
        if not os.path.isfile(filename):
            raise FileNotFoundError(f"record file {filename} does not exist")
        self._binder = _TaskBinder(tasks)

    def __iter__(self) -> Iterator[tuple[MeasureInput, MeasureResult]]:
        return _bound(self.filename, read_raw_records(self.filename), self._binder)

    def read_lines(
        self, max_lines: int | None = None, skip_lines: int = 0
    ) -> tuple[list[MeasureInput], list[MeasureResult]]:
        """The records after the first ``skip_lines``, at most ``max_lines`` of them."""
        inputs: list[MeasureInput] = []
        results: list[MeasureResult] = []
        for index, (inp, res) in enumerate(self):
            if index < skip_lines:
                continue
            if max_lines is not None and len(inputs) >= max_lines:
                break
            inputs.append(inp)
            results.append(res)
        return inputs, results


def load_records(
    filename: PathLike, tasks: Iterable[SearchTask] = ()
) -> Iterator[tuple[MeasureInput, MeasureResult]]:
    """(MeasureInput, MeasureResult) pairs of a log file, in file order."""
    return iter(RecordReader(filename, tasks))


def load_task_records(filename: PathLike, task: SearchTask) -> tuple[list[MeasureInput], list[MeasureResult]]:
    """The records of ``task`` in ``filename``, in file order, as (inputs, results); none
    when the file does not exist (a tuning run that has not started yet)."""
    inputs: list[MeasureInput] = []
    results: list[MeasureResult] = []
    if Path(filename).is_file():
        for inp, res in load_records(filename, tasks=[task]):
            if inp.task is task:
                inputs.append(inp)
                results.append(res)
    return inputs, results


def save_records(
    filename: PathLike, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]
) -> None:
    """Append one line per measurement to ``filename`` (created with its directory),
    flushing each line. The first line starts on a fresh line: a file whose last line
    lacks its newline (a run killed while writing) gets one first, so that line stays one
    bad line and the new record is whole. Nothing is written when a result's costs are not
    seconds (ValueError, see ``dump_record_to_string``)."""
    if len(inputs) != len(results):
        raise ValueError(f"save_records: {len(inputs)} inputs but {len(results)} results")
    lines = [dump_record_to_string(inp, res).encode() + b"\n" for inp, res in zip(inputs, results)]
    Path(filename).parent.mkdir(parents=True, exist_ok=True)
    with open(filename, "a+b") as f:  # a+: writes go to the end, and the last byte can be read
        if f.seek(0, os.SEEK_END) > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        for line in lines:
            f.write(line)
            f.flush()


def check_log_path(filename: PathLike, who: str = "RecordToFile") -> None:
    """Raise OSError (IsADirectoryError, NotADirectoryError, PermissionError) naming
    ``filename`` when records could not be appended to it: it is a directory, an existing
    file is read-only, or the directory it would be created in cannot be. Creates
    nothing; ``save_records`` makes the missing directories."""
    path = Path(filename)
    if path.is_dir():
        raise IsADirectoryError(
            f"{who}: the record log {path} is a directory; name a file, e.g. {path / 'log.json'}"
        )
    if path.exists():
        if not os.access(path, os.W_OK):
            raise PermissionError(f"{who}: the record log {path} is not writable")
        return
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"{who}: cannot create the record log {path}: {ancestor} is not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(
            f"{who}: cannot create the record log {path}: directory {ancestor} is not writable"
        )


class RecordToFile(MeasureCallback):
    """Measure callback appending each measurement to ``filename``, flushed line by line.
    The path is checked when the callback is made (``check_log_path``), so a log that
    cannot be written fails before anything is measured."""

    def __init__(self, filename: PathLike):
        check_log_path(filename)
        self.filename = filename

    def callback(self, policy: Any, inputs: Sequence[MeasureInput], results: Sequence[MeasureResult]) -> None:
        save_records(self.filename, inputs, results)


# ------------------------------------------------------------------------------------------
# best records


def latest_per_program(records: Iterable[RawRecord]) -> dict[tuple[Step, ...], RawRecord]:
    """The latest record of each program (step list), in order of the program's first
    record: a later record of a program already recorded is a re-measurement of it
    (``ansor_py.remeasure``) and supersedes the earlier one, errors included (a program
    whose re-measurement failed is out)."""
    latest: dict[tuple[Step, ...], RawRecord] = {}
    for raw in records:
        latest[raw.steps] = raw
    return latest


def ranked_programs(
    records: Iterable[RawRecord], workload_key: str | None, target: Target | None
) -> list[RawRecord]:
    """The programs of ``workload_key`` (any when None) on ``target``'s class (any when
    None) whose latest record is error-free, smallest median cost first, one record each
    (``latest_per_program``); ties keep the order of the programs' first records."""
    key = None if workload_key is None else normalize_key(workload_key)
    latest = latest_per_program(
        raw
        for raw in records
        if (key is None or normalize_key(raw.workload_key) == key)
        and (target is None or raw.target_class == target_class(target))
    )
    ranked = [raw for raw in latest.values() if raw.result.error_no is MeasureErrorNo.NO_ERROR]
    ranked.sort(key=lambda raw: raw.result.median_cost)  # stable
    return ranked


def load_best_records(
    filename: PathLike,
    k: int,
    workload_key: str | None = None,
    target: str | Target | None = None,
    tasks: Iterable[SearchTask] = (),
) -> list[tuple[MeasureInput, MeasureResult]]:
    """The latest records of the ``k`` fastest programs, fastest first, one per distinct
    program (``ranked_programs``), filtered as ``load_best_record`` filters.

    A tuning record's cost is one noisy sample (TVM's runner: ``repeat=1``), so the single
    best of a thousand is partly luck; re-timing these few and keeping the fastest is the
    cheap remedy (``ansor_py.remeasure`` does it at the end of tuning)."""
    if k < 1:
        raise ValueError(f"load_best_records: k {k} must be >= 1")
    parsed = None if target is None else as_target(target)
    ranked = ranked_programs(read_raw_records(filename), workload_key, parsed)
    return list(itertools.islice(_bound(filename, ranked, _TaskBinder(tasks)), k))


def load_best_record(
    filename: PathLike,
    workload_key: str | None = None,
    target: str | Target | None = None,
    tasks: Iterable[SearchTask] = (),
) -> tuple[MeasureInput | None, MeasureResult | None]:
    """The record of the fastest program: the smallest median cost among the programs'
    latest records (``ranked_programs``) that are error-free, among those of
    ``workload_key`` and of ``target``'s class (kind and architecture) when given; (None,
    None) if none."""
    best = load_best_records(filename, 1, workload_key, target, tasks)
    return best[0] if best else (None, None)


def distill_record_file(in_file: PathLike, out_file: PathLike) -> None:
    """Write to ``out_file`` the best record per (workload key, target class) found in
    ``out_file`` (if it exists) and ``in_file``, in order of first appearance: the record
    ``load_best_record`` would pick, with ``in_file``'s records read after ``out_file``'s
    (a re-measurement in ``in_file`` supersedes an older copy of the program's record)."""
    sources = ([out_file] if os.path.isfile(out_file) else []) + [in_file]
    groups: dict[tuple[str, tuple[str, str]], list[RawRecord]] = {}
    for source in sources:
        for raw in read_raw_records(source):
            groups.setdefault((normalize_key(raw.workload_key), raw.target_class), []).append(raw)
    best = [ranked[0] for ranked in (ranked_programs(raws, None, None) for raws in groups.values()) if ranked]
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    with open(out_file, "w", encoding="utf-8") as f:
        for raw in best:
            f.write(raw.line + "\n")


# ------------------------------------------------------------------------------------------
# dispatch


class ApplyHistoryBest:
    """The best record per (target class, workload key) of some logs (TVM dispatch context):
    the fastest program by its latest record, as ``load_best_record`` picks it.

    ``records``: a log path, a list of paths, or (MeasureInput, MeasureResult) pairs;
    ``n_lines``: read at most that many records per file. ``query`` returns the best state
    replayed on a DAG; ``update`` overrides it. ``with ApplyHistoryBest(log):`` makes it
    ``ApplyHistoryBest.current()`` inside the block (network builds query it).
    """

    _stack: list[ApplyHistoryBest] = []

    def __init__(
        self,
        records: PathLike | Sequence[PathLike] | Iterable[tuple[MeasureInput, MeasureResult]],
        n_lines: int | None = None,
    ):
        self._best: dict[tuple[tuple[str, str], str], RawRecord] = {}
        #: per group, the latest record of each program (``latest_per_program``)
        self._latest: dict[tuple[tuple[str, str], str], dict[tuple[Step, ...], RawRecord]] = {}
        self._updated: dict[tuple[tuple[str, str], str], LoopState] = {}
        self.load(records, n_lines)

    def load(
        self,
        records: PathLike | Sequence[PathLike] | Iterable[tuple[MeasureInput, MeasureResult]],
        n_lines: int | None = None,
    ) -> None:
        """Add records (same forms as the constructor), keeping the best per group."""
        if isinstance(records, (str, os.PathLike)):
            records = [records]
        for item in records:
            if isinstance(item, (str, os.PathLike)):
                for count, raw in enumerate(read_raw_records(item)):
                    if n_lines is not None and count >= n_lines:
                        break
                    self._consider(raw)
            else:
                inp, res = item
                self._consider(parse_record(dump_record_to_string(inp, res)))
        self._rank()

    def _consider(self, raw: RawRecord) -> None:
        group = (raw.target_class, normalize_key(raw.workload_key))
        self._latest.setdefault(group, {})[raw.steps] = raw

    def _rank(self) -> None:
        """``_best`` from ``_latest``: the fastest program of each group."""
        self._best = {}
        for group, programs in self._latest.items():
            ranked = ranked_programs(programs.values(), None, None)
            if ranked:
                self._best[group] = ranked[0]

    def best(self, target: str | Target, workload_key: str) -> RawRecord | None:
        """The best parsed record of a workload on ``target``'s class, or None."""
        return self._best.get((target_class(as_target(target)), normalize_key(workload_key)))

    def query(
        self, target: str | Target, workload_key: str, dag: ComputeDAG | None = None
    ) -> LoopState | None:
        """The best (or updated) state of ``workload_key`` for ``target``, replayed on
        ``dag`` (default: the registered workload's DAG); None when there is no record."""
        group = (target_class(as_target(target)), normalize_key(workload_key))
        if group in self._updated:
            return self._updated[group]
        raw = self._best.get(group)
        if raw is None:
            return None
        if dag is None:
            dag = _TaskBinder()._dag(raw.workload_key)
            if dag is None:
                raise WorkloadError(
                    f"ApplyHistoryBest.query: workload {workload_key!r} is not registered; pass its dag"
                )
        return replay_steps(dag, raw.steps)

    def update(self, target: str | Target, workload_key: str, state: LoopState) -> None:
        """Make ``state`` the answer for ``workload_key`` on ``target``'s class."""
        self._updated[(target_class(as_target(target)), normalize_key(workload_key))] = state

    def __len__(self) -> int:
        return len(self._best)

    @classmethod
    def current(cls) -> ApplyHistoryBest | None:
        """The innermost context entered with ``with``, or None."""
        return cls._stack[-1] if cls._stack else None

    def __enter__(self) -> ApplyHistoryBest:
        ApplyHistoryBest._stack.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        ApplyHistoryBest._stack.remove(self)
