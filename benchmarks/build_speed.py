"""How many candidates a measurement round builds per second, and where the time goes.

A tuning round measures 64 candidates (``TuningOptions.num_measures_per_round``), and
building them (lowering, LLVM IR emission, the O3 pipeline, object emission, linking) is
most of the round's time. For GEMM 512 (``gemm(512, 512, 512)``) and the ResNet-50
conv2d (``conv2d_layer(1, 56, 56, 64, 64, 3, 1, 1, NHWC)``) this script takes the first
64 states a ``SketchPolicy`` samples with a fixed seed (``RandomModel``, no cost model
needed) and prints:

1. candidates built per second by ``LocalBuilder(n_parallel=2)`` and by
   ``DaskBuilder(n_workers=2)`` on a ``LocalCluster`` (the same 64 inputs, interleaved
   runs, medians), with the error codes each gave (they must agree);
2. the phases of one build, in this process, summed over the candidates: step replay,
   lowering, LLVM IR emission (llvmlite, text), parsing and verifying, the O3 pass
   pipeline, object emission and linking (``cc -shared``), and how many of the 64
   printed states are distinct (what a cache by printed state could save);
3. with ``--variants N``, for the first N candidates, the O3 pipeline and object emission
   timed as built (``BuildOptions()``: pipeline O3, code generator O3) beside two cheaper
   settings, and how many objects each leaves byte-identical (an identical object is a
   kernel exactly as fast): the code generator at O2, and the pass pipeline at O2.

    python benchmarks/build_speed.py [--workloads GMM C2D] [--runs 3] [--candidates 64]
        [--seed 0] [--profile 24] [--variants 0]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import llvmlite.binding as llvm

from ansor_py.cost_model import RandomModel
from ansor_py.measure.dask_builder import DaskBuilder
from ansor_py.measure.local import ENTRY_NAME, LocalBuilder
from ansor_py.measure.types import BuildResult, MeasureInput
from ansor_py.search import SketchPolicy
from ansor_py.search_task import SearchTask
from codegen.llvm.context import BuildOptions, ModuleContext
from codegen.llvm.toolchain import find_linker
from ir.compute_dag import ComputeDAG
from ir.loop_state.replay import replay_steps
from ir.lower.lower import lower
from ir.te import Tensor
from ir.topi.workloads import conv2d_layer, gemm

# ``codegen.llvm`` re-exports the function ``build`` under the module's name
llvm_build = sys.modules["codegen.llvm.build"]

WORKLOADS: dict[str, tuple[str, Callable[[], list[Tensor]]]] = {
    "GMM": ("gemm(512, 512, 512)", lambda: gemm(512, 512, 512)),
    "C2D": (
        "conv2d_layer(1, 56, 56, 64, 64, 3, 1, 1, NHWC)",
        lambda: conv2d_layer(1, 56, 56, 64, 64, 3, 1, 1, layout="NHWC"),
    ),
}
PHASES = ("replay", "lower", "emit IR", "parse+verify", "O3", "object", "link")


def round_inputs(key: str, count: int, seed: int) -> list[MeasureInput]:
    """The first ``count`` states a seeded SketchPolicy samples for workload ``key``."""
    task = SearchTask(compute_dag=ComputeDAG(WORKLOADS[key][1]()), target="llvm")
    policy = SketchPolicy(task, RandomModel(seed=seed), seed=seed + 1, verbose=0)
    states = policy.sample_initial_population()
    if len(states) < count:
        raise RuntimeError(f"{key}: the policy sampled {len(states)} states, fewer than {count}")
    return [MeasureInput(task, s) for s in states[:count]]


def timed_build(builder: LocalBuilder | DaskBuilder, inputs: Sequence[MeasureInput]) -> tuple[float, list]:
    """Seconds to build ``inputs``; their error codes. The libraries are removed."""
    start = time.perf_counter()
    results: list[BuildResult] = builder.build(inputs, verbose=0)
    seconds = time.perf_counter() - start
    for result in results:
        if result.filename:
            Path(result.filename).unlink(missing_ok=True)
    return seconds, [r.error_no.name for r in results]


def phase_profile(inputs: Sequence[MeasureInput]) -> dict[str, float]:
    """Seconds per phase of building ``inputs`` one after another in this process."""
    totals = dict.fromkeys(PHASES, 0.0)
    options = BuildOptions()
    with tempfile.TemporaryDirectory(prefix="build_speed_") as tmp:
        for index, inp in enumerate(inputs):
            task = inp.task
            marks = [time.perf_counter()]
            state = replay_steps(task.compute_dag, inp.state.transform_steps)
            marks.append(time.perf_counter())
            func = lower(task.compute_dag, state, name=ENTRY_NAME)
            marks.append(time.perf_counter())
            text = llvm_build.emit_module_text(ModuleContext(func.name, task.target, options), func)
            marks.append(time.perf_counter())
            machine = llvm_build._target_machine(task.target, options.opt_level, jit=False)
            module = llvm.parse_assembly(text)
            module.triple = task.target.triple
            module.data_layout = str(machine.target_data)
            module.verify()
            marks.append(time.perf_counter())
            llvm_build._optimize(module, machine, options.opt_level)
            marks.append(time.perf_counter())
            obj = Path(tmp) / f"c{index}.o"
            obj.write_bytes(machine.emit_object(module))
            marks.append(time.perf_counter())
            command = find_linker(task.target).link_command(Path(tmp) / f"c{index}.so", [obj])
            subprocess.run(command, check=True, capture_output=True)
            marks.append(time.perf_counter())
            for phase, begin, end in zip(PHASES, marks[:-1], marks[1:], strict=True):
                totals[phase] += end - begin
    return totals


#: (name, pass pipeline level, code generator level); the first is what ``build`` does
VARIANTS = (("as built (O3, codegen O3)", 3, 3), ("codegen O2", 3, 2), ("pipeline O2", 2, 3))


def variant_check(inputs: Sequence[MeasureInput]) -> None:
    """Print the seconds of optimisation + object emission of each VARIANTS setting over
    ``inputs``, and how many objects equal the as-built one byte for byte."""
    seconds = dict.fromkeys((name for name, _, _ in VARIANTS), 0.0)
    identical = dict.fromkeys(seconds, 0)
    for inp in inputs:
        task = inp.task
        state = replay_steps(task.compute_dag, inp.state.transform_steps)
        func = lower(task.compute_dag, state, name=ENTRY_NAME)
        text = llvm_build.emit_module_text(ModuleContext(ENTRY_NAME, task.target, BuildOptions()), func)
        reference = b""
        for name, pipeline, codegen in VARIANTS:
            machine = llvm_build._target_machine(task.target, codegen, jit=False)
            module = llvm.parse_assembly(text)
            module.triple = task.target.triple
            module.data_layout = str(machine.target_data)
            begin = time.perf_counter()
            llvm_build._optimize(module, machine, pipeline)
            obj = machine.emit_object(module)
            seconds[name] += time.perf_counter() - begin
            reference = reference or obj
            identical[name] += obj == reference
    for name in seconds:
        print(f"  {name:26s} {seconds[name]:6.2f} s, {identical[name]}/{len(inputs)} objects identical")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", type=int, default=24, help="candidates in the phase profile")
    parser.add_argument("--variants", type=int, default=0, help="candidates in the variant check")
    args = parser.parse_args(argv)

    local = LocalBuilder(timeout=120, n_parallel=2)
    with DaskBuilder(n_workers=2, timeout=120) as dask_builder:
        for key in args.workloads:
            inputs = round_inputs(key, args.candidates, args.seed)
            distinct = len({str(inp.state) for inp in inputs})
            print(f"\n{key} {WORKLOADS[key][0]}: {len(inputs)} candidates ({distinct} distinct)", flush=True)
            times: dict[str, list[float]] = {"LocalBuilder": [], "DaskBuilder": []}
            codes: dict[str, list[str]] = {}
            for _ in range(args.runs):  # interleaved: load on the machine hits both alike
                for name, builder in (("LocalBuilder", local), ("DaskBuilder", dask_builder)):
                    seconds, codes[name] = timed_build(builder, inputs)
                    times[name].append(seconds)
            agree = codes["LocalBuilder"] == codes["DaskBuilder"]
            for name, runs in times.items():
                median = statistics.median(runs)
                print(
                    f"  {name:13s} {len(inputs) / median:5.2f} candidates/s "
                    f"(median {median:.1f} s of {', '.join(f'{t:.1f}' for t in runs)})",
                    flush=True,
                )
            print(f"  error codes agree: {agree} ({sorted(set(codes['LocalBuilder']))})")
            totals = phase_profile(inputs[: args.profile])
            whole = sum(totals.values())
            shares = ", ".join(f"{p} {100 * s / whole:.0f}%" for p, s in totals.items())
            print(f"  one build, {whole / args.profile * 1e3:.0f} ms on average in one process: {shares}")
            if args.variants:
                variant_check(inputs[: args.variants])


if __name__ == "__main__":
    main()
