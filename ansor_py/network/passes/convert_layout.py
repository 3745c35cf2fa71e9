"""``convert_layout``: channel-first convolutions rewritten channel-last (TVM's
``ConvertLayout({"nn.conv2d": ["NHWC", "default"]})``, as Ansor tunes CPU networks: the
paper's section 7.3 networks run NHWC on Intel CPUs).

Every ``conv`` in NCW/NCHW/NCDHW becomes NWC/NHWC/NDHWC with its weight in WIO/HWIO/DHWIO
(``conv_transpose`` NCHW becomes NHWC with an HWIO weight, HWOI below 8 output channels):
a constant weight is transposed once, here, into a new constant; the data is read
channel-last.

Layouts travel with the values: a value is either *as the original graph defines it*, or
*stored transposed*, ``stored = transpose(original, perm)``, under another name. Each node
is rewritten by the rule of its op (``LAYOUT_RULES``), which decides from the layouts of
its inputs whether it runs on the stored form (adjusting its attributes: an axis, pads,
a pool's layout) and in which layout its output comes out:

- convolutions ask for channel-last data and give channel-last results;
- pools and ``global_avg_pool`` follow their input into channel-last;
- elementwise and broadcasting ops run in the layout of their transposed input; their
  other operands are brought to it, constants by transposing them here (a per-channel bias
  of shape (C, 1, 1) becomes (C,));
- ``batch_norm``, reductions, ``softmax``, ``pad``, ``slice`` and ``concat`` remap their
  axes; a ``reshape`` reads the stored form directly when that has the same data order
  (the flatten after a 1x1 global pool);
- a ``transpose`` emits nothing: its output is its input's stored form under the composed
  permutation, so a pair that composes to the identity disappears;
- any other op (dense, matmul, take, ...) reads the original layout.

A value is brought back to its original layout (one ``transpose`` node, named as the
original value, made at most once per value) only where some node or a graph output needs
it there. The transposes that remain are at the network's input and where a layout-aware op
such as ``dense`` reads the result, never between convolutions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ansor_py.network.graph import Graph, Node
from ansor_py.network.ops import get_op
from ansor_py.network.ops.base import OpPattern
from ansor_py.network.passes.rewrite import Names, rename_values, used_constants

Perm = tuple[int, ...]

#: channel-first data layouts and their channel-last forms
CHANNEL_LAST = {"NCW": "NWC", "NCHW": "NHWC", "NCDHW": "NDHWC"}
#: conv weight layouts: the one paired with channel-first data, and its channel-last form
CONV_KERNEL = {"OIW": "WIO", "OIHW": "HWIO", "OIDHW": "DHWIO"}
CONV_TRANSPOSE_KERNEL = {"IOHW": "HWOI"}
#: a transposed convolution with at least this many output channels (per group) gets an
#: HWIO weight, so its kernel vectorises over output channels as a convolution does; with
#: fewer (DCGAN's RGB layer) HWOI keeps the input channels innermost to vectorise over
TRANSPOSE_HWIO_MIN_CHANNELS = 8


def channel_last_perm(rank: int) -> Perm:
    """``transpose(x_nchw, perm) == x_nhwc`` for a rank-``rank`` channel-first tensor."""
    return (0, *range(2, rank), 1)


def kernel_perm(rank: int) -> Perm:
    """OI + spatial -> spatial + IO (OIHW -> HWIO; IOHW -> HWOI is the same permutation)."""
    return (*range(2, rank), 1, 0)


def inverse(perm: Sequence[int]) -> Perm:
    result = [0] * len(perm)
    for position, axis in enumerate(perm):
        result[axis] = position
    return tuple(result)


def is_identity(perm: Sequence[int]) -> bool:
    return tuple(perm) == tuple(range(len(perm)))


def _suffix(perm: Perm) -> str:
    """A readable suffix for the name of a value stored under ``perm``: "nhwc" for data,
    "hwio" for a weight, "t" for any other permutation."""
    for layout, kernel_layout in zip(CHANNEL_LAST, CONV_KERNEL, strict=True):
        if perm == channel_last_perm(len(layout)):
            return CHANNEL_LAST[layout].lower()
        if perm == kernel_perm(len(layout)):
            return CONV_KERNEL[kernel_layout].lower()
    return "t"


class LayoutRewriter:
    """The state of one ``convert_layout`` run: the nodes emitted so far and where each
    original value lives. ``stored[v] = (name, perm)``: ``name`` holds
    ``transpose(v, perm)``; ``defined[v]``: the name holding ``v`` in its original layout,
    once one does."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.names = Names(graph)
        self.constants = dict(graph.constants)
        self.nodes: list[Node] = []
        self.stored: dict[str, tuple[str, Perm]] = {}
        self.defined: dict[str, str] = {v: v for v in (*graph.inputs, *graph.constants)}
        self._transposed: dict[tuple[str, Perm], str] = {}
        self._operands: dict[tuple[str, str, Perm], str] = {}

    # --- where values are --------------------------------------------------------------------

    def perm_of(self, value: str) -> Perm | None:
        """The permutation ``value`` is stored under, or None when it exists in its original
        layout only (a constant can be had in any layout)."""
        return self.stored[value][1] if value in self.stored else None

    def emit(self, op: str, inputs: Sequence[str], attrs: dict[str, object], base: str) -> str:
        out = self.names.value(base)
        self.nodes.append(Node(op, tuple(inputs), (out,), attrs, name=self.names.node(base)))
        return out

    def move(self, source: str, shape: Sequence[int], perm: Perm, out: str | None, base: str) -> str:
        """Emit ``transpose(source, perm)`` (``source`` of ``shape``) into ``out`` (a fresh
        name when None): as a ``reshape`` when it moves only axes of extent 1, which keeps the
        data order (NCHW (1, C, 1, 1) -> NHWC is a reshape)."""
        out = out or self.names.value(base)
        moved = [a for a in perm if shape[a] != 1]
        if moved == sorted(moved):
            op, attrs = "reshape", {"shape": tuple(shape[a] for a in perm)}
        else:
            op, attrs = "transpose", {"perm": perm}
        self.nodes.append(Node(op, (source,), (out,), attrs, name=self.names.node(base)))
        return out

    def stored_shape(self, value: str) -> tuple[int, ...]:
        shape, perm = self.graph.types[value].shape, self.stored[value][1]
        return tuple(shape[a] for a in perm)

    def original(self, value: str) -> str:
        """The name holding ``value`` in its original layout, transposing its stored form
        back (once) if needed."""
        if value not in self.defined:
            name, perm = self.stored[value]
            self.move(name, self.stored_shape(value), inverse(perm), value, f"{value}_restore")
            self.defined[value] = value
        return self.defined[value]

    def transposed(self, value: str, perm: Perm) -> str:
        """A name holding ``transpose(value, perm)``: the stored form when it has ``perm``;
        for a constant, a new constant; otherwise one transpose node (made once)."""
        if value in self.stored and self.stored[value][1] == perm:
            return self.stored[value][0]
        key = (value, perm)
        if key not in self._transposed:
            base = f"{value}_{_suffix(perm)}"
            if value in self.constants and value in self.defined:
                name = self.names.value(base)
                self.constants[name] = np.asarray(np.transpose(self.constants[value], perm), order="C")
            elif value in self.stored:  # stored = transpose(v, q): compose instead of restoring v
                source, q = self.stored[value]
                composed = tuple(inverse(q)[p] for p in perm)
                name = self.move(source, self.stored_shape(value), composed, None, base)
            else:
                name = self.move(self.defined[value], self.graph.types[value].shape, perm, None, base)
            self._transposed[key] = name
        return self._transposed[key]

    def broadcast_constant(self, value: str, perm: Perm) -> str:
        """The constant ``value``, padded with leading ones to ``len(perm)`` axes, transposed
        by ``perm`` and stripped of its leading ones again (a new constant, made once):
        a per-channel bias (C, 1, 1) under NCHW -> NHWC becomes (C,)."""
        key = ("broadcast", value, perm)
        if key not in self._operands:
            array = self.constants[value]
            full = array.reshape((1,) * (len(perm) - array.ndim) + array.shape)
            moved = np.transpose(full, perm)
            lead = next((i for i, d in enumerate(moved.shape) if d != 1), moved.ndim)
            name = self.names.value(f"{value}_{_suffix(perm)}")
            self.constants[name] = np.asarray(moved.reshape(moved.shape[lead:]), order="C")
            self._operands[key] = name
        return self._operands[key]

    def store(self, value: str, name: str, perm: Perm) -> None:
        """Record that ``name`` holds ``transpose(value, perm)``."""
        if is_identity(perm):
            self.defined[value] = name
        else:
            self.stored[value] = (name, perm)

    def keep(self, node: Node) -> None:
        """Emit ``node`` reading its inputs in their original layout (the default rule)."""
        inputs = tuple(self.original(v) for v in node.inputs)
        self.nodes.append(node.with_(inputs=inputs))
        for value in node.outputs:
            self.defined[value] = value

    def emit_stored(self, node: Node, inputs: Sequence[str], attrs: dict[str, object], perm: Perm) -> None:
        """Emit ``node`` on stored inputs; its single output is stored under ``perm``."""
        out = node.output if is_identity(perm) else self.names.value(f"{node.output}_{_suffix(perm)}")
        self.nodes.append(node.with_(inputs=tuple(inputs), outputs=(out,), attrs=attrs))
        self.store(node.output, out, perm)

    def result(self) -> Graph:
        """The rewritten graph; each graph output in its original layout, under its name."""
        outputs = [self.original(v) for v in self.graph.outputs]
        produced = {out for node in self.nodes for out in node.outputs}
        renames: dict[str, str] = {}
        copies: list[Node] = []
        for value, name in zip(self.graph.outputs, outputs, strict=True):
            if name == value:
                continue
            # an output defined under another name (a transpose pair that cancelled)
            if name in produced and name not in self.graph.outputs and name not in renames:
                renames[name] = value
            else:  # the other name is a graph input, a constant or another output: copy
                attrs = {"shape": self.graph.types[value].shape}
                copies.append(
                    Node("reshape", (name,), (value,), attrs, name=self.names.node(f"{value}_copy"))
                )
        nodes = rename_values(self.nodes, renames) + copies
        constants = used_constants(self.constants, nodes, self.graph.outputs)
        return self.graph.replace(nodes=nodes, constants=constants)


