"""A register-tiled GEMM written by hand as TIR (C.local tile, unrolled i, vectorized j,
fused parallel outer loop), checked against A @ B, and its machine code inspected: the
accumulators must live in vector registers and the update must be FMA."""

from __future__ import annotations

import numpy as np
import pytest
from codegen_helpers import random_array
from tir_gemm import gemm_tir

from codegen.llvm import build
from codegen.target import Target


@pytest.mark.parametrize(
    "config",
    [
        dict(mr=4, nr=16),
        dict(mr=4, nr=16, kc=16),
        dict(mr=2, nr=8, pack_b=True),
        dict(mr=3, nr=16, kc=24, pack_b=True),
    ],
)
def test_register_tiled_gemm_matches_numpy(config):
    rng = np.random.default_rng(30)
    n, m, k = 48, 64, 48
    func = gemm_tir(n, m, k, **config)
    a, b = random_array(rng, (n, k), "float32", -1, 1), random_array(rng, (k, m), "float32", -1, 1)
    c = np.full((n, m), 77, "float32")
    build(func)(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4 * k)


def test_gemm_tile_lives_in_registers_and_uses_fma():
    module = build(gemm_tir(64, 64, 64, mr=4, nr=16))
    optimized = module.get_ir()
    assert "C_local" in module.get_ir(optimized=False)
    assert "alloca [64 x float]" not in optimized  # SROA promoted the 4 x 16 tile
    assert "llvm.fmuladd.v16f32" in optimized or "llvm.fma.v16f32" in optimized
    if "fma" in Target.parse("llvm").enabled_features():
        asm = module.get_asm()
        assert "vfmadd" in asm
