"""Whole networks, untuned or tuned, beside onnxruntime and PyTorch (Ansor paper section 7.3,
batch 1).

For each network of the model zoo (``ansor_py.network.zoo``: resnet50, mobilenet_v2,
resnet3d_18, dcgan, bert_base; ``--networks`` picks some):

1. the graph is built (seeded weights) and run by the numpy reference, the oracle;
2. ours: ``build_network(graph)`` with no tuning records, so every task gets the default
   schedule (``default_schedule``); the compile time is reported;
3. onnxruntime: the graph written by ``onnx_writer.to_onnx`` (opset 17), a CPU session with
   ``intra_op_num_threads = --threads`` and ``inter_op_num_threads = 1``, all graph
   optimisations on (as a user runs it);
4. PyTorch (when ``import torch`` works; ``torch.set_num_threads(--threads)``): the same
   graph with the same weights run node by node in eager PyTorch (``torch_graph.to_torch``,
   beside this script: one ``torch.nn.functional`` call per node, as an ``nn.Module`` of
   these layers would run; numpy in and out). This covers all five networks; no
   torchvision or transformers model is needed.

Every peer's output is compared with the reference (relative error 1e-4 of the output's
largest magnitude); a mismatch is printed and makes the exit status 1. Latencies are
medians of ``--repeat`` interleaved repeats (ours, onnxruntime, PyTorch, ours, ...), each
repeat being enough back-to-back calls to last ``--min-repeat-ms``, with a ``--pause``
before each so that the previous peer's worker threads stop spinning. The executor's
overhead is ``Network.profile``'s: the share of a network call not spent in its kernels
(input copies and the executor's loop of C calls).

    python benchmarks/networks.py [--networks resnet50 dcgan] [--repeat 15] [--threads 2] [--save]

With ``--tune TRIALS`` (or per network, ``--tune dcgan=455 resnet50=3500``) ours is tuned
instead (``network_tuning``, beside this script): the network's tasks are tuned by the
task scheduler until ``<--log-dir>/<network>.json`` holds TRIALS of their records
(resumable: a second run with a larger budget continues, and one with the same budget
only re-times), and built from the log's first TRIALS records with
layout rewrite (``--no-layout-rewrite`` to compare). It is also built from the log's first
10%, 25% and 50% of the budget and with no records at all (untuned), and every build is
checked and timed in the same interleaved repeats as the peers: the latency-versus-tuning-
time curve.

    python benchmarks/networks.py --tune 2000 --networks dcgan [--log-dir DIR] [--save]

``--population`` (the evolutionary search's generation, TVM's 2048) and ``--per-round``
(programs measured per scheduler round, TVM's 64) trade search per round for rounds per
hour when the budget is small; ``--tune-only`` tunes into the log and stops, so a long
tuning can run unattended and a later run with the same budget builds and times on a quiet
machine.

The whole run happens in a child process whose OMP_NUM_THREADS and OPENBLAS_NUM_THREADS
equal ``--threads``, with OpenMP's default wait policy (``tune_ops.run_as_child``).
``--save`` writes the table to ``benchmarks/results/networks.md`` (tuned:
``networks_tuned.md``, and the latency-versus-tuning-time curve, estimated and measured, as
``networks_tuned.png`` when matplotlib is installed; ``--save-to PATH`` names another file,
e.g. one per machine kind). Quote the ratios:
absolute numbers move +-30% on a shared machine.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from llvmlite import binding as llvm
from network_tuning import (  # beside this script
    CurvePoint,
    TuneOutcome,
    curve_points,
    history_after,
    progress_path,
    tune_network,
)
from tune_ops import import_torch, run_as_child  # beside this script

from ansor_py.network.executor import Network, NetworkBuildWarning, build_network
from ansor_py.network.graph import Graph
from ansor_py.network.onnx_writer import to_onnx
from ansor_py.network.reference import run_reference
from ansor_py.network.tasks import extract_tasks
from ansor_py.network.zoo import NETWORKS, random_inputs
from ansor_py.plot import plot_network
from ir.layout_rewrite import LayoutRewriteOption

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "networks.md"
RESULTS_TUNED = HERE / "results" / "networks_tuned.md"
#: tuning logs are committed, one folder per host core (LLVM's name of it: znver3, znver5),
#: so that a published result can be rebuilt, and a tuning resumed, on a fresh machine
LOG_ROOT = HERE / "logs" / llvm.get_host_cpu_name()
DEFAULT_LOG_DIR = LOG_ROOT / "networks"


# ------------------------------------------------------------------------------------------
# PyTorch: the graph run node by node in eager mode (benchmarks/torch_graph.py)


def import_torch_peer(threads: int) -> ModuleType | None:
    """``benchmarks/torch_graph.py`` (PyTorch with ``threads`` intra-op threads), or None
    when PyTorch is not installed."""
    if import_torch(threads) is None:
        return None
    import torch_graph  # beside this script; imports torch

    return torch_graph


# ------------------------------------------------------------------------------------------
# timing


def calls_per_repeat(fn: Callable[[], object], min_repeat_ms: float) -> int:
    """Back-to-back calls that last at least ``min_repeat_ms`` (after one warm-up call)."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    return max(1, int(np.ceil(min_repeat_ms / 1e3 / once)))


