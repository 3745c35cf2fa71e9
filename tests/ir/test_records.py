"""Step records in TVM's v0.6 layout, state records, and replay of step histories."""

from __future__ import annotations

import json

import pytest
import workloads

from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State, get_init_state
from ir.loop_state.enums import IteratorAnnotation
from ir.loop_state.replay import replay_steps, state_from_record, state_to_record, steps_from_record
from ir.loop_state.state import ScheduleError
from ir.loop_state.steps import (
    STEP_CLASSES,
    AnnotationStep,
    CacheReadStep,
    CacheWriteStep,
    ComputeAtStep,
    ComputeInlineStep,
    ComputeRootStep,
    FollowFusedSplitStep,
    FollowSplitStep,
    FuseStep,
    PragmaStep,
    RecordError,
    ReorderStep,
    RfactorStep,
    SplitStep,
    Step,
    StorageAlignStep,
    step_from_record,
)

#: one step of each kind and its record, as TVM writes it
RECORDS: list[tuple[Step, list]] = [
    (SplitStep(2, 0, 512, (8, 4, 2), True), ["SP", 2, 0, 512, [8, 4, 2], 1]),
    (SplitStep(2, 1, None, (None, 16), False), ["SP", 2, 1, 0, [0, 16], 0]),
    (FollowSplitStep(3, 0, 1, 2), ["FSP", 3, 0, 1, 2]),
    (FollowFusedSplitStep(4, 0, (1, 3), 1, True), ["FFSP", 4, 0, [1, 3], 1, 1]),
    (FuseStep(2, (0, 1, 2)), ["FU", 2, [0, 1, 2]]),
    (ReorderStep(2, (0, 2, 1)), ["RE", 2, [0, 2, 1]]),
    (AnnotationStep(2, 0, IteratorAnnotation.PARALLEL), ["AN", 2, 0, 3]),
    (AnnotationStep(2, 3, IteratorAnnotation.THREAD_X), ["AN", 2, 3, 6]),
    (PragmaStep(2, 0, "auto_unroll_max_step$64"), ["PR", 2, 0, "auto_unroll_max_step$64"]),
    (StorageAlignStep(3, 1, 32, 1), ["SA", 3, 1, 32, 1]),
    (ComputeAtStep(2, 3, 1), ["CA", 2, 3, 1]),
    (ComputeInlineStep(1), ["CI", 1]),
    (ComputeRootStep(1), ["CR", 1]),
    (CacheReadStep(0, "shared", (3, 4)), ["CHR", 0, "shared", [3, 4]]),
    (CacheWriteStep(2, "local"), ["CHW", 2, "local"]),
    (RfactorStep(2, 3, 1), ["RF", 2, 3, 1]),
]


def test_every_tag_has_a_class_and_a_sample() -> None:
    assert set(STEP_CLASSES) == {
        "SP",
        "FSP",
        "FFSP",
        "FU",
        "RE",
        "AN",
        "PR",
        "SA",
        "CA",
        "CI",
        "CR",
        "CHR",
        "CHW",
        "RF",
    }
    assert {step.record_prefix for step, _ in RECORDS} == set(STEP_CLASSES)


@pytest.mark.parametrize(("step", "record"), RECORDS, ids=[r[0] + str(i) for i, (_, r) in enumerate(RECORDS)])
def test_step_record_layout_and_round_trip(step: Step, record: list) -> None:
    assert step.to_record() == record
    parsed = step_from_record(json.loads(json.dumps(step.to_record())))
    assert parsed == step and type(parsed) is type(step)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (["XX", 1], r"unknown step tag 'XX' in record \['XX', 1\]; known: AN, FU"),
        ([], r"a step record is a list starting with its tag"),
        (
            ["SP", 2, 0, 512, [8]],
            r"malformed SP record .*: expected 5 field\(s\) after the tag \(stage_id, iter_id",
        ),
        (["FU", 2, "0,1"], r"malformed FU record .*: fused_ids must be a list, got '0,1'"),
        (["CA", 2, 3.5, 1], r"malformed CA record .*: target_stage_id must be an int, got 3.5"),
        (["AN", 2, 0, 12], r"annotation code 12 is not in 0..11"),
        (["SP", 2, 0, 16, [4], 2], r"inner_to_outer must be 0 or 1"),
        (["CHW", 2, 7], r"scope_name must be a string"),
    ],
)
def test_malformed_records_are_named(record: list, message: str) -> None:
    with pytest.raises(RecordError, match=message):
        step_from_record(record)


