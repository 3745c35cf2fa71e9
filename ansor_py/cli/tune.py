"""``ansor-py tune``: tune an ONNX model's tasks or one registered workload into a log.

A model is imported (``from_onnx``), cut into tasks (``extract_tasks``) and tuned by the
``TaskScheduler`` (Ansor paper section 6: rounds go to the task whose improvement lowers
the network's latency most); a workload is one ``SearchTask`` searched by ``SketchPolicy``
with the XGBoost cost model (sections 4 and 5, ``auto_schedule``).

``--trials`` is the budget of the log, not of the run: the log (``--log``) is read first
and only the trials it lacks are measured, so the same command run again after an
interruption continues where the first stopped and measures nothing twice (the
scheduler's ``load_log_file``; for a workload ``PreloadMeasuredStates`` plus the cost
model retrained on the log, as TVM's resume recipe). Raise ``--trials`` to tune further.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ansor_py.cli.options import (
    CommandError,
    UsageError,
    add_shape_option,
    add_target_option,
    existing_file,
    help_text,
    positive_int,
    require_runnable_target,
    shape_overrides,
)
from ansor_py.cli.workloads import BUILTIN_WORKLOADS, import_workload_modules, workload_args, workload_listing
from ansor_py.network import extract_tasks, from_onnx
from ansor_py.records import RecordToFile, load_best_record, load_records, load_task_records
from ansor_py.search import PreloadMeasuredStates, SketchPolicy
from ansor_py.search_task import SearchTask
from ansor_py.task_scheduler import PrintTableInfo, TaskScheduler
from ansor_py.task_scheduler.callbacks import NO_LATENCY
from ansor_py.tuning import TuningOptions, auto_schedule, best_state, print_best
from ir.lower.bound import infer_bound_from_state

#: the default budget, per task
TRIALS_PER_TASK = 64

EPILOG = """\
examples:
  # a 512 x 512 x 512 matmul (C[N, M] = A[N, K] @ B[K, M]), 200 trials, into matmul.json
  ansor-py tune --workload matmul --args 512 512 512 --trials 200 --log matmul.json

  # the same command after an interruption measures only the trials the log lacks;
  # a larger --trials tunes further
  ansor-py tune --workload matmul --args 512 512 512 --trials 400 --log matmul.json

  # every task of an ONNX model whose input has a dynamic batch dimension
  ansor-py tune resnet50.onnx --shape data=1,3,224,224 --trials 2000 --log resnet50.json

  # for a given CPU, with a smaller search per round (small budgets reach more tasks)
  ansor-py tune model.onnx --target "llvm -mcpu=skylake-avx512" --per-round 16 --population 512

  # the workloads --workload can name (and their arguments)
  ansor-py tune --list-workloads

