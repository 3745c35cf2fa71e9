"""``fuse``: an optimised graph cut into fused subgraphs, one kernel (and one task) each,
by Relay's ``FuseOps`` rules (Ansor paper section 6: "we partition a DNN into small
subgraphs ... with Relay's operator fusion").

The op patterns (``OpPattern``) decide, in two sweeps over the topologically ordered nodes:

1. **anchors take their epilogue** (forward): a conv, dense, matmul or pool
   (OUT_ELEMWISE_FUSABLE) absorbs the ELEMWISE/BROADCAST ops after it that keep its output
   shape (bias add, residual add, relu, clip, and diamonds such as GELU's
   ``x * erf(x / sqrt 2)``, whose ``x`` has two consumers), as far as the group keeps one
   output value read outside it; an operand computed after the anchor must not depend on
   the group (Relay fuses into the post-dominator for the same reason: no cycle between
   groups);
2. **the rest fuse into their consumer** (backward): an ELEMWISE, BROADCAST or INJECTIVE
   node whose output has a single consumer joins that consumer's group when the group has
   no anchor and no opaque op (an injective chain into an injective, elementwise or
   reduce consumer; a reduce with its prologue). Anchors' inputs stay placeholders, as in
   Ansor's tasks, where the search decides what to inline (``compute_inline``); OPAQUE ops
   (softmax, layer_norm) stay alone.

Both rules fuse a node only into the group of its single consumer, so every group has one
output, read outside it, and groups are convex: ordering them by their last node is a valid
execution order.

Each group becomes a ComputeDAG: one ``te.placeholder`` per input value (graph inputs,
constants, outputs of earlier groups), named ``p0, p1, ...`` in order of first use, then
each node's ``declare`` with a canonical name (``T_conv``, ``T_add``, ``T_add_1``, ...).
The ``layout_free_placeholders`` attribute topi puts on convolutions, dense and matmuls
keeps only the placeholders that are graph constants: their layout can be rewritten once
when the network is built (``ir.layout_rewrite``), an activation's cannot.
The DAG's text depends only on the group's structure and shapes, so identical blocks in
different places of a network share one workload key, and one task.
"""

from __future__ import annotations

from collections.abc import Sequence

from ansor_py.network.graph import Graph, Node, unique_name
from ansor_py.network.ops import get_op
from ansor_py.network.ops.base import OpPattern
from ansor_py.network.subgraph import Subgraph
from ir import te
from ir.compute_dag import ComputeDAG, topological_ops
from ir.layout_rewrite import LAYOUT_FREE_PLACEHOLDERS
from ir.te import ComputeOp


def pattern(node: Node) -> OpPattern:
    return get_op(node.op, node=node.name).pattern


