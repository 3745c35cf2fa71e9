"""ONNX import: ``from_onnx(model) -> Graph``, the entry of a network into ansor-py.

The importer follows TVM's ``relay.frontend.from_onnx``: a converter table keyed by op
type and opset range (``CONVERTERS``; one small function per op in
``onnx_converters_nn``/``_math``/``_tensor``), a loop over the model's nodes in order that
looks each node up and calls its converter, and shapes made static at import (a dynamic
input dimension needs ``shape={"input": (...)}``, as TVM's ``shape`` dict). Shape
arithmetic folds to constants while importing, so the graph that comes out has only
static, compilable ops (``frontend.onnx_context`` explains folding and naming).

Everything the importer cannot take is an ``OnnxImportError`` raised before anything is
compiled, naming the model's node, input or file: an op outside the table, an attribute
outside a converter's list or a value it does not take, a default-domain opset outside
13..21, a dynamic dimension without an override, a corrupt, truncated or missing file.

To add an op: write ``convert_<op>(ctx, node)`` in the family module (``onnx_context``
gives the contract), list it there as ``Converter("OpType", since, until, fn, attrs)``
(one entry per opset range where its form changes), and add a ``Case`` per attribute
variant to ``tests/ansor_py/network/test_onnx_import_*.py``, run against onnxruntime.

``onnx`` is an optional dependency, imported only by this frontend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import onnx
    from google.protobuf.message import DecodeError
    from onnx import numpy_helper
except ImportError as _missing:  # pragma: no cover - exercised only without onnx
    raise ImportError(
        f"ansor_py.network.frontend.onnx needs the 'onnx' package ({_missing}); "
        "install it with `pip install onnx`"
    ) from None

from ansor_py.network.frontend.onnx_context import (
    Converter,
    ImportContext,
    OnnxImportError,
    OnnxNode,
    onnx_dtype,
)
from ansor_py.network.frontend.onnx_converters_math import MATH_CONVERTERS
from ansor_py.network.frontend.onnx_converters_nn import NN_CONVERTERS
from ansor_py.network.frontend.onnx_converters_tensor import TENSOR_CONVERTERS
from ansor_py.network.graph import Graph
from ansor_py.network.types import TensorType

#: the default-domain opsets the converters cover
MIN_OPSET, MAX_OPSET = 13, 21
DEFAULT_DOMAINS = ("", "ai.onnx")


def converter_table(converters: Sequence[Converter]) -> dict[str, list[Converter]]:
    """``{op_type: [converters by opset range]}``; overlapping ranges are a programming error."""
    table: dict[str, list[Converter]] = {}
    for conv in converters:
        for other in table.get(conv.op_type, []):
            if conv.since <= other.until and other.since <= conv.until:
                raise ValueError(f"ONNX op {conv.op_type}: opset ranges of two converters overlap")
        table.setdefault(conv.op_type, []).append(conv)
    return table


CONVERTERS: dict[str, list[Converter]] = converter_table(NN_CONVERTERS + MATH_CONVERTERS + TENSOR_CONVERTERS)


def supported_ops() -> list[str]:
    return sorted(CONVERTERS)


def find_converter(op_type: str, domain: str, node: str, opset: int) -> Converter:
    """The converter of ``op_type`` at ``opset``, or an OnnxImportError saying why not."""
    if domain not in DEFAULT_DOMAINS or op_type not in CONVERTERS:
        where = f"ONNX op '{op_type}'" + (f" of domain '{domain}'" if domain not in DEFAULT_DOMAINS else "")
        raise OnnxImportError(
            f"{where} (node {node!r}, model opset {opset}) is not supported; "
            f"supported ops: {', '.join(supported_ops())}"
        )
    for conv in CONVERTERS[op_type]:
        if conv.since <= opset <= conv.until:
            return conv
    ranges = ", ".join(f"{c.since}..{c.until}" for c in CONVERTERS[op_type])
    raise OnnxImportError(
        f"ONNX op '{op_type}' (node {node!r}) is supported at opsets {ranges}, the model has {opset}"
    )


# --- reading the model ---------------------------------------------------------------------


def load_model(model_or_path: Any) -> tuple[onnx.ModelProto, str]:
    """The ModelProto and a name for messages, from a ModelProto, a path or bytes."""
    if isinstance(model_or_path, onnx.ModelProto):
        return model_or_path, model_or_path.graph.name or "model"
    if isinstance(model_or_path, bytes | bytearray):
        source = f"<{len(model_or_path)} bytes>"
        data = bytes(model_or_path)
    elif isinstance(model_or_path, str | Path):
        path = Path(model_or_path)
        source = str(path)
        if not path.is_file():
            raise OnnxImportError(f"ONNX model file {source!r} does not exist or is not a file")
        data = path.read_bytes()
    else:
        raise OnnxImportError(
            f"from_onnx takes an onnx.ModelProto, a path or bytes, not {type(model_or_path).__name__}"
        )
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except DecodeError as err:
        raise OnnxImportError(f"ONNX model {source}: corrupt or truncated file ({err})") from None
    if not model.HasField("graph"):
        raise OnnxImportError(f"ONNX model {source}: no graph (empty, corrupt or truncated file)")
    if isinstance(model_or_path, str | Path):
        try:
            onnx.load_external_data_for_model(model, str(Path(model_or_path).parent))
        except (OSError, ValueError, onnx.checker.ValidationError) as err:
            raise OnnxImportError(f"ONNX model {source}: cannot read its external data ({err})") from None
    return model, source


def default_opset(model: onnx.ModelProto, source: str) -> int:
    versions = [int(o.version) for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        raise OnnxImportError(f"ONNX model {source}: imports no opset of the default domain")
    opset = max(versions)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OnnxImportError(
            f"ONNX model {source}: default-domain opset {opset} is not supported "
            f"(supported: {MIN_OPSET}..{MAX_OPSET}; convert it with onnx.version_converter)"
        )
    return opset


def checker_message(model: onnx.ModelProto) -> str | None:
    """onnx.checker's complaint about ``model``, or None when it passes. Used only to
    explain a conversion that failed unexpectedly (the importer's own checks come first
    and say more; the checker also rejects models onnxruntime runs, e.g. outputs without
    a shape)."""
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as err:
        text = str(err).strip()
        return text.splitlines()[0] if text else type(err).__name__
    return None


def check_node(proto: onnx.NodeProto, node: str, opset: int) -> Converter:
    """The node's converter, after checking its input/output counts against the ONNX
    schema and its attributes against the converter's list."""
    converter = find_converter(proto.op_type, proto.domain, node, opset)
    schema = onnx.defs.get_schema(proto.op_type, opset, "")
    where = f"{proto.op_type} node {node!r}"
    if not schema.min_input <= len(proto.input) <= schema.max_input:
        raise OnnxImportError(
            f"{where} has {len(proto.input)} inputs; "
            f"opset {opset} takes {schema.min_input} to {schema.max_input}"
        )
    if not schema.min_output <= len(proto.output) <= schema.max_output:
        raise OnnxImportError(
            f"{where} has {len(proto.output)} outputs; "
            f"opset {opset} gives {schema.min_output} to {schema.max_output}"
        )
    names = {a.name for a in proto.attribute}
    extra = sorted(names - converter.attrs)
    if extra:
        allowed = ", ".join(sorted(converter.attrs)) or "none"
        raise OnnxImportError(
            f"{where}: attribute(s) {extra} are not supported (opset {opset}; supported: {allowed})"
        )
    missing = sorted(a for a, spec in schema.attributes.items() if spec.required and a not in names)
    if missing:
        raise OnnxImportError(f"{where}: required attribute(s) {missing} are missing")
    return converter