Rule = Callable[[LayoutRewriter, Node], None]


def _conv(rw: LayoutRewriter, node: Node) -> None:
    kernels = CONV_KERNEL if node.op == "conv" else CONV_TRANSPOSE_KERNEL
    layout, kernel_layout = node.attrs.get("layout"), node.attrs.get("kernel_layout")
    if layout not in CHANNEL_LAST or kernel_layout not in kernels:
        rw.keep(node)
        return
    rank = len(layout)
    perm = channel_last_perm(rank)
    data = rw.transposed(node.inputs[0], perm)
    weight_perm, new_kernel_layout = kernel_perm(rank), kernels[kernel_layout]
    out_channels = rw.graph.types[node.inputs[1]].shape[1]  # IOHW: per group
    if node.op == "conv_transpose" and out_channels >= TRANSPOSE_HWIO_MIN_CHANNELS:
        weight_perm, new_kernel_layout = (2, 3, 0, 1), "HWIO"
    weight = rw.transposed(node.inputs[1], weight_perm)
    attrs = {**node.attrs, "layout": CHANNEL_LAST[layout], "kernel_layout": new_kernel_layout}
    rw.emit_stored(node, (data, weight), attrs, perm)


def _pool(rw: LayoutRewriter, node: Node) -> None:
    layout = node.attrs.get("layout")
    perm = rw.perm_of(node.inputs[0])
    if layout not in CHANNEL_LAST or perm != channel_last_perm(len(layout)):
        rw.keep(node)
        return
    attrs = {**node.attrs, "layout": CHANNEL_LAST[layout]}
    rw.emit_stored(node, (rw.transposed(node.inputs[0], perm),), attrs, perm)