def fuse_groups(graph: Graph) -> list[list[Node]]:
    """The fused groups of ``graph``'s nodes (see the module docstring), in execution
    order, each in graph order."""
    nodes = graph.nodes
    position = {node.name: i for i, node in enumerate(nodes)}
    consumers = graph.consumers()
    graph_outputs = set(graph.outputs)

    def single_consumer(node: Node) -> Node | None:
        if len(node.outputs) != 1 or node.output in graph_outputs:
            return None
        users = consumers.get(node.output, [])
        return users[0] if len(users) == 1 else None

    group_of: dict[int, int] = {}  # node position -> its group's root (last node) position
    members: dict[int, list[int]] = {}
    open_to_producers: dict[int, bool] = {}  # root -> may producers fuse into this group?
    producer_position = {v: i for i, node in enumerate(nodes) for v in node.outputs}

    def epilogue(anchor: int) -> list[int]:
        """The anchor and the longest run of elementwise/broadcast descendants (of the
        anchor's output shape) that leaves the group one output value: chains (bias, relu)
        and diamonds (GELU's x * erf(x / sqrt 2), where x has two consumers) alike."""
        shape = graph.types[nodes[anchor].output].shape
        descendants: set[int] = set()  # nodes that read the anchor's output, directly or not
        for j in range(anchor + 1, len(nodes)):
            if any(
                producer_position.get(v) in descendants or producer_position.get(v) == anchor
                for v in nodes[j].inputs
            ):
                descendants.add(j)
        group, inside, best = [anchor], {anchor}, [anchor]
        while True:
            values = [v for j in group for v in nodes[j].outputs]
            leaving = [
                v
                for v in values
                if v in graph_outputs or any(position[u.name] not in inside for u in consumers.get(v, []))
            ]
            if len(leaving) == 1:
                best = list(group)
            candidates = sorted({position[u.name] for v in values for u in consumers.get(v, [])} - inside)
            joinable = [
                j
                for j in candidates
                if j not in group_of
                and pattern(nodes[j]) <= OpPattern.BROADCAST
                and len(nodes[j].outputs) == 1
                and graph.types[nodes[j].output].shape == shape
                and not any(v in graph_outputs for v in values if v not in leaving)
                and all(
                    producer_position.get(v) in inside or producer_position.get(v) not in descendants
                    for v in nodes[j].inputs
                )
            ]
            if not joinable:
                return best
            group.append(joinable[0])
            inside.add(joinable[0])

    for i, node in enumerate(nodes):  # 1. anchors take their epilogue
        if pattern(node) != OpPattern.OUT_ELEMWISE_FUSABLE or len(node.outputs) != 1:
            continue
        chain = epilogue(i)
        root = max(chain)
        members[root] = chain
        open_to_producers[root] = False
        group_of.update(dict.fromkeys(chain, root))
    for i in reversed(range(len(nodes))):  # 2. the rest fuse into their single consumer
        if i in group_of:
            continue
        node = nodes[i]
        user = single_consumer(node)
        if pattern(node) <= OpPattern.INJECTIVE and user is not None:
            root = group_of[position[user.name]]
            if open_to_producers[root]:
                members[root].append(i)
                group_of[i] = root
                continue
        members[i] = [i]
        open_to_producers[i] = pattern(node) <= OpPattern.COMM_REDUCE
        group_of[i] = i
    return [[nodes[i] for i in sorted(members[root])] for root in sorted(members)]


