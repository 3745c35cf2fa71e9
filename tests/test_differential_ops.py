"""Every operator workload of ``ir.topi.workloads`` built with LLVM and run against numpy.

Each workload (Ansor paper section 7.1-7.2: the single-operator and subgraph suites, in
small configurations with odd shapes) is checked three ways by ``check_schedule``: naive,
with a generic schedule (every stage's first non-trivial spatial loop split and its outer
part parallel, its last spatial loop moved innermost and vectorized), and with the same
schedule after inlining every elementwise stage that is not an output (padding, bias, batch
norm: Ansor's "always inline" rule, paper section 4.1). A last test fails when a builder is
added to ``ir.topi.workloads`` without a configuration here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
from differential import check_schedule

from ir.compute_dag import ComputeDAG
from ir.expr import Reduce
from ir.loop_state.api import State
from ir.loop_state.enums import ComputeAtKind, IteratorKind, StageKind
from ir.te import ComputeOp, Tensor
from ir.tir import ForKind
from ir.topi import workloads as topi_workloads
from ir.topi.workloads import (
    batch_gemm,
    capsule,
    conv1d,
    conv2d_bn_relu,
    conv2d_layer,
    conv3d,
    depthwise,
    gemm,
    matmul_bias_relu,
    norm,
    t2d,
    tbs,
)

#: (id, builder, positional arguments, keyword arguments): small, odd configurations
CONFIGS: list[tuple[str, Callable[..., list[Tensor]], tuple[int, ...], dict[str, object]]] = [
    ("GMM", gemm, (7, 13, 5), {}),
    ("GMM-batch", batch_gemm, (2, 7, 5, 3), {}),
    ("GMM-bias-relu", matmul_bias_relu, (7, 13, 5), {}),
    ("C1D-NWC", conv1d, (1, 13, 3, 4, 3, 2, 1), {}),
    ("C1D-NCW", conv1d, (2, 11, 2, 3, 3, 1, 1), {"layout": "NCW"}),
    ("C2D-NHWC", conv2d_layer, (1, 7, 7, 3, 5, 3, 1, 1), {}),
    ("C2D-NCHW-stride2", conv2d_layer, (1, 9, 7, 2, 3, 3, 2, 1), {"layout": "NCHW"}),
    ("GRP", conv2d_layer, (1, 7, 5, 4, 6, 3, 1, 1), {"groups": 2}),
    ("DIL", conv2d_layer, (1, 9, 9, 2, 3, 3, 1, 0), {"dilation": 2}),
    ("C3D", conv3d, (1, 4, 5, 5, 2, 3, 3, 1, 1), {}),
    ("DEP-NHWC", depthwise, (1, 7, 7, 3, 3, 1, 1), {"multiplier": 2}),
    ("DEP-NCHW-stride2", depthwise, (1, 7, 9, 3, 3, 2, 1), {"layout": "NCHW"}),
    ("T2D-NHWC", t2d, (1, 4, 5, 3, 2, 4, 2, 1), {}),
    ("T2D-NCHW", t2d, (1, 3, 4, 2, 3, 3, 2, 1), {"layout": "NCHW", "output_padding": 1}),
    ("CAP", capsule, (1, 5, 5, 2, 2, 3, 1, 1), {"capsule_size": 2}),
    ("NRM", norm, (5, 7, 3), {}),
    ("ConvLayer-NHWC", conv2d_bn_relu, (1, 7, 7, 3, 4, 3, 1, 1), {}),
    ("ConvLayer-NCHW", conv2d_bn_relu, (1, 5, 7, 2, 3, 3, 2, 1), {"layout": "NCHW"}),
    ("TBS", tbs, (1, 7, 2, 4), {}),
]


def generic_schedule(s: State, inline: bool = False) -> None:
    """Per compute stage: split the first spatial loop longer than 1 into two parts (nparts
    2) and parallelize the outer part; move the last spatial loop innermost (after the reduction loops) and
    vectorize it. With ``inline``, first inline every elementwise stage that is not an
    output of the DAG."""
    outputs = {t.name for t in s.dag.outputs}
    if inline:
        for stage in list(s.stages):
            op = stage.op
            if isinstance(op, ComputeOp) and not isinstance(op.body, Reduce) and stage.name not in outputs:
                s.compute_inline(stage.name)
    for stage in list(s.stages):
        if stage.op_type is not StageKind.COMPUTE or stage.compute_at is ComputeAtKind.INLINED:
            continue
        spatial = [it.name for it in stage.iters if it.kind is IteratorKind.SPATIAL]
        reduce = [it.name for it in stage.iters if it.kind is IteratorKind.REDUCTION]
        wide = [name for name in spatial if (s[stage.name].find_iter(name).extent or 0) > 1]
        if not wide:
            continue
        first, last = wide[0], spatial[-1]
        outer, inner = s.split(stage.name, first, [2], inner_to_outer=False)
        others = [name for name in spatial if name not in (first, last)]
        if first == last:  # one spatial loop: its outer part parallel, inner part vectorized
            order = [outer.name, *others, *reduce, inner.name]
            vector = inner.name
        else:
            order = [outer.name, inner.name, *others, *reduce, last]
            vector = last
        s.reorder(stage.name, order)
        s.parallel(stage.name, outer)
        s.vectorize(stage.name, vector)


@pytest.mark.parametrize(("builder", "args", "kwargs"), [pytest.param(*c[1:], id=c[0]) for c in CONFIGS])
@pytest.mark.parametrize("schedule", ["naive", "generic", "inline+generic"])
def test_workload(
    builder: Callable[..., list[Tensor]], args: tuple[int, ...], kwargs: dict[str, object], schedule: str
) -> None:
    dag = ComputeDAG(builder(*args, **kwargs))
    if schedule == "naive":
        checked = check_schedule(dag)
        assert not checked.state.transform_steps
        return
    checked = check_schedule(dag, lambda s: generic_schedule(s, inline=schedule == "inline+generic"))
    assert checked.loops(ForKind.PARALLEL), f"no parallel loop in\n{checked.func}"
    assert checked.loops(ForKind.VECTORIZED), f"no vectorized loop in\n{checked.func}"


def test_every_workload_builder_has_a_configuration() -> None:
    builders = {
        name
        for name, fn in inspect.getmembers(topi_workloads, inspect.isfunction)
        if fn.__module__ == topi_workloads.__name__ and not name.startswith("_") and name != "paper_workload"
    }
    tested = {c[1].__name__ for c in CONFIGS}
    assert builders - tested == set(), "add a small configuration to CONFIGS for these builders"
