"""Ways out of the LLVM back end: LLVM IR and assembly text, shared libraries loaded in
another process, and AArch64 objects from the same emitter."""

from __future__ import annotations

import ctypes
import re
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from codegen_helpers import loop

from codegen.llvm import CodegenError, build, load_library
from ir.expr import Var
from ir.tir import Buffer, BufferLoad, BufferStore, ForKind, PrimFunc

EM_AARCH64 = 183
EM_X86_64 = 62
AARCH64 = "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon -num-cores=4"


def _saxpy(n: int = 40, kind: ForKind = ForKind.PARALLEL) -> PrimFunc:
    X, Y, Z = Buffer("X", (n,), "float32"), Buffer("Y", (n,), "float32"), Buffer("Z", (n,), "float32")
    i, j = Var("i"), Var("j")
    inner = loop(
        j,
        8,
        BufferStore(Z, BufferLoad(X, (i * 8 + j,)) * 3.0 + BufferLoad(Y, (i * 8 + j,)), (i * 8 + j,)),
        ForKind.VECTORIZED,
    )
    return PrimFunc("saxpy", (X, Y, Z), loop(i, n // 8, inner, kind))


def _elf_machine(blob: bytes) -> int:
    assert blob[:4] == b"\x7fELF", "not an ELF file"
    assert blob[4] == 2, "not a 64-bit ELF"
    return struct.unpack_from("<H", blob, 18)[0]


def test_ir_and_asm_text():
    module = build(_saxpy())
    assert re.search(r"define .*i32 @saxpy\(ptr", module.get_ir())
    assert "saxpy_compute" in module.get_ir(optimized=False)
    assert "saxpy:" in module.get_asm()


def test_shared_library_runs_in_another_process(tmp_path):
    path = build(_saxpy()).export_library(tmp_path / "saxpy.so")
    assert _elf_machine(path.read_bytes()) in (EM_X86_64, EM_AARCH64)
    script = textwrap.dedent(
        f"""
        import numpy as np
        from codegen.llvm import load_library
        from ir.tir import Buffer
        params = [Buffer(name, (40,), "float32") for name in "XYZ"]
        kernel = load_library({str(path)!r}, "saxpy", params, written=["Z"])
        rng = np.random.default_rng(3)
        x, y = rng.uniform(-1, 1, 40).astype("float32"), rng.uniform(-1, 1, 40).astype("float32")
        z = np.zeros(40, "float32")
        kernel(x, y, z)
        np.testing.assert_allclose(z, 3 * x + y, rtol=1e-5, atol=1e-6)
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"


def test_packed_entry_rejects_a_wrong_argument_count(tmp_path):
    path = build(_saxpy(kind=ForKind.SERIAL)).export_library(tmp_path / "saxpy_serial.so")
    entry = ctypes.CDLL(str(path)).saxpy
    entry.restype = ctypes.c_int32
    arrays = [np.zeros(40, "float32") for _ in range(3)]
    pointers = (ctypes.c_void_p * 3)(*[a.ctypes.data for a in arrays])
    assert entry(pointers, ctypes.c_int32(2)) == -1
    assert entry(pointers, ctypes.c_int32(3)) == 0


def test_load_library_missing_function(tmp_path):
    path = build(_saxpy(kind=ForKind.SERIAL)).export_library(tmp_path / "k.so")
    with pytest.raises(Exception, match=r"has no function 'nope'"):
        load_library(str(path), "nope", [])


def test_aarch64_object_from_the_same_emitter():
    module = build(_saxpy(), AARCH64)
    blob = module.get_object()
    assert _elf_machine(blob) == EM_AARCH64
    asm = module.get_asm()
    assert ".4s" in asm  # NEON vector arithmetic on 4 x f32
    assert "GOMP_parallel" in asm


def test_aarch64_module_cannot_run_here_or_link_without_a_cross_linker(tmp_path):
    module = build(_saxpy(), AARCH64)
    with pytest.raises(CodegenError, match=r"aarch64-linux-gnu cannot run in this process"):
        module.get_kernel()
    with pytest.raises(CodegenError, match=r"needs a cross linker, e.g. linker=\['aarch64-linux-gnu-gcc'\]"):
        module.export_library(tmp_path / "k.so")


def test_missing_linker_is_a_clear_error(tmp_path):
    module = build(_saxpy(kind=ForKind.SERIAL))
    with pytest.raises(CodegenError, match=r"linker 'no-such-cc' was not found"):
        module.export_library(tmp_path / "k.so", linker=["no-such-cc"])


def test_non_llvm_target_and_bad_names_are_rejected():
    with pytest.raises(CodegenError, match=r"builds for 'llvm' targets, got 'cuda -arch=sm_80'"):
        build(_saxpy(), "cuda -arch=sm_80")
    func = _saxpy()
    bad = PrimFunc("my-kernel", func.params, func.body)
    with pytest.raises(CodegenError, match=r"'my-kernel' is not a C identifier"):
        build(bad)