def _elementwise(rw: LayoutRewriter, node: Node) -> None:
    rank = rw.graph.types[node.output].ndim
    perms = [rw.perm_of(v) for v in node.inputs]
    perm = next((p for p in perms if p is not None and len(p) == rank), None)
    if perm is None:
        rw.keep(node)
        return
    inputs = [_broadcast_operand(rw, v, perm) for v in node.inputs]
    rw.emit_stored(node, inputs, dict(node.attrs), perm)


def _broadcast_operand(rw: LayoutRewriter, value: str, perm: Perm) -> str:
    """``value`` as an operand of a broadcasting op running under ``perm``; ``value`` is
    aligned with the output's trailing axes, as numpy broadcasting aligns it."""
    shape = rw.graph.types[value].shape
    rank = len(perm)
    if value in rw.graph.constants:
        return rw.broadcast_constant(value, perm)
    if len(shape) == rank:
        return rw.transposed(value, perm)
    if all(d == 1 for d in shape):  # broadcasts alike in every layout
        return rw.original(value)
    full = (1,) * (rank - len(shape)) + shape
    expanded = rw.emit("reshape", (rw.original(value),), {"shape": full}, f"{value}_expanded")
    return rw.move(expanded, full, perm, None, f"{value}_{_suffix(perm)}")


def _batch_norm(rw: LayoutRewriter, node: Node) -> None:
    perm = rw.perm_of(node.inputs[0])
    if perm is None:
        rw.keep(node)
        return
    params = [rw.original(v) for v in node.inputs[1:]]
    attrs = {**node.attrs, "axis": inverse(perm)[node.attrs["axis"]]}
    rw.emit_stored(node, (rw.transposed(node.inputs[0], perm), *params), attrs, perm)


