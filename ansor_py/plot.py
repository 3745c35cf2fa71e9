"""Figures of a tuning run: the best throughput of each task against trials and wall time,
and a network's estimated latency against tuning time: the tuning curves of the Ansor
paper's section 7 (its ablation figures: 7 for one operator, 10 for networks).

Both functions read only the files a tuning run leaves behind, so a figure can be drawn
while the run goes on, or long after it:

- ``plot_tuning`` reads record logs (``ansor_py.records``). A record carries its task and
  a timestamp (``MeasureResult.timestamp``, seconds since the epoch), so each task's curve
  is its best GFLOP/s so far (the DAG's FLOP count over the record's median cost) after each
  of its trials, and after each second since the log's first record. Error records count
  as trials and leave the best as it was. A later record of a program already in the log
  is a re-measurement (``ansor_py.remeasure``), not a trial: it is left out of the curve,
  and the best program by the latest records (the one ``apply_best`` builds) is drawn as
  a cross at the end. ``tuning_curves`` returns the same numbers without drawing them.
- ``plot_network`` reads the estimated network latency (the task scheduler's objective,
  section 6) from two files of one meaning but different layouts, both tab separated, one
  line per scheduler round, with one parser (``read_latency_log``):

  - the ``LogEstimatedLatency`` callback's file (TVM's layout):
    ``ElapsedTime(s) <s> EstimatedLatency(ms) <ms> Trials <n>``, ``N/A`` for no latency;
  - a progress file of three columns ``<trials> <s> <ms>``, ``-`` for no latency (written
    by ``benchmarks/network_tuning.py``, counting seconds across resumed runs).

  "No latency" means some task had no valid program yet; those rounds are not drawn.

matplotlib is an optional dependency (``pip install 'ansor-py[plot]'``), imported only
when a figure is drawn. Figures are made with ``matplotlib.figure.Figure`` directly, not
through ``pyplot``: no global figure registry, no GUI backend, and the caller owns the
object returned. ``path`` writes it as a PNG (its directory is created).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ansor_py.records import RecordReader, normalize_key
from ansor_py.search_task import SearchTask
from ansor_py.task_scheduler.callbacks import describe
from ansor_py.workload_registry import WorkloadError
from ir.loop_state.steps import Step

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PathLike = str | os.PathLike[str]

#: what to run when matplotlib is missing
INSTALL_HINT = "pip install 'ansor-py[plot]'"
#: width of a figure and height of one row of panels, in inches; dots per inch of the PNG
FIGURE_WIDTH = 11.0
PANEL_HEIGHT = 4.2
DPI = 100
#: entries per row of a legend below the panels, and the inches each row takes
LEGEND_COLUMNS = 3
LEGEND_ROW_HEIGHT = 0.22
#: the ``gid`` of the lines drawn: a best-so-far curve, a re-measured best
CURVE_GID = "curve"
REMEASURED_GID = "remeasured"
#: the latency words of the two estimated-latency layouts that mean "none yet"
NO_LATENCY_WORDS = ("N/A", "-")


# ------------------------------------------------------------------------------------------
# tuning curves of tasks, from record logs


@dataclass(frozen=True)
class TuningCurve:
    """One task's tuning progress. ``best_gflops_by_trial[n]`` is the best throughput
    after the task's trial ``trials[n]`` (the first record of each of its programs, counted
    from 1 in log order, errors included); ``best_gflops_by_time[n]`` the best among its
    trials measured up to ``seconds[n]`` after the first record of their log. A best is
    NaN before the task's first error-free trial. Every best series is non-decreasing.

    ``remeasured``: when the task's programs were re-measured, (seconds of the last
    re-measurement, best GFLOP/s by each program's latest record; NaN when every
    program's latest record is an error), else None."""

    label: str
    workload_key: str
    flop: float
    trials: tuple[int, ...]
    best_gflops_by_trial: tuple[float, ...]
    seconds: tuple[float, ...]
    best_gflops_by_time: tuple[float, ...]
    remeasured: tuple[float, float] | None = None


def _as_paths(files: PathLike | Sequence[PathLike]) -> list[PathLike]:
    """One path, or several."""
    if isinstance(files, (str, os.PathLike)):
        return [files]
    paths = list(files)
    if not paths:
        raise ValueError("no file given: pass a path or a non-empty list of paths")
    return paths


