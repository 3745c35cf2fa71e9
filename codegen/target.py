"""Compilation targets and the hardware parameters the search reads from them.

A ``Target`` is parsed from TVM-style strings::

    "llvm"                                            the host CPU (triple, cpu, features detected)
    "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon -num-cores=4"
    "cuda -arch=sm_80"                                parsed only; CUDA code lives elsewhere

``str(target)`` prints the options that were given, in a fixed order, so it parses back to
an equal target (records store this string). Options left out are filled in when asked
for: a host ``llvm`` target reports the process triple, host CPU name and host features.

``HardwareParams`` are the eight numbers Ansor's search uses (paper section 4 and 5; TVM
``GetDefaultHardwareParams``): cores for parallel splits, vector width for the innermost
split, and the GPU limits that prune thread bindings and shared memory.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import llvmlite.binding as llvm

INT32_MAX = 2**31 - 1

#: options each target kind accepts (the text after "-" and before "=")
#: cores of the usual board around an ARM core (-mcpu): Raspberry Pi 3 (A53), 4 (A72), 5
#: (A76), Jetson Orin (A78AE: 6-12, taken as 8), Graviton2 (neoverse-n1: 64), Graviton3
#: (neoverse-v1: 64), Graviton4 (neoverse-v2: 96)
ARM_CORES = {
    "cortex-a53": 4,
    "cortex-a55": 4,
    "cortex-a72": 4,
    "cortex-a73": 4,
    "cortex-a76": 4,
    "cortex-a78": 8,
    "cortex-a78ae": 8,
    "neoverse-n1": 64,
    "neoverse-v1": 64,
    "neoverse-n2": 64,
    "neoverse-v2": 96,
}
#: cores assumed for a foreign-triple board with neither -num-cores nor a known -mcpu
DEFAULT_BOARD_CORES = 4
_LLVM_OPTIONS = ("mtriple", "mcpu", "mattr", "num-cores")
_CUDA_OPTIONS = ("arch", "max-threads-per-block", "max-shared-memory-per-block")
_OPTIONS = {"llvm": _LLVM_OPTIONS, "cuda": _CUDA_OPTIONS}


@dataclass(frozen=True)
class HardwareParams:
    """Ansor's ``HardwareParams`` (TVM ``auto_scheduler.HardwareParams``), eight fields."""

    num_cores: int
    vector_unit_bytes: int
    cache_line_bytes: int
    max_shared_memory_per_block: int
    max_local_memory_per_block: int
    max_threads_per_block: int
    max_vthread_extent: int
    warp_size: int

    def to_record(self) -> list[int]:
        """The fields in declaration order, as stored in a measurement record."""
        return [
            self.num_cores,
            self.vector_unit_bytes,
            self.cache_line_bytes,
            self.max_shared_memory_per_block,
            self.max_local_memory_per_block,
            self.max_threads_per_block,
            self.max_vthread_extent,
            self.warp_size,
        ]


