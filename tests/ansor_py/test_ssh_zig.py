"""Boards with an old glibc: zig as the cross toolchain, AArch64 and 32-bit ARM (armv7l).

The harness and the kernels are built with zig's clang for glibc 2.17 (the default of
``codegen.llvm.toolchain``) and run on a real sshd on 127.0.0.1 under qemu-user
(``qemu-aarch64``, ``qemu-arm`` with Debian's arm64 / armhf glibc and libgomp), checked
against numpy on random inputs; ``objdump -T`` shows that neither binds a glibc symbol
version newer than 2.17. The 32-bit kernels exercise what differs there: 32-bit
pointers and ``size_t`` (a heap-allocated intermediate), the hard-float calling
convention of libm calls (``sinf``), and integer division helpers (parallel loops).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ssh_tools import AARCH64_TARGET, ARMV7_TARGET, ssh_server

from ansor_py.measure.ssh import SSHRunner, check_host
from ansor_py.measure.ssh.harness import build_harness
from ansor_py.measure.ssh.local_sshd import QEMU_ARM_PREFIX, QEMU_PREFIX, SSHServer
from ansor_py.measure.types import MeasureErrorNo
from ansor_py.records import RecordToFile, load_records
from ansor_py.search_task import SearchTask
from ansor_py.tuning import TuningOptions, auto_schedule
from codegen.llvm import build as llvm_build
from codegen.llvm import toolchain
from codegen.llvm.toolchain import GOMP_SYMBOLS, ToolchainError, find_c_compiler, find_linker, gomp_stub
from codegen.target import Target
from ir import te
from ir.compute_dag import ComputeDAG
from ir.loop_state.api import get_init_state
from ir.lower.lower import lower
from ir.topi.workloads import gemm

#: target string, qemu prefix, ELF e_machine (EM_AARCH64 = 183, EM_ARM = 40), ELF class
BOARDS = {
    "aarch64": (AARCH64_TARGET, QEMU_PREFIX, 183, 2),
    "armv7l": (ARMV7_TARGET, QEMU_ARM_PREFIX, 40, 1),
}
#: elements of the heap-allocated intermediate: 128 KiB of float32, above the stack limit
HEAP_N = 32768


@pytest.fixture(scope="module")
def server():
    yield from ssh_server()


def glibc_versions(binary: Path) -> set[tuple[int, int]]:
    """The GLIBC_x.y versions the dynamic symbols of ``binary`` bind (``objdump -T``)."""
    listing = subprocess.run(["objdump", "-T", str(binary)], capture_output=True, text=True, check=True)
    return {(int(a), int(b)) for a, b in re.findall(r"\bGLIBC_(\d+)\.(\d+)\b", listing.stdout)}


def sine_kernel(target: Target):
    """``C = sin(A) * 2 + B`` over HEAP_N elements through a heap-allocated ``T = sin(A)``:
    parallel outer loop, vectorised inner loop, libm ``sinf`` per lane."""
    a = te.placeholder((HEAP_N,), name="A")
    b = te.placeholder((HEAP_N,), name="B")
    t = te.compute((HEAP_N,), lambda i: te.sin(a[i]), name="T")
    c = te.compute((HEAP_N,), lambda i: t[i] * 2.0 + b[i], name="C")
    dag = ComputeDAG([a, b, c])
    state = get_init_state(dag)
    for stage in ("T", "C"):
        outer, inner = state.split(stage, 0, [16])
        state.parallel(stage, outer)
        state.vectorize(stage, inner)
    return llvm_build(lower(dag, state), target)


# the toolchain's choice --------------------------------------------------------------------


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_zig_for_glibc_2_17_is_the_default_cross_toolchain(board, monkeypatch):
    target = Target.parse(BOARDS[board][0])
    for variable in ("ANSOR_PY_GLIBC", f"ANSOR_PY_{board.upper()}_CC", f"ANSOR_PY_{board.upper()}_LINKER"):
        monkeypatch.delenv(variable, raising=False)
    zig_target = {"aarch64": "aarch64-linux-gnu", "armv7l": "arm-linux-gnueabihf"}[board]
    compiler = find_c_compiler(target)
    assert compiler[0].endswith("/ziglang/zig")  # the pip package's binary
    assert compiler[1:] == ("cc", "-target", f"{zig_target}.2.17")
    linker = find_linker(target)
    assert linker.command == (*compiler, "-O2")
    assert linker.libraries[0].endswith("/libgomp.so.1") and linker.libraries[1] == "-lm"
    # another glibc: by argument, or for the whole process by ANSOR_PY_GLIBC
    assert find_c_compiler(target, glibc="2.31")[-1] == f"{zig_target}.2.31"
    monkeypatch.setenv("ANSOR_PY_GLIBC", "2.28")
    assert find_linker(target).command[-2] == f"{zig_target}.2.28"
    monkeypatch.setenv("ANSOR_PY_GLIBC", "two")
    with pytest.raises(ToolchainError, match=r"glibc version 'two' must read like '2.17'"):
        find_c_compiler(target)


def test_without_zig_debian_cross_gcc_then_a_clear_error(tmp_path, monkeypatch):
    target = Target.parse(ARMV7_TARGET)
    monkeypatch.setattr(toolchain, "zig_cc", lambda: None)
    monkeypatch.delenv("ANSOR_PY_ARMV7L_CC", raising=False)
    monkeypatch.delenv("ANSOR_PY_ARMV7L_LINKER", raising=False)
    gcc = tmp_path / "arm-linux-gnueabihf-gcc"
    gcc.write_text("#!/bin/sh\nexit 0\n")
    gcc.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_c_compiler(target) == ("arm-linux-gnueabihf-gcc",)
    assert find_linker(target).libraries == ("-lgomp", "-lm")
    gcc.unlink()
    with pytest.raises(
        ToolchainError,
        match=r"no C compiler for triple armv7l-unknown-linux-gnueabihf: tried ANSOR_PY_ARMV7L_CC, "
        r"zig \(pip package ziglang\) and arm-linux-gnueabihf-gcc\. Install ziglang",
    ):
        find_c_compiler(target)
    with pytest.raises(ToolchainError, match=r"ld\.lld with /usr/arm-linux-gnueabihf/lib/libgomp\.so\.1"):
        find_linker(target)


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_libgomp_stub_has_gcc_libgomp_soname_and_versions(board):
    stub = gomp_stub(find_c_compiler(Target.parse(BOARDS[board][0])))
    dynamic = subprocess.run(["readelf", "-d", str(stub)], capture_output=True, text=True, check=True).stdout
    assert "Library soname: [libgomp.so.1]" in dynamic
    symbols = subprocess.run(["objdump", "-T", str(stub)], capture_output=True, text=True, check=True).stdout
    for name, version in GOMP_SYMBOLS.items():
        assert re.search(rf"\b{version}\s+{name}$", symbols, re.MULTILINE), (name, symbols)
    # the board's real libgomp (Debian's, for qemu) defines the same versions
    real = f"/usr/{'aarch64-linux-gnu' if board == 'aarch64' else 'arm-linux-gnueabihf'}/lib/libgomp.so.1"
    listing = subprocess.run(["objdump", "-T", real], capture_output=True, text=True, check=True).stdout
    for name, version in GOMP_SYMBOLS.items():
        assert re.search(rf"\b{version}\s+{name}$", listing, re.MULTILINE), name


def test_armv7l_target_has_32_bit_pointers_and_neon_vectors():
    target = Target.parse(ARMV7_TARGET)
    assert target.triple == "armv7l-unknown-linux-gnueabihf"  # LLVM's reading: hard-float EABI
    assert target.pointer_bits == 32 and target.keys == ("arm_cpu", "cpu")
    assert target.hardware_params.vector_unit_bytes == 16 and target.num_cores == 2
    assert str(target) == ARMV7_TARGET  # records keep the spelling that was given
    assert Target.parse(AARCH64_TARGET).pointer_bits == 64
    module = sine_kernel(target)
    asm = module.get_asm()
    assert "vmul.f32\tq" in asm or "vadd.f32\tq" in asm  # NEON on 4 x f32
    assert re.search(r"__aeabi_u?idiv", asm) and "__divsi3" not in asm
    assert "aligned_alloc" in module.get_ir(optimized=False)


# running on the board ----------------------------------------------------------------------


@pytest.mark.parametrize("board", sorted(BOARDS))
def test_kernel_and_harness_built_for_glibc_2_17_run_on_the_board(
    board: str, server: SSHServer, tmp_path: Path
) -> None:
    target_text, prefix, machine, elf_class = BOARDS[board]
    target = Target.parse(target_text)
    library = sine_kernel(target).export_library(tmp_path / f"sine_{board}.so")
    harness = build_harness(target)
    for binary in (library, harness.path):
        header = binary.read_bytes()[:20]
        assert header[4] == elf_class and header[18] == machine, binary
        versions = glibc_versions(binary)
        assert versions and max(versions) <= (2, 17), (binary, sorted(versions))
    needed = subprocess.run(
        ["readelf", "-d", str(library)], capture_output=True, text=True, check=True
    ).stdout
    assert "[libgomp.so.1]" in needed  # the board's libgomp runs the parallel loops
    rng = np.random.default_rng(11)
    a = rng.uniform(-4.0, 4.0, HEAP_N).astype("float32")
    b = rng.standard_normal(HEAP_N).astype("float32")
    c = np.full(HEAP_N, np.nan, dtype="float32")
    with SSHRunner(
        [server.host()], command_prefix=prefix, timeout=60, remote_dir=str(tmp_path / "r")
    ) as runner:
        runner.run_library(library, target, [a, b], [c])
    np.testing.assert_allclose(c, np.sin(a.astype(np.float64)) * 2.0 + b, rtol=1e-5, atol=1e-5)


def test_check_host_runs_an_armv7l_kernel(server: SSHServer) -> None:
    report = check_host(server.host(), ARMV7_TARGET, command_prefix=QEMU_ARM_PREFIX)
    assert "ran and matched numpy" in (report.kernel_check or "")


def test_tune_for_armv7l_end_to_end(server: SSHServer, tmp_path: Path) -> None:
    task = SearchTask(compute_dag=ComputeDAG(gemm(16, 16, 16)), target=ARMV7_TARGET)
    log = tmp_path / "armv7l.json"
    remote = str(tmp_path / "r")  # qemu-arm is slow: one call per measurement
    runner = SSHRunner(
        [server.host()],
        command_prefix=QEMU_ARM_PREFIX,
        number=1,
        min_repeat_ms=0,
        timeout=60,
        remote_dir=remote,
    )
    options = TuningOptions(
        num_measure_trials=4,
        runner=runner,
        measure_callbacks=[RecordToFile(str(log))],
        verbose=0,
        remeasure_top_k=0,
    )
    auto_schedule(task, options)
    runner.close()
    results = [result for _, result in load_records(log)]
    assert len(results) >= 4
    assert all(r.error_no is MeasureErrorNo.NO_ERROR and r.median_cost > 0 for r in results), [
        (r.error_no, r.error_msg) for r in results
    ]
    assert "armv7l-linux-gnueabihf" in log.read_text()
