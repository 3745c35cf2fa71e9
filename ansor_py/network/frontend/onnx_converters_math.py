"""ONNX converters of the elementwise ops: arithmetic with broadcasting, activations, Clip,
Cast, Where, the comparisons (Equal, Less, LessOrEqual, Greater, GreaterOrEqual) and the
logical ops (Not, And, Or) (contract: ``frontend.onnx_context``).

Most are one graph op of the ``elementwise`` family with the same semantics (numpy
broadcasting, ONNX's integer division), so they are made by two factories, ``unary`` and
``binary``. The exceptions carry ONNX details: Pow may raise a float to an integer power
(the exponent is cast, the graph op takes one dtype), Clip's bounds are inputs that must be
constant (they become attributes), Gelu (opset 20) names its approximation.
"""

from __future__ import annotations

from ansor_py.network.frontend.onnx_context import (
    ONNX_DTYPES,
    Converter,
    ConvertFn,
    ImportContext,
    OnnxImportError,
    OnnxNode,
    onnx_dtype,
)


def unary(op: str) -> ConvertFn:
    """The converter of an ONNX op that is the graph op ``op`` of one input."""

    def convert(ctx: ImportContext, node: OnnxNode) -> list[str]:
        return ctx.emit(node, op, [node.input(0)], outputs=node.outputs)

    convert.__name__ = f"convert_{op}"
    return convert


def binary(op: str) -> ConvertFn:
    """The converter of an ONNX op that is the broadcasting graph op ``op``; both operands
    must have one dtype (ONNX requires it)."""

    def convert(ctx: ImportContext, node: OnnxNode) -> list[str]:
        a, b = node.input(0), node.input(1)
        adtype, bdtype = ctx.type_of(a).dtype, ctx.type_of(b).dtype
        if adtype != bdtype:
            raise OnnxImportError(f"{node}: operands have dtypes {adtype} and {bdtype}; ONNX requires one")
        return ctx.emit(node, op, [a, b], outputs=node.outputs)

    convert.__name__ = f"convert_{op}"
    return convert


def variadic(op: str) -> ConvertFn:
    """Max/Min of 1..n broadcasting inputs: a chain of the binary graph op ``op``."""

    def convert(ctx: ImportContext, node: OnnxNode) -> list[str]:
        inputs = [v for v in node.inputs if v]
        if len({ctx.type_of(v).dtype for v in inputs}) > 1:
            raise OnnxImportError(f"{node}: inputs have dtypes {[ctx.type_of(v).dtype for v in inputs]}")
        result = inputs[0]
        for i, operand in enumerate(inputs[1:], start=2):
            result = ctx.emit(node, op, [result, operand], outputs=node.outputs if i == len(inputs) else ())[
                0
            ]
        return [result]

    convert.__name__ = f"convert_{op}"
    return convert


def convert_abs(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """Abs as ``maximum(x, -x)`` (the graph has no abs op; exact for every number)."""
    data = node.input(0)
    negated = ctx.emit(node, "negative", [data])[0]
    return ctx.emit(node, "maximum", [data, negated], outputs=node.outputs)


def convert_pow(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """Pow: the exponent may have another numeric dtype; it is cast to the base's."""
    base, exponent = node.input(0), node.input(1)
    exponent = ctx.cast(node, exponent, ctx.type_of(base).dtype)
    return ctx.emit(node, "power", [base, exponent], outputs=node.outputs)


def clip_bound(ctx: ImportContext, node: OnnxNode, index: int, what: str) -> float | None:
    if not node.input(index):
        return None
    bound = ctx.constant_value(node, index, what)
    if bound.size != 1:
        raise OnnxImportError(f"{node}: {what} must be a scalar, got shape {list(bound.shape)}")
    return float(bound.reshape(()))


def convert_clip(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """Clip (opset 13: min and max are optional inputs, constant after folding)."""
    attrs = {"min": clip_bound(ctx, node, 1, "min"), "max": clip_bound(ctx, node, 2, "max")}
    return ctx.emit(node, "clip", [node.input(0)], attrs, outputs=node.outputs)


def convert_gelu(ctx: ImportContext, node: OnnxNode) -> list[str]:
    approximate = node.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise node.unsupported("approximate", approximate, "none, tanh")
    return ctx.emit(node, "gelu", [node.input(0)], {"approximate": approximate}, outputs=node.outputs)


def convert_cast(ctx: ImportContext, node: OnnxNode) -> list[str]:
    """Cast to ``to`` (an ONNX element type); a cast to the value's own dtype is the value."""
    code = int(node.attr("to"))
    if code not in ONNX_DTYPES:
        raise node.unsupported("to", code, ", ".join(f"{k} ({v})" for k, v in ONNX_DTYPES.items()))
    data = node.input(0)
    dtype = onnx_dtype(code, str(node))
    if ctx.type_of(data).dtype == dtype:
        return [data]
    return ctx.emit(node, "cast", [data], {"dtype": dtype}, outputs=node.outputs)


def convert_where(ctx: ImportContext, node: OnnxNode) -> list[str]:
    cond, x, y = node.input(0), node.input(1), node.input(2)
    if ctx.type_of(cond).dtype != "bool":
        raise OnnxImportError(f"{node}: condition has dtype {ctx.type_of(cond).dtype}, ONNX requires bool")
    return ctx.emit(node, "where", [cond, x, y], outputs=node.outputs)


def convert_equal(ctx: ImportContext, node: OnnxNode) -> list[str]:
    a, b = node.input(0), node.input(1)
    adtype, bdtype = ctx.type_of(a).dtype, ctx.type_of(b).dtype
    if adtype != bdtype:
        raise OnnxImportError(f"{node}: operands have dtypes {adtype} and {bdtype}; ONNX requires one")
    return ctx.emit(node, "equal", [a, b], outputs=node.outputs)


MATH_CONVERTERS = [
    Converter("Add", 13, 21, binary("add")),
    Converter("Sub", 13, 21, binary("subtract")),
    Converter("Mul", 13, 21, binary("multiply")),
    Converter("Div", 13, 21, binary("divide")),
    Converter("Pow", 13, 21, convert_pow),
    Converter("Max", 13, 21, variadic("maximum")),
    Converter("Min", 13, 21, variadic("minimum")),
    Converter("Sqrt", 13, 21, unary("sqrt")),
    Converter("Abs", 13, 21, convert_abs),
    Converter("Neg", 13, 21, unary("negative")),
    Converter("Exp", 13, 21, unary("exp")),
    Converter("Relu", 13, 21, unary("relu")),
    Converter("Sigmoid", 13, 21, unary("sigmoid")),
    Converter("Tanh", 13, 21, unary("tanh")),
    Converter("Erf", 13, 21, unary("erf")),
    Converter("Clip", 13, 21, convert_clip),
    Converter("Gelu", 20, 21, convert_gelu, frozenset({"approximate"})),
    Converter("Cast", 13, 21, convert_cast, frozenset({"to", "saturate"})),
    Converter("Where", 13, 21, convert_where),
    Converter("Equal", 13, 21, convert_equal),
    Converter("Less", 13, 21, binary("less")),
    Converter("LessOrEqual", 13, 21, binary("less_equal")),
    Converter("Greater", 13, 21, binary("greater")),
    Converter("GreaterOrEqual", 13, 21, binary("greater_equal")),
    Converter("Not", 13, 21, unary("logical_not")),
    Converter("And", 13, 21, binary("logical_and")),
    Converter("Or", 13, 21, binary("logical_or")),
]
