"""A network built from its tuning log against the same network untuned, kernel by kernel in
place, beside what the tuner measured for each task.

Both builds are profiled in the network twice (``Network.profile``, ``--repeat`` runs each,
interleaved with the other build's profiles); per task the lower of the two medians of its
calls' summed time. The tuner's view comes from the log: each task's first record (the
baseline: the default schedule, measured first by ``network_tuning``) and its best
record, by the median of their repeats. Tasks sorted by how much tuning lost in place.

    python benchmarks/tuned_vs_untuned.py --network resnet50 \
        --log benchmarks/out/networks_median/resnet50.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import warnings
from collections import defaultdict
from pathlib import Path

from ansor_py.network.executor import Network, build_network
from ansor_py.network.tasks import partition_network
from ansor_py.network.zoo import NETWORKS, random_inputs
from ansor_py.records import normalize_key


def tuner_view(log: Path) -> dict[str, tuple[float, float]]:
    """workload key -> (first record's median seconds, best record's median seconds)."""
    costs: dict[str, list[float]] = defaultdict(list)
    for line in log.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if record["r"][1] == 0:
                costs[normalize_key(record["i"][0][0])].append(statistics.median(record["r"][0]))
    return {key: (values[0], min(values)) for key, values in costs.items()}


def in_place(network: Network, inputs: dict, repeat: int) -> dict[str, float]:
    """Task description -> seconds of all its calls (median per call, summed)."""
    report = network.profile(inputs, repeat=repeat)
    per_task: dict[str, float] = defaultdict(float)
    for call, (_, _, seconds) in zip(network.calls, report.kernels, strict=True):
        per_task[call.subgraph.desc] += seconds
    return per_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", default="resnet50", choices=sorted(NETWORKS))
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    graph = NETWORKS[args.network]()
    inputs = random_inputs(graph, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        builds = {
            "tuned": build_network(graph, "llvm", str(args.log)),
            "untuned": build_network(graph, "llvm"),
        }
    profiles: dict[str, list[dict[str, float]]] = {name: [] for name in builds}
    for _ in range(2):
        for name, network in builds.items():
            profiles[name].append(in_place(network, inputs, args.repeat))
    best = {name: {task: min(p[task] for p in runs) for task in runs[0]} for name, runs in profiles.items()}
    view = tuner_view(args.log)
    # the built calls' subgraphs carry the layout-rewritten DAG; the log, the task's own key
    keys = {sg.desc: normalize_key(sg.workload_key) for sg in partition_network(graph)[1]}
    calls: dict[str, int] = defaultdict(int)
    for call in builds["tuned"].calls:
        calls[call.subgraph.desc] += 1
    print(
        "| task | calls | tuned, in network ms | untuned, in network ms | tuner: baseline us "
        + "| tuner: best us |"
    )
    print("|---|---|---|---|---|---|")
    order = sorted(best["tuned"], key=lambda task: best["untuned"][task] - best["tuned"][task])
    for task in order:
        base, fastest = view.get(keys[task], (0.0, 0.0))
        print(
            f"| {task} | {calls[task]} | {best['tuned'][task] * 1e3:.3f} | {best['untuned'][task] * 1e3:.3f} "
            f"| {base * 1e6:.0f} | {fastest * 1e6:.0f} |"
        )
    tuned_ms, untuned_ms = (sum(best[name].values()) * 1e3 for name in ("tuned", "untuned"))
    print(f"sum of the kernel calls: tuned {tuned_ms:.2f} ms, untuned {untuned_ms:.2f} ms")


if __name__ == "__main__":
    main()