@dataclass(frozen=True)
class Target:
    """A compilation target. Build one with ``Target.parse`` (or ``as_target``).

    Fields hold the options as given (``None`` / empty when left out); the properties
    ``triple``, ``cpu``, ``features`` and ``num_cores`` give the effective values.
    """

    kind: str
    mtriple: str | None = None
    mcpu: str | None = None
    mattr: tuple[str, ...] = ()
    given_num_cores: int | None = None
    arch: str | None = None
    given_max_threads_per_block: int | None = None
    given_max_shared_memory_per_block: int | None = None

    # parsing and printing -----------------------------------------------------------------
    @staticmethod
    def parse(text: str) -> Target:
        """Parse ``"<kind> -opt=value ..."``; unknown kinds and options raise ValueError."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"target string must be a non-empty string, got {text!r}")
        kind, *words = text.split()
        if kind not in _OPTIONS:
            raise ValueError(f"unknown target kind {kind!r} in {text!r}; expected one of: llvm, cuda")
        values: dict[str, str] = {}
        for word in words:
            match = re.fullmatch(r"-{1,2}([A-Za-z0-9_-]+)=(\S+)", word)
            if match is None:
                raise ValueError(f"target option {word!r} in {text!r} is not of the form -name=value")
            name, value = match.group(1), match.group(2)
            if name not in _OPTIONS[kind]:
                known = ", ".join(f"-{o}" for o in _OPTIONS[kind])
                raise ValueError(f"unknown option -{name} for target kind {kind!r}; known: {known}")
            if name in values:
                raise ValueError(f"target option -{name} is given twice in {text!r}")
            values[name] = value
        if kind == "llvm":
            return Target(
                kind="llvm",
                mtriple=values.get("mtriple"),
                mcpu=values.get("mcpu"),
                mattr=_parse_mattr(values["mattr"]) if "mattr" in values else (),
                given_num_cores=_positive_int("num-cores", values.get("num-cores")),
            )
        arch = values.get("arch", "sm_80")
        if re.fullmatch(r"sm_\d{2,3}[a-z]?", arch) is None:
            raise ValueError(f"target option -arch={arch} is not a CUDA architecture like sm_80")
        return Target(
            kind="cuda",
            arch=arch,
            given_max_threads_per_block=_positive_int(
                "max-threads-per-block", values.get("max-threads-per-block")
            ),
            given_max_shared_memory_per_block=_positive_int(
                "max-shared-memory-per-block", values.get("max-shared-memory-per-block")
            ),
        )

    def __str__(self) -> str:
        parts = [self.kind]
        if self.kind == "llvm":
            if self.mtriple is not None:
                parts.append(f"-mtriple={self.mtriple}")
            if self.mcpu is not None:
                parts.append(f"-mcpu={self.mcpu}")
            if self.mattr:
                parts.append(f"-mattr={','.join(self.mattr)}")
            if self.given_num_cores is not None:
                parts.append(f"-num-cores={self.given_num_cores}")
        else:
            parts.append(f"-arch={self.arch}")
            if self.given_max_threads_per_block is not None:
                parts.append(f"-max-threads-per-block={self.given_max_threads_per_block}")
            if self.given_max_shared_memory_per_block is not None:
                parts.append(f"-max-shared-memory-per-block={self.given_max_shared_memory_per_block}")
        return " ".join(parts)

    # effective values ---------------------------------------------------------------------
    @property
    def is_host(self) -> bool:
        """True for an LLVM target whose code runs in this process (no foreign triple)."""
        return self.kind == "llvm" and (self.mtriple is None or _same_triple(self.mtriple, host_triple()))

    @property
    def triple(self) -> str:
        if self.kind == "cuda":
            return "nvptx64-nvidia-cuda"
        return self.mtriple if self.mtriple is not None else host_triple()

    @property
    def arch_name(self) -> str:
        """The first component of the triple: "x86_64", "aarch64", "nvptx64", ..."""
        return self.triple.split("-")[0]

    @property
    def cpu(self) -> str:
        if self.mcpu is not None:
            return self.mcpu
        if self.kind == "llvm" and self.mtriple is None:
            return llvm.get_host_cpu_name()
        return "generic"

    @property
    def features(self) -> str:
        """The LLVM feature string ("+avx2,+fma,..."): -mattr, or the host's when detected."""
        if self.mattr:
            return ",".join(self.mattr)
        if self.kind == "llvm" and self.mtriple is None and self.mcpu is None:
            return llvm.get_host_cpu_features().flatten()
        return ""

    @property
    def num_cores(self) -> int:
        """-num-cores; else this machine's CPUs for the host, the usual core count of the
        board's -mcpu (ARM_CORES) for a foreign triple, and 4 for an unknown board (pass
        -num-cores: ``python -m ansor_py check-host`` prints the board's count)."""
        if self.given_num_cores is not None:
            return self.given_num_cores
        if self.kind == "cuda":
            return -1
        if self.is_host:
            return os.cpu_count() or 1
        return ARM_CORES.get(self.mcpu or "", DEFAULT_BOARD_CORES)

    @property
    def keys(self) -> tuple[str, ...]:
        """Search-rule keys: ("cpu",) for x86, ("arm_cpu", "cpu") for ARM, ("cuda", "gpu")."""
        if self.kind == "cuda":
            return ("cuda", "gpu")
        if self.arch_name.startswith(("aarch64", "arm")):
            return ("arm_cpu", "cpu")
        return ("cpu",)

    @property
    def hardware_params(self) -> HardwareParams:
        return default_hardware_params(self)

    def enabled_features(self) -> set[str]:
        """Feature names switched on ("avx2", "neon", ...), without the leading '+'."""
        return {f[1:] for f in self.features.split(",") if f.startswith("+")}


def default_hardware_params(target: Target) -> HardwareParams:
    """Per-target defaults, as TVM's ``HardwareParamsNode::GetDefaultHardwareParams``
    (``src/auto_scheduler/search_task.cc``), except that the CPU vector width is derived
    from the features: 64 bytes with AVX-512F, 32 with AVX/AVX2, 16 with SSE or NEON."""
    if target.kind == "cuda":
        warp = 32
        return HardwareParams(
            num_cores=target.num_cores,
            vector_unit_bytes=16,
            cache_line_bytes=64,
            max_shared_memory_per_block=target.given_max_shared_memory_per_block or 48 * 1024,
            max_local_memory_per_block=INT32_MAX,
            max_threads_per_block=target.given_max_threads_per_block or 1024,
            max_vthread_extent=warp // 4,
            warp_size=warp,
        )
    return HardwareParams(
        num_cores=target.num_cores,
        vector_unit_bytes=_vector_unit_bytes(target),
        cache_line_bytes=64,
        max_shared_memory_per_block=0,
        max_local_memory_per_block=0,
        max_threads_per_block=0,
        max_vthread_extent=0,
        warp_size=0,
    )


def as_target(target: str | Target) -> Target:
    """Accept a Target or its string form."""
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        return Target.parse(target)
    raise ValueError(f"target must be a string or a Target, got {target!r} of type {type(target).__name__}")


def host_triple() -> str:
    return llvm.get_process_triple()


# ------------------------------------------------------------------------------------------
# helpers


def _vector_unit_bytes(target: Target) -> int:
    features = target.enabled_features()
    if "avx512f" in features:
        return 64
    if "avx2" in features or "avx" in features:
        return 32
    return 16


def _parse_mattr(value: str) -> tuple[str, ...]:
    items = tuple(v for v in value.split(",") if v)
    for item in items:
        if not re.fullmatch(r"[+-][A-Za-z0-9._-]+", item):
            raise ValueError(f"target option -mattr: feature {item!r} must look like +name or -name")
    return items


def _positive_int(option: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"target option -{option}={value} is not an integer") from None
    if number < 1:
        raise ValueError(f"target option -{option}={value} must be at least 1")
    return number


def _same_triple(a: str, b: str) -> bool:
    """Compare triples by architecture and OS ("x86_64-linux-gnu" == "x86_64-unknown-linux-gnu")."""

    def parts(t: str) -> tuple[str, str]:
        fields = t.split("-")
        return fields[0], "linux" if "linux" in fields else fields[-1]

    return parts(a) == parts(b)