def attribute_value(attribute: onnx.AttributeProto, node: str) -> Any:
    """An attribute as plain Python: numbers, strings, tuples, numpy arrays for tensors."""
    kind = attribute.type
    if kind in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        raise OnnxImportError(
            f"node {node!r}: attribute '{attribute.name}' is a subgraph (control flow is not supported)"
        )
    if kind == onnx.AttributeProto.SPARSE_TENSOR:
        return attribute.sparse_tensor
    value = onnx.helper.get_attribute_value(attribute)
    what = f"node {node!r}: attribute '{attribute.name}'"
    if kind == onnx.AttributeProto.TENSOR:
        return tensor_array(value, what)
    if kind == onnx.AttributeProto.TENSORS:
        return tuple(tensor_array(t, what) for t in value)
    if isinstance(value, bytes):  # a string attribute; a value it cannot be is rejected later
        return value.decode(errors="replace")
    if isinstance(value, list):
        return tuple(v.decode(errors="replace") if isinstance(v, bytes) else v for v in value)
    return value


def initializer_array(tensor: onnx.TensorProto, source: str) -> np.ndarray:
    """An initializer as a numpy array of a supported dtype."""
    onnx_dtype(tensor.data_type, f"ONNX model {source}: initializer {tensor.name!r}")
    if tensor.data_location == onnx.TensorProto.EXTERNAL and not tensor.raw_data:
        raise OnnxImportError(
            f"ONNX model {source}: initializer {tensor.name!r} is stored in an external file; "
            "pass the model's path so that its external data is read"
        )
    return tensor_array(tensor, f"ONNX model {source}: initializer {tensor.name!r}")


def tensor_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """``numpy_helper.to_array``, with an inconsistent tensor (data that does not fill
    its dims) an OnnxImportError naming ``what``."""
    try:
        return numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError) as err:  # KeyError: an unknown data_type code
        raise OnnxImportError(f"{what}: malformed tensor data ({err!r})") from None


