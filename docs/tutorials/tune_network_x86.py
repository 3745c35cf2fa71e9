"""Tune a whole network for this x86 CPU with the task scheduler.

The network (a small CNN written with the zoo's ``GraphBuilder``: two convolutions with
batch norm and relu, a global average pool and a dense classifier; an ONNX model read by
``ansor.from_onnx`` goes the same way) is tuned as Ansor tunes networks (paper section 6,
TVM's ``tune_network_x86`` tutorial):

1. ``extract_tasks`` cuts the optimised graph into fused subgraphs and makes one task per
   distinct subgraph, weighted by how often it occurs;
2. ``TaskScheduler(tasks, weights).tune(...)`` spends the trials where they cut the
   network's estimated latency most, writing every measured program to one log; run it
   again with the same ``--log`` and it resumes from the records;
3. ``build_network(graph, records=log)`` compiles each task from its best record (weights
   laid out the way the tuned kernels read them), then the network is checked against the
   numpy reference and timed beside the untuned build.

    python docs/tutorials/tune_network_x86.py --size 56 --trials 200 [--log cnn.json]

``--population`` shrinks the evolutionary search (TVM's default is 2048), which is most of
a round's time on a small network; the documentation test runs this with a tiny budget.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

import ansor_py as ansor
from ansor_py.network import NetworkBuildWarning, run_reference
from ansor_py.network.graph import Graph
from ansor_py.network.zoo import GraphBuilder, random_inputs


def small_cnn(size: int, seed: int = 0) -> Graph:
    """1 x 3 x size x size -> 1 x 10: conv 3x3 (16) + bn + relu, conv 3x3 stride 2 (32) +
    bn + relu, global average pool, dense 10."""
    b = GraphBuilder("small_cnn", seed)
    x = b.input("input", (1, 3, size, size))
    x = b.conv(x, 3, 16, (3, 3), "conv1", pads=(1, 1, 1, 1))
    x = b.node("relu", [b.batch_norm(x, 16, "bn1")], "relu1")
    x = b.conv(x, 16, 32, (3, 3), "conv2", strides=(2, 2), pads=(1, 1, 1, 1))
    x = b.node("relu", [b.batch_norm(x, 32, "bn2")], "relu2")
    x = b.node("global_avg_pool", [x], "pool", layout="NCHW")
    x = b.node("reshape", [x], "flatten", shape=(1, 32))
    return b.build([b.dense(x, 32, 10, "fc")])


def median_ms(fn: Callable[[], object], repeat: int = 9) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=56, help="height and width of the input image")
    parser.add_argument("--trials", type=int, default=200, help="measurement trials for the whole network")
    parser.add_argument("--population", type=int, default=2048, help="evolutionary search population")
    parser.add_argument("--log", default=None, help="record file (default: a temporary file)")
    args = parser.parse_args(argv)
    if args.size < 4 or args.trials < 1 or args.population < 1:
        parser.error(
            f"--size {args.size} must be at least 4, --trials {args.trials} and "
            f"--population {args.population} at least 1"
        )
    log = args.log or str(Path(tempfile.mkdtemp(prefix="ansor_py_net_")) / "small_cnn.json")
    graph = small_cnn(args.size)

    # 1. the tasks: one per distinct fused subgraph; only those with a reduction are worth tuning
    tasks, weights = ansor.extract_tasks(graph, "llvm", include_simple_tasks=False)
    for i, (task, weight) in enumerate(zip(tasks, weights, strict=True)):
        print(f"task {i}: weight {weight}, {task.desc}")
    if args.trials < len(tasks):
        parser.error(f"--trials {args.trials} is less than one trial per task ({len(tasks)} tasks)")

    # 2. tune them together; the table shows each task's best latency after every round
    scheduler = ansor.TaskScheduler(tasks, weights, load_log_file=log, callbacks=[ansor.PrintTableInfo()])
    remaining = args.trials - scheduler.restored_trials
    print(f"{scheduler.restored_trials} trials resumed from {log}; {max(remaining, 0)} to go")
    if remaining >= len(tasks):
        # Time each candidate as the network will run it: its weights come from memory, not
        # from a cache warmed by the previous call (TVM's tutorial does the same). 10 single
        # calls, each after a cache flush.
        with ansor.LocalRunner(repeat=10, enable_cpu_cache_flush=True) as runner:
            options = ansor.TuningOptions(
                num_measure_trials=remaining,
                measure_callbacks=[ansor.RecordToFile(log)],
                runner=runner,
                verbose=1,
            )
            scheduler.tune(options, search_policy_params={"evolutionary_search_population": args.population})
    print(f"records: {log}")

    # 3. build from the log (tasks without a record, the elementwise ones, get a default schedule)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetworkBuildWarning)
        tuned = ansor.build_network(graph, "llvm", records=log)
        untuned = ansor.build_network(graph, "llvm")
    print(tuned.summary())
    inputs = random_inputs(graph, seed=1)
    expected = run_reference(graph, inputs)[0]
    for name, network in (("tuned", tuned), ("untuned", untuned)):
        (got,) = network.run_inputs(inputs)
        scale = float(np.abs(expected).max())
        if not np.allclose(got, expected, rtol=1e-4, atol=1e-4 * scale):
            error = float(np.abs(got - expected).max())
            print(f"the {name} network differs from the numpy reference by {error:.2e}", file=sys.stderr)
            return 1
    tuned_ms = median_ms(lambda: tuned.run_inputs(inputs))
    untuned_ms = median_ms(lambda: untuned.run_inputs(inputs))
    print(f"latency: tuned {tuned_ms:.3f} ms, untuned {untuned_ms:.3f} ms ({untuned_ms / tuned_ms:.2f}x)")
    print("[verified] the tuned and the untuned network match the numpy reference")
    return 0


if __name__ == "__main__":
    sys.exit(main())
