"""ResNet-50's convolutions, tuned, beside PyTorch's oneDNN, timed interleaved, per target ISA
(Ansor paper section 7.2, single operators and subgraphs beside vendor libraries).

For the conv2d tasks of ResNet-50 (``extract_tasks(NETWORKS["resnet50"](), target)``) picked
by ``--tasks`` (substrings of a task's description, its index in the task list, or ``all``;
default: the 3x3 conv 1x56x56x64 -> 64, the 1x1 conv 1x28x28x512 -> 256 and the stride-2
3x3 conv 1x56x56x128 -> 128), the script

1. tunes them with one ``TaskScheduler`` (round-robin, so each gets its share; each task's
   default schedule measured first, as ``networks.py`` tunes) into ``--log`` until the log
   holds ``--trials`` programs of each task for this exact target. It is resumable: a task
   with enough records is not tuned again. A log holds one target only: records apply
   across the targets of one class (an AVX2 and an AVX-512 ``llvm`` target), so mixing
   them would build one ISA from the other's records, and the script refuses such a log;
2. builds each task's best record the way a network build does (``build_subgraphs`` on the
   task's subgraph: the constant weight transformed once into the layout the tiles read,
   ``REWRITE_FOR_PRE_TRANSFORMED``) and checks it against the numpy reference
   (``ir.reference.evaluate``) on random inputs. A task without a record is reported as
   such and not timed: a default schedule is never quoted as tuned;
3. runs the same subgraph (conv + bias [+ residual add] [+ relu], NHWC = ``channels_last``,
   float32, batch 1) in PyTorch, whose CPU convolutions are oneDNN's, in three forms:
   eager ``F.conv2d``; a frozen TorchScript module (``torch.jit.freeze(torch.jit.trace(..))``);
   and the frozen module under ``torch.jit.enable_onednn_fusion`` (oneDNN Graph: weights
   prepacked, bias, add and relu fused as post-ops). Each is checked against the reference;
   one call of each runs with oneDNN's verbose mode on to name the implementation it ran
   (``brg_conv_fwd:avx2``, ``brgconv_1x1:avx512_core``, ...) and oneDNN's ISA;
4. times ours (the kernel call alone, its input already in place) and the three forms
   interleaved (``ansor_py.timing.time_interleaved``: a ``--settle-s`` pause before each
   sample, medians of ``--repeat`` rounds) and prints a markdown table: GFLOP/s of ours
   and of the fastest PyTorch form (named), and ``oneDNN time / our time`` (above 1: ours
   is faster).

    python benchmarks/conv_vs_onednn.py --target "llvm -mcpu=znver3" --trials 500 [--tasks ...]
        [--log LOG] [--repeat 15] [--settle-s 0.5] [--threads 2] [--save FILE]

Tuning and timing run in two child processes, one after the other, so that nothing the
search leaves behind (its cost model's and feature extraction's threads) shares the timing.
Each child's OpenMP, OpenBLAS and MKL pools have ``--threads`` threads
(``tune_ops.run_as_child``); PyTorch gets ``torch.set_num_threads(--threads)``.
``--tune-only`` stops after tuning (time later, on a quiet machine, with the same command).
When the target lacks AVX-512 (``avx512f``), the child's ``ONEDNN_MAX_CPU_ISA`` is ``AVX2``,
read by oneDNN when it starts, so both sides use the same vector ISA.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from networks import LOG_ROOT, cpu_description, relative_error  # beside this script
from tune_ops import run_as_child  # beside this script

import ansor_py as ansor
from ansor_py.network.default_schedule import default_schedule
from ansor_py.network.executor import Network, build_subgraphs
from ansor_py.network.subgraph import Subgraph
from ansor_py.network.tasks import extract_tasks, partition_network
from ansor_py.network.types import TensorType
from ansor_py.network.zoo import NETWORKS
from ansor_py.records import ApplyHistoryBest, normalize_key, read_raw_records, target_class
from ansor_py.search_task import SearchTask
from ansor_py.timing import time_interleaved
from codegen.target import Target
from ir.layout_rewrite import LayoutRewriteOption
from ir.reference import evaluate

HERE = Path(__file__).resolve().parent
DEFAULT_TASKS = (
    "relu, 1x56x56x64 -> 64, 3x3",
    "relu, 1x28x28x512 -> 256, 1x1",
    "1x56x56x128 -> 128, 3x3, stride 2",
)
#: relative error allowed (of the output's largest magnitude), as networks.py checks
TOLERANCE = 1e-4


# ------------------------------------------------------------------------------------------
# tasks and their records


@dataclass(frozen=True)
class ConvTask:
    """A selected conv2d task: its index in ResNet-50's task list, the search task and the
    first subgraph of the network with its workload key (what a network build compiles)."""

    index: int
    task: SearchTask
    subgraph: Subgraph


def select_tasks(specs: Sequence[str], target: str) -> tuple[list[ConvTask], dict[str, np.ndarray]]:
    """The conv2d tasks of ResNet-50 that ``specs`` name (an index into the task list, a
    substring matching exactly one task's description, or "all": every conv2d task), and
    the optimised graph's constants."""
    graph = NETWORKS["resnet50"]()
    tasks, _ = extract_tasks(graph, target)
    optimized, subgraphs = partition_network(graph)
    first: dict[str, Subgraph] = {}
    for subgraph in subgraphs:
        first.setdefault(normalize_key(subgraph.workload_key), subgraph)
    chosen: list[ConvTask] = []
    if "all" in specs:
        specs = [str(i) for i, task in enumerate(tasks) if task.desc.startswith("conv2d")]
    for spec in specs:
        if spec.isdigit():
            if int(spec) >= len(tasks):
                raise ValueError(f"--tasks {spec}: ResNet-50 has {len(tasks)} tasks (0 to {len(tasks) - 1})")
            matches = [int(spec)]
        else:
            matches = [i for i, task in enumerate(tasks) if spec in task.desc]
        if len(matches) != 1:
            found = "; ".join(f"{i}: {tasks[i].desc}" for i in matches) or "none"
            raise ValueError(f"--tasks {spec!r} must match exactly one ResNet-50 task, matches {found}")
        task = tasks[matches[0]]
        if not task.desc.startswith("conv2d"):
            raise ValueError(f"--tasks {spec!r} names task {matches[0]} ({task.desc}), not a conv2d task")
        if all(c.index != matches[0] for c in chosen):
            chosen.append(ConvTask(matches[0], task, first[normalize_key(task.workload_key)]))
    return chosen, dict(optimized.constants)


def programs_logged(log: Path, target: Target) -> dict[str, int]:
    """Distinct programs per workload key (normalised) that ``log`` holds for ``target``
    (re-measurements of a program count once). Raises ValueError when the log also holds
    records for another target of the same class (module docstring, step 1)."""
    programs: dict[str, set[tuple[Any, ...]]] = {}
    if not log.is_file():
        return {}
    for raw in read_raw_records(log):
        if str(raw.target) != str(target):
            if raw.target_class == target_class(target):
                raise ValueError(
                    f"log {log} holds records for target '{raw.target}' (line {raw.lineno}) as well as "
                    f"'{target}': they would be mixed at build time; use one log per target"
                )
            continue
        programs.setdefault(normalize_key(raw.workload_key), set()).add(raw.steps)
    return {key: len(steps) for key, steps in programs.items()}


def tune(conv_tasks: Sequence[ConvTask], log: Path, target: Target, trials: int, per_round: int) -> None:
    """Tune the tasks that ``log`` holds fewer than ``trials`` programs of (round-robin,
    each task's default schedule first) until each has about ``trials``."""
    logged = programs_logged(log, target)
    have = [logged.get(normalize_key(c.task.workload_key), 0) for c in conv_tasks]
    needy = [(c, n) for c, n in zip(conv_tasks, have, strict=True) if n < trials]
    for c, n in zip(conv_tasks, have, strict=True):
        print(f"  task {c.index} ({c.task.desc}): {n} programs in the log", flush=True)
    if not needy:
        return
    remaining = sum(trials - n for _, n in needy)
    log.parent.mkdir(parents=True, exist_ok=True)
    scheduler = ansor.TaskScheduler(
        [c.task for c, _ in needy],
        strategy="round-robin",
        load_log_file=log,
        callbacks=[ansor.PrintTableInfo()],
        baseline_schedules=default_schedule,
    )
    options = ansor.TuningOptions(
        num_measure_trials=remaining,
        num_measures_per_round=min(per_round, max(1, remaining // len(needy))),
        measure_callbacks=[ansor.RecordToFile(str(log))],
        verbose=1,
    )
    start = time.perf_counter()
    scheduler.tune(options)
    print(
        f"  tuned {len(needy)} tasks, {remaining} trials in {time.perf_counter() - start:.0f} s", flush=True
    )


# ------------------------------------------------------------------------------------------
# ours: the subgraph built as a network builds it


def build_ours(conv: ConvTask, constants: dict[str, np.ndarray], target: Target, log: Path) -> Network | None:
    """The subgraph compiled from the log's best record with its constant weight
    transformed at build time, or None when the log has no usable record of the task."""
    sg = conv.subgraph
    inputs = {
        v: TensorType(tuple(t.shape), t.dtype)
        for v, t in zip(sg.inputs, sg.dag.placeholders, strict=True)
        if v not in constants
    }
    used = {v: constants[v] for v in sg.inputs if v in constants}
    history = ApplyHistoryBest(log) if log.is_file() else None
    if history is None or history.best(target, sg.workload_key) is None:
        return None
    network = build_subgraphs(
        [sg],
        inputs,
        sg.outputs,
        used,
        target,
        history,
        name=sg.name,
        layout_rewrite_option=LayoutRewriteOption.REWRITE_FOR_PRE_TRANSFORMED,
    )
    return network if network.kernels[0].tuned else None


def random_operands(sg: Subgraph, constants: dict[str, np.ndarray], seed: int = 0) -> list[np.ndarray]:
    """One array per placeholder of the subgraph's DAG: the constants as the network has
    them, the other inputs uniform in [-1, 1) (never zero arrays)."""
    rng = np.random.default_rng(seed)
    return [
        constants[v] if v in constants else rng.uniform(-1, 1, tuple(t.shape)).astype(np.float32)
        for v, t in zip(sg.inputs, sg.dag.placeholders, strict=True)
    ]


# ------------------------------------------------------------------------------------------
# PyTorch (oneDNN): the same subgraph in three forms


@dataclass(frozen=True)
class ConvBlock:
    """The subgraph as PyTorch sees it: conv2d (NCHW semantics, OIHW weight) + bias, then
    an optional residual add and an optional relu; ``residual`` is the position of the
    residual operand among the subgraph's inputs."""

    weight: np.ndarray  # OIHW
    bias: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int]
    residual: int | None
    relu: bool

    @staticmethod
    def of(sg: Subgraph, constants: dict[str, np.ndarray]) -> ConvBlock:
        """The block of a fused ResNet-50 conv subgraph (conv, bias add, [add], [relu], NHWC
        data and HWIO weight); anything else raises ValueError naming the subgraph."""
        ops = [node.op for node in sg.nodes]
        conv = sg.nodes[0]
        ok = ops[:2] == ["conv", "add"] and ops[2:] in ([], ["relu"], ["add", "relu"], ["add"])
        attrs = conv.attrs
        if not ok or attrs["layout"] != "NHWC" or attrs["kernel_layout"] != "HWIO" or attrs["groups"] != 1:
            raise ValueError(
                f"subgraph {sg.name!r} ({' -> '.join(ops)}) is not a conv + bias [+ add] [+ relu]"
            )
        top, left, bottom, right = attrs["pads"]
        if (top, left) != (bottom, right) or tuple(attrs["dilations"]) != (1, 1):
            raise ValueError(f"subgraph {sg.name!r}: pads {attrs['pads']} or dilations are not symmetric/1")
        bias = constants[sg.nodes[1].inputs[1]]
        residual = None
        if "add" in ops[2:]:
            value = next(v for v in sg.nodes[2].inputs if v != sg.nodes[1].outputs[0])
            residual = sg.inputs.index(value)
        weight = np.ascontiguousarray(constants[conv.inputs[1]].transpose(3, 2, 0, 1))
        return ConvBlock(weight, bias, tuple(attrs["strides"]), (top, left), residual, ops[-1] == "relu")


def torch_forms(block: ConvBlock, operands: Sequence[np.ndarray]) -> dict[str, Callable[[], Any]]:
    """name -> a call of the block in PyTorch on ``operands`` (as channels_last views):
    eager, frozen TorchScript, frozen TorchScript with oneDNN Graph fusion."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(operands[0]).permute(0, 3, 1, 2)  # NHWC memory = channels_last
    args = [x]
    if block.residual is not None:
        args.append(torch.from_numpy(operands[block.residual]).permute(0, 3, 1, 2))
    weight = torch.from_numpy(block.weight).contiguous(memory_format=torch.channels_last)
    bias = torch.from_numpy(np.ascontiguousarray(block.bias))

    class Module(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(weight, requires_grad=False)
            self.bias = torch.nn.Parameter(bias, requires_grad=False)

        def forward(self, x: Any, *residual: Any) -> Any:
            y = F.conv2d(x, self.weight, self.bias, block.stride, block.padding)
            if residual:
                y = y + residual[0]
            return F.relu(y) if block.relu else y

    def eager() -> Any:
        with torch.no_grad():
            y = F.conv2d(x, weight, bias, block.stride, block.padding)
            if block.residual is not None:
                y.add_(args[1])
            return y.relu_() if block.relu else y

    def frozen() -> Any:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is on purpose
            return torch.jit.freeze(torch.jit.trace(Module().eval(), tuple(args)))

    with torch.no_grad():
        torch.jit.enable_onednn_fusion(False)  # an earlier task's call switched it on
        plain = frozen()
        for _ in range(3):  # the profiling executor settles its plan before fusion is switched on
            plain(*args)
        torch.jit.enable_onednn_fusion(True)
        fused = frozen()
        for _ in range(3):
            fused(*args)

    def call(module: Any) -> Callable[[], Any]:
        def run() -> Any:
            with torch.no_grad():
                return module(*args)

        return run

    return {
        "eager": eager,
        "TorchScript frozen": call(plain),
        "TorchScript frozen + oneDNN Graph": call(fused),
    }


_IMPLEMENTATION = re.compile(r"^onednn_verbose,(?:v\d+,)?primitive,exec,cpu,convolution,([^,]+),")
_GRAPH_IMPLEMENTATION = re.compile(
    r"^onednn_verbose,(?:v\d+,)?graph,exec,cpu,\d+,([^,]+),.*,([^,]+),dnnl_backend"
)
_ISA = re.compile(r"^onednn_verbose,(?:v\d+,)?info,cpu,isa:(.+)$")


def onednn_verbose(fn: Callable[[], Any]) -> str:
    """What oneDNN prints (to the C stdout) while ``fn`` runs with its verbose mode on."""
    import torch

    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 1)
        try:
            with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                fn()
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        capture.seek(0)
        return capture.read().decode(errors="replace")


def implementations(text: str) -> tuple[list[str], str | None]:
    """The convolution implementations in oneDNN's verbose output and its ISA line, if any."""
    found, isa = [], None
    for line in text.splitlines():
        if m := _IMPLEMENTATION.match(line):
            found.append(m.group(1))
        elif m := _GRAPH_IMPLEMENTATION.match(line):
            found.append(f"graph {m.group(1)} ({m.group(2)})")
        elif m := _ISA.match(line):
            isa = m.group(1)
    return found, isa


# ------------------------------------------------------------------------------------------
# one task


@dataclass
class Row:
    """One task's results (seconds; None where not measured)."""

    conv: ConvTask
    ours_s: float | None = None
    peer_s: float | None = None
    peer: str = "-"
    peer_impl: str = "-"
    note: str = ""


def run_task(
    conv: ConvTask, constants: dict[str, np.ndarray], args: argparse.Namespace, state: dict[str, Any]
) -> Row:
    row = Row(conv)
    sg = conv.subgraph
    target = Target.parse(args.target)
    network = build_ours(conv, constants, target, args.log)
    if network is None:
        row.note = "no tuning record for this target in the log: not timed"
        print(f"  task {conv.index}: {row.note}", flush=True)
        return row
    operands = random_operands(sg, constants)
    expected = evaluate(sg.dag, operands)[0]
    inputs = {v: a for v, a in zip(sg.inputs, operands, strict=True) if v in network.input_types}
    got = np.array(network.run_inputs(inputs)[0])
    error = relative_error(got, expected)
    print(f"  task {conv.index} ({sg.desc}): ours max error {error:.1e}", flush=True)
    if not error <= TOLERANCE:
        row.note = f"ours WRONG (max relative error {error:.1e}): not timed"
        return row
    kernel = network.bound_calls[0]
    peers: dict[str, Callable[[], Any]] = {"ours": kernel}
    impls: dict[str, str] = {}
    if state["torch"]:
        block = ConvBlock.of(sg, constants)
        for name, fn in torch_forms(block, operands).items():
            out = fn().permute(0, 2, 3, 1).numpy()
            err = relative_error(out, expected)
            found, isa = implementations(onednn_verbose(fn))
            state["isa"] = state["isa"] or isa
            impls[name] = ", ".join(dict.fromkeys(found)) or "not oneDNN"
            print(f"    {name}: max error {err:.1e}; runs {impls[name]}", flush=True)
            if err <= TOLERANCE:
                peers[name] = fn
            else:
                row.note += f" {name} WRONG ({err:.1e}), left out;"
    samples = time_interleaved(
        list(peers.values()),
        number=1,
        repeat=args.repeat,
        min_repeat_ms=args.min_repeat_ms,
        pause_s=args.settle_s,
    )
    medians = dict(zip(peers, (float(np.median(s)) for s in samples), strict=True))
    row.ours_s = medians.pop("ours")
    if medians:
        row.peer = min(medians, key=medians.__getitem__)
        row.peer_s, row.peer_impl = medians[row.peer], impls[row.peer]
        others = ", ".join(f"{name} {s * 1e3:.3f} ms" for name, s in medians.items())
        print(f"    ours {row.ours_s * 1e3:.3f} ms; {others}", flush=True)
    return row


# ------------------------------------------------------------------------------------------
# report


def gflops(flop: float, seconds: float | None) -> str:
    return "-" if seconds is None else f"{flop / seconds / 1e9:.1f}"


def isa_of(target: Target) -> str:
    features = target.enabled_features()
    return "AVX-512" if "avx512f" in features else "AVX2" if "avx2" in features else "SSE"


def format_table(rows: Sequence[Row], args: argparse.Namespace, onednn_isa: str | None, load: float) -> str:
    target = Target.parse(args.target)
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    limit = f" (ONEDNN_MAX_CPU_ISA={cap})" if cap else ""
    lines = [
        f"Machine: {cpu_description()}; {args.threads} threads each; batch 1, float32, NHWC; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load:.1f} at the start.",
        f"Ours: target `{target}` ({isa_of(target)}), best of `{args.log}` built with layout rewrite, "
        f"the kernel call alone. oneDNN (PyTorch): ISA {onednn_isa or 'unknown'}"
        f"{limit}; "
        "the fastest of eager, frozen TorchScript and frozen TorchScript + oneDNN Graph.",
        f"Medians of {args.repeat} interleaved samples; ratio = oneDNN time / our time (> 1: ours faster).",
        "",
        "| task | ours GFLOP/s | oneDNN GFLOP/s | oneDNN form (implementation) | ratio | note |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        flop = r.conv.subgraph.dag.flop_ct
        ratio = "-" if r.ours_s is None or r.peer_s is None else f"{r.peer_s / r.ours_s:.2f}"
        form = "-" if r.peer_s is None else f"{r.peer} ({r.peer_impl})"
        lines.append(
            f"| {r.conv.index}: {r.conv.task.desc} | {gflops(flop, r.ours_s)} | {gflops(flop, r.peer_s)} "
            f"| {form} | {ratio} | {r.note.strip()} |"
        )
    return "\n".join(lines)


def run_child(args: argparse.Namespace) -> int:
    load = os.getloadavg()[0]
    target = Target.parse(args.target)
    conv_tasks, constants = select_tasks(args.tasks, str(target))
    print(f"{len(conv_tasks)} tasks, target {target}, log {args.log}", flush=True)
    if args.phase == "tune":
        tune(conv_tasks, args.log, target, args.trials, args.per_round)
        return 0
    state: dict[str, Any] = {"torch": False, "isa": None}
    try:
        import torch

        torch.set_num_threads(args.threads)
        state["torch"] = True
    except ImportError:
        print("  PyTorch is not installed: ours only", flush=True)
    rows = [run_task(conv, constants, args, state) for conv in conv_tasks]
    text = format_table(rows, args, state["isa"], load)
    print()
    print(text)
    if args.save:
        command = "python benchmarks/conv_vs_onednn.py " + " ".join(sys.argv[1 : sys.argv.index("--phase")])
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(f"# conv_vs_onednn.py\n\nCommand: `{command}`.\n\n{text}\n")
        print(f"\nsaved to {args.save}")
    return 1 if any("WRONG" in r.note for r in rows) else 0


def default_log(target: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", target).strip("_")
    return LOG_ROOT / "conv_vs_onednn" / f"{slug}.json"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="llvm", help='"llvm" (host) or "llvm -mcpu=znver3" (AVX2)')
    parser.add_argument(
        "--tasks", nargs="+", default=list(DEFAULT_TASKS), help='desc substrings, indices or "all"'
    )
    parser.add_argument("--log", type=Path, default=None, help="tuning log (default: one per target)")
    parser.add_argument(
        "--trials", type=int, default=0, help="programs per task to tune up to (0: no tuning)"
    )
    parser.add_argument("--per-round", type=int, default=64, help="programs measured per scheduler round")
    parser.add_argument("--repeat", type=int, default=15, help="interleaved samples of each side")
    parser.add_argument("--min-repeat-ms", type=float, default=100.0, help="least time of one sample")
    parser.add_argument("--settle-s", type=float, default=0.5, help="pause before each sample")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--save", type=Path, default=None, help="write the table to this file")
    parser.add_argument("--tune-only", action="store_true", help="tune into the log, then stop")
    parser.add_argument("--phase", choices=("tune", "time"), help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("repeat", "threads", "per_round"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)} must be at least 1")
    if args.trials < 0 or args.settle_s < 0:
        parser.error("--trials and --settle-s must not be negative")
    args.log = args.log or default_log(str(Target.parse(args.target)))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child(args)
    argv = list(sys.argv[1:] if argv is None else argv)
    if args.trials:  # its own process: the search's threads stay out of the timing (module docstring)
        status = run_as_child(__file__, [*argv, "--phase", "tune"], args.threads)
        if status or args.tune_only:
            return status
    if "avx512f" not in Target.parse(args.target).enabled_features():
        os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"  # read by oneDNN at start, in the child
    return run_as_child(__file__, [*argv, "--phase", "time"], args.threads)


if __name__ == "__main__":
    sys.exit(main())