def _best_so_far(values: Iterable[float]) -> tuple[float, ...]:
    """The running maximum of ``values``, NaN (no value yet) ignored."""
    best = math.nan
    out = []
    for value in values:
        if not math.isnan(value) and not value <= best:
            best = value
        out.append(best)
    return tuple(out)


@dataclass
class _TaskRecords:
    """The records of one task gathered across logs: its trials as (seconds since their
    log began, GFLOP/s or NaN for an error) in log order, the GFLOP/s of each program's
    latest record, and when the last re-measurement was."""

    task: SearchTask
    points: list[tuple[float, float]] = field(default_factory=list)
    latest: dict[tuple[Step, ...], float] = field(default_factory=dict)
    remeasured_at: float | None = None
    flop: float = math.nan

    def add(self, program: tuple[Step, ...], seconds: float, gflops: float) -> None:
        """A record: a trial when ``program`` is new, else a re-measurement of it."""
        if program in self.latest:
            self.remeasured_at = seconds
        else:
            self.points.append((seconds, gflops))
        self.latest[program] = gflops


def tuning_curves(
    log: PathLike | Sequence[PathLike], *, tasks: Iterable[SearchTask] | None = None
) -> list[TuningCurve]:
    """The tuning curve of each task of ``log`` (one record log, or several), in order of
    first appearance (``tasks``' order when given).

    ``tasks``: draw only these tasks' records (bound to them, as ``load_records`` binds,
    so a workload not registered in this process gets its DAG from the task); a task's
    label is its ``desc``, else its workload key. Without ``tasks`` every workload of the
    log is drawn and must be registered here (its FLOP count comes from its DAG).

    Raises FileNotFoundError for a missing log, and ValueError naming the log when it
    holds no record (of ``tasks``), only error records, or a workload with no DAG here,
    and naming the task when one of ``tasks`` has no record in any log.
    """
    given = None if tasks is None else list(tasks)
    gathered: dict[tuple[str, str], _TaskRecords] = {}
    if given is not None:
        for task in given:
            gathered.setdefault(_task_group(task), _TaskRecords(task))
    for path in _as_paths(log):
        _gather(path, given, gathered)
    curves = []
    for group in gathered.values():
        if not group.points:
            logs = ", ".join(str(path) for path in _as_paths(log))
            raise ValueError(f"tuning_curves: no record of task {describe(group.task)!r} in {logs}")
        curves.append(_curve(group))
    return curves


def _task_group(task: SearchTask) -> tuple[str, str]:
    """What makes records one task's: the workload key and the target."""
    return normalize_key(task.workload_key), str(task.target)


def _gather(
    path: PathLike, given: list[SearchTask] | None, gathered: dict[tuple[str, str], _TaskRecords]
) -> None:
    """Add the records of one log to ``gathered``, checking the log has something to draw."""
    records = list(RecordReader(path, given or ()))
    if not records:
        raise ValueError(
            f"the record log {path} holds no record (it is empty, or every line is a comment or corrupt)"
        )
    wanted = None if given is None else {id(task) for task in given}
    pairs = [(inp, res) for inp, res in records if wanted is None or id(inp.task) in wanted]
    if not pairs:
        raise ValueError(
            f"the record log {path} holds {len(records)} record(s), none of the tasks given "
            f"({[describe(task) for task in given or ()]})"
        )
    errors = Counter(res.error_no.name for _, res in pairs if not res.ok)
    if sum(errors.values()) == len(pairs):
        raise ValueError(
            f"the record log {path} holds {len(pairs)} record(s), all of them errors "
            f"({dict(errors)}): there is no throughput to plot"
        )
    start = min(res.timestamp for _, res in records)
    for inp, res in pairs:
        group = gathered.setdefault(_task_group(inp.task), _TaskRecords(inp.task))
        if math.isnan(group.flop):
            group.flop = _flop(group.task, path)
        gflops = group.flop / res.median_cost / 1e9 if res.ok else math.nan
        group.add(tuple(inp.state.transform_steps), res.timestamp - start, gflops)


def _flop(task: SearchTask, path: PathLike) -> float:
    """The FLOP count of a task's DAG; ValueError naming the log when it has none here."""
    try:
        return task.compute_dag.flop_ct
    except WorkloadError:
        raise ValueError(
            f"the record log {path} holds records of workload {task.workload_key}, which is not "
            "registered in this process: its FLOP count is unknown; pass its SearchTask in tasks=[...]"
        ) from None


