"""A network called after a pause (a served model between requests), beside onnxruntime,
with libgomp's worker threads pinned (the executor's default, ``openmp_team``) and not
(``OMP_PROC_BIND=false``).

``networks.py`` times back-to-back calls after warm-up calls, which keep every runtime's
threads awake. Here each sample is one call after ``--idle-s`` seconds of sleep: ours,
then onnxruntime, alternately, in one process per configuration (the pinning is once per
process), ``--repeat`` samples each; medians and 10th/90th percentiles.
Each network is built from ``<--log-dir>/<network>.json`` when it exists, else untuned.

    python benchmarks/after_idle.py [--networks dcgan mobilenet_v2] [--log-dir DIR] [--save]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from networks import cpu_description, onnxruntime_peer

RESULTS = Path(__file__).resolve().parent / "results" / "after_idle.md"
CONFIGURATIONS = {"pinned (default)": {}, "not pinned (OMP_PROC_BIND=false)": {"OMP_PROC_BIND": "false"}}


def measure(network: str, log: Path | None, repeat: int, idle_s: float) -> dict[str, list[float]]:
    """This process: one call of each peer after ``idle_s`` of sleep, ``repeat`` times."""
    import numpy as np

    from ansor_py.network.executor import build_network
    from ansor_py.network.reference import run_reference
    from ansor_py.network.zoo import NETWORKS, random_inputs

    graph = NETWORKS[network]()
    inputs = random_inputs(graph, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = build_network(graph, "llvm", str(log) if log else None)
    expected = run_reference(graph, inputs)[0]
    session = onnxruntime_peer(graph, 2)
    peers = {"ours": lambda: ours.run_inputs(inputs), "onnxruntime": lambda: session.run(None, inputs)}
    for name, fn in peers.items():
        got = np.asarray(fn()[0])
        error = float(np.abs(got - expected).max() / np.abs(expected).max())
        if not error < 1e-4:
            raise SystemExit(f"{network}: {name} differs from the reference by {error:.1e}")
        for _ in range(2):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in peers}
    for _ in range(repeat):
        for name, fn in peers.items():
            time.sleep(idle_s)
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def spread(seconds: list[float]) -> str:
    """'median (p10-p90)' in ms."""
    low, high = percentile(seconds, 0.1), percentile(seconds, 0.9)
    return f"{statistics.median(seconds) * 1e3:.2f} ({low * 1e3:.2f}-{high * 1e3:.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", default=["dcgan", "mobilenet_v2", "resnet50"])
    parser.add_argument("--log-dir", type=Path, default=None, help="tuning logs, one per network")
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--idle-s", type=float, default=0.1, help="sleep before each call")
    parser.add_argument("--save", action="store_true", help=f"write the table to {RESULTS}")
    parser.add_argument("--child", nargs=2, metavar=("NETWORK", "LOG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        network, log = args.child
        print(json.dumps(measure(network, Path(log) if log else None, args.repeat, args.idle_s)))
        return 0
    rows = []
    for network in args.networks:
        log = args.log_dir / f"{network}.json" if args.log_dir else None
        log = log if log is not None and log.is_file() else None
        for label, extra in CONFIGURATIONS.items():
            env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_PROC_BIND", "OMP_PLACES"))}
            env.update(extra, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
            command = [
                sys.executable,
                __file__,
                "--child",
                network,
                str(log or ""),
                "--repeat",
                str(args.repeat),
            ]
            command += ["--idle-s", str(args.idle_s)]
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            samples = json.loads(done.stdout.strip().splitlines()[-1])
            theirs = statistics.median(samples["onnxruntime"])
            ours = statistics.median(samples["ours"])
            row = (
                f"| {network} | {'tuned' if log else 'untuned'} | {label} | {spread(samples['ours'])} "
                f"| {spread(samples['onnxruntime'])} | {ours / theirs:.2f}x |"
            )
            print(row, flush=True)
            rows.append(row)
    table = "\n".join(
        [
            "| network | build | ours' worker threads | ours ms (p10-p90) | onnxruntime ms (p10-p90) "
            "| ours / onnxruntime |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    if args.save:
        invocation = "python benchmarks/after_idle.py " + " ".join(sys.argv[1:])
        RESULTS.write_text(
            "# after_idle.py: one call after a pause\n\n"
            f"Command: `{invocation}`.\n\n"
            f"Machine: {cpu_description()}, {os.cpu_count()} cores; 2 threads for both peers; batch 1; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
            f"Each sample: {args.idle_s} s of sleep, then one call; {args.repeat} samples per peer, "
            "alternating; medians, 10th-90th percentiles in brackets.\n\n" + table + "\n"
        )
        print(f"saved to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