def _transpose(rw: LayoutRewriter, node: Node) -> None:
    # out = transpose(v, p) and stored = transpose(v, q): stored = transpose(out, p^-1 . q)
    source = node.inputs[0]
    if source in rw.stored:
        name, q = rw.stored[source]
    else:
        name, q = rw.original(source), tuple(range(len(node.attrs["perm"])))
    p_inverse = inverse(node.attrs["perm"])
    rw.store(node.output, name, tuple(p_inverse[a] for a in q))


def _reshape(rw: LayoutRewriter, node: Node) -> None:
    perm = rw.perm_of(node.inputs[0])
    shape = rw.graph.types[node.inputs[0]].shape
    if perm is None or [a for a in perm if shape[a] != 1] != sorted(a for a in perm if shape[a] != 1):
        rw.keep(node)  # the stored form has another data order
        return
    rw.emit_stored(node, (rw.transposed(node.inputs[0], perm),), dict(node.attrs), ())


def _reduce(rw: LayoutRewriter, node: Node) -> None:
    perm = rw.perm_of(node.inputs[0])
    if perm is None:
        rw.keep(node)
        return
    axes = node.attrs["axes"]
    where = inverse(perm)
    attrs = {**node.attrs, "axes": tuple(sorted(where[a] for a in axes))}
    if node.attrs.get("keepdims", True):
        out_perm = perm
    else:  # the kept axes, in stored order, renumbered among themselves
        kept = sorted(a for a in perm if a not in axes)
        out_perm = tuple(kept.index(a) for a in perm if a not in axes)
    rw.emit_stored(node, (rw.transposed(node.inputs[0], perm),), attrs, out_perm)


def _single_axis(rw: LayoutRewriter, node: Node) -> None:
    perm = rw.perm_of(node.inputs[0])
    if perm is None:
        rw.keep(node)
        return
    attrs = {**node.attrs, "axis": inverse(perm)[node.attrs["axis"]]}
    rw.emit_stored(node, (rw.transposed(node.inputs[0], perm),), attrs, perm)


def _concat(rw: LayoutRewriter, node: Node) -> None:
    perms = {rw.perm_of(v) for v in node.inputs if v not in rw.graph.constants}
    perm = next(iter(perms)) if len(perms) == 1 else None
    if perm is None:
        rw.keep(node)
        return
    attrs = {**node.attrs, "axis": inverse(perm)[node.attrs["axis"]]}
    rw.emit_stored(node, [rw.transposed(v, perm) for v in node.inputs], attrs, perm)


def _per_axis(rw: LayoutRewriter, node: Node) -> None:
    """``slice`` and ``pad``: attributes with one entry per axis (pads: begins, then ends)."""
    perm = rw.perm_of(node.inputs[0])
    if perm is None:
        rw.keep(node)
        return
    attrs = dict(node.attrs)
    if node.op == "pad":
        pads, rank = node.attrs["pads"], len(perm)
        attrs["pads"] = tuple(pads[a] for a in perm) + tuple(pads[rank + a] for a in perm)
    else:
        for key in ("starts", "ends", "steps"):
            attrs[key] = tuple(node.attrs[key][a] for a in perm)
    rw.emit_stored(node, (rw.transposed(node.inputs[0], perm),), attrs, perm)


#: op -> its layout rule; elementwise and broadcasting ops not listed use ``_elementwise``,
#: every other op reads its inputs in the original layout
LAYOUT_RULES: dict[str, Rule] = {
    "conv": _conv,
    "conv_transpose": _conv,
    "max_pool": _pool,
    "avg_pool": _pool,
    "global_avg_pool": _pool,
    "batch_norm": _batch_norm,
    "transpose": _transpose,
    "reshape": _reshape,
    "reduce_mean": _reduce,
    "reduce_sum": _reduce,
    "reduce_max": _reduce,
    "softmax": _single_axis,
    "concat": _concat,
    "slice": _per_axis,
    "pad": _per_axis,
}


def _rule(op: str) -> Rule:
    if op in LAYOUT_RULES:
        return LAYOUT_RULES[op]
    if get_op(op).pattern in (OpPattern.ELEMWISE, OpPattern.BROADCAST):
        return _elementwise
    return LayoutRewriter.keep


def convert_layout(graph: Graph) -> Graph:
    """``graph`` with its channel-first convolutions channel-last (see the module
    docstring); the graph's inputs and outputs keep their layouts."""
    rw = LayoutRewriter(graph)
    for node in graph.nodes:
        if len(node.outputs) != 1:
            rw.keep(node)
        else:
            _rule(node.op)(rw, node)
    return rw.result()