def _curve(group: _TaskRecords) -> TuningCurve:
    by_time = sorted(group.points, key=lambda point: point[0])  # stable: log order breaks ties
    remeasured = None
    if group.remeasured_at is not None:
        remeasured = (group.remeasured_at, _best_so_far(group.latest.values())[-1])
    return TuningCurve(
        label=describe(group.task),
        workload_key=group.task.workload_key,
        flop=group.flop,
        trials=tuple(range(1, len(group.points) + 1)),
        best_gflops_by_trial=_best_so_far(gflops for _, gflops in group.points),
        seconds=tuple(seconds for seconds, _ in by_time),
        best_gflops_by_time=_best_so_far(gflops for _, gflops in by_time),
        remeasured=remeasured,
    )


def plot_tuning(
    log: PathLike | Sequence[PathLike],
    path: PathLike | None = None,
    *,
    tasks: Iterable[SearchTask] | None = None,
) -> Figure:
    """Two panels of ``tuning_curves(log, tasks=tasks)``: each task's best GFLOP/s so far
    against its trials (left) and against wall time since its log's first record (right),
    as steps, and a cross for the re-measured best where there is one. Writes a PNG to
    ``path`` when given. Raises ImportError without matplotlib, and what
    ``tuning_curves`` raises."""
    figure_class = _figure_class("plot_tuning")
    curves = tuning_curves(log, tasks=tasks)
    entries = len(curves) + any(curve.remeasured for curve in curves)
    figure, (by_trial, by_time) = _figure(figure_class, panels=2, legend_entries=entries)
    for index, curve in enumerate(curves):
        color, linestyle = _line_style(index)
        by_trial.plot(
            curve.trials,
            curve.best_gflops_by_trial,
            drawstyle="steps-post",
            color=color,
            linestyle=linestyle,
            label=curve.label,
            gid=CURVE_GID,
        )
        by_time.plot(
            curve.seconds,
            curve.best_gflops_by_time,
            drawstyle="steps-post",
            color=color,
            linestyle=linestyle,
            gid=CURVE_GID,
        )
        if curve.remeasured is not None:
            seconds, gflops = curve.remeasured
            label = "re-measured best" if not any(c.remeasured for c in curves[:index]) else None
            for axes, x in ((by_trial, curve.trials[-1]), (by_time, seconds)):
                axes.plot(
                    [x], [gflops], marker="x", color=color, linestyle="none", gid=REMEASURED_GID, label=label
                )
                label = None  # one legend entry
    by_trial.set(xlabel="trials of the task", ylabel="best GFLOP/s so far", title="Best throughput per trial")
    by_time.set(
        xlabel="wall time since the log's first record (s)",
        ylabel="best GFLOP/s so far",
        title="Best throughput over time",
    )
    return _finish(figure, [by_trial, by_time], path)


# ------------------------------------------------------------------------------------------
# estimated network latency, from the scheduler's latency files


@dataclass(frozen=True)
class LatencyPoint:
    """One scheduler round: ``seconds`` of tuning, ``trials`` in all, and the estimated
    network latency in ms (None while some task had no valid program)."""

    seconds: float
    trials: int
    latency_ms: float | None


def _parse_latency_line(fields: list[str]) -> LatencyPoint:
    """One line of either layout (module docstring); ValueError when it is neither."""
    if len(fields) == 6 and fields[0::2] == ["ElapsedTime(s)", "EstimatedLatency(ms)", "Trials"]:
        seconds, latency, trials = fields[1], fields[3], fields[5]
    elif len(fields) == 3:
        trials, seconds, latency = fields
    else:
        raise ValueError(
            "expected 'ElapsedTime(s) <s> EstimatedLatency(ms) <ms> Trials <n>' or '<trials> <s> <ms>', "
            "tab separated"
        )
    latency_ms = None if latency in NO_LATENCY_WORDS else float(latency)
    point = LatencyPoint(float(seconds), int(trials), latency_ms)
    if not (math.isfinite(point.seconds) and point.seconds >= 0 and point.trials >= 0):
        raise ValueError(f"seconds {seconds} and trials {trials} must be finite and >= 0")
    if latency_ms is not None and not (math.isfinite(latency_ms) and latency_ms > 0):
        raise ValueError(f"latency {latency} ms must be a finite number > 0")
    return point


