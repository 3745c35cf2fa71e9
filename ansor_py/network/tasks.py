"""Tasks of a network: ``partition_network`` (optimise, then fuse) and ``extract_tasks``
(TVM's ``auto_scheduler.extract_tasks``; Ansor paper section 6).

``partition_network`` is the one path from a graph to its kernels: ``extract_tasks`` and
the executor's ``build_network`` both call it, so the workload keys the tuner records are
exactly those the executor looks up.

``extract_tasks`` merges the subgraphs that share a workload key (ResNet-50 repeats most
of its blocks: its 53 fused convolutions are 24 distinct tasks) and weighs each task by
its number of occurrences, the weight the task scheduler multiplies a task's latency by
when it estimates the network's (paper section 6, ``f = sum_i w_i g_i``).
"""

from __future__ import annotations

from ansor_py.network.fusion import fuse
from ansor_py.network.graph import Graph
from ansor_py.network.passes import optimize
from ansor_py.network.subgraph import Subgraph
from ansor_py.search_task import SearchTask
from codegen.target import HardwareParams, Target
from ir.compute_dag import ComputeDAG
from ir.expr import Reduce
from ir.layout_rewrite import LayoutRewriteOption
from ir.te import ComputeOp


def partition_network(graph: Graph, layout: str = "NHWC") -> tuple[Graph, list[Subgraph]]:
    """(the optimised graph, its fused subgraphs in execution order)."""
    optimized = optimize(graph, layout=layout)
    return optimized, fuse(optimized)


def has_complex_op(dag: ComputeDAG) -> bool:
    """Whether a compute op of ``dag`` reduces (TVM's test for a task worth tuning when
    simple tasks are left out: convolutions, dense, pools, softmax, reductions)."""
    return any(isinstance(op, ComputeOp) and isinstance(op.body, Reduce) for op in dag.ops)


def extract_tasks(
    graph: Graph,
    target: str | Target = "llvm",
    hardware_params: HardwareParams | None = None,
    layout: str = "NHWC",
    include_simple_tasks: bool = True,
    layout_rewrite_option: LayoutRewriteOption | None = None,
) -> tuple[list[SearchTask], list[int]]:
    """(tasks, weights): one task per distinct workload key of the network's subgraphs, in
    order of first occurrence, and how often each occurs. Without ``include_simple_tasks``
    only the subgraphs with a reduction are tasks (purely elementwise or injective ones are
    not worth a search, as TVM's default). ``layout_rewrite_option`` (default: the
    network default, REWRITE_FOR_PRE_TRANSFORMED) is what ``build_network`` applies to the
    constant weights, so candidates are measured reading the layout they will get."""
    if layout_rewrite_option is None:
        layout_rewrite_option = LayoutRewriteOption.get_target_default(network=True)
    _, subgraphs = partition_network(graph, layout=layout)
    first: dict[str, Subgraph] = {}
    weights: dict[str, int] = {}
    for subgraph in subgraphs:
        if not include_simple_tasks and not has_complex_op(subgraph.dag):
            continue
        key = subgraph.workload_key
        first.setdefault(key, subgraph)
        weights[key] = weights.get(key, 0) + 1
    tasks = [
        SearchTask(
            compute_dag=subgraph.dag,
            workload_key=key,
            target=target,
            hardware_params=hardware_params,
            desc=subgraph.desc,
            layout_rewrite_option=layout_rewrite_option,
        )
        for key, subgraph in first.items()
    ]
    return tasks, [weights[key] for key in first]
