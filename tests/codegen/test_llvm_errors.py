"""PrimFuncs the LLVM back end must refuse, each with a message naming the object."""

from __future__ import annotations

import pytest
from codegen_helpers import loop

from codegen.llvm import CodegenError, build
from ir import te
from ir.expr import Call, Intrinsic, Var
from ir.tir import Barrier, Buffer, BufferLoad, BufferStore, PrimFunc, seq


def _buffers():
    return Buffer("A", (8,), "float32"), Buffer("B", (8,), "float32")


def test_barrier_is_gpu_only():
    A, B = _buffers()
    i = Var("i")
    body = loop(i, 8, seq(BufferStore(B, BufferLoad(A, (i,)), (i,)), Barrier()))
    with pytest.raises(CodegenError, match=r"barrier\(shared\) synchronises GPU threads"):
        build(PrimFunc("f", (A, B), body))


def test_undefined_variable():
    A, B = _buffers()
    i, ghost = Var("i"), Var("ghost")
    with pytest.raises(CodegenError, match=r"variable 'ghost' is used but not defined"):
        build(PrimFunc("f", (A, B), loop(i, 8, BufferStore(B, BufferLoad(A, (ghost,)), (i,)))))


def test_buffer_neither_parameter_nor_allocated():
    A, B = _buffers()
    stray = Buffer("stray", (8,), "float32")
    i = Var("i")
    with pytest.raises(CodegenError, match=r"buffer 'stray' is used but is neither a parameter"):
        build(PrimFunc("f", (A, B), loop(i, 8, BufferStore(B, BufferLoad(stray, (i,)), (i,)))))


def test_store_of_the_wrong_dtype():
    A, B = _buffers()
    i = Var("i")
    value = BufferLoad(A, (i,)).astype("float64")
    with pytest.raises(CodegenError, match=r"store of a float64 value into float32 buffer 'B'"):
        build(PrimFunc("f", (A, B), loop(i, 8, BufferStore(B, value, (i,)))))


def test_wrong_number_of_indices():
    A, B = Buffer("A", (2, 4), "float32"), Buffer("B", (8,), "float32")
    i = Var("i")
    with pytest.raises(CodegenError, match=r"buffer 'A' has 2 dimensions but is indexed with 3 indices"):
        build(PrimFunc("f", (A, B), loop(i, 8, BufferStore(B, BufferLoad(A, (i, i, i)), (i,)))))


def test_unlowered_reduction_is_rejected():
    A, B = _buffers()
    X = te.placeholder((8,), name="X")
    k = te.reduce_axis((0, 8), name="k")
    i = Var("i")
    with pytest.raises(CodegenError, match=r"is a Reduce: lower the declaration to a PrimFunc"):
        build(PrimFunc("f", (A, B), loop(i, 8, BufferStore(B, te.sum(X[k], axis=k), (i,)))))


def test_bad_auto_unroll_pragma_value():
    A, B = _buffers()
    i = Var("i")
    body = loop(i, 8, BufferStore(B, BufferLoad(A, (i,)), (i,)), pragma_auto_unroll_max_step="many")
    with pytest.raises(
        CodegenError,
        match=r"loop 'i': pragma_auto_unroll_max_step must be a non-negative integer, got 'many'",
    ):
        build(PrimFunc("f", (A, B), body))


def test_float_only_intrinsic_on_integers_is_rejected():
    A, B = Buffer("A", (8,), "int32"), Buffer("B", (8,), "int32")
    i = Var("i")
    bad = Call(Intrinsic.EXP, (BufferLoad(A, (i,)),))  # bypasses te's own dtype check
    with pytest.raises(CodegenError, match=r"intrinsic exp needs a float argument, got int32"):
        build(PrimFunc("f", (A, B), loop(i, 8, BufferStore(B, bad, (i,)))))