def input_type(value: onnx.ValueInfoProto, override: Sequence[int] | None) -> TensorType:
    """A graph input's static type: its dims, with ``override`` filling dynamic ones."""
    name = value.name
    if not value.type.HasField("tensor_type"):
        raise OnnxImportError(f"graph input {name!r} is not a tensor")
    tensor = value.type.tensor_type
    dtype = onnx_dtype(tensor.elem_type, f"graph input {name!r}")
    dims: list[int | str | None] = []
    if tensor.HasField("shape"):
        for dim in tensor.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value > 0:
                dims.append(int(dim.dim_value))
            else:
                dims.append(dim.dim_param or None)
    elif override is None:
        raise OnnxImportError(f"graph input {name!r} has no shape; give it with shape={{{name!r}: (...)}}")
    if override is None:
        for axis, dim in enumerate(dims):
            if not isinstance(dim, int):
                raise OnnxImportError(
                    f"graph input {name!r}: dimension {axis} is dynamic ({dim or 'unknown'}); "
                    f"give the static shape with shape={{{name!r}: (...)}}"
                )
        return TensorType(tuple(int(d) for d in dims), dtype)  # type: ignore[arg-type]
    shape = tuple(override)
    if not all(isinstance(d, int | np.integer) and d > 0 for d in shape):
        raise OnnxImportError(f"shape override of input {name!r}: {list(shape)} must be positive integers")
    if tensor.HasField("shape"):
        if len(shape) != len(dims):
            raise OnnxImportError(
                f"shape override of input {name!r}: rank {len(shape)}, the model's is {len(dims)}"
            )
        for axis, (given, dim) in enumerate(zip(shape, dims, strict=True)):
            if isinstance(dim, int) and dim != given:
                raise OnnxImportError(
                    f"shape override of input {name!r}: dimension {axis} is {given}, "
                    f"the model fixes it at {dim}"
                )
    return TensorType(tuple(int(d) for d in shape), dtype)


# --- the import loop -----------------------------------------------------------------------


def node_names(graph: onnx.GraphProto) -> list[str]:
    """The model's node names made unique; an unnamed node becomes ``<OpType>_<index>``."""
    taken = {n.name for n in graph.node if n.name}
    seen: set[str] = set()
    names = []
    for index, proto in enumerate(graph.node):
        base = proto.name or f"{proto.op_type}_{index}"
        name, k = base, 1
        while name in seen or (name != proto.name and name in taken):
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


def from_onnx(
    model_or_path: onnx.ModelProto | str | Path | bytes,
    shape: Mapping[str, Sequence[int]] | None = None,
    name: str | None = None,
) -> Graph:
    """The graph of an ONNX model (a ModelProto, a path or the serialized bytes).
    ``shape`` maps graph input names to static shapes for inputs with dynamic dims."""
    model, source = load_model(model_or_path)
    opset = default_opset(model, source)
    graph = model.graph
    overrides = dict(shape or {})
    initializers = {t.name: t for t in graph.initializer}
    input_names = [v.name for v in graph.input if v.name not in initializers]
    unknown = sorted(set(overrides) - set(input_names))
    if unknown:
        raise OnnxImportError(f"shape overrides for {unknown}: the model's inputs are {input_names}")
    if len(graph.sparse_initializer):
        raise OnnxImportError(f"ONNX model {source}: sparse initializers are not supported")

    names = node_names(graph)
    converters = [check_node(proto, name, opset) for proto, name in zip(graph.node, names, strict=True)]
    reserved = set(initializers) | {v.name for v in graph.input} | {o for n in graph.node for o in n.output}
    ctx = ImportContext(reserved - {""}, set(names))
    values: dict[str, str] = {}  # ONNX value name -> graph value
    for tensor_name, tensor in initializers.items():
        values[tensor_name] = ctx.add_constant(initializer_array(tensor, source), tensor_name)
    for value in graph.input:
        if value.name not in initializers:
            ctx.add_input(value.name, input_type(value, overrides.get(value.name)))
            values[value.name] = value.name

    for proto, node_name, converter in zip(graph.node, names, converters, strict=True):
        missing = [v for v in proto.input if v and v not in values]
        if missing:
            raise OnnxImportError(
                f"{proto.op_type} node {node_name!r} reads {missing}, not defined before it"
            )
        attrs = {a.name: attribute_value(a, node_name) for a in proto.attribute}
        node = OnnxNode(
            proto.op_type,
            node_name,
            tuple(values[v] if v else "" for v in proto.input),
            tuple(proto.output),
            attrs,
            opset,
        )
        try:
            results = converter.convert(ctx, node)
        except OnnxImportError:
            raise
        except (KeyError, IndexError, TypeError, ValueError) as err:  # a malformed model?
            complaint = checker_message(model)
            if complaint is None:
                raise  # a model the checker accepts: a bug of the converter
            raise OnnxImportError(f"{node}: cannot convert ({err!r}); onnx.checker: {complaint}") from None
        for onnx_name, result in zip(proto.output, results, strict=False):
            if onnx_name and result is not None:
                values[onnx_name] = result

    outputs = []
    for value in graph.output:
        if value.name not in values:
            raise OnnxImportError(
                f"ONNX model {source}: graph output {value.name!r} is not computed by any node"
            )
        outputs.append(values[value.name])
    return ctx.graph(input_names, outputs, name or graph.name or "onnx_model")


__all__ = ["CONVERTERS", "OnnxImportError", "from_onnx", "supported_ops"]
