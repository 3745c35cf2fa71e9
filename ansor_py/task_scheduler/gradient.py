"""Which task to tune next: the gradient of the objective (Ansor paper section 6.2).

The scheduler estimates, for every live task i, how fast one more round of tuning would
cut the objective f(g_1, ..., g_n), where g_i is task i's best latency:

    df/dt_i ~= df/dg_i * (alpha * backward_i + (1 - alpha) * forward_i)

- ``df/dg_i``: the chain term, a finite difference of f at the current best latencies
  (exact for the weighted sum f = sum_i w_i g_i, where it is w_i);
- ``backward_i = (g_i(t_i) - g_i(t_i - dt)) / dt``: the improvement over the last
  ``dt = backward_window_size`` rounds (0 until the task has that much history);
- ``forward_i = min(g_i - g_i / t_i, beta * C_i / max_{k in N(i)} V_k) - g_i``: an
  optimistic guess, either the latency keeps falling as 1/t, or task i reaches the
  speed V_k of its fastest similar task k (C_i: the task's FLOPs), within a factor beta.

Similar tasks (N(i)) share a tag (TVM ``derive_similarity_tag``): the tags of the
reduction operators of the DAG (``conv2d_nhwc``, ``dense``: the anchor ops, which carry
the work), followed by the integer part of log_1.618(FLOPs + 1), so only tasks of the
same kind and about the same size are grouped. A DAG without a tagged reduction is in no
group. The functions here are pure: the scheduler passes its state in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ir.compute_dag import ComputeDAG
from ir.expr import Reduce
from ir.te import ComputeOp

#: the op attribute TVM reads a task-scheduler tag from (preferred over the op's tag)
TASK_SCHEDULER_TAG_ATTR = "auto_scheduler_task_scheduler_tag"
#: relative step of the finite difference of the objective (of each task's latency)
RELATIVE_DELTA = 1e-4

Objective = Callable[[Sequence[float]], float]


def derive_similarity_tag(dag: ComputeDAG, log_base: float = 1.618) -> str:
    """``<op tag>_<op tag>_..._<int(log_base(FLOPs + 1))>`` over the DAG's reduction ops
    (their ``auto_scheduler_task_scheduler_tag`` attribute, else their tag); "" when no
    reduction op is tagged (the task is then similar to none)."""
    tags: list[str] = []
    for op in dag.ops:
        if isinstance(op, ComputeOp) and isinstance(op.body, Reduce):
            tag = op.attrs.get(TASK_SCHEDULER_TAG_ATTR) or op.tag
            if tag:
                tags.append(str(tag))
    if not tags:
        return ""
    return "_".join(tags) + f"_{int(math.log(dag.flop_ct + 1, log_base))}"


def chain_gradient(objective: Objective, best_costs: Sequence[float], i: int) -> float:
    """df/dg_i by a backward finite difference at ``best_costs`` (step: RELATIVE_DELTA of
    g_i, so the step never takes a latency below 0)."""
    delta = RELATIVE_DELTA * best_costs[i]
    lowered = list(best_costs)
    lowered[i] -= delta
    return (objective(best_costs) - objective(lowered)) / delta


def backward_gradient(history: Sequence[float], rounds: int, window: int) -> float:
    """(g_i(t_i) - g_i(t_i - window)) / window from the best latency after each round
    (``history[r - 1]``: after round r); 0 without ``window`` rounds of history."""
    if rounds - 1 < len(history) and rounds - 1 - window >= 0:
        return (history[rounds - 1] - history[rounds - 1 - window]) / window
    return 0.0


def forward_gradient(
    best_cost: float, rounds: int, flop_ct: float, group_best_flops: float | None, beta: float
) -> float:
    """min(g_i - g_i / t_i, beta * C_i / V_best) - g_i; ``group_best_flops`` (V_best, the
    highest FLOP/s among the task's similar tasks) None when the task has no peers."""
    g_next = best_cost - best_cost / max(rounds, 1)
    if group_best_flops is not None and group_best_flops > 0:
        g_next = min(g_next, beta * flop_ct / group_best_flops)
    return g_next - best_cost


def task_gradient(
    objective: Objective,
    best_costs: Sequence[float],
    i: int,
    history: Sequence[float],
    rounds: int,
    flop_ct: float,
    group_best_flops: float | None,
    alpha: float,
    beta: float,
    window: int,
) -> float:
    """df/dt_i as the module docstring says (negative: tuning i lowers the objective)."""
    chain = chain_gradient(objective, best_costs, i)
    backward = backward_gradient(history, rounds, window)
    forward = forward_gradient(best_costs[i], rounds, flop_ct, group_best_flops, beta)
    return chain * (alpha * backward + (1.0 - alpha) * forward)
