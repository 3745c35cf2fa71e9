"""PyTorch as a peer for whole networks: an ansor-py ``Graph`` executed op by op in eager
PyTorch (CPU), the way a PyTorch user runs the same model.

The Ansor paper's end-to-end evaluation (section 7.3, figure 10) times each network beside
the frameworks people would otherwise use; ``benchmarks/networks.py`` quotes eager PyTorch.
``to_torch(graph)`` lowers every node once to a small closure over ``torch.nn.functional``
(one function per op in ``LOWERINGS``, a table keyed by op name, as the ONNX frontend's
converter table is) and returns a ``TorchGraph``: called with numpy inputs by name it runs
the closures in graph order under ``torch.inference_mode()`` and returns numpy outputs in
``graph.outputs`` order. Nothing is traced or compiled (no ``torch.jit``, no
``torch.compile``): eager execution is the baseline PyTorch users compare with.

What happens once, at lowering, is what a PyTorch module does once when it is built:
constants become tensors, and constant convolution weights are transposed to the layout
PyTorch's kernels take (OIHW, IOHW for transposed convolutions). The graph's semantics
are ONNX's (``ansor_py.network.ops``); where PyTorch's operator differs, the lowering
bridges the gap and says how:

- channels-last layouts (NWC, NHWC, NDHWC) are permuted to channels first around the
  operator (for 2-D data the permuted view has PyTorch's ``channels_last`` strides, so no
  copy is made);
- asymmetric pads, which PyTorch's convolutions and pools do not take, are applied by
  ``F.pad`` first (``-inf`` for max pooling); a transposed convolution is cropped instead;
  a pool padded this way is cropped to the ONNX output extent (in ceil mode PyTorch keeps a
  last window that starts in the end padding, ONNX drops it) and, for an average that
  excludes the pads, divided by the fraction of each window inside the input (a constant);
- negative slice steps become ``torch.flip`` plus a positive-step slice; integer divide
  truncates toward zero and gives 0 for a zero divisor, as the reference does.

``TorchGraphModule(to_torch(graph))`` is the same graph as a ``torch.nn.Module`` (constants
as buffers) for ``torch.onnx.export``: the tests export the zoo through it with both
exporters and import the files. ``time_torch(graph, inputs, threads)`` gives the median
seconds of one inference with ``threads`` intra-op threads (timed with ``ansor_py.timing``,
as every other benchmark). ``tests/test_torch_graph_peer.py`` checks every op and the zoo's networks against
``run_reference``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import EllipsisType

import numpy as np
import torch
import torch.nn.functional as F

from ansor_py.network.graph import Graph, unique_name
from ansor_py.network.ops.base import Attrs
from ansor_py.network.ops.nn_common import perm_between, spatial_axes
from ansor_py.network.ops.nn_pool import PoolAttrs
from ansor_py.network.reference import check_inputs
from ansor_py.network.types import GraphError, TensorType
from ansor_py.timing import median_seconds

Run = Callable[..., torch.Tensor]
Prepare = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Lowered:
    """One node in PyTorch: ``run(*inputs)`` gives its output; ``prepare[i]`` converts input
    ``i`` first (once at lowering when that input is a constant, else on every call)."""

    run: Run
    prepare: Mapping[int, Prepare] = field(default_factory=dict)


#: attrs, input types, output type -> the node in PyTorch
Lowering = Callable[[Attrs, Sequence[TensorType], TensorType], Lowered]


class TorchGraphError(GraphError):
    """A node the PyTorch peer cannot run (an op without a lowering, an unsupported attribute)."""


# ------------------------------------------------------------------------------------------
# helpers


def _permuter(src: str, dst: str) -> Prepare:
    """A view of a tensor in layout ``src`` as layout ``dst`` (identity when they agree)."""
    perm = perm_between(src, dst)
    if perm == tuple(range(len(perm))):
        return lambda x: x
    return lambda x: x.permute(perm)


def _spatial(layout: str) -> str:
    return "".join(c for c in layout if c in "DHW")


def _pad_pairs(before: Sequence[int], after: Sequence[int]) -> list[int]:
    """``F.pad``'s argument for trailing axes padded by ``before``/``after``: last axis first."""
    pairs: list[int] = []
    for b, a in zip(reversed(before), reversed(after), strict=True):
        pairs += [b, a]
    return pairs


