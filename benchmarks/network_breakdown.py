"""Which tasks hold a tuned network back: its kernels, task by task, beside onnxruntime's
nodes, with what the tuning records say about each task (Ansor paper section 6, the task
scheduler's view of a network as weighted tasks; section 7.3, the networks beside a
vendor library).

For each network of the zoo (``--networks``) and its tuning log (``<--log-dir>/<net>.json``,
or ``--log``):

1. ours: ``build_network(graph, "llvm", ApplyHistoryBest(log))`` (``--trials N``: from the
   log's first N records, ``network_tuning.history_after``), checked against the numpy
   reference, then ``Network.profile``: the median seconds of each kernel call;
2. onnxruntime: the graph written by ``onnx_writer.to_onnx`` in a session as
   ``networks.onnxruntime_peer`` makes it (``--threads`` intra-op threads, all graph
   optimisations) with ``enable_profiling`` on, run ``--repeat`` times after one warm-up
   run: the median microseconds of each of its nodes (``parse_ort_profile``);
3. onnxruntime's nodes are given to our tasks (``OrtAttribution``). onnxruntime fuses
   nodes (a convolution with its batch norm, bias, activation and residual add; its NCHWc
   convolutions) and renames them, so each of its nodes is traced to one node of the
   original graph, its *anchor*: the producer of an original value it writes (a fused
   node writes the value of the last node it swallowed), else the node its name is derived
   from (NCHWc nodes are named ``<value>_nchwc``; the ONNX writer names nodes ``<node>`` or
   ``<node>_<n>``), else the anchor of a neighbour (a layout reorder onnxruntime inserted
   counts with the node it feeds or follows). The anchor's kernel of ours is the subgraph
   holding the optimised node derived from it (the graph passes keep the name or add a
   suffix: ``<node>``, ``<node>_bias_add``, ``<value>_nhwc``). A node of onnxruntime whose
   anchor no kernel of ours computes (a reshape our passes removed) or that has no anchor is
   shown as unattributed, with its time;
4. per task (a distinct workload key, weighted by its number of kernel calls as the task
   scheduler weighs it): our milliseconds summed over its calls, onnxruntime's for the same
   nodes, their ratio, the gap (ours - onnxruntime) and its share of the network's gap (our
   kernels' sum - onnxruntime's nodes' sum). From the log: the trials spent on the task,
   the best program's GFLOP/s (the record ``ApplyHistoryBest`` picks), the failed trials,
   and the trial that found the best: found in the last quarter of the task's trials means
   the search was still improving (more trials would help); earlier means a plateau (the
   search space or the code generator limits it). A kernel built without a record runs
   the default schedule and is marked so.

Rows are sorted by the gap, largest first: the tasks that hold the network back on top.
Whole-network latencies (ours and a session without profiling) are medians of
interleaved repeats (``networks.time_interleaved``); per-node profiling adds a little to
onnxruntime's node times, so the node sum is shown beside its whole-run latency.

    python benchmarks/network_breakdown.py --networks dcgan mobilenet_v2 [--log-dir DIR] [--save]

The run happens in a child process whose OpenMP and OpenBLAS pools have ``--threads``
threads (``tune_ops.run_as_child``), as ``networks.py`` runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from network_tuning import history_after  # beside this script
from networks import (  # beside this script
    DEFAULT_LOG_DIR,
    Row,
    check,
    layout_rewrite_option,
    machine_line,
    ms,
    onnxruntime_options,
    onnxruntime_peer,
    ratio,
    time_interleaved,
)
from tune_ops import run_as_child  # beside this script

from ansor_py.measure.types import MeasureErrorNo
from ansor_py.network.executor import KernelCall, Network, NetworkBuildWarning, build_network
from ansor_py.network.graph import Graph, Node
from ansor_py.network.reference import run_reference
from ansor_py.network.zoo import NETWORKS, random_inputs
from ansor_py.records import ApplyHistoryBest, RawRecord, normalize_key, read_raw_records

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "network_breakdown.md"
#: a best program found in this last share of a task's trials: the search was still improving
LATE_BEST_SHARE = 0.25
#: the suffix onnxruntime's profiler gives a node's kernel event
KERNEL_EVENT_SUFFIX = "_kernel_time"


# ------------------------------------------------------------------------------------------
# onnxruntime: per-node times from its profiler


@dataclass(frozen=True)
class OrtProfile:
    """Median microseconds of each node of onnxruntime's optimised graph over the profiled
    runs (``node_us``: node name -> microseconds, ``op_types``: node name -> op type) and
    of whole runs (``run_us``), ``runs`` runs after the warm-up."""

    node_us: dict[str, float]
    op_types: dict[str, str]
    run_us: float
    runs: int


def parse_ort_profile(events: Sequence[Mapping[str, Any]], warmup_runs: int = 1) -> OrtProfile:
    """onnxruntime's profile (the JSON list ``end_profiling`` writes, Chrome trace format)
    reduced to medians. A run is a ``model_run`` event (category "Session"); a node's time in
    a run is the sum of its ``<node>_kernel_time`` events (category "Node", ``dur`` in
    microseconds) that start inside the run. The first ``warmup_runs`` runs are left out.
    A node absent from some runs counts 0 there."""
    runs = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("cat") == "Session" and e["name"] == "model_run"
    )
    if len(runs) <= warmup_runs:
        raise ValueError(
            f"onnxruntime profile: {len(runs)} model_run event(s), need more than the "
            f"{warmup_runs} warm-up run(s)"
        )
    kept = runs[warmup_runs:]
    per_run: list[dict[str, float]] = [{} for _ in kept]
    op_types: dict[str, str] = {}
    for event in events:
        if event.get("cat") != "Node" or not event["name"].endswith(KERNEL_EVENT_SUFFIX):
            continue
        node = event["name"][: -len(KERNEL_EVENT_SUFFIX)]
        op_types[node] = event.get("args", {}).get("op_name", "?")
        for index, (start, end) in enumerate(kept):
            if start <= event["ts"] <= end:
                per_run[index][node] = per_run[index].get(node, 0.0) + float(event["dur"])
                break
    node_us = {node: statistics.median(run.get(node, 0.0) for run in per_run) for node in op_types}
    return OrtProfile(node_us, op_types, statistics.median(end - start for start, end in kept), len(kept))


@dataclass(frozen=True)
class OrtNode:
    """A node of onnxruntime's optimised graph (as it wrote it to ``optimized_model_filepath``)."""

    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def profile_onnxruntime(
    graph: Graph, inputs: Mapping[str, np.ndarray], threads: int, runs: int
) -> tuple[OrtProfile, list[OrtNode]]:
    """onnxruntime's per-node profile of ``graph`` (``runs`` runs after one warm-up) and the
    nodes of the graph it optimised ``graph`` into. The session is ``onnxruntime_peer``'s
    with profiling on and the optimised model written out."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="network_breakdown_") as workdir:
        options = onnxruntime_options(threads)
        options.log_severity_level = 3  # not the warning that an NCHWc model is machine-specific
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(workdir, "profile")
        options.optimized_model_filepath = os.path.join(workdir, "optimized.onnx")
        session = onnxruntime_peer(graph, threads, options)
        for _ in range(runs + 1):
            session.run(None, dict(inputs))
        events = json.loads(Path(session.end_profiling()).read_text())
        optimized = onnx.load(options.optimized_model_filepath, load_external_data=False)
    nodes = [OrtNode(n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in optimized.graph.node]
    return parse_ort_profile(events, warmup_runs=1), nodes


# ------------------------------------------------------------------------------------------
# onnxruntime's nodes -> the original graph's nodes -> our kernel calls


def derived_from(name: str, candidates: Mapping[str, Node]) -> Node | None:
    """The node of ``candidates`` (name -> node) that ``name`` is derived from: ``name`` itself
    or its longest prefix followed by ``_`` (``main.10_bias_add`` -> ``main.10``, not
    ``main.1``), or None."""
    prefix = name
    while True:
        if prefix in candidates:
            return candidates[prefix]
        prefix, sep, _ = prefix.rpartition("_")
        if not sep or not prefix:
            return None


def original_names(graph: Graph) -> dict[str, Node]:
    """The names an optimised or onnxruntime node may be derived from: the original graph's
    node names, and its value names (for the value's producer)."""
    names: dict[str, Node] = {}
    for node in graph.nodes:
        for value in node.outputs:
            names[value] = node
    for node in graph.nodes:
        names[node.name] = node  # a node's own name wins over a value of the same name
    return names


def kernel_of_original(graph: Graph, calls: Sequence[KernelCall]) -> dict[str, KernelCall]:
    """Original node name -> the kernel call computing it: the call whose subgraph holds the
    optimised node of the same name, else one holding a node derived from it with the same
    op (a batch norm's ``_bias_add`` is not its op; a tanh moved by a layout change is),
    else the first holding a node derived from it (a folded batch norm's bias add)."""
    names = original_names(graph)
    exact: dict[str, KernelCall] = {}
    same_op: dict[str, KernelCall] = {}
    derived: dict[str, KernelCall] = {}
    for call in calls:
        for node in call.subgraph.nodes:
            origin = derived_from(node.name, names)
            if origin is None:
                continue  # a node the passes made from a value, e.g. the input's layout change
            if node.name == origin.name:
                exact.setdefault(origin.name, call)
            if node.op == origin.op:
                same_op.setdefault(origin.name, call)
            derived.setdefault(origin.name, call)
    return {**derived, **same_op, **exact}


@dataclass
class OrtAttribution:
    """onnxruntime's node times given to our kernel calls: ``per_call`` (subgraph name ->
    microseconds) and ``unattributed`` (onnxruntime node, op type, microseconds, why)."""

    per_call: dict[str, float] = field(default_factory=dict)
    #: subgraph name -> (onnxruntime node, op type, microseconds) given to it
    nodes: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    unattributed: list[tuple[str, str, float, str]] = field(default_factory=list)


def anchor_of(node: OrtNode, names: Mapping[str, Node], producers: Mapping[str, Node]) -> Node | None:
    """The original node an onnxruntime node is traced to (module docstring, step 3), from
    the node alone: the producer of an original value it writes, else the node its name is
    derived from."""
    for value in node.outputs:
        if value in producers:
            return producers[value]
    return derived_from(node.name, names)


def attribute(
    profile: OrtProfile, ort_nodes: Sequence[OrtNode], graph: Graph, calls: Sequence[KernelCall]
) -> OrtAttribution:
    """Each profiled onnxruntime node's median time given to our kernel call computing its
    anchor (module docstring, step 3)."""
    names = original_names(graph)
    producers = {value: node for node in graph.nodes for value in node.outputs}
    kernels = kernel_of_original(graph, calls)
    by_name = {node.name: node for node in ort_nodes}
    anchors = {node.name: anchor_of(node, names, producers) for node in ort_nodes}
    ort_producer = {value: node.name for node in ort_nodes for value in node.outputs}
    ort_consumers: dict[str, list[str]] = {}
    for node in ort_nodes:
        for value in node.inputs:
            ort_consumers.setdefault(value, []).append(node.name)
    result = OrtAttribution()
    for name, us in profile.node_us.items():
        anchor = anchors.get(name)
        if anchor is None and name in by_name:  # a node onnxruntime inserted: follow a neighbour
            node = by_name[name]
            neighbours = [c for v in node.outputs for c in ort_consumers.get(v, [])]
            neighbours += [ort_producer[v] for v in node.inputs if v in ort_producer]
            anchor = next((anchors[n] for n in neighbours if anchors.get(n) is not None), None)
        op_type = profile.op_types.get(name, "?")
        if anchor is None:
            result.unattributed.append((name, op_type, us, "traced to no node of the graph"))
        elif anchor.name not in kernels:
            result.unattributed.append(
                (name, op_type, us, f"its node {anchor.name!r} ({anchor.op}) is in no kernel of ours")
            )
        else:
            subgraph = kernels[anchor.name].subgraph.name
            result.per_call[subgraph] = result.per_call.get(subgraph, 0.0) + us
            result.nodes.setdefault(subgraph, []).append((name, op_type, us))
    return result


# ------------------------------------------------------------------------------------------
# the tuning records of each task


@dataclass(frozen=True)
class TaskRecords:
    """A task's records in the log: ``trials`` (records, re-measurements included),
    ``errors`` (records with an error), ``best`` (the record ``ApplyHistoryBest`` builds
    from, or None) and ``best_trial`` (1-based: the task's trial that first measured the
    best program)."""

    trials: int
    errors: int
    best: RawRecord | None
    best_trial: int | None

    def verdict(self) -> str:
        """ "late" (found in the last LATE_BEST_SHARE of the trials: still improving),
        "plateau", or "-" without a best."""
        if self.best_trial is None:
            return "-"
        return "late" if self.best_trial > (1 - LATE_BEST_SHARE) * self.trials else "plateau"


def task_records(
    log: Path, history: ApplyHistoryBest, workload_keys: Sequence[str]
) -> dict[str, TaskRecords]:
    """``TaskRecords`` of each workload key (normalised) from the records of ``log``."""
    wanted = {normalize_key(key) for key in workload_keys}
    lines: dict[str, list[RawRecord]] = {key: [] for key in wanted}
    for raw in read_raw_records(log):
        key = normalize_key(raw.workload_key)
        if key in wanted:
            lines[key].append(raw)
    result = {}
    for key, records in lines.items():
        best = history.best("llvm", key)
        first = None if best is None else next(i for i, r in enumerate(records, 1) if r.steps == best.steps)
        errors = sum(r.result.error_no is not MeasureErrorNo.NO_ERROR for r in records)
        result[key] = TaskRecords(len(records), errors, best, first)
    return result


# ------------------------------------------------------------------------------------------
# one network


@dataclass(frozen=True)
class TaskRow:
    """One task of the table: seconds summed over its ``calls`` kernel calls."""

    desc: str
    calls: int
    ours_s: float
    ort_s: float
    flop: float
    tuned: bool
    records: TaskRecords
    #: onnxruntime's nodes attributed to the task's calls: (node, op type, microseconds)
    ort_nodes: tuple[tuple[str, str, float], ...] = ()

    @property
    def gap_s(self) -> float:
        return self.ours_s - self.ort_s


@dataclass
class Breakdown:
    """One network's breakdown: task rows, onnxruntime's unattributed nodes, the sums."""

    network: str
    log: Path
    rows: list[TaskRow] = field(default_factory=list)
    unattributed: list[tuple[str, str, float, str]] = field(default_factory=list)
    ours_kernels_s: float = 0.0
    ort_nodes_s: float = 0.0
    ours_s: float | None = None  # whole network, interleaved
    ort_s: float | None = None
    ort_run_s: float = 0.0  # the profiled session's median run
    errors: list[str] = field(default_factory=list)


def build_tuned(graph: Graph, history: ApplyHistoryBest, args: argparse.Namespace) -> Network:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetworkBuildWarning)  # the table marks default kernels
        return build_network(graph, "llvm", history, layout_rewrite_option=layout_rewrite_option(args))