def scheduled_state() -> tuple[ComputeDAG, State]:
    """A state using most step kinds, including stage insertions that shift ids."""
    dag = ComputeDAG(workloads.matmul_bias_relu(n=16, m=12, k=8))
    s = get_init_state(dag)
    s.compute_inline("biased")
    s.cache_write("C", "local")
    s.cache_read("B", "shared", ["C.local"])
    i0, i1 = s.split("C", "i", [4])
    j0, j1, j2 = s.split("C", "j", [None, 3])
    s.reorder("C", [i0, j0, j1, i1, j2])
    s.compute_at("C.local", "C", j0)
    s.follow_split("C.local", "i.c", 3, 1)
    s.compute_at("B.shared", "C.local", "i.c.0")
    s.storage_align("B.shared", "ax0", 4, 1)
    fused = s.fuse("C", [i0, j0])
    s.parallel("C", fused)
    s.pragma("C", fused, "auto_unroll_max_step$16")
    s.vectorize("relu", "j")
    s.unroll("C", j2)
    return dag, s


def test_state_record_round_trip_through_json() -> None:
    dag, s = scheduled_state()
    record = state_to_record(s)
    assert record[0] == [] and record[1][0] == ["CI", 4]
    text = json.dumps(record)
    restored = state_from_record(dag, json.loads(text))
    assert restored.transform_steps == s.transform_steps
    assert str(restored) == str(s)
    assert state_to_record(restored) == record
    assert not restored.concrete


def test_replay_from_the_step_list_gives_the_same_state() -> None:
    dag, s = scheduled_state()
    replayed = replay_steps(dag, s.transform_steps)
    assert str(replayed) == str(s)
    assert replayed.transform_steps == s.transform_steps
    assert [st.name for st in replayed.stages] == [st.name for st in s.stages]
    assert [st.attach for st in replayed.stages] == [st.attach for st in s.stages]


def test_replay_of_a_prefix_is_the_intermediate_state() -> None:
    dag, s = scheduled_state()
    prefix = replay_steps(dag, s.transform_steps[:3])
    assert [st.name for st in prefix.stages] == [
        "A",
        "B",
        "B.shared",
        "C.local",
        "C",
        "bias",
        "biased",
        "relu",
    ]
    assert len(prefix.transform_steps) == 3


def test_replay_stops_at_an_illegal_step() -> None:
    dag = ComputeDAG(workloads.matmul_relu())
    steps = [SplitStep(2, 0, 16, (4,)), FuseStep(2, (0, 2))]
    with pytest.raises(
        ScheduleError, match=r"cannot fuse iterators 'i.0' and 'j' of stage 'C': they are not adjacent"
    ):
        replay_steps(dag, steps)


def test_a_tvm_style_matmul_record_replays() -> None:
    """The shape of a CPU matmul record in a TVM log: SSRSRS tiling, fuse, parallel,
    pragma, vectorize."""
    dag = ComputeDAG(workloads.matmul(n=64, m=64, k=32))
    record = [
        [],
        [
            ["SP", 2, 0, 64, [2, 4, 2], 1],
            ["SP", 2, 4, 64, [1, 4, 8], 1],
            ["SP", 2, 8, 32, [4], 1],
            ["RE", 2, [0, 4, 1, 5, 8, 2, 6, 9, 3, 7]],
            ["FU", 2, [0, 1, 2]],
            ["AN", 2, 0, 3],
            ["PR", 2, 0, "auto_unroll_max_step$64"],
            ["AN", 2, 7, 2],
        ],
    ]
    state = state_from_record(dag, record)
    stage = state.stages[2]
    assert [it.name for it in stage.iters] == [
        "i.0@j.0@i.1@", "j.1", "k.0", "i.2", "j.2", "k.1", "i.3", "j.3"
    ]  # fmt: skip
    assert [it.extent for it in stage.iters] == [4 * 2 * 2, 1, 8, 4, 4, 4, 2, 8]
    assert stage.iters[0].annotation is IteratorAnnotation.PARALLEL
    assert stage.iters[7].annotation is IteratorAnnotation.VECTORIZE
    assert stage.auto_unroll_max_step == 64
    assert state_to_record(state) == record


def test_state_record_shape_is_checked() -> None:
    with pytest.raises(RecordError, match=r"a state record is \[\[\], \[step records...\]\]"):
        steps_from_record([["SP", 2, 0, 16, [4], 1]])