def time_interleaved(peers: Mapping[str, Callable[[], object]], args: argparse.Namespace) -> dict[str, float]:
    """Median seconds per call of each peer over ``args.repeat`` interleaved repeats."""
    number = {name: calls_per_repeat(fn, args.min_repeat_ms) for name, fn in peers.items()}
    samples: dict[str, list[float]] = {name: [] for name in peers}
    for _ in range(args.repeat):
        for name, fn in peers.items():
            time.sleep(args.pause)
            start = time.perf_counter()
            for _ in range(number[name]):
                fn()
            samples[name].append((time.perf_counter() - start) / number[name])
    return {name: statistics.median(values) for name, values in samples.items()}


# ------------------------------------------------------------------------------------------
# one network


@dataclass
class Row:
    """One network's results (seconds; None where not measured)."""

    network: str
    ours_s: float | None = None
    onnxruntime_s: float | None = None
    torch_s: float | None = None
    overhead: float | None = None
    kernels: int = 0
    calls: int = 0
    compile_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    # --tune only: the tuning, the untuned build's latency, the curve (point, seconds)
    tuned: TuneOutcome | None = None
    tuned_kernels: int = 0
    untuned_s: float | None = None
    curve: list[tuple[CurvePoint, float | None]] = field(default_factory=list)


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - expected).max() / np.abs(expected).max())


def check(row: Row, peer: str, got: np.ndarray, expected: np.ndarray) -> None:
    error = relative_error(got, expected)
    print(f"  {peer}: max error {error:.1e} of the output's largest magnitude", flush=True)
    if got.shape != expected.shape or not error <= 1e-4:
        row.errors.append(f"{row.network} {peer}: max relative error {error:.2e} (shape {got.shape})")


def onnxruntime_options(threads: int) -> Any:
    """The peer's session options: ``threads`` intra-op threads, one inter-op thread, all
    graph optimisations (onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def onnxruntime_peer(graph: Graph, threads: int, options: Any = None) -> Any:
    """A CPU session of ``graph`` written as ONNX (opset 17) with ``options`` (default
    ``onnxruntime_options(threads)``)."""
    import onnxruntime as ort

    model = to_onnx(graph, opset=17).SerializeToString()
    options = options or onnxruntime_options(threads)
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def build_untuned(graph: Graph) -> Network:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetworkBuildWarning)  # untuned on purpose
        return build_network(graph, "llvm")


def layout_rewrite_option(args: argparse.Namespace) -> LayoutRewriteOption:
    """How tuned builds lay out their weights (``--no-layout-rewrite``: as the graph has them)."""
    if args.no_layout_rewrite:
        return LayoutRewriteOption.NO_REWRITE
    return LayoutRewriteOption.REWRITE_FOR_PRE_TRANSFORMED


def curve_label(point: CurvePoint) -> str:
    return f"ours after {point.fraction:.0%}"


def budget_of(args: argparse.Namespace, network: str) -> int:
    """The network's tuning budget: its ``NET=TRIALS`` entry of ``--tune``, else the plain one."""
    budgets: dict[str, int] = args.budgets
    return budgets.get(network, budgets.get("", 0))


def budgets_text(args: argparse.Namespace) -> str:
    """The budgets as given, e.g. ``dcgan=455, 1000``."""
    return ", ".join(f"{name}={trials}" if name else str(trials) for name, trials in args.budgets.items())


def tune(graph: Graph, row: Row, args: argparse.Namespace) -> TuneOutcome:
    """Tune the network into ``<--log-dir>/<network>.json`` (``network_tuning.tune_network``)."""
    tasks, weights = extract_tasks(graph, "llvm")
    log = args.log_dir / f"{row.network}.json"
    row.tuned = tune_network(
        graph,
        tasks,
        weights,
        log,
        budget_of(args, row.network),
        verbose=args.verbose,
        population=args.population,
        per_round=args.per_round,
        cache_flush=not args.no_cache_flush,
    )
    return row.tuned


