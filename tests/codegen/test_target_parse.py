"""Target strings and the hardware parameters derived from them (TVM ``GetDefaultHardwareParams``)."""

from __future__ import annotations

import os

import llvmlite.binding as llvm
import pytest

from codegen.target import HardwareParams, Target, as_target

AARCH64 = "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon -num-cores=4"


def test_host_llvm_target_detects_the_machine():
    t = Target.parse("llvm")
    assert t.kind == "llvm" and t.is_host
    assert t.triple == llvm.get_process_triple()
    assert t.cpu == llvm.get_host_cpu_name()
    assert t.features == llvm.get_host_cpu_features().flatten()
    assert t.keys == ("cpu",)
    assert str(t) == "llvm"
    hw = t.hardware_params
    assert hw.num_cores == os.cpu_count()
    features = t.enabled_features()
    expected = 64 if "avx512f" in features else 32 if "avx2" in features else 16
    assert hw.vector_unit_bytes == expected
    assert (hw.cache_line_bytes, hw.max_shared_memory_per_block, hw.warp_size) == (64, 0, 0)


def test_aarch64_target_fields_and_round_trip():
    t = Target.parse(AARCH64)
    assert (t.triple, t.cpu, t.mattr, t.num_cores) == ("aarch64-linux-gnu", "cortex-a72", ("+neon",), 4)
    assert t.features == "+neon" and not t.is_host
    assert t.keys == ("arm_cpu", "cpu")
    assert str(t) == AARCH64
    assert Target.parse(str(t)) == t
    assert t.hardware_params == HardwareParams(4, 16, 64, 0, 0, 0, 0, 0)


@pytest.mark.parametrize(
    ("target", "cores"),
    [
        ("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a53 -mattr=+neon", 4),
        ("llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon", 4),
        ("llvm -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1 -mattr=+neon", 64),
        ("llvm -mtriple=aarch64-linux-gnu -mcpu=neoverse-n1 -mattr=+neon -num-cores=16", 16),
        ("llvm -mtriple=aarch64-linux-gnu -mattr=+neon", 4),
    ],
)
def test_arm_boards_get_their_own_core_count_and_neon_width(target, cores):
    """A foreign board's cores come from -num-cores or its -mcpu, never from this machine;
    NEON is 16 bytes wide."""
    t = Target.parse(target)
    assert t.hardware_params.num_cores == cores
    assert t.hardware_params.vector_unit_bytes == 16
    assert t.keys == ("arm_cpu", "cpu")


@pytest.mark.parametrize(
    ("mattr", "vector_bytes"), [("+avx2,+fma", 32), ("+avx512f,+avx2", 64), ("+sse4.2", 16)]
)
def test_vector_width_follows_features(mattr, vector_bytes):
    t = Target.parse(f"llvm -mtriple=x86_64-linux-gnu -mcpu=generic -mattr={mattr}")
    assert t.hardware_params.vector_unit_bytes == vector_bytes
    assert t.is_host == (llvm.get_process_triple().startswith("x86_64"))


def test_cuda_target_is_parsed_with_gpu_limits():
    t = Target.parse("cuda -arch=sm_80")
    assert (t.kind, t.arch, t.keys) == ("cuda", "sm_80", ("cuda", "gpu"))
    assert str(t) == "cuda -arch=sm_80" and Target.parse(str(t)) == t
    hw = t.hardware_params
    assert hw.to_record() == [-1, 16, 64, 48 * 1024, 2**31 - 1, 1024, 8, 32]
    custom = Target.parse("cuda -arch=sm_90 -max-threads-per-block=512")
    assert custom.hardware_params.max_threads_per_block == 512
    assert Target.parse(str(custom)) == custom


def test_target_called_with_a_string_parses_it_as_tvm_does():
    assert Target("llvm -mcpu=core-avx2 -num-cores=1") == Target.parse("llvm -mcpu=core-avx2 -num-cores=1")
    assert Target("llvm") == Target.parse("llvm")
    with pytest.raises(ValueError, match=r"unknown target kind 'metal'"):
        Target("metal")
    with pytest.raises(ValueError, match=r"unknown target kind 'llvm -mcpu=znver3'"):
        Target("llvm -mcpu=znver3", mcpu="znver3")  # a string and fields: ambiguous


def test_as_target_accepts_targets_and_strings():
    t = Target.parse("llvm -num-cores=2")
    assert as_target(t) is t
    assert as_target("llvm -num-cores=2") == t
    assert t.hardware_params.num_cores == 2
    with pytest.raises(ValueError, match=r"target must be a string or a Target, got 3"):
        as_target(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("opencl", r"unknown target kind 'opencl'"),
        (
            "llvm -mfoo=1",
            r"unknown option -mfoo for target kind 'llvm'; known: -mtriple, -mcpu, -mattr, -num-cores",
        ),
        ("cuda -mcpu=x", r"unknown option -mcpu for target kind 'cuda'"),
        ("llvm -num-cores=abc", r"target option -num-cores=abc is not an integer"),
        ("llvm -num-cores=0", r"target option -num-cores=0 must be at least 1"),
        ("cuda -arch=80", r"target option -arch=80 is not a CUDA architecture like sm_80"),
        ("llvm -mattr=avx2", r"feature 'avx2' must look like \+name or -name"),
        ("llvm -mcpu=notacpu", r"-mcpu=notacpu: LLVM knows no processor 'notacpu' for triple"),
        ("llvm -mattr=+avx2,+notafeature", r"-mattr: LLVM knows no feature 'notafeature'"),
        ("llvm -mcpu=a -mcpu=b", r"target option -mcpu is given twice"),
        ("llvm mcpu", r"target option 'mcpu' in 'llvm mcpu' is not of the form -name=value"),
        ("", r"target string must be a non-empty string"),
    ],
)
def test_bad_target_strings(text, message):
    with pytest.raises(ValueError, match=message):
        Target.parse(text)