def task_rows(
    network: Network, kernel_s: Mapping[str, float], ort: OrtAttribution, records: Mapping[str, TaskRecords]
) -> list[TaskRow]:
    """One row per task of the network's kernel calls, largest gap first. A task is the
    kernel's workload key (the tuned task's): with layout rewrite a call's subgraph holds
    the DAG rewritten for the record's layout, whose key is another."""
    grouped: dict[str, list[KernelCall]] = {}
    for call in network.calls:
        grouped.setdefault(normalize_key(call.kernel.workload_key), []).append(call)
    rows = [
        TaskRow(
            desc=calls[0].subgraph.desc,
            calls=len(calls),
            ours_s=sum(kernel_s[c.subgraph.name] for c in calls),
            ort_s=sum(ort.per_call.get(c.subgraph.name, 0.0) for c in calls) * 1e-6,
            flop=calls[0].subgraph.dag.flop_ct,
            tuned=calls[0].kernel.tuned,
            records=records[key],
            ort_nodes=tuple(node for c in calls for node in ort.nodes.get(c.subgraph.name, [])),
        )
        for key, calls in grouped.items()
    ]
    return sorted(rows, key=lambda row: row.gap_s, reverse=True)


def time_whole(
    network: Network,
    graph: Graph,
    inputs: Mapping[str, np.ndarray],
    args: argparse.Namespace,
    errors: list[str],
) -> tuple[float, float]:
    """(ours, onnxruntime): median seconds of whole calls in interleaved repeats, after
    checking both outputs against the numpy reference (a mismatch is added to ``errors``).
    The session (``onnxruntime_peer``, no profiling) is gone when this returns, so its
    threads do not compete with the profiled runs."""
    expected = run_reference(graph, inputs)[0]
    row = Row(graph.name)  # networks.check records a mismatch in row.errors
    check(row, "ours", np.array(network.run_inputs(inputs)[0]), expected)
    session = onnxruntime_peer(graph, args.threads)
    check(row, "onnxruntime", np.asarray(session.run(None, dict(inputs))[0]), expected)
    errors += row.errors
    peers = {
        "ours": functools.partial(network.run_inputs, inputs),
        "onnxruntime": functools.partial(session.run, None, dict(inputs)),
    }
    times = time_interleaved(peers, args)
    return times["ours"], times["onnxruntime"]


