"""ComputeDAG: validation, access analysis, FLOP count, workload key and printed form."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import workloads

from ir import te
from ir.access_analysis import AccessAnalysisError, is_const_shift_equal, simple_access_info
from ir.compute_dag import MAX_LINE_WIDTH, ComputeDAG, ComputeDAGError
from ir.loop_state.enums import ComputeAtKind
from ir.loop_state.state import LoopState, initial_state


def ops_by_name(dag: ComputeDAG) -> dict[str, te.Operation]:
    return {op.name: op for op in dag.ops}


def inline(state: LoopState, name: str) -> LoopState:
    """``state`` with stage ``name`` marked inlined (what compute_inline records)."""
    stage_id = state.stage_id(name)
    return state.with_stage(
        stage_id, dataclasses.replace(state.stages[stage_id], compute_at=ComputeAtKind.INLINED)
    )


# validation ---------------------------------------------------------------------------------


def test_missing_placeholder_is_named() -> None:
    a, _, c = workloads.matmul()
    with pytest.raises(
        ComputeDAGError, match=r"placeholder\(s\) \['B'\] are read but not among the tensors given"
    ):
        ComputeDAG([a, c])


def test_repeated_op_names_are_named() -> None:
    a = te.placeholder((4,), name="A")
    b = te.compute((4,), lambda i: a[i] + 1.0, name="A")
    with pytest.raises(ComputeDAGError, match=r"operation names \['A'\] repeat"):
        ComputeDAG([a, b])


def test_repeated_iterator_names_are_named() -> None:
    a = te.placeholder((4, 4), name="A")
    r = te.reduce_axis((0, 4), name="i")
    b = te.compute((4,), lambda i: te.sum(a[i, r], axis=r), name="B")
    with pytest.raises(ComputeDAGError, match=r"op 'B' has iterator name\(s\) \['i'\] more than once"):
        ComputeDAG([a, b])


def test_needs_an_output_and_tensors_only() -> None:
    a = te.placeholder((4,), name="A")
    with pytest.raises(ComputeDAGError, match=r"at least one compute"):
        ComputeDAG([a])
    with pytest.raises(ComputeDAGError, match=r"ComputeDAG takes te tensors, got 3"):
        ComputeDAG([a, 3])  # type: ignore[list-item]


def test_ops_are_in_tvm_topological_order_and_io_split() -> None:
    # TVM's order puts each input right before its first consumer
    assert [op.name for op in ComputeDAG(workloads.conv2d_nchw()).ops] == [
        "data",
        "pad_temp",
        "kernel",
        "conv",
    ]
    tensors = workloads.matmul_bias_relu()
    dag = ComputeDAG(tensors)
    assert [op.name for op in dag.ops] == ["A", "B", "C", "bias", "biased", "relu"]
    assert [t.name for t in dag.placeholders] == ["A", "B", "bias"]
    assert [t.name for t in dag.outputs] == ["relu"]
    assert dag.op_by_name("C") is ops_by_name(dag)["C"]
    with pytest.raises(ComputeDAGError, match=r"no op named 'D'"):
        dag.op_by_name("D")


# access analysis ------------------------------------------------------------------------------


def test_const_shift_equal_and_simple_access_classification() -> None:
    a = te.placeholder((8, 8), name="A")
    c = te.compute((6, 6), lambda i, j: a[i, j], name="C")
    i, j = c.op.axis
    assert is_const_shift_equal(i, i) and is_const_shift_equal(i, i + 1) and is_const_shift_equal(i, i - 2)
    assert is_const_shift_equal(i, 3 + i)
    assert not is_const_shift_equal(i, i * 2) and not is_const_shift_equal(i, j + 1)
    assert not is_const_shift_equal(i, i + j)
    assert simple_access_info(c.op, (i, j + 1)) == (False, False, True)
    assert simple_access_info(c.op, (j, i)) == (False, False, False)
    assert simple_access_info(c.op, (i, i)) == (True, True, True)
    assert simple_access_info(c.op, (te.const(0), j)) == (True, False, True)
    assert simple_access_info(c.op, (i + j, j)) is None
    assert simple_access_info(a.op, (i, j)) is None  # placeholders make no accesses


def test_matmul_analysis() -> None:
    dag = ComputeDAG(workloads.matmul(16, 12, 8))
    ops = ops_by_name(dag)
    ana = dag.access_analyzer
    a, b, c = ops["A"], ops["B"], ops["C"]
    assert ana.read_from(a) == {}
    reads = ana.read_from(c)
    assert list(reads) == [a, b]
    assert [str(x) for x in reads[a][0]] == ["i", "k"] and [str(x) for x in reads[b][0]] == ["k", "j"]
    assert list(ana.read_by(a)) == [c] and ana.read_by(c) == {}
    for placeholder in (a, b):
        assert ana.is_simple_access(placeholder) and not ana.is_strictly_inlineable(placeholder)
        assert not ana.needs_multi_level_tiling(placeholder) and not ana.is_output(placeholder)
    assert not ana.is_simple_access(c)  # A[i, k]: k is not an axis of C
    assert not ana.is_strictly_inlineable(c)
    assert ana.needs_multi_level_tiling(c)
    assert ana.is_output(c)
    assert ana.num_common_outer_iterators(a, c) == 1  # A[i, .] shares i (extents 16 == 16)
    assert ana.num_common_outer_iterators(b, c) == 0  # B's first extent is K, not N
    assert ana.num_common_outer_iterators(c, c) == 2
    assert ana.get_direct_producers(c) == [a, b]


def test_matmul_relu_chain_analysis() -> None:
    dag = ComputeDAG(workloads.matmul_bias_relu(16, 12, 8))
    ops = ops_by_name(dag)
    ana = dag.access_analyzer
    c, bias, biased, relu = ops["C"], ops["bias"], ops["biased"], ops["relu"]
    assert ana.needs_multi_level_tiling(c) and not ana.is_output(c)
    # bias[j] misses i, but one missing tensor without reduction is no data reuse
    assert not ana.needs_multi_level_tiling(biased)
    assert ana.is_simple_access(biased) and ana.is_strictly_inlineable(biased)
    assert ana.is_strictly_inlineable(relu) and ana.is_output(relu)
    assert (
        ana.elementwise_match(c, relu)
        and ana.elementwise_match(c, biased)
        and ana.elementwise_match(relu, relu)
    )
    assert not ana.elementwise_match(bias, biased)  # a placeholder is not an elementwise producer
    assert not ana.elementwise_match(relu, c)
    assert ana.num_common_outer_iterators(c, relu) == 2
    assert ana.num_common_outer_iterators(ops["A"], relu) == 1
    assert ana.num_common_outer_iterators(relu, c) == 0  # c does not consume relu


def test_consumers_and_producers_look_through_inlined_stages() -> None:
    dag = ComputeDAG(workloads.matmul_bias_relu())
    ops = ops_by_name(dag)
    ana = dag.access_analyzer
    state = initial_state(dag)
    assert state.inlined_ops() == frozenset()
    assert ana.get_consumers(ops["C"], state.inlined_ops()) == [ops["biased"]]
    assert ana.get_producers(ops["relu"]) == [ops["biased"]]
    inlined = inline(state, "biased").inlined_ops()
    assert inlined == {ops["biased"]}
    assert ana.get_consumers(ops["C"], inlined) == [ops["relu"]]
    assert ana.get_consumers(ops["bias"], inlined) == [ops["relu"]]
    assert ana.get_producers(ops["relu"], inlined) == [ops["C"], ops["bias"]]
    assert ana.get_direct_producers(ops["relu"]) == [ops["biased"]]
    assert ana.get_consumers(ops["relu"], inlined) == []


def test_padded_conv2d_analysis() -> None:
    dag = ComputeDAG(workloads.conv2d_nchw(1, 4, 8, 8, 6, 3, 3, pad=1))
    ops = ops_by_name(dag)
    ana = dag.access_analyzer
    pad, conv = ops["pad_temp"], ops["conv"]
    # data[i0, i1, i2 - 1, i3 - 1] is simple and in order, but the padding branch (a Select)
    # keeps TVM from calling the pad stage *strictly* inlineable
    assert ana.is_simple_access(pad)
    assert not ana.is_strictly_inlineable(pad)
    assert not ana.needs_multi_level_tiling(pad)
    assert ana.needs_multi_level_tiling(conv)
    assert not ana.is_simple_access(conv)  # yy + ry
    assert ana.num_common_outer_iterators(pad, conv) == 1  # batch only: channels differ (4 vs 6)
    assert not ana.elementwise_match(pad, conv)
    assert ana.get_consumers(pad) == [conv]
    inlined = inline(initial_state(dag), "pad_temp").inlined_ops()
    assert ana.get_producers(conv, inlined) == [ops["data"], ops["kernel"]]


def test_softmax_analysis() -> None:
    dag = ComputeDAG(workloads.softmax(6, 10))
    ops = ops_by_name(dag)
    ana = dag.access_analyzer
    row_max, exp, row_sum, out = ops["row_max"], ops["exp"], ops["row_sum"], ops["softmax"]
    for reduction in (row_max, row_sum):
        assert not ana.is_simple_access(reduction) and not ana.needs_multi_level_tiling(reduction)
    assert ana.is_simple_access(exp) and not ana.is_strictly_inlineable(exp)  # exp is expensive
    assert ana.is_strictly_inlineable(out) and not ana.needs_multi_level_tiling(out)
    assert list(ana.read_by(exp)) == [row_sum, out]
    assert not ana.elementwise_match(exp, out)  # exp has two consumers
    # directly exp -> softmax shares 2 loops, but exp -> row_sum -> softmax only 1: the minimum
    assert ana.num_common_outer_iterators(exp, out) == 1
    assert ana.num_common_outer_iterators(row_sum, out) == 1
    assert ana.is_output(out) and not ana.is_output(exp)


def test_reductions_and_special_cases() -> None:
    dag = ComputeDAG(workloads.row_reduce(6, 10, "min"))
    row_min = ops_by_name(dag)["row_min"]
    assert not dag.access_analyzer.needs_multi_level_tiling(row_min)
    a = te.placeholder((8, 8), name="A")
    v = te.placeholder((8,), name="v")
    w = te.placeholder((8,), name="w")
    outer = te.compute((8, 8), lambda i, j: v[i] * w[j], name="outer")
    scalar_bias = te.compute((8, 8), lambda i, j: a[i, j] + v[0], name="scalar_bias")
    transpose = te.compute((8, 8), lambda i, j: a[j, i], name="transpose")
    diagonal = te.compute((8, 8), lambda i, j: a[i, i] + a[i, j], name="diagonal")
    skewed = te.compute((8,), lambda i: a[i, (i + 1) % 8], name="skewed")
    identity = te.compute((8, 8), lambda i, j: te.if_then_else(i == j, 1.0, 0.0), name="identity")
    k = te.reduce_axis((0, 8), name="k")
    fake = te.compute(
        (8,),
        lambda i: te.sum(a[i, k] * identity[k, i], axis=k),
        name="fake",
        attrs={"auto_scheduler_simplify_const_tensor_indices": ["i"]},
    )
    dag = ComputeDAG([a, v, w, outer, scalar_bias, transpose, diagonal, skewed, fake])
    ops = ops_by_name(dag)
    ana = dag.access_analyzer
    assert ana.needs_multi_level_tiling(ops["outer"])  # two tensors each miss an axis
    assert not ana.needs_multi_level_tiling(ops["scalar_bias"])  # one tensor misses both: counts once
    assert ana.is_simple_access(ops["transpose"]) and not ana.is_strictly_inlineable(ops["transpose"])
    assert ana.is_simple_access(ops["diagonal"]) and not ana.is_strictly_inlineable(ops["diagonal"])
    assert not ana.is_simple_access(ops["skewed"])
    assert ana.is_strictly_inlineable(ops["identity"])  # a constant tensor, despite its Select
    assert not ana.needs_multi_level_tiling(ops["fake"])  # the attribute turns tiling off
    for name in ("outer", "scalar_bias", "transpose", "diagonal", "skewed", "fake"):
        assert ana.is_output(ops[name])
    stranger = te.placeholder((2,), name="stranger")
    with pytest.raises(AccessAnalysisError, match=r"op 'stranger' is not part of the analysed DAG"):
        ana.is_output(stranger.op)


# FLOP count ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "m", "k"), [(16, 12, 8), (64, 32, 128)])
def test_matmul_flops_are_2nmk(n: int, m: int, k: int) -> None:
    assert ComputeDAG(workloads.matmul(n, m, k)).flop_ct == 2 * n * m * k


def test_flop_count_rules() -> None:
    # matmul, + bias (1 add), relu (1 max)
    assert ComputeDAG(workloads.matmul_bias_relu(16, 12, 8)).flop_ct == 2 * 16 * 12 * 8 + 2 * 16 * 12
    # conv: 2 per multiply-add; the padding stage only compares and selects (bool ops do not count)
    n, ci, h, w, co, kh, kw = 1, 4, 8, 8, 6, 3, 3
    assert (
        ComputeDAG(workloads.conv2d_nchw(n, ci, h, w, co, kh, kw)).flop_ct
        == 2 * n * co * h * w * ci * kh * kw
    )
    # softmax: max-combine, subtract (exp itself is free), add-combine, divide
    assert ComputeDAG(workloads.softmax(6, 10)).flop_ct == 4 * 6 * 10
    # index arithmetic and integer math in a float op do not count; casts count their operand
    a = te.placeholder((10,), name="A")
    shifted = te.compute(
        (5,), lambda i: a[i * 2 + 1] * i.astype("float32") + (i * 3).astype("float32"), name="s"
    )
    assert ComputeDAG([a, shifted]).flop_ct == 5 * 2
    # a user-given FLOP attribute wins
    tagged = te.compute((5,), lambda i: a[i] * 2.0, name="tagged", attrs={"FLOP": 1234})
    assert ComputeDAG([a, tagged]).flop_ct == 1234
    bad = te.compute((5,), lambda i: a[i] * 2.0, name="bad", attrs={"FLOP": 1.5})
    with pytest.raises(ComputeDAGError, match=r"op 'bad': attribute FLOP must be an int, got 1.5"):
        ComputeDAG([a, bad])


# workload key ---------------------------------------------------------------------------------


def test_workload_key_is_stable_and_shape_sensitive() -> None:
    key = ComputeDAG(workloads.conv2d_nchw()).workload_key()
    assert key == ComputeDAG(workloads.conv2d_nchw()).workload_key()  # fresh objects, same key
    parsed = json.loads(key)
    assert len(parsed[0]) == 32 and parsed[1:] == [[1, 4, 8, 8], [6, 4, 3, 3], [1, 6, 8, 8]]
    assert ComputeDAG(workloads.conv2d_nchw(h=10)).workload_key() != key
    assert ComputeDAG(workloads.conv2d_nchw(pad=2)).workload_key() != key
    # same shapes, different expression: the hash part differs
    mm = json.loads(ComputeDAG(workloads.matmul(8, 8, 8)).workload_key())
    a, b, _ = workloads.matmul(8, 8, 8)
    r = te.reduce_axis((0, 8), name="k")
    other = te.compute((8, 8), lambda i, j: te.sum(a[i, r] + b[r, j], axis=r), name="C")
    changed = json.loads(ComputeDAG([a, b, other]).workload_key())
    assert changed[1:] == mm[1:] and changed[0] != mm[0]


def test_workload_key_is_the_same_in_another_process() -> None:
    here = Path(__file__).parent
    script = (
        f"import sys; sys.path.insert(0, {str(here)!r}); import workloads; "
        "from ir.compute_dag import ComputeDAG; print(ComputeDAG(workloads.softmax()).workload_key())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ComputeDAG(workloads.softmax()).workload_key()


# printed form ---------------------------------------------------------------------------------


def test_golden_matmul_relu() -> None:
    assert str(ComputeDAG(workloads.matmul_bias_relu(16, 12, 8))) == (
        "A = PLACEHOLDER [16, 8]\n"
        "B = PLACEHOLDER [8, 12]\n"
        "C(i, j) += (A[i, k]*B[k, j])\n"
        "bias = PLACEHOLDER [12]\n"
        "biased(i, j) = (C[i, j] + bias[j])\n"
        "relu(i, j) = max(biased[i, j], 0f)\n"
    )


def test_golden_padded_conv2d() -> None:
    assert str(ComputeDAG(workloads.conv2d_nchw(1, 4, 8, 8, 6, 3, 3, pad=1, stride=2))) == (
        "data = PLACEHOLDER [1, 4, 8, 8]\n"
        "pad_temp(i0, i1, i2, i3) = tir.if_then_else(((((i2 >= 1) && (i2 < 9)) && (i3 >= 1)) && (i3 < 9)), "
        "data[i0, i1, (i2 - 1), (i3 - 1)], 0f)\n"
        "kernel = PLACEHOLDER [6, 4, 3, 3]\n"
        "conv(nn, ff, yy, xx) += (pad_temp[nn, rc, ((yy*2) + ry), ((xx*2) + rx)]*kernel[ff, rc, ry, rx])\n"
    )


def test_golden_softmax_and_simple_mode() -> None:
    dag = ComputeDAG(workloads.softmax(6, 10))
    body = (
        "row_max(i) max= X[i, k1]\n"
        "exp(i, j) = tir.exp((X[i, j] - row_max[i]))\n"
        "row_sum(i) += exp[i, k2]\n"
        "softmax(i, j) = (exp[i, j]/row_sum[i])\n"
    )
    assert str(dag) == "X = PLACEHOLDER [6, 10]\n" + body
    assert dag.print_dag(simple_mode=True) == "X = PLACEHOLDER \n" + body


def test_golden_custom_reducer_casts_and_int_constants() -> None:
    a = te.placeholder((4, 5), dtype="int64", name="A")
    r = te.reduce_axis((0, 5), name="r")
    ssq = te.comm_reducer(lambda x, y: x + y, lambda dtype: te.const(0, dtype), name="ssq")
    b = te.compute((4,), lambda i: ssq(a[i, r] * a[i, r] - 1, axis=r, where=r > 1), name="B")
    low = te.compute((4,), lambda i: te.min(a[i, r], axis=r), name="low")
    c = te.compute(
        (4,),
        lambda i: (b[i] // 3 % 2).astype("float32") + te.sqrt(low[i].astype("float32")) * 0.5,
        name="C",
    )
    assert str(ComputeDAG([a, c])) == (
        "A = PLACEHOLDER [4, 5]\n"
        "B(i) ssq= ((A[i, r]*A[i, r]) - (int64)1)  where (r > 1)\n"
        "low(i) min= A[i, r]\n"
        "C(i) = (float32(floormod(floordiv(B[i], (int64)3), (int64)2)) + (tir.sqrt(float32(low[i]))*0.5f))\n"
    )


def test_long_lines_are_elided_in_the_middle() -> None:
    a = te.placeholder((4,), name="A")
    expr = a[0]
    for _ in range(40):
        expr = expr + a[0]
    long = te.compute((4,), lambda i: expr * a[i], name="long")
    dag = ComputeDAG([a, long])
    full_line = dag.print_dag().splitlines()[1]
    assert len(full_line) > MAX_LINE_WIDTH
    shown = str(dag).splitlines()[1]
    half = MAX_LINE_WIDTH // 2
    assert shown == full_line[:half] + " ..(OMITTED).. " + full_line[-half:]
    assert str(dag).splitlines()[0] == "A = PLACEHOLDER [4]"
