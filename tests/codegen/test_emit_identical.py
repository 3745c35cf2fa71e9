"""The LLVM IR the emitter writes is pinned: making emission faster must not change one byte.

The digests below are of the unoptimised module text of two hand-written register-tiled
GEMMs (``tir_gemm.gemm_tir``) as the emitter wrote them before its speed-ups (shared
constants and types, the paused cyclic garbage collector). A change to the emitted IR is a
change to every kernel the search measures; update a digest only on purpose.
"""

from __future__ import annotations

import gc
import hashlib
import threading

import pytest
from tir_gemm import gemm_tir

from codegen.llvm import ops
from codegen.llvm.build import emit_module_text, emit_primfunc
from codegen.llvm.context import ModuleContext
from codegen.llvm.errors import CodegenError
from codegen.target import as_target
from ir.expr import Var
from ir.tir import Buffer, BufferStore, PrimFunc

TARGET = "llvm -mtriple=x86_64-linux-gnu -mcpu=znver3"

GOLDEN = [
    (
        dict(n=8, m=32, k=16, mr=4, nr=16),
        "eb4187415e3c0546825782a6f6b72dcf04f69e4c2432ec5b55c7bafcd45832cb",
    ),
    (
        dict(n=8, m=64, k=32, mr=2, nr=32, kc=16, pack_b=True),
        "a44bb28a2990ee492802b05ea8297259d4b8c5fecd36f02379c862471cee3c13",
    ),
]


def module_text(func: PrimFunc) -> str:
    return emit_module_text(ModuleContext(func.name, as_target(TARGET)), func)


@pytest.mark.parametrize(("args", "digest"), GOLDEN, ids=["gemm", "gemm_packed_kc"])
def test_emitted_ir_matches_golden_digest(args: dict, digest: str) -> None:
    text = module_text(gemm_tir(**args))
    assert hashlib.sha256(text.encode()).hexdigest() == digest


def test_paused_gc_emits_the_text_of_plain_emission() -> None:
    func = gemm_tir(8, 32, 16, mr=4, nr=16)
    plain = ModuleContext(func.name, as_target(TARGET))
    emit_primfunc(plain, func)
    assert module_text(func) == str(plain.module)


def _undefined_variable_func() -> PrimFunc:
    out = Buffer("out", (4,), "int32")
    return PrimFunc("bad", (out,), BufferStore(out, Var("nowhere"), (Var("i"),)))


@pytest.mark.parametrize("enabled_before", [True, False])
def test_gc_state_is_restored_after_emission_and_after_an_error(enabled_before: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled_before else gc.disable()
        module_text(gemm_tir(8, 32, 16, mr=4, nr=16))
        assert gc.isenabled() is enabled_before
        with pytest.raises(CodegenError, match="variable 'nowhere' is used but not defined"):
            module_text(_undefined_variable_func())
        assert gc.isenabled() is enabled_before
    finally:
        gc.enable() if was else gc.disable()


def test_overlapping_emissions_in_threads_leave_gc_enabled() -> None:
    assert gc.isenabled()
    func = gemm_tir(8, 32, 16, mr=4, nr=16)
    texts: list[str] = []
    threads = [threading.Thread(target=lambda: texts.append(module_text(func))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gc.isenabled()
    assert len(texts) == 4 and len(set(texts)) == 1


def test_shared_constants_keep_what_distinguishes_them() -> None:
    assert ops.constant("int32", 7) is ops.constant("int32", 7)
    assert ops.constant("int32", 7, lanes=8) is ops.constant("int32", 7, lanes=8)
    # -0.0 == 0.0 and True == 1 in Python; in LLVM IR they are other constants
    assert str(ops.constant("float32", -0.0)) != str(ops.constant("float32", 0.0))
    assert str(ops.constant("float32", -0.0, lanes=4)) != str(ops.constant("float32", 0.0, lanes=4))
    assert str(ops.constant("bool", True)) == "i1 true"
    assert str(ops.constant("int32", True)) == "i32 1"
    assert str(ops.constant("float32", 1)) == str(ops.constant("float32", 1.0))
    assert ops.int_constant(ops.constant("int8", 300)) == 44  # wrapped to int8