def tuned_builds(graph: Graph, row: Row, args: argparse.Namespace) -> dict[str, Network]:
    """Tune the network (``network_tuning.tune_network``) and build it from its log after
    each point of the curve; "ours" is the build after the whole budget, "untuned" the one
    without records."""
    outcome = tune(graph, row, args)
    log = outcome.log
    builds: dict[str, Network] = {}
    option = layout_rewrite_option(args)
    for point in curve_points(outcome, budget_of(args, row.network)):
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:  # tasks left untuned are counted below
            warnings.simplefilter("always", NetworkBuildWarning)
            network = build_network(
                graph, "llvm", history_after(log, point.trials), layout_rewrite_option=option
            )
        label = "ours" if point.fraction == 1.0 else curve_label(point)
        tuned = sum(kernel.tuned for kernel in network.kernels)
        if label == "ours":
            row.compile_s = time.perf_counter() - start
            row.tuned_kernels = tuned
            for warning in caught:
                print(f"  {warning.message}", flush=True)
        print(
            f"  {label} ({point.trials} trials): {tuned} of {len(network.kernels)} kernels tuned, "
            f"built in {time.perf_counter() - start:.1f} s",
            flush=True,
        )
        builds[label] = network
        row.curve.append((point, None))
    builds["untuned"] = build_untuned(graph)
    return builds


def run_network(name: str, args: argparse.Namespace, torch_peer: ModuleType | None) -> Row:
    row = Row(name)
    print(f"{name}:", flush=True)
    graph = NETWORKS[name]()
    inputs = random_inputs(graph, seed=1)
    expected = run_reference(graph, inputs)[0]

    if args.tune_only:
        tune(graph, row, args)
        return row
    if args.tune:
        builds = tuned_builds(graph, row, args)
        builds = {"ours": builds.pop("ours"), **builds}
    else:
        start = time.perf_counter()
        builds = {"ours": build_untuned(graph)}
        row.compile_s = time.perf_counter() - start
    network = builds["ours"]
    row.kernels, row.calls = len(network.kernels), len(network.calls)
    print(
        f"  ours: {row.calls} kernel calls, {row.kernels} kernels, compiled in {row.compile_s:.1f} s",
        flush=True,
    )
    peers: dict[str, Callable[[], object]] = {}
    for label, build in builds.items():
        check(row, label, np.array(build.run_inputs(inputs)[0]), expected)
        peers[label] = functools.partial(build.run_inputs, inputs)

    session = onnxruntime_peer(graph, args.threads)
    check(row, "onnxruntime", np.asarray(session.run(None, inputs)[0]), expected)
    peers["onnxruntime"] = lambda: session.run(None, inputs)

    if torch_peer is not None:
        program = torch_peer.to_torch(graph)
        check(row, "torch", program(inputs)[0], expected)
        peers["torch"] = lambda: program(inputs)

    times = time_interleaved(peers, args)
    row.ours_s, row.onnxruntime_s, row.torch_s = times["ours"], times["onnxruntime"], times.get("torch")
    row.untuned_s = times.get("untuned")
    row.curve = [
        (point, times["ours" if point.fraction == 1.0 else curve_label(point)]) for point, _ in row.curve
    ]
    time.sleep(args.pause)
    report = network.profile(inputs, repeat=args.repeat)
    row.overhead = report.overhead
    summary = ", ".join(f"{peer} {seconds * 1e3:.2f} ms" for peer, seconds in times.items())
    print(f"  {summary}; executor overhead {row.overhead:.1%}", flush=True)
    return row


# ------------------------------------------------------------------------------------------
# report