def group_interface(
    graph: Graph, group: Sequence[Node], consumers: dict[str, list[Node]]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(input values in order of first use, output values read outside or returned; a
    group nobody reads, in a graph with dead code, returns its last node's outputs);
    ``consumers`` is ``graph.consumers()``."""
    produced = {v for node in group for v in node.outputs}
    inputs = tuple(dict.fromkeys(v for node in group for v in node.inputs if v not in produced))
    names = {node.name for node in group}
    graph_outputs = set(graph.outputs)
    outputs = tuple(
        v
        for node in group
        for v in node.outputs
        if v in graph_outputs or any(user.name not in names for user in consumers.get(v, []))
    )
    return inputs, outputs or group[-1].outputs


def declare_group(
    graph: Graph, group: Sequence[Node], inputs: Sequence[str], outputs: Sequence[str]
) -> ComputeDAG:
    """The group's ComputeDAG, canonically named (see the module docstring)."""
    tensors: dict[str, te.Tensor] = {}
    for k, value in enumerate(inputs):
        ttype = graph.types[value]
        tensors[value] = te.placeholder(ttype.shape, ttype.dtype, name=f"p{k}")
    taken = {f"p{k}" for k in range(len(inputs))}
    for node in group:
        name = unique_name(f"T_{node.op}", taken)
        results = get_op(node.op, node=node.name).declare(node.attrs, [tensors[v] for v in node.inputs], name)
        taken.update(op.name for op in topological_ops(results))
        tensors.update(zip(node.outputs, results, strict=True))
    dag = ComputeDAG([tensors[v] for v in (*inputs, *outputs)])
    constant = {f"p{k}" for k, value in enumerate(inputs) if graph.is_constant(value)}
    for op in dag.ops:  # ops made just above: their attribute dicts are their own
        if isinstance(op, ComputeOp) and LAYOUT_FREE_PLACEHOLDERS in op.attrs:
            op.attrs[LAYOUT_FREE_PLACEHOLDERS] = [
                n for n in op.attrs[LAYOUT_FREE_PLACEHOLDERS] if n in constant
            ]
    return dag


def fuse(graph: Graph) -> list[Subgraph]:
    """``graph`` as fused subgraphs in execution order (see the module docstring)."""
    consumers = graph.consumers()
    subgraphs: list[Subgraph] = []
    taken: set[str] = set()
    for group in fuse_groups(graph):
        inputs, outputs = group_interface(graph, group, consumers)
        name = unique_name("fused_" + "_".join(node.op for node in group), taken)
        taken.add(name)
        dag = declare_group(graph, group, inputs, outputs)
        subgraphs.append(Subgraph(name, tuple(group), inputs, outputs, dag, describe(graph, group)))
    return subgraphs


# ------------------------------------------------------------------------------------------
# descriptions: "conv2d_nhwc + bias + relu, 1x56x56x64 -> 64, 3x3"


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


def _window(sizes: Sequence[int]) -> str:
    return "x".join(str(d) for d in sizes)


def anchor_kind(graph: Graph, node: Node) -> str:
    """The anchor's kind as TVM names its compute: conv2d_nhwc, depthwise_conv2d_nhwc,
    dense, batch_matmul, max_pool2d_nhwc, ..."""
    attrs = node.attrs
    layout = str(attrs.get("layout", ""))
    spatial = sum(1 for c in layout if c in "DHW")
    if node.op == "conv":
        channels = graph.types[node.inputs[0]].shape[layout.index("C")]
        groups = int(attrs.get("groups", 1))
        out_channels = graph.types[node.output].shape[layout.index("C")]
        prefix = "depthwise_" if 1 < groups == channels == out_channels else "group_" if groups > 1 else ""
        return f"{prefix}conv{spatial}d_{layout.lower()}"
    if node.op == "conv_transpose":
        return f"conv{spatial}d_transpose_{layout.lower()}"
    if node.op in ("max_pool", "avg_pool", "global_avg_pool"):
        return f"{node.op}{spatial}d_{layout.lower()}"
    if node.op == "matmul":
        return "batch_matmul" if graph.types[node.output].ndim > 2 else "matmul"
    return node.op


def _anchor_details(graph: Graph, node: Node) -> str:
    """ ", 1x56x56x64 -> 64, 3x3, stride 2": input shape, output channels, window."""
    data = graph.types[node.inputs[0]].shape
    out = graph.types[node.output].shape
    attrs = node.attrs
    text = f", {_dims(data)}"
    if node.op in ("conv", "conv_transpose"):
        layout, kernel_layout = str(attrs["layout"]), str(attrs["kernel_layout"])
        weight = graph.types[node.inputs[1]].shape
        kernel = [weight[kernel_layout.index(c)] for c in layout if c in "DHW"]
        text += f" -> {out[layout.index('C')]}, {_window(kernel)}"
    elif node.op in ("dense", "matmul"):
        text += f" -> {out[-1]}"
    elif node.op in ("max_pool", "avg_pool"):
        text += f", {_window(attrs['kernel'])}"
    strides = attrs.get("strides")
    if strides and any(s != 1 for s in strides):
        text += f", stride {strides[0] if len(set(strides)) == 1 else _window(strides)}"
    return text


def _part(graph: Graph, node: Node) -> str:
    """One epilogue or prologue op as a reader names it (an add of a constant: "bias")."""
    if node.op == "add" and any(graph.is_constant(v) for v in node.inputs):
        return "bias"
    return node.op


def describe(graph: Graph, group: Sequence[Node]) -> str:
    """What the group computes, for a task table (see ``Subgraph.desc``)."""
    anchor = next((n for n in group if pattern(n) == OpPattern.OUT_ELEMWISE_FUSABLE), None)
    if anchor is not None:
        parts = [anchor_kind(graph, anchor)] + [_part(graph, n) for n in group if n is not anchor]
        return " + ".join(parts) + _anchor_details(graph, anchor)
    first, last = group[0], group[-1]
    shapes = f"{_dims(graph.types[first.inputs[0]].shape)} -> {_dims(graph.types[last.outputs[0]].shape)}"
    return " + ".join(_part(graph, n) for n in group) + ", " + shapes
