"""``ansor-py run``: build an ONNX model from its tuning log, verify it and time it.

The model is built by ``build_network`` with the best record of each task in the log
(``ApplyHistoryBest``; a task without a record gets the default schedule, and the command
says how many), run on seeded random inputs (never all zeros) and compared, output by
output, with the numpy reference executor of the same graph (``run_reference``) at the
tolerance the measurer uses for the output's dtype. Only then is it timed: the median of
``--repeat`` calls. When onnxruntime is installed, the model file itself runs in it on the
same inputs, is checked against the same reference and timed the same way, so the ratio
compares like with like (Ansor paper section 7.3 compares whole networks this way).

Exit status 1 when an output disagrees with the reference.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ansor_py.cli.options import (
    add_shape_option,
    add_target_option,
    existing_file,
    help_text,
    positive_int,
    require_runnable_target,
    shape_overrides,
)
from ansor_py.measure.local import TOLERANCES
from ansor_py.measure.run_worker import compare_output
from ansor_py.network import build_network, from_onnx, run_reference
from ansor_py.network.executor import NetworkBuildWarning, random_inputs
from ansor_py.records import ApplyHistoryBest
from ansor_py.timing import median_seconds

EPILOG = """\
examples:
  # build resnet50.onnx with the best schedules of resnet50.json, verify, time
  ansor-py run resnet50.onnx --shape data=1,3,224,224 --log resnet50.json

  # the same model untuned (every task on its default schedule), 50 timed calls
  ansor-py run resnet50.onnx --shape data=1,3,224,224 --repeat 50

  # also print the kernel calls and a per-kernel profile; skip onnxruntime
  ansor-py run model.onnx --log model.json --summary --profile --no-onnxruntime
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run",
        help="build an ONNX model from its log, verify it against numpy and time it",
        description=help_text(__doc__),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="ONNX model file")
    parser.add_argument(
        "--log", default=None, help="record log of the model's tasks (default: none, untuned)"
    )
    add_shape_option(parser)
    add_target_option(parser)
    parser.add_argument("--repeat", type=positive_int, default=20, help="timed calls (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    parser.add_argument("--summary", action="store_true", help="print the kernel calls and the memory plan")
    parser.add_argument("--profile", action="store_true", help="print the median time of each kernel call")
    parser.add_argument(
        "--no-onnxruntime", action="store_true", help="do not compare with onnxruntime even if installed"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    model_file = existing_file(args.model, "ONNX model file", "run")
    records = None
    if args.log is not None:
        records = ApplyHistoryBest(existing_file(args.log, "record log", "run"))
    require_runnable_target(args.target, "run")
    graph = from_onnx(model_file, shape=shape_overrides(args.shape, "run"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NetworkBuildWarning)
        network = build_network(graph, args.target, records)
    for warning in caught:
        if issubclass(warning.category, NetworkBuildWarning):
            print(f"note: {warning.message}")
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    tuned = sum(kernel.tuned for kernel in network.kernels)
    print(
        f"built '{graph.name}' for '{args.target}': {len(network.calls)} kernel calls, "
        f"{len(network.kernels)} distinct kernels ({tuned} tuned)"
    )
    if args.summary:
        print(network.summary())

    inputs = random_inputs(graph.inputs, seed=args.seed)
    expected = run_reference(graph, inputs)
    outputs = network.run_inputs(inputs, copy=True)
    if not verified("ansor-py", graph.outputs, outputs, expected):
        return 1
    timings = {"ansor-py": median_seconds(functools.partial(network.run_inputs, inputs), 1, args.repeat)}
    session = None if args.no_onnxruntime else onnxruntime_session(model_file)
    if session is not None:
        ort_outputs = [np.asarray(out) for out in session(inputs)]
        if verified("onnxruntime", graph.outputs, ort_outputs, expected):
            timings["onnxruntime"] = median_seconds(functools.partial(session, inputs), 1, args.repeat)
    print(f"time (median of {args.repeat} calls):")
    for peer, seconds in timings.items():
        print(f"  {peer:12} {seconds * 1e3:10.4f} ms")
    if "onnxruntime" in timings:
        print(f"  ansor-py time / onnxruntime time: {timings['ansor-py'] / timings['onnxruntime']:.2f}")
    if args.profile:
        print(network.profile(inputs, repeat=args.repeat))
    return 0


def verified(
    who: str, names: Sequence[str], outputs: Sequence[np.ndarray], expected: Sequence[np.ndarray]
) -> bool:
    """Print whether each output matches the reference (``compare_output`` at the
    measurer's tolerance for its dtype); True when all do."""
    problems = []
    for name, got, want in zip(names, outputs, expected, strict=True):
        if got.shape != want.shape:
            problems.append(f"output '{name}' has shape {got.shape}, the reference {want.shape}")
            continue
        rtol, atol = TOLERANCES.get(str(want.dtype), (0.0, 0.0))
        problem = compare_output(name, got, want, rtol, atol)
        if problem is not None:
            problems.append(problem)
    if problems:
        for problem in problems:
            print(f"ERROR: {who}: {problem}")
        return False
    print(f"{who}: {len(names)} output(s) verified against the numpy reference")
    return True


def onnxruntime_session(model_file: Path) -> Callable[[Mapping[str, np.ndarray]], list[np.ndarray]] | None:
    """A function running the model file in onnxruntime (CPU), or None without it."""
    if importlib.util.find_spec("onnxruntime") is None:
        print("(onnxruntime is not installed: no comparison)")
        return None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    return functools.partial(session.run, None)
