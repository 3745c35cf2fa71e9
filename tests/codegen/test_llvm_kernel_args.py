"""A Kernel checks the arrays it is given against the PrimFunc parameters before calling
machine code that would trust them blindly; errors name the argument, the value and the
expected value."""

from __future__ import annotations

import numpy as np
import pytest
from codegen_helpers import loop

from codegen.llvm import KernelArgumentError, build, empty_aligned
from ir.expr import Var
from ir.tir import Buffer, BufferLoad, BufferStore, PrimFunc


@pytest.fixture(scope="module")
def kernel():
    A, B, C = (
        Buffer("A", (64, 64), "float32"),
        Buffer("B", (64, 64), "float32"),
        Buffer("C", (64, 64), "float32"),
    )
    i = Var("i")
    body = loop(i, 64 * 64, BufferStore(C, BufferLoad(A, (i,)) + BufferLoad(B, (i,)), (i,)))
    return build(PrimFunc("add2d", (A, B, C), body)).get_kernel()


def _arrays():
    rng = np.random.default_rng(40)
    return [rng.uniform(-1, 1, (64, 64)).astype("float32") for _ in range(3)]


def test_correct_call_writes_output(kernel):
    a, b, c = _arrays()
    kernel(a, b, c)
    np.testing.assert_allclose(c, a + b, rtol=1e-6)
    assert kernel.written == frozenset({"C"})


def test_wrong_number_of_arrays(kernel):
    a, b, _ = _arrays()
    with pytest.raises(KernelArgumentError, match=r"kernel 'add2d' takes 3 arrays \(A, B, C\), got 2"):
        kernel(a, b)


def test_wrong_shape(kernel):
    a, b, _ = _arrays()
    with pytest.raises(
        KernelArgumentError, match=r"argument 2 'C': shape \(64, 32\) does not match the kernel's \(64, 64\)"
    ):
        kernel(a, b, np.zeros((64, 32), "float32"))


def test_wrong_dtype(kernel):
    a, _, c = _arrays()
    with pytest.raises(
        KernelArgumentError, match=r"argument 1 'B': dtype float64 does not match the kernel's float32"
    ):
        kernel(a, np.zeros((64, 64)), c)


def test_non_contiguous_array(kernel):
    a, b, c = _arrays()
    with pytest.raises(KernelArgumentError, match=r"argument 0 'A': array is not C-contiguous"):
        kernel(np.asfortranarray(a), b, c)


def test_read_only_output(kernel):
    a, b, c = _arrays()
    c.flags.writeable = False
    with pytest.raises(
        KernelArgumentError, match=r"argument 2 'C': the kernel writes this array but it is read-only"
    ):
        kernel(a, b, c)
    a.flags.writeable = False  # inputs may be read-only
    c.flags.writeable = True
    kernel(a, b, c)
    np.testing.assert_allclose(c, a + b, rtol=1e-6)


def test_not_an_array(kernel):
    _, b, c = _arrays()
    with pytest.raises(KernelArgumentError, match=r"argument 0 'A': expected a numpy array, got list"):
        kernel([[1.0]], b, c)


@pytest.mark.parametrize(
    "shape, dtype", [((3, 5), "float32"), ((1024, 1024), "float32"), ((7,), "int8"), ((2, 3, 4), "float64")]
)
def test_empty_aligned_starts_on_a_cache_line(shape, dtype):
    arrays = [empty_aligned(shape, dtype) for _ in range(8)]  # numpy alone gives 16-byte starts
    for array in arrays:
        assert array.ctypes.data % 64 == 0
        assert array.shape == shape and array.dtype == np.dtype(dtype)
        assert array.flags.c_contiguous and array.flags.writeable
    with pytest.raises(ValueError, match="alignment 48 must be a power of two"):
        empty_aligned(shape, dtype, alignment=48)