def run_network(name: str, args: argparse.Namespace) -> Breakdown:
    log = args.log if args.log is not None else args.log_dir / f"{name}.json"
    result = Breakdown(name, log)
    print(f"{name}: log {log}", flush=True)
    if not log.is_file():
        raise FileNotFoundError(f"network {name!r}: no tuning log at {log} (tune it with networks.py --tune)")
    graph = NETWORKS[name]()
    inputs = random_inputs(graph, seed=1)
    history = ApplyHistoryBest(log) if args.trials is None else history_after(log, args.trials)
    network = build_tuned(graph, history, args)
    result.ours_s, result.ort_s = time_whole(network, graph, inputs, args, result.errors)
    time.sleep(args.pause)
    report = network.profile(inputs, repeat=args.repeat)
    kernel_s = {subgraph: seconds for subgraph, _, seconds in report.kernels}
    time.sleep(args.pause)
    profile, ort_nodes = profile_onnxruntime(graph, inputs, args.threads, args.repeat)
    ort = attribute(profile, ort_nodes, graph, network.calls)
    keys = [call.kernel.workload_key for call in network.calls]
    result.rows = task_rows(network, kernel_s, ort, task_records(log, history, keys))
    result.unattributed = sorted(ort.unattributed, key=lambda item: item[2], reverse=True)
    result.ours_kernels_s = sum(kernel_s.values())
    result.ort_nodes_s = sum(profile.node_us.values()) * 1e-6
    result.ort_run_s = profile.run_us * 1e-6
    print(
        f"  ours {ms(result.ours_s)} ms, onnxruntime {ms(result.ort_s)} ms; {len(result.rows)} tasks, "
        f"{len(profile.node_us)} onnxruntime nodes ({len(ort.unattributed)} unattributed)",
        flush=True,
    )
    return result