def _window_attrs(attrs: Attrs, nsp: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    strides = tuple(attrs.get("strides", (1,) * nsp))
    pads = tuple(attrs.get("pads", (0,) * (2 * nsp)))
    dilations = tuple(attrs.get("dilations", (1,) * nsp))
    return strides, pads, dilations


def _torch_dtype(dtype: str) -> torch.dtype:
    found = getattr(torch, dtype, None)
    if not isinstance(found, torch.dtype):
        raise TorchGraphError(f"dtype {dtype!r} has no PyTorch equivalent")
    return found


# ------------------------------------------------------------------------------------------
# convolutions, dense, matmul

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def lower_conv(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    layout, kernel_layout = attrs["layout"], attrs["kernel_layout"]
    letters = _spatial(layout)
    nsp = len(letters)
    strides, pads, dilations = _window_attrs(attrs, nsp)
    groups = int(attrs.get("groups", 1))
    to_first, back = _permuter(layout, "NC" + letters), _permuter("NC" + letters, layout)
    to_oihw = _permuter(kernel_layout, "OI" + letters)
    symmetric = pads[:nsp] == pads[nsp:]
    padding = pads[:nsp] if symmetric else (0,) * nsp
    pre_pad = [] if symmetric else _pad_pairs(pads[:nsp], pads[nsp:])
    conv = _CONV[nsp]

    def run(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x = to_first(x)
        if pre_pad:
            x = F.pad(x, pre_pad)
        return back(conv(x, w, None, strides, padding, dilations, groups))

    return Lowered(run, {1: lambda w: to_oihw(w).contiguous()})


def lower_conv_transpose(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    """ONNX ConvTranspose; asymmetric pads crop the unpadded result (pads never exceed the
    dilated kernel, so the full output covers the crop)."""
    layout, kernel_layout = attrs["layout"], attrs["kernel_layout"]
    strides, pads, dilations = _window_attrs(attrs, 2)
    output_padding = tuple(attrs.get("output_padding", (0, 0)))
    groups = int(attrs.get("groups", 1))
    to_first, back = _permuter(layout, "NCHW"), _permuter("NCHW", layout)
    to_iohw = _permuter(kernel_layout, "IOHW")
    symmetric = pads[:2] == pads[2:]
    padding = pads[:2] if symmetric else (0, 0)
    out_h, out_w = (out.shape[layout.index(c)] for c in "HW")
    crop = (slice(pads[0], pads[0] + out_h), slice(pads[1], pads[1] + out_w))

    def run(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(to_first(x), w, None, strides, padding, output_padding, groups, dilations)
        return back(y if symmetric else y[..., crop[0], crop[1]])

    return Lowered(run, {1: lambda w: to_iohw(w).contiguous()})


def lower_dense(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    return Lowered(lambda x, w: F.linear(x, w))


def lower_matmul(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    return Lowered(torch.matmul)


# ------------------------------------------------------------------------------------------
# normalisation, softmax, reductions


def lower_batch_norm(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    """``F.batch_norm`` in eval mode takes channels on axis 1: another axis is moved there."""
    axis, epsilon = int(attrs.get("axis", 1)), float(attrs.get("epsilon", 1e-5))
    rank = types[0].ndim

    def run(x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        gamma, beta, mean, var = params
        moved = x[None] if rank == 1 else x.movedim(axis, 1)
        y = F.batch_norm(moved, mean, var, gamma, beta, False, 0.0, epsilon)
        return y[0] if rank == 1 else y.movedim(1, axis)

    return Lowered(run)


def lower_layer_norm(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    data = types[0]
    shape = data.shape[int(attrs.get("axis", data.ndim - 1)) :]
    epsilon = float(attrs.get("epsilon", 1e-5))
    return Lowered(lambda x, gamma, beta: F.layer_norm(x, shape, gamma, beta, epsilon))


def lower_softmax(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    axis = int(attrs["axis"])
    return Lowered(lambda x: torch.softmax(x, axis))


def _reduce_args(attrs: Attrs) -> tuple[tuple[int, ...], bool]:
    axes = attrs["axes"]
    return tuple((axes,) if isinstance(axes, int) else axes), bool(attrs.get("keepdims", True))


def lower_reduce_sum(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    """``torch.sum`` widens integers to int64; the result keeps the input's dtype."""
    axes, keepdims = _reduce_args(attrs)
    dtype = _torch_dtype(types[0].dtype)
    return Lowered(lambda x: torch.sum(x, axes, keepdims).to(dtype))


def lower_reduce_mean(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    axes, keepdims = _reduce_args(attrs)
    return Lowered(lambda x: torch.mean(x, axes, keepdims))


def lower_reduce_max(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    axes, keepdims = _reduce_args(attrs)
    return Lowered(lambda x: torch.amax(x, axes, keepdims))


# ------------------------------------------------------------------------------------------
# pooling

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _native_padding(p: PoolAttrs) -> bool:
    """PyTorch pools pad symmetrically, by at most half the kernel."""
    return p.before == p.after and all(2 * b <= k for b, k in zip(p.before, p.kernel, strict=True))


def _crop_spatial(sizes: Sequence[int]) -> Prepare:
    """The leading ``sizes`` positions of the trailing spatial axes."""
    index: tuple[EllipsisType | slice, ...] = (Ellipsis, *(slice(0, n) for n in sizes))
    return lambda y: y[index]


def lower_max_pool(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    p = PoolAttrs(attrs, "max_pool")
    nsp = len(p.kernel)
    letters = _spatial(p.layout)
    to_first, back = _permuter(p.layout, "NC" + letters), _permuter("NC" + letters, p.layout)
    pool = _MAX_POOL[nsp]
    if _native_padding(p):
        padding = p.before
        return Lowered(
            lambda x: back(pool(to_first(x), p.kernel, p.strides, padding, p.dilations, p.ceil_mode))
        )
    pre_pad = _pad_pairs(p.before, p.after)
    crop = _crop_spatial([out.shape[d] for d in spatial_axes(p.layout)])
    zeros = (0,) * nsp

    def run(x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(to_first(x), pre_pad, value=float("-inf"))
        return back(crop(pool(padded, p.kernel, p.strides, zeros, p.dilations, p.ceil_mode)))

    return Lowered(run)


def lower_avg_pool(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    p = PoolAttrs(attrs, "avg_pool")
    if any(d != 1 for d in p.dilations):
        raise TorchGraphError(f"avg_pool: dilations {p.dilations}: PyTorch's average pools have no dilation")
    nsp = len(p.kernel)
    letters = _spatial(p.layout)
    to_first, back = _permuter(p.layout, "NC" + letters), _permuter("NC" + letters, p.layout)
    pool = _AVG_POOL[nsp]
    if _native_padding(p):
        padding, include = p.before, p.count_include_pad
        return Lowered(lambda x: back(pool(to_first(x), p.kernel, p.strides, padding, p.ceil_mode, include)))
    # pads applied by F.pad count as input; where ONNX excludes them, divide by the share
    # of each window that lies inside the input (the same pool over a mask of ones)
    pre_pad = _pad_pairs(p.before, p.after)
    crop = _crop_spatial([out.shape[d] for d in spatial_axes(p.layout)])
    zeros = (0,) * nsp

    def padded_pool(x: torch.Tensor) -> torch.Tensor:
        return crop(pool(F.pad(x, pre_pad), p.kernel, p.strides, zeros, p.ceil_mode, True))

    if p.count_include_pad:
        return Lowered(lambda x: back(padded_pool(to_first(x))))
    in_spatial = [types[0].shape[d] for d in spatial_axes(p.layout)]
    with torch.inference_mode():
        share = padded_pool(torch.ones((1, 1, *in_spatial), dtype=_torch_dtype(types[0].dtype)))
    return Lowered(lambda x: back(padded_pool(to_first(x)) / share))


def lower_global_avg_pool(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    axes = tuple(spatial_axes(attrs["layout"]))
    return Lowered(lambda x: torch.mean(x, axes, True))


# ------------------------------------------------------------------------------------------
# elementwise


def _direct(fn: Run) -> Lowering:
    """An op that is one PyTorch function of its inputs, with no attributes."""
    return lambda attrs, types, out: Lowered(fn)


def lower_gelu(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    approximate = str(attrs.get("approximate", "none"))
    return Lowered(lambda x: F.gelu(x, approximate=approximate))


def lower_clip(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    """ONNX Clip is ``min(max(x, lo), hi)``, as ``torch.clamp``; integer inputs get integer
    bounds (a float bound would promote the result), infinite ones saturated."""
    dtype = types[0].dtype
    bounds: list[float | int | None] = []
    for key in ("min", "max"):
        value = attrs.get(key)
        if value is not None and dtype != "bool" and not dtype.startswith("float"):
            info = np.iinfo(np.dtype(dtype))
            value = int(min(max(float(value), info.min), info.max))
        bounds.append(value)
    lo, hi = bounds
    return Lowered(lambda x: torch.clamp(x, lo, hi))


def lower_cast(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    dtype = _torch_dtype(out.dtype)
    return Lowered(lambda x: x.to(dtype))


def _integer(ttype: TensorType) -> bool:
    return ttype.dtype != "bool" and not ttype.dtype.startswith("float")


def lower_divide(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    """Floats divide; integers truncate toward zero (ONNX Div), and x / 0 is 0 (PyTorch
    raises there, the reference and compiled code give 0)."""
    if not _integer(types[0]):
        return Lowered(torch.div)

    def run(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        zero = b == 0
        quotient = torch.div(a, torch.where(zero, torch.ones_like(b), b), rounding_mode="trunc")
        return torch.where(zero, torch.zeros_like(quotient), quotient)

    return Lowered(run)


def lower_power(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    """Integer powers go through float64, as the reference computes them."""
    if not _integer(types[0]):
        return Lowered(torch.pow)
    dtype = _torch_dtype(out.dtype)
    return Lowered(lambda a, b: torch.pow(a.double(), b.double()).to(dtype))


# ------------------------------------------------------------------------------------------
# tensor (data movement)


def lower_reshape(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    shape = out.shape
    return Lowered(lambda x: x.reshape(shape))


def lower_transpose(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    perm = tuple(attrs["perm"])
    return Lowered(lambda x: x.permute(perm))


def lower_concat(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    axis = int(attrs["axis"])
    return Lowered(lambda *xs: torch.cat(xs, axis))


def lower_slice(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    """A negative step reads the flipped axis forwards: index i of the axis is n-1-i there,
    so (start, end, step) becomes (n-1-start, n-1-end, -step); end -1 ("through index 0")
    becomes n."""
    shape = types[0].shape
    flipped = tuple(d for d, s in enumerate(attrs["steps"]) if s < 0)
    index = tuple(
        slice(b, e, s) if s > 0 else slice(n - 1 - b, n - 1 - e, -s)
        for b, e, s, n in zip(attrs["starts"], attrs["ends"], attrs["steps"], shape, strict=True)
    )
    if not flipped:
        return Lowered(lambda x: x[index])
    return Lowered(lambda x: torch.flip(x, flipped)[index])


def lower_take(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    """ONNX Gather: negative indices count from the end of the axis."""
    axis = int(attrs["axis"])
    extent = types[0].shape[axis]
    shape = out.shape

    def run(data: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        flat = indices.reshape(-1).long()
        flat = torch.where(flat < 0, flat + extent, flat)
        return torch.index_select(data, axis, flat).reshape(shape)

    return Lowered(run)


def lower_broadcast_to(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    shape = out.shape
    return Lowered(lambda x: x.expand(shape))


def lower_pad(attrs: Attrs, types: Sequence[TensorType], out: TensorType) -> Lowered:
    """Constant padding of every axis; the value takes the input's kind (a bool input pads
    with ``value != 0``)."""
    dtype, rank = types[0].dtype, types[0].ndim
    pads = tuple(attrs["pads"])
    pairs = _pad_pairs(pads[:rank], pads[rank:])
    raw = float(attrs.get("value", 0.0))
    value: float | int = raw if dtype.startswith("float") else int(raw)
    if dtype == "bool":
        value = int(raw != 0)
    return Lowered(lambda x: F.pad(x, pairs, value=value))


# ------------------------------------------------------------------------------------------
# the table

LOWERINGS: dict[str, Lowering] = {
    # elementwise
    "relu": _direct(torch.relu),
    "sigmoid": _direct(torch.sigmoid),
    "tanh": _direct(torch.tanh),
    "erf": _direct(torch.erf),
    "sqrt": _direct(torch.sqrt),
    "negative": _direct(torch.neg),
    "exp": _direct(torch.exp),
    "gelu": lower_gelu,
    "clip": lower_clip,
    "cast": lower_cast,
    "add": _direct(torch.add),
    "subtract": _direct(torch.sub),
    "multiply": _direct(torch.mul),
    "divide": lower_divide,
    "power": lower_power,
    "maximum": _direct(torch.maximum),
    "minimum": _direct(torch.minimum),
    "equal": _direct(torch.eq),
    "less": _direct(torch.lt),
    "less_equal": _direct(torch.le),
    "greater": _direct(torch.gt),
    "greater_equal": _direct(torch.ge),
    "logical_not": _direct(torch.logical_not),
    "logical_and": _direct(torch.logical_and),
    "logical_or": _direct(torch.logical_or),
    "where": _direct(torch.where),
    # tensor
    "reshape": lower_reshape,
    "transpose": lower_transpose,
    "concat": lower_concat,
    "slice": lower_slice,
    "take": lower_take,
    "broadcast_to": lower_broadcast_to,
    "pad": lower_pad,
    # nn
    "conv": lower_conv,
    "conv_transpose": lower_conv_transpose,
    "dense": lower_dense,
    "matmul": lower_matmul,
    "batch_norm": lower_batch_norm,
    "layer_norm": lower_layer_norm,
    "softmax": lower_softmax,
    "max_pool": lower_max_pool,
    "avg_pool": lower_avg_pool,
    "global_avg_pool": lower_global_avg_pool,
    "reduce_mean": lower_reduce_mean,
    "reduce_sum": lower_reduce_sum,
    "reduce_max": lower_reduce_max,
}


# ------------------------------------------------------------------------------------------
# the executor


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``array``'s memory (a read-only array is copied first: PyTorch
    tensors are writable)."""
    array = np.ascontiguousarray(array)
    return torch.from_numpy(array if array.flags.writeable else array.copy())


@dataclass(frozen=True)
class _Step:
    inputs: tuple[str, ...]
    output: str
    run: Run
    free: tuple[str, ...]  # values no later step reads


class TorchGraph:
    """A graph lowered to PyTorch: ``TorchGraph(graph)(inputs) -> outputs`` (numpy in and
    out, inputs by name, outputs in ``graph.outputs`` order)."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.constants: dict[str, torch.Tensor] = {k: _tensor(v) for k, v in graph.constants.items()}
        taken = set(graph.types)
        steps: list[_Step] = []
        last_use = {v: i for i, node in enumerate(graph.nodes) for v in node.inputs}
        keep = set(graph.outputs) | set(graph.constants) | set(graph.inputs)
        with torch.inference_mode():
            for i, node in enumerate(graph.nodes):
                lowering = LOWERINGS.get(node.op)
                if lowering is None:
                    raise TorchGraphError(
                        f"node {node.name!r}: op '{node.op}' has no PyTorch lowering; "
                        f"lowered ops: {', '.join(sorted(LOWERINGS))}"
                    )
                if len(node.outputs) != 1:
                    raise TorchGraphError(
                        f"node {node.name!r} ({node.op}) has {len(node.outputs)} outputs, not one"
                    )
                types = [graph.types[v] for v in node.inputs]
                lowered = lowering(node.attrs, types, graph.types[node.output])
                inputs, run = self._bind_prepared(node.inputs, lowered, taken)
                free = tuple(v for v in dict.fromkeys(node.inputs) if last_use[v] == i and v not in keep)
                steps.append(_Step(inputs, node.output, run, free))
        self.steps = tuple(steps)

    def _bind_prepared(
        self, inputs: tuple[str, ...], lowered: Lowered, taken: set[str]
    ) -> tuple[tuple[str, ...], Run]:
        """Apply ``lowered.prepare`` once to constant inputs (each becomes a new constant);
        a prepared input that is not constant is converted inside the returned run."""
        names = list(inputs)
        per_call: dict[int, Prepare] = {}
        for i, prepare in lowered.prepare.items():
            if names[i] in self.constants:
                prepared = unique_name(f"{names[i]}.torch", taken)
                taken.add(prepared)
                self.constants[prepared] = prepare(self.constants[names[i]])
                names[i] = prepared
            else:
                per_call[i] = prepare
        if not per_call:
            return tuple(names), lowered.run
        run = lowered.run

        def converting(*xs: torch.Tensor) -> torch.Tensor:
            return run(*(per_call[i](x) if i in per_call else x for i, x in enumerate(xs)))

        return tuple(names), converting

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        checked = check_inputs(self.graph, inputs)
        with torch.inference_mode():
            values = dict(self.constants)
            values.update((name, _tensor(array)) for name, array in checked.items())
            for step in self.steps:
                values[step.output] = step.run(*(values[v] for v in step.inputs))
                for value in step.free:
                    del values[value]
            results = [values[v].numpy() for v in self.graph.outputs]
        fresh = set(self.graph.outputs) - set(self.graph.inputs) - set(self.graph.constants)
        return [
            np.ascontiguousarray(r) if v in fresh else r.copy()
            for v, r in zip(self.graph.outputs, results, strict=True)
        ]


class TorchGraphModule(torch.nn.Module):
    """A lowered graph as a ``torch.nn.Module``: ``forward(*inputs)`` takes tensors in
    ``graph.inputs`` order and returns the tuple of outputs in ``graph.outputs`` order.

    The constants the steps read are buffers, so ``torch.onnx.export`` (TorchScript or
    dynamo) writes them as initializers; that is how a graph becomes a PyTorch-exported
    ONNX model, the kind of file users feed the importer."""

    def __init__(self, lowered: TorchGraph):
        super().__init__()
        self.lowered = lowered
        graph = lowered.graph
        read = {v for step in lowered.steps for v in step.inputs} | set(graph.outputs)
        self._buffer_of: dict[str, str] = {}
        for name, tensor in lowered.constants.items():
            if name in read:
                self._buffer_of[name] = f"const{len(self._buffer_of)}"
                self.register_buffer(self._buffer_of[name], tensor)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        graph = self.lowered.graph
        if len(inputs) != len(graph.inputs):
            raise TorchGraphError(
                f"graph {graph.name!r}: forward got {len(inputs)} inputs, the graph has {len(graph.inputs)}"
            )
        values = {name: getattr(self, buffer) for name, buffer in self._buffer_of.items()}
        values.update(zip(graph.inputs, inputs, strict=True))
        for step in self.lowered.steps:
            values[step.output] = step.run(*(values[v] for v in step.inputs))
        return tuple(values[v] for v in graph.outputs)


def to_torch(graph: Graph) -> TorchGraph:
    """``graph`` lowered to eager PyTorch; call the result with numpy inputs by name."""
    return TorchGraph(graph)


def time_torch(
    graph: Graph | TorchGraph,
    inputs: Mapping[str, np.ndarray],
    threads: int = 2,
    repeat: int = 5,
    min_repeat_ms: float = 200.0,
) -> float:
    """Median seconds of one eager PyTorch inference of ``graph`` on ``inputs`` (numpy in
    and out included, as a user calls it) with ``threads`` intra-op threads; PyTorch's
    thread count is restored afterwards."""
    if threads < 1:
        raise ValueError(f"time_torch: threads = {threads} must be >= 1")
    peer = graph if isinstance(graph, TorchGraph) else to_torch(graph)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return median_seconds(lambda: peer(inputs), number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)
    finally:
        torch.set_num_threads(previous)