def cpu_description() -> str:
    """The CPU model (with LLVM's name of the core, e.g. znver5, where /proc/cpuinfo says
    only "AMD EPYC") and its widest vector ISA."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() in ("flags", "Features"):
            flags = set(value.split())
    isa = next(
        (
            name
            for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("asimd", "NEON"))
            if flag in flags
        ),
        "no AVX2",
    )
    return f"{model} ({llvm.get_host_cpu_name()}, {isa})"


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def ratio(ours: float | None, theirs: float | None) -> str:
    return "-" if ours is None or theirs is None else f"{ours / theirs:.2f}x"


def machine_line(threads: int, load: float) -> str:
    return (
        f"Machine: {cpu_description()}, {os.cpu_count()} cores; {threads} threads for every peer; "
        f"batch 1; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load:.1f} at the "
        "start (other processes beside the benchmark slow the 2-thread peers unevenly)."
    )


def errors_of(rows: Sequence[Row]) -> list[str]:
    errors = [f"- ERROR {e}" for r in rows for e in r.errors]
    return [""] + errors if errors else []


def format_table(rows: Sequence[Row], threads: int, load: float) -> str:
    lines = [
        machine_line(threads, load),
        "",
        "Latency in ms (median); `ours / peer` > 1 means we are slower. Ours is untuned: "
        "every task runs its default schedule.",
        "",
        "| network | ours (untuned) | onnxruntime | PyTorch eager | ours / onnxruntime | ours / PyTorch "
        "| executor overhead | kernel calls (kernels) | compile s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        overhead = "-" if r.overhead is None else f"{r.overhead:.1%}"
        lines.append(
            f"| {r.network} | {ms(r.ours_s)} | {ms(r.onnxruntime_s)} | {ms(r.torch_s)} "
            f"| {ratio(r.ours_s, r.onnxruntime_s)} | {ratio(r.ours_s, r.torch_s)} | {overhead} "
            f"| {r.calls} ({r.kernels}) | {r.compile_s:.1f} |"
        )
    return "\n".join(lines + errors_of(rows))


def format_tuned_table(rows: Sequence[Row], args: argparse.Namespace, load: float) -> str:
    """The tuned run's table, then its latency-versus-tuning-time curve."""

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    rewrite = "without" if args.no_layout_rewrite else "with"
    lines = [
        machine_line(args.threads, load),
        "",
        f"Latency in ms (median of interleaved repeats); `ours / peer` > 1 means we are slower. Ours is "
        f"tuned by the task scheduler with a budget of {budgets_text(args)} trials per network (logs in "
        f"`{args.log_dir}`) and built from its log {rewrite} layout rewrite; tuning time is the "
        "wall time of all runs that wrote the log (this run's in brackets).",
        "",
        "| network | tasks | trials | tuning s | ours (tuned) | ours (untuned) | onnxruntime | PyTorch eager "
        "| ours / onnxruntime | ours / PyTorch | tuned kernels | kernel calls |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = r.tuned
        tuning = "-" if t is None else f"{seconds(t.total_s)} ({t.run_s:.0f})"
        lines.append(
            f"| {r.network} | {t.tasks if t else '-'} | {t.trials if t else '-'} | {tuning} "
            f"| {ms(r.ours_s)} | {ms(r.untuned_s)} | {ms(r.onnxruntime_s)} | {ms(r.torch_s)} "
            f"| {ratio(r.ours_s, r.onnxruntime_s)} | {ratio(r.ours_s, r.torch_s)} "
            f"| {r.tuned_kernels} of {r.kernels} | {r.calls} |"
        )
    lines += [
        "",
        "Latency versus tuning time: the network built from the first trials of its log.",
        "",
        "| network | share of budget | trials | tuning s | ours, ms | ours / onnxruntime |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.network} | 0 (untuned) | 0 | 0 | {ms(r.untuned_s)} "
            f"| {ratio(r.untuned_s, r.onnxruntime_s)} |"
        )
        for point, latency in r.curve:
            lines.append(
                f"| {r.network} | {point.fraction:.0%} | {point.trials} | {seconds(point.tuning_s)} "
                f"| {ms(latency)} | {ratio(latency, r.onnxruntime_s)} |"
            )
    return "\n".join(lines + errors_of(rows))


def save(table: str, args: argparse.Namespace) -> Path:
    command = "python benchmarks/networks.py " + " ".join(sys.argv[1:]).replace("--child", "").strip()
    kind, path = ("tuned", RESULTS_TUNED) if args.tune else ("untuned", RESULTS)
    path = args.save_to or path
    text = (
        f"# networks.py: whole networks, {kind}, beside onnxruntime and PyTorch\n\n"
        f"Command: `{command.strip()}`.\n\n{table}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def save_figure(rows: Sequence[Row], table_path: Path) -> None:
    """The latency-versus-tuning-time curve of the tuned networks as a PNG beside the tuned
    table: the task scheduler's estimate after each round (``<network>.progress.tsv``) and
    the latencies measured here (untuned at 0 s, then the table's builds); a note instead
    when matplotlib is missing or no network has a progress file."""
    tuned = [r for r in rows if r.tuned is not None and progress_path(r.tuned.log).is_file()]
    measured = {}
    for r in tuned:
        points = [(0.0, r.untuned_s * 1e3)] if r.untuned_s is not None else []
        points += [(p.tuning_s, ms * 1e3) for p, ms in r.curve if p.tuning_s is not None and ms is not None]
        measured[r.network] = points
    path = table_path.with_suffix(".png")
    try:
        plot_network([progress_path(r.tuned.log) for r in tuned if r.tuned], path, measured=measured)
    except (ImportError, ValueError) as error:
        print(f"no latency-curve figure: {error}")
    else:
        print(f"latency curve: {path}")


def run_child(args: argparse.Namespace) -> int:
    torch_peer = None if args.no_torch else import_torch_peer(args.threads)
    load = os.getloadavg()[0]
    if args.tune:
        args.log_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.networks:
        try:
            rows.append(run_network(name, args, torch_peer))
        except Exception as error:  # the table reports it, and the exit status is 1
            print(f"  FAILED: {type(error).__name__}: {error}", flush=True)
            rows.append(Row(name, errors=[f"{name}: {type(error).__name__}: {error}"]))
    table = format_tuned_table(rows, args, load) if args.tune else format_table(rows, args.threads, load)
    print()
    print(table)
    if args.save:
        table_path = save(table, args)
        print(f"\nsaved to {table_path}")
        if args.tune:
            save_figure(rows, table_path)
    return 1 if any(r.errors for r in rows) else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS), metavar="NET"
    )
    parser.add_argument("--repeat", type=int, default=15, help="interleaved timing repeats (median quoted)")
    parser.add_argument("--min-repeat-ms", type=float, default=100.0, help="least time of one repeat")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds of rest before each repeat")
    parser.add_argument("--threads", type=int, default=2, help="threads for ours, onnxruntime and PyTorch")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument(
        "--tune",
        nargs="+",
        default=[],
        metavar="TRIALS",
        help="tune each network with this many trials in all (resuming its log), not run it untuned; "
        "NET=TRIALS entries give networks their own budgets (a plain number: every other network)",
    )
    parser.add_argument(
        "--population",
        type=int,
        default=None,
        help="evolutionary search population per round (default: TVM's 2048)",
    )
    parser.add_argument(
        "--per-round", type=int, default=64, help="programs measured per scheduler round (TVM's 64)"
    )
    parser.add_argument(
        "--no-cache-flush",
        action="store_true",
        help="time candidates hot (back-to-back calls) instead of after a cache flush each",
    )
    parser.add_argument(
        "--tune-only",
        action="store_true",
        help="tune into the log and stop: no builds, no timing (a later run with the same budget times)",
    )
    parser.add_argument("--log-dir", type=Path, default=DEFAULT_LOG_DIR, help="tuning logs, one per network")
    parser.add_argument(
        "--no-layout-rewrite", action="store_true", help="build tuned networks without layout rewrite"
    )
    parser.add_argument("--verbose", type=int, default=1, help="the tuner's verbosity (0: quiet)")
    parser.add_argument(
        "--save", action="store_true", help=f"write the table to {RESULTS} (tuned: {RESULTS_TUNED})"
    )
    parser.add_argument(
        "--save-to", type=Path, default=None, help="with --save: the table's file (figure beside)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("repeat", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)} must be at least 1")
    args.budgets = {}
    for entry in args.tune:
        name, _, trials = entry.rpartition("=")
        if name and name not in NETWORKS:
            parser.error(f"--tune {entry}: no network {name!r} (known: {', '.join(NETWORKS)})")
        if not trials.isdigit() or int(trials) < 1:
            parser.error(f"--tune {entry}: the budget must be a number of trials >= 1")
        args.budgets[name] = int(trials)
    if args.tune and any(name not in args.budgets and "" not in args.budgets for name in args.networks):
        missing = [name for name in args.networks if name not in args.budgets]
        parser.error(f"--tune gives no budget for {', '.join(missing)} (add NET=TRIALS or a plain number)")
    for name in ("population", "per_round"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} {value} must be at least 1")
    if args.tune_only and not args.tune:
        parser.error("--tune-only needs --tune TRIALS")
    if args.pause < 0:
        parser.error(f"--pause {args.pause} must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_child(args) if args.child else run_as_child(__file__, argv, args.threads)


if __name__ == "__main__":
    sys.exit(main())