built-in workloads: {builtins}
then: ansor-py run MODEL.onnx --log LOG (a model), ansor-py explain LOG (a workload)
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "tune",
        help="tune an ONNX model or a registered workload into a record log",
        description=help_text(__doc__),
        epilog=EPILOG.format(builtins=", ".join(BUILTIN_WORKLOADS)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", nargs="?", help="ONNX model file (or give --workload)")
    parser.add_argument("--workload", metavar="NAME", help="a registered workload (see --list-workloads)")
    parser.add_argument("--args", nargs="+", default=[], metavar="ARG", help="the workload's arguments")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first: its @register_workload functions become workloads",
    )
    parser.add_argument("--list-workloads", action="store_true", help="list the registered workloads")
    add_shape_option(parser)
    add_target_option(parser)
    parser.add_argument(
        "--trials",
        type=positive_int,
        default=None,
        help=f"trials the log should hold for these tasks when done (default {TRIALS_PER_TASK} per task)",
    )
    parser.add_argument(
        "--log", default=None, help="record log, resumed if it exists (default: MODEL_STEM.json or NAME.json)"
    )
    parser.add_argument(
        "--per-round", type=positive_int, default=64, help="programs measured per search round (default 64)"
    )
    parser.add_argument(
        "--population",
        type=positive_int,
        default=None,
        help="programs per generation of the evolutionary search (default 2048)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the search (default: random)")
    parser.add_argument(
        "--verbose", type=int, choices=(0, 1, 2), default=1, help="progress printed while tuning (default 1)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import_workload_modules(args.imports, "tune")
    if args.list_workloads:
        print(workload_listing())
        return 0
    if (args.model is None) == (args.workload is None):
        raise UsageError("tune: give an ONNX model file or --workload NAME (one of the two)")
    if args.workload is None and args.args:
        raise UsageError("tune: --args belongs to --workload")
    if args.workload is not None and args.shape:
        raise UsageError("tune: --shape belongs to an ONNX model, not to --workload")
    require_runnable_target(args.target, "tune")
    params = None if args.population is None else {"evolutionary_search_population": args.population}
    if args.workload is not None:
        return tune_workload(args, params)
    return tune_model(args, params)


def tune_workload(args: argparse.Namespace, params: dict[str, int] | None) -> int:
    """Tune one workload until the log holds ``--trials`` of its records, then print the
    best program as a loop tree and as a step script."""
    values = workload_args(args.workload, args.args, "tune")
    task = SearchTask(func=args.workload, args=values, target=args.target)
    log = Path(args.log or f"{args.workload}.json")
    callback = RecordToFile(log)  # checks the path before anything is measured
    inputs, results = load_task_records(log, task)
    budget = args.trials or TRIALS_PER_TASK
    done = len({inp.state.transform_steps for inp in inputs})  # trials: see distinct_programs
    remaining = budget - done
    print(f"task {task.workload_key} on '{task.target}', {task.compute_dag.flop_ct / 1e9:.3f} GFLOP per run")
    if remaining <= 0:
        print(f"{log} already holds {done} programs of the task (budget {budget}): nothing to measure")
    else:
        # one trial is TVM's "search with the cost model only": measure at least two
        trials = max(remaining, 2)
        print(f"tuning {trials} trials into {log} ({done} programs there before)", flush=True)
        from ansor_py.cost_model.xgb_model import XGBModel  # xgboost loads when used

        model = XGBModel()
        preload = []
        if inputs:
            model.update(inputs, results)  # the cost model learns from the log first
            preload.append(PreloadMeasuredStates(log))
        policy = SketchPolicy(
            task, model, params=params, seed=args.seed, verbose=args.verbose, init_search_callbacks=preload
        )
        options = TuningOptions(
            num_measure_trials=trials,
            num_measures_per_round=args.per_round,
            verbose=args.verbose,
            measure_callbacks=[callback],
        )
        auto_schedule(task, options, search_policy=policy)
    inp, res = load_best_record(log, task.workload_key, task.target, tasks=[task])
    total = distinct_programs(log, [task])
    if inp is None or res is None:
        print(f"no program of the {total} measured ran correctly")
        return 1
    seconds = res.median_cost
    gflops = task.compute_dag.flop_ct / seconds / 1e9
    print(f"== best of {total} trials: {seconds * 1e3:.4f} ms, {gflops:.2f} GFLOP/s")
    print("== the best program as Ansor's loop tree")
    print(infer_bound_from_state(task.compute_dag, best_state(task, log)))
    print("== ... and as a Python step script")
    print(print_best(task, log))
    print(f"== next: ansor-py explain {log} --workload {args.workload} --args {' '.join(args.args)}")
    return 0


def distinct_programs(log: Path, tasks: list[SearchTask]) -> int:
    """The trials of ``tasks`` in ``log``: their distinct programs (a program measured
    again at the end of a tuning run, ``ansor_py.remeasure``, has a second record but was
    one trial); 0 when the log does not exist yet."""
    if not log.is_file():
        return 0
    programs = {(id(inp.task), inp.state.transform_steps) for inp, _ in load_records(log, tasks=tasks)}
    owned = {id(task) for task in tasks}
    return sum(1 for task_id, _ in programs if task_id in owned)


def tune_model(args: argparse.Namespace, params: dict[str, int] | None) -> int:
    """Tune the tasks of an ONNX model with the task scheduler until the log holds
    ``--trials`` of their records, then print each task's best latency."""
    model_file = existing_file(args.model, "ONNX model file", "tune")
    graph = from_onnx(model_file, shape=shape_overrides(args.shape, "tune"))
    tasks, weights = extract_tasks(graph, args.target)
    log = Path(args.log or f"{model_file.stem}.json")
    callback = RecordToFile(log)
    budget = args.trials or TRIALS_PER_TASK * len(tasks)
    if budget < len(tasks):
        raise CommandError(
            f"tune: --trials {budget} is less than one trial per task ({len(tasks)} tasks in {model_file})"
        )
    scheduler = TaskScheduler(
        tasks,
        weights,
        load_log_file=log if log.is_file() else None,
        callbacks=[PrintTableInfo()] if args.verbose else [],
        seed=args.seed,
    )
    done = distinct_programs(log, tasks)
    remaining = budget - done
    print(f"model {model_file}: {len(tasks)} tasks for '{args.target}', budget {budget} trials")
    if remaining < len(tasks):  # a scheduler round needs one trial per task at least
        print(f"{log} already holds {done} programs of these tasks: nothing to measure")
        if scheduler.restored_trials:
            scheduler.restore(args.per_round)  # the best latencies of the log, for the table
    else:
        print(f"tuning {remaining} trials into {log} ({done} programs there before)", flush=True)
        options = TuningOptions(
            num_measure_trials=remaining,
            num_measures_per_round=args.per_round,
            verbose=args.verbose,
            measure_callbacks=[callback],
        )
        scheduler.tune(options, search_policy_params=params)
    print(task_table(scheduler, weights))
    shapes = "".join(f" --shape {name}={','.join(map(str, shape))}" for name, shape in args.shape)
    print(f"== next: ansor-py run {model_file}{shapes} --log {log}")
    return 0


def task_table(scheduler: TaskScheduler, weights: list[int]) -> str:
    """Each task's weight, trials and best latency, and the network's estimate
    ``sum_i w_i g_i`` (paper section 6) when every task has a valid program."""
    rows = ["  #  weight  trials  best ms    task"]
    for i, task in enumerate(scheduler.tasks):
        best = scheduler.best_costs[i]
        latency = f"{best * 1e3:9.4f}" if best < NO_LATENCY else "        -"
        rows.append(f"{i:3d}  {weights[i]:6d}  {scheduler.task_trials[i]:6d}  {latency}  {task.desc}")
    if all(cost < NO_LATENCY for cost in scheduler.best_costs):
        estimate = sum(w * c for w, c in zip(weights, scheduler.best_costs, strict=True))
        rows.append(f"estimated network latency (sum of weight x best): {estimate * 1e3:.4f} ms")
    else:
        rows.append("estimated network latency: unknown (some task has no valid program yet)")
    return "\n".join(rows)
