"""Sketch generation: apply the derivation rules from the last stage to the first (Ansor
paper section 4.1; TVM ``SketchPolicyNode::GenerateSketches``).

A work list holds (state, stage id) pairs, starting from the DAG's initial state at its
last stage. Each round, every pair whose stage id is below 0 is a finished sketch; every
other pair is offered to the rules in order (see ``sketch_rules``), and the successors of
the rules that apply form the next round's work list. Sketches come out in the order they
finish, which is TVM's order (so sketch *i* here is sketch *i* in TVM's tests).

The split a rfactor rule made (length 1, so the new op could be built) is then reset to an
unknown length, to be sampled like every other tile size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ansor_py.search.sketch_rules import ConditionKind, RuleContext, SketchRule
from ir.loop_state.state import LoopState, ScheduleError, initial_state
from ir.loop_state.steps import RfactorStep, SplitStep


def generate_sketches(ctx: RuleContext, rules: Sequence[SketchRule]) -> list[LoopState]:
    """All sketches of ``ctx.search_task`` under ``rules``."""
    init_state = initial_state(ctx.search_task.compute_dag)
    work: list[tuple[LoopState, int]] = [(init_state, len(init_state.stages) - 1)]
    sketches: list[LoopState] = []
    while work:
        next_work: list[tuple[LoopState, int]] = []
        for state, stage_id in work:
            if stage_id < 0:
                sketches.append(state)
                continue
            for rule in rules:
                verdict = rule.condition(ctx, state, stage_id)
                if verdict is ConditionKind.SKIP:
                    continue
                next_work.extend(rule.apply(ctx, state, stage_id))
                if verdict is ConditionKind.APPLY_AND_SKIP_REST:
                    break
        work = next_work
    return [unfix_rfactor_split(sketch) for sketch in sketches]


def unfix_rfactor_split(state: LoopState) -> LoopState:
    """``state`` with the split right before each rfactor step set to an unknown length.

    The stages keep the shapes of the length-1 split; they are rebuilt once the length is
    sampled and the steps are replayed (``init_rules.fill_tile_sizes``)."""
    steps = list(state.transform_steps)
    changed = False
    for index, step in enumerate(steps):
        if isinstance(step, RfactorStep):
            split = steps[index - 1] if index > 0 else None
            if not isinstance(split, SplitStep):
                raise ScheduleError(
                    f"rfactor step {index} of a sketch does not follow a split step (got {split!r})"
                )
            steps[index - 1] = replace(split, lengths=(None,) * len(split.lengths))
            changed = True
    if not changed:
        return state
    return replace(state, transform_steps=tuple(steps), concrete=False)
