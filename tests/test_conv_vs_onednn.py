"""``benchmarks/conv_vs_onednn.py`` at a tiny budget: task selection, the log's per-target
bookkeeping, a two-trial tuning, the build of the best record with its weight rewritten
(checked against ``ir.reference``), the three PyTorch forms (checked too, when PyTorch is
installed) and the parser of oneDNN's verbose lines."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import conv_vs_onednn as bench

from ansor_py.measure import MeasureErrorNo, MeasureInput, MeasureResult
from ansor_py.network.default_schedule import default_schedule
from ansor_py.records import save_records
from codegen.target import Target
from ir.reference import evaluate

#: the smallest default task: 1x1 conv, 1x28x28x512 -> 256
ONE_BY_ONE = "relu, 1x28x28x512 -> 256, 1x1"
RESIDUAL = "add + relu, 1x28x28x128 -> 512, 1x1"


@pytest.fixture(scope="module")
def selected() -> tuple[list[bench.ConvTask], dict[str, np.ndarray]]:
    return bench.select_tasks([ONE_BY_ONE, RESIDUAL], "llvm")


def write_default_record(conv: bench.ConvTask, log: Path, target: str = "llvm") -> None:
    """A record of the task's default schedule (no search), as a log line for ``target``."""
    task = conv.task
    if str(task.target) != target:
        task = bench.select_tasks([str(conv.index)], target)[0][0].task
    state = default_schedule(task.compute_dag, task.target)
    save_records(log, [MeasureInput(task, state)], [MeasureResult((1e-3,), MeasureErrorNo.NO_ERROR)])


def test_select_tasks_by_substring_and_index(selected):
    convs, constants = selected
    assert [c.task.desc for c in convs] == [
        "conv2d_nhwc + bias + relu, 1x28x28x512 -> 256, 1x1",
        "conv2d_nhwc + bias + add + relu, 1x28x28x128 -> 512, 1x1",
    ]
    assert all(c.subgraph.workload_key == c.task.workload_key for c in convs)
    assert all(v in constants for v in convs[0].subgraph.inputs[1:])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("3x3", "must match exactly one ResNet-50 task"),
        ("no such conv", "matches none"),
        ("max_pool2d", "not a conv2d task"),
        ("99", "ResNet-50 has 29 tasks"),
    ],
)
def test_select_tasks_refuses_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        bench.select_tasks([spec], "llvm")


def test_programs_logged_counts_one_target_and_refuses_a_mixed_log(selected, tmp_path):
    conv = selected[0][0]
    log = tmp_path / "log.json"
    assert bench.programs_logged(log, Target.parse("llvm")) == {}
    write_default_record(conv, log)
    write_default_record(conv, log)  # a re-measurement of the same program counts once
    counts = bench.programs_logged(log, Target.parse("llvm"))
    assert list(counts.values()) == [1]
    write_default_record(conv, log, "llvm -mcpu=znver3")
    with pytest.raises(ValueError, match="one log per target"):
        bench.programs_logged(log, Target.parse("llvm"))


def test_no_record_means_no_build(selected, tmp_path):
    convs, constants = selected
    assert bench.build_ours(convs[0], constants, Target.parse("llvm"), tmp_path / "none.json") is None


def test_two_trials_then_build_with_rewritten_weight_matches_reference(selected, tmp_path):
    convs, constants = selected
    conv, target, log = convs[0], Target.parse("llvm"), tmp_path / "tuned.json"
    bench.tune([conv], log, target, trials=2, per_round=64)
    assert list(bench.programs_logged(log, target).values()) == [2]
    network = bench.build_ours(conv, constants, target, log)
    assert network is not None and network.kernels[0].tuned
    assert network.kernels[0].layouts, "the constant weight is read in a rewritten layout"
    operands = bench.random_operands(conv.subgraph, constants)
    inputs = {v: a for v, a in zip(conv.subgraph.inputs, operands, strict=True) if v in network.input_types}
    got = np.array(network.run_inputs(inputs)[0])
    expected = evaluate(conv.subgraph.dag, operands)[0]
    assert np.abs(expected).max() > 0
    assert bench.relative_error(got, expected) <= bench.TOLERANCE


def test_conv_block_and_torch_forms_match_reference(selected):
    pytest.importorskip("torch", reason="the PyTorch peer needs PyTorch")
    convs, constants = selected
    for conv in convs:
        block = bench.ConvBlock.of(conv.subgraph, constants)
        assert block.relu and (block.residual is not None) == ("add + relu" in conv.task.desc)
        operands = bench.random_operands(conv.subgraph, constants)
        expected = evaluate(conv.subgraph.dag, operands)[0]
        forms = bench.torch_forms(block, operands)
        assert len(forms) == 3
        for name, fn in forms.items():
            got = fn().permute(0, 2, 3, 1).numpy()
            assert bench.relative_error(got, expected) <= bench.TOLERANCE, name


def test_implementations_parses_primitive_and_graph_lines():
    text = "\n".join(
        [
            "onednn_verbose,v1,info,cpu,isa:Intel AVX2",
            "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32,,64x64x3x3,0.01",
            "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_inference,src,0.8",
            "onednn_verbose,v1,graph,exec,cpu,100014,convolution_post_ops,aten::_convolution;aten::relu,"
            "data:NCX,in0_f32:0,fpm:strict,conv_fwd_t,dnnl_backend,0.81",
        ]
    )
    found, isa = bench.implementations(text)
    assert found == ["brg_conv_fwd:avx2", "graph convolution_post_ops (conv_fwd_t)"]
    assert isa == "Intel AVX2"
    assert bench.implementations("no oneDNN here") == ([], None)


def test_all_selects_every_conv2d_task():
    convs, _ = bench.select_tasks(["all"], "llvm")
    assert len(convs) == 24  # 53 fused convolutions, 24 distinct
    assert all(c.task.desc.startswith("conv2d") for c in convs)