def read_latency_log(path: PathLike) -> list[LatencyPoint]:
    """The rounds of an estimated-latency file (either layout of the module docstring),
    blank lines skipped. Raises FileNotFoundError for a missing file and ValueError naming
    ``file:line`` for a line of neither layout."""
    points = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                points.append(_parse_latency_line(line.rstrip("\r\n").split("\t")))
            except ValueError as error:
                raise ValueError(
                    f"{path}:{number}: not an estimated-latency line {line!r}: {error}"
                ) from None
    return points


def network_name(path: PathLike) -> str:
    """A latency file's label: its name up to the first dot ("dcgan.progress.tsv": dcgan)."""
    return Path(path).name.split(".")[0]


def plot_network(
    progress_or_log: PathLike | Sequence[PathLike],
    path: PathLike | None = None,
    *,
    measured: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> Figure:
    """The estimated network latency (ms) against tuning time (s), one line per
    estimated-latency file (``read_latency_log``), labelled ``network_name(file)``, as
    steps: an estimate holds until the next round's.

    ``measured``: by network name, (tuning seconds, measured ms) of networks built from
    the log at those times, drawn as markers in the colour of that network's line. Writes
    a PNG to ``path`` when given. Raises ImportError without matplotlib, and ValueError
    naming the file when it has no line or no round with an estimated latency."""
    figure_class = _figure_class("plot_network")
    files = _as_paths(progress_or_log)
    names = [network_name(file) for file in files]
    unknown = sorted(set(measured or {}) - set(names))
    if unknown:
        raise ValueError(
            f"plot_network: measured latencies of {unknown}, which no file given names ({names})"
        )
    series = []
    for file in files:
        points = read_latency_log(file)
        if not points:
            raise ValueError(f"the estimated-latency file {file} holds no line")
        known = [(point.seconds, point.latency_ms) for point in points if point.latency_ms is not None]
        if not known:
            raise ValueError(
                f"the estimated-latency file {file} holds {len(points)} round(s), none with an estimated "
                "latency (some task had no valid program yet)"
            )
        series.append(known)
    entries = len(files) + sum(1 for points in (measured or {}).values() if points)
    figure, (axes,) = _figure(figure_class, panels=1, legend_entries=entries)
    for index, (name, known) in enumerate(zip(names, series)):
        color, linestyle = _line_style(index)
        seconds, latency = zip(*known)
        axes.plot(
            seconds,
            latency,
            marker=".",
            drawstyle="steps-post",
            color=color,
            linestyle=linestyle,
            label=f"{name} (estimated)",
        )
        if measured and measured.get(name):
            xs, ys = zip(*measured[name])
            axes.plot(xs, ys, marker="o", linestyle="none", color=color, label=f"{name} (measured)")
    axes.set(
        xlabel="tuning time (s)",
        ylabel="network latency (ms)",
        title="Network latency during tuning (estimated: the task scheduler's objective)",
    )
    return _finish(figure, [axes], path)


# ------------------------------------------------------------------------------------------
# drawing


def _figure_class(who: str) -> type[Figure]:
    """matplotlib's Figure, or ImportError saying how to install it."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(
            f"{who} draws with matplotlib, an optional dependency that is not installed: {INSTALL_HINT}"
        ) from error
    return Figure


def _figure(figure_class: type[Figure], panels: int, legend_entries: int) -> tuple[Figure, list[Axes]]:
    """A figure of ``panels`` side by side, tall enough for a legend below them."""
    legend_rows = math.ceil(legend_entries / LEGEND_COLUMNS)
    height = PANEL_HEIGHT + LEGEND_ROW_HEIGHT * legend_rows
    figure = figure_class(figsize=(FIGURE_WIDTH, height), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    return figure, list(axes)


def _line_style(index: int) -> tuple[str, str]:
    """(colour, line style) of the ``index``-th line: ten colours, then the same colours
    dashed, dotted, dash-dotted."""
    return f"C{index % 10}", ("-", "--", ":", "-.")[index // 10 % 4]


def _finish(figure: Figure, axes: list[Axes], path: PathLike | None) -> Figure:
    """Grids, one legend below the panels, and the PNG when ``path`` is given."""
    for panel in axes:
        panel.grid(True, alpha=0.3)
        panel.set_ylim(bottom=0)
    figure.legend(loc="outside lower center", ncols=LEGEND_COLUMNS, fontsize="small", frameon=False)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=DPI)
    return figure
