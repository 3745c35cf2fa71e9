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
from ssh_tools import ensure_tools

from codegen.llvm import CodegenError, build, load_library, toolchain
from codegen.llvm.toolchain import ToolchainError, find_c_compiler, find_linker
from codegen.target import Target
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


def test_aarch64_module_cannot_run_here_or_link_without_a_cross_toolchain(tmp_path, monkeypatch):
    module = build(_saxpy(), AARCH64)
    with pytest.raises(CodegenError, match=r"aarch64-linux-gnu cannot run in this process"):
        module.get_kernel()
    monkeypatch.setenv("PATH", str(tmp_path))  # no cross tools on it
    monkeypatch.setattr(toolchain, "zig_cc", lambda: None)  # and no ziglang package
    monkeypatch.delenv("ANSOR_PY_AARCH64_LINKER", raising=False)
    with pytest.raises(
        ToolchainError,
        match=r"no linker for triple aarch64-linux-gnu: tried ANSOR_PY_AARCH64_LINKER, zig \(pip package "
        r"ziglang\), aarch64-linux-gnu-gcc, ld.lld .*Install ziglang \(pip install ziglang\), or "
        r"gcc-aarch64-linux-gnu",
    ):
        module.export_library(tmp_path / "k.so")


@pytest.mark.parametrize("linker", [None, "ld.lld"])
def test_aarch64_library_links_and_runs_under_qemu(tmp_path, linker):
    """Cross-linked with the default (zig, for glibc 2.17) or lld, the library loads and runs
    on AArch64 (qemu)."""
    ensure_tools()
    module = build(_saxpy(), AARCH64)
    library = module.export_library(tmp_path / "saxpy.so", linker=[linker] if linker else None)
    assert _elf_machine(library.read_bytes()) == EM_AARCH64
    needed = subprocess.run(
        ["readelf", "-d", str(library)], capture_output=True, text=True, check=True
    ).stdout
    assert "libgomp.so.1" in needed  # parallel loops call GOMP_parallel on the board
    # a tiny C driver calls the packed entry on the board's side of qemu
    driver = tmp_path / "driver.c"
    driver.write_text(DRIVER_C)
    exe = tmp_path / "driver"
    compiler = find_c_compiler(Target.parse(AARCH64))
    subprocess.run([*compiler, "-O1", "-o", str(exe), str(driver), "-ldl"], check=True)
    done = subprocess.run(
        ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(exe), str(library)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    x, y = np.arange(40, dtype=np.float32) * 0.5, np.arange(40, dtype=np.float32) - 7
    expected = " ".join(f"{v:.2f}" for v in x * 3.0 + y)
    assert done.stdout.strip() == expected


def test_linker_choice_follows_argument_environment_and_path(monkeypatch):
    target = Target.parse(AARCH64)
    monkeypatch.setenv("ANSOR_PY_AARCH64_LINKER", "my-cross-gcc --sysroot=/x")
    assert find_linker(target).command == ("my-cross-gcc", "--sysroot=/x")
    assert find_linker(target).libraries == ("-lgomp", "-lm")
    lld = find_linker(target, "ld.lld")
    assert lld.command[0] == "ld.lld" and lld.libraries[0] == "/usr/aarch64-linux-gnu/lib/libgomp.so.1"
    assert find_linker(Target.parse("llvm")).command == ("cc",)


DRIVER_C = r"""
#include <dlfcn.h>
#include <stdio.h>
typedef int (*packed)(void **, int);
int main(int argc, char **argv) {
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    packed f = (packed)dlsym(h, "saxpy");
    float x[40], y[40], z[40];
    for (int i = 0; i < 40; i++) { x[i] = i * 0.5f; y[i] = i - 7.0f; }
    void *args[3] = {x, y, z};
    if (f(args, 3) != 0) return 2;
    for (int i = 0; i < 40; i++) printf(i ? " %.2f" : "%.2f", z[i]);
    printf("\n");
    return 0;
}
"""


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