# ------------------------------------------------------------------------------------------
# report


def share(part: float, gap: float) -> str:
    """``part`` as a share of the network's gap; "-" when ours is not slower (no gap to share)."""
    return "-" if gap <= 0 else f"{part / gap:.0%}"


def records_cells(row: TaskRow) -> str:
    """The log's columns of a row: trials, best GFLOP/s, errors, best at trial, schedule."""
    r = row.records
    gflops = "-" if r.best is None or row.flop == 0 else f"{row.flop / r.best.result.median_cost / 1e9:.3g}"
    found = "-" if r.best_trial is None else f"{r.best_trial} ({r.verdict()})"
    schedule = "tuned" if row.tuned else "**default**"
    return f"{r.trials} | {gflops} | {r.errors} | {found} | {schedule}"


def format_breakdown(b: Breakdown, show_nodes: bool) -> str:
    gap = b.ours_kernels_s - b.ort_nodes_s
    lines = [
        f"## {b.network}",
        "",
        f"Log `{b.log}`. Whole network (median of interleaved repeats): ours {ms(b.ours_s)} ms, "
        f"onnxruntime {ms(b.ort_s)} ms ({ratio(b.ours_s, b.ort_s)}). Sum of our kernel calls "
        f"{ms(b.ours_kernels_s)} ms; sum of onnxruntime's profiled nodes {ms(b.ort_nodes_s)} ms "
        f"(its profiled run {ms(b.ort_run_s)} ms); gap {ms(gap)} ms.",
        "",
        "| task | calls | ours ms | onnxruntime ms | ours / ort | gap ms | share of gap | trials "
        "| best GFLOP/s | errors | best at trial | schedule |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in b.rows:
        ort = ms(row.ort_s) if row.ort_s > 0 else "0 (no node)"
        lines.append(
            f"| {row.desc} | {row.calls} | {ms(row.ours_s)} | {ort} "
            f"| {ratio(row.ours_s, row.ort_s) if row.ort_s > 0 else '-'} | {ms(row.gap_s)} "
            f"| {share(row.gap_s, gap)} | {records_cells(row)} |"
        )
    if b.unattributed:
        total = sum(us for _, _, us, _ in b.unattributed) * 1e-6
        lines.append(
            f"| onnxruntime, unattributed ({len(b.unattributed)} nodes) | - | - | {ms(total)} | - "
            f"| {ms(-total)} | {share(-total, gap)} | - | - | - | - | - |"
        )
        lines += ["", "Unattributed onnxruntime nodes:", ""]
        lines += [f"- `{name}` ({op}): {us / 1e3:.3f} ms; {why}" for name, op, us, why in b.unattributed]
    if show_nodes:
        lines += ["", "onnxruntime's nodes per task:", ""]
        for row in b.rows:
            nodes = ", ".join(f"`{name}` ({op}) {us / 1e3:.3f} ms" for name, op, us in row.ort_nodes)
            lines.append(f"- {row.desc}: {nodes or 'none'}")
    lines += [f"- ERROR {error}" for error in b.errors]
    return "\n".join(lines)


def format_report(breakdowns: Sequence[Breakdown], args: argparse.Namespace, load: float) -> str:
    rewrite = "without" if args.no_layout_rewrite else "with"
    head = [
        machine_line(args.threads, load),
        "",
        f"Ours is built from each network's log {rewrite} layout rewrite; per kernel call the median of "
        f"{args.repeat} profiled repeats (`Network.profile`), per onnxruntime node the median of "
        f"{args.repeat} profiled runs. A task's row sums its kernel calls; onnxruntime's nodes are "
        "attributed to the kernel computing the original node they are traced to. Gap = ours - "
        "onnxruntime; rows sorted by gap, largest first. Best at trial: the task's trial that found "
        f"the program built; late = in the last {LATE_BEST_SHARE:.0%} of its trials (still improving), "
        "plateau = earlier. Default: no record, the default schedule.",
    ]
    return "\n\n".join(["\n".join(head), *(format_breakdown(b, args.nodes) for b in breakdowns)])


def run_child(args: argparse.Namespace) -> int:
    load = os.getloadavg()[0]
    breakdowns = []
    failures = []
    for name in args.networks:
        try:
            breakdowns.append(run_network(name, args))
        except Exception as error:  # reported, and the exit status is 1
            failures.append(f"- FAILED {name}: {type(error).__name__}: {error}")
            print(f"  {failures[-1][2:]}", flush=True)
    text = format_report(breakdowns, args, load)
    if failures:
        text += "\n\n" + "\n".join(failures)
    print()
    print(text)
    if args.save:
        command = "python benchmarks/network_breakdown.py " + " ".join(
            a for a in sys.argv[1:] if a != "--child"
        )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            f"# network_breakdown.py: tuned networks task by task\n\nCommand: `{command}`.\n\n{text}\n"
        )
        print(f"\nsaved to {RESULTS}")
    return 1 if failures or any(b.errors for b in breakdowns) else 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS), metavar="NET"
    )
    parser.add_argument("--log-dir", type=Path, default=DEFAULT_LOG_DIR, help="tuning logs, <network>.json")
    parser.add_argument("--log", type=Path, default=None, help="this log instead (one network only)")
    parser.add_argument("--trials", type=int, default=None, help="build from the log's first TRIALS records")
    parser.add_argument("--repeat", type=int, default=15, help="profiled and interleaved repeats (median)")
    parser.add_argument("--min-repeat-ms", type=float, default=100.0, help="least time of one timing repeat")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds of rest before each repeat")
    parser.add_argument("--threads", type=int, default=2, help="threads for ours and onnxruntime")
    parser.add_argument("--no-layout-rewrite", action="store_true", help="build without layout rewrite")
    parser.add_argument("--nodes", action="store_true", help="list onnxruntime's nodes given to each task")
    parser.add_argument("--save", action="store_true", help=f"write the report to {RESULTS}")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("repeat", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)} must be at least 1")
    if args.trials is not None and args.trials < 1:
        parser.error(f"--trials {args.trials} must be at least 1")
    if args.log is not None and len(args.networks) != 1:
        parser.error(f"--log names one log, but --networks names {len(args.networks)} networks")
    if args.pause < 0:
        parser.error(f"--pause {args.pause} must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_child(args) if args.child else run_as_child(__file__, argv, args.threads)


if __name__ == "__main__":
    sys.exit(main())
