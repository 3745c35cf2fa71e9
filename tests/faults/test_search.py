"""The eps-greedy pick of a search round falls back on the other list when one runs out
(issue 11: "the eps-greedy fallback to the best list when random states run out"; TVM
``SketchPolicyNode::PickStatesWithEpsGreedy``): a round measures
``num_measures_per_round`` programs whenever the two lists hold that many unmeasured ones,
instead of stopping short when the random list (a few members of the initial population,
some already measured) is empty."""

from __future__ import annotations

import pytest

from ansor_py.cost_model import RandomModel
from ansor_py.search import SketchPolicy
from ansor_py.search_task import SearchTask
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.loop_state.state import LoopState
from ir.topi.workloads import gemm


@pytest.fixture(scope="module")
def task_and_states() -> tuple[SearchTask, list[LoopState]]:
    dag = ComputeDAG(gemm(16, 16, 16))
    states = []
    for fi in (1, 2, 4, 8):
        for fj in (1, 2, 4, 8):
            s = get_init_state(dag)
            i, j, _ = s["C"].iters
            s.split("C", i, [fi])
            s.split("C", j, [fj])
            states.append(s.loop_state)
    assert len({str(s) for s in states}) == 16  # 16 distinct programs
    return SearchTask(compute_dag=dag, target="llvm"), states


def fresh(task: SearchTask) -> SketchPolicy:
    """A policy that has measured nothing, taking 8 programs a round: 6 best, 2 random."""
    policy = SketchPolicy(task, RandomModel(seed=0), params={"eps_greedy": 0.25}, seed=0, verbose=0)
    policy.num_measures_per_round = 8
    return policy


def picked(inputs) -> list[str]:
    return [str(inp.state) for inp in inputs]


def test_eps_greedy_falls_back_on_the_best_when_random_states_run_out(task_and_states) -> None:
    task, states = task_and_states
    policy = fresh(task)
    best = states[:10]
    # no random state at all: the two random places go to the next best programs
    inputs = policy.pick_states_with_eps_greedy(best, [], remaining_trials=100)
    assert picked(inputs) == [str(s) for s in best[:8]]
    # one random state: 6 best, the random one, then the best list again
    policy = fresh(task)
    inputs = policy.pick_states_with_eps_greedy(best, states[10:11], remaining_trials=100)
    assert picked(inputs) == [str(s) for s in (*best[:6], states[10], *best[6:7])]


def test_eps_greedy_falls_back_on_the_random_states_when_the_best_run_out(task_and_states) -> None:
    task, states = task_and_states
    policy = fresh(task)
    inputs = policy.pick_states_with_eps_greedy(states[:2], states[2:], remaining_trials=100)
    assert picked(inputs) == [str(s) for s in states[:8]]
    # both lists exhausted: the round is short, and no program is picked twice
    policy = fresh(task)
    inputs = policy.pick_states_with_eps_greedy(states[:2], states[:3], remaining_trials=100)
    assert picked(inputs) == [str(s) for s in states[:3]]
