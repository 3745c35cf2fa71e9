"""Compilation targets and the hardware parameters the search reads from them.

A ``Target`` is parsed from TVM-style strings::

    "llvm"                                            the host CPU (triple, cpu, features detected)
    "llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon -num-cores=4"
    "cuda -arch=sm_80"                                parsed only; CUDA code lives elsewhere

``str(target)`` prints the options that were given, in a fixed order, so it parses back to
an equal target (records store this string). Options left out are filled in when asked
for: a host ``llvm`` target reports the process triple, host CPU name and host features.
``Target("llvm -mcpu=...")`` (TVM's spelling) is the same as ``Target.parse``.

A target is checked when it is made, before anything compiles for it: ``-mcpu`` must be a
processor and each ``-mattr`` feature a feature LLVM knows for the triple (LLVM itself
ignores an unknown one with a warning, or aborts the process while compiling:
"64-bit code requested on a subtarget that doesn't support it"). The lists come from
LLVM's ``-mcpu=help``, asked once per triple in a child process. A host target whose
features this machine lacks (``-mattr=+avx512f`` on an AVX2 CPU) still builds and exports;
``missing_host_features`` names what it lacks, and running its code in this process
(``LLVMModule.get_kernel``, tuning with the local runner) is refused: it would die of SIGILL.

``HardwareParams`` are the eight numbers Ansor's search uses (paper section 4 and 5; TVM
``GetDefaultHardwareParams``): cores for parallel splits, vector width for the innermost
split, and the GPU limits that prune thread bindings and shared memory.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import subprocess
import sys
from dataclasses import dataclass, fields

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

#: the vector features an x86 -mcpu implies, for the vector width and the host check (TVM
#: keeps the same kind of list: topi's x86 ``target_has_avx512``); a CPU not listed implies
#: nothing, so give -mattr with it
_AVX512 = frozenset({"avx512f", "avx2", "avx", "fma"})
_AVX2 = frozenset({"avx2", "avx", "fma"})
X86_CPU_FEATURES: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        (
            "skylake-avx512", "skx", "cascadelake", "cooperlake", "cannonlake", "icelake-client",
            "icelake-server", "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids",
            "graniterapids", "graniterapids-d", "diamondrapids", "knl", "knm", "znver4", "znver5",
            "x86-64-v4",
        ),
        _AVX512,
    ),
    **dict.fromkeys(
        (
            "haswell", "broadwell", "skylake", "core-avx2", "alderlake", "raptorlake", "meteorlake",
            "arrowlake", "arrowlake-s", "lunarlake", "pantherlake", "gracemont", "sierraforest",
            "grandridge", "clearwaterforest", "znver1", "znver2", "znver3", "x86-64-v3",
        ),
        _AVX2,
    ),
    **dict.fromkeys(
        ("sandybridge", "ivybridge", "corei7-avx", "core-avx-i", "bdver1", "bdver2", "bdver3", "btver2"),
        frozenset({"avx"}),
    ),
}  # fmt: skip


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

    def __post_init__(self) -> None:
        if self.kind not in _OPTIONS:
            words = self.kind.split() if isinstance(self.kind, str) else []
            defaults = all(getattr(self, f.name) == f.default for f in fields(self) if f.name != "kind")
            if not (words and words[0] in _OPTIONS and defaults):
                raise ValueError(
                    f"unknown target kind {self.kind!r}; expected one of: llvm, cuda "
                    "(Target('llvm -mcpu=...') or Target.parse reads a whole target string)"
                )
            parsed = Target.parse(self.kind)  # TVM's Target("llvm -mcpu=..."): the string's options
            for f in fields(self):
                object.__setattr__(self, f.name, getattr(parsed, f.name))
            return
        if self.kind == "llvm":
            _check_llvm_names(self)

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
        """The triple code is built for: -mtriple as given, except that a 32-bit ARM triple
        is put in LLVM's four-part form (``armv7l-linux-gnueabihf`` ->
        ``armv7l-unknown-linux-gnueabihf``). LLVM reads the three-part spelling as vendor
        "linux", OS "gnueabihf" and no environment, and then calls libm with the soft-float
        convention and names integer division ``__divsi3`` instead of the EABI's
        ``__aeabi_idiv``: wrong results against a hard-float libm."""
        if self.kind == "cuda":
            return "nvptx64-nvidia-cuda"
        if self.mtriple is None:
            return host_triple()
        if _is_arm32(self.mtriple.split("-")[0]):
            parts = llvm.get_triple_parts(self.mtriple)
            return f"{self.mtriple.split('-')[0]}-{parts.Vendor}-{parts.OS}-{parts.Env}"
        return self.mtriple

    @property
    def arch_name(self) -> str:
        """The first component of the triple: "x86_64", "aarch64", "nvptx64", ..."""
        return self.triple.split("-")[0]

    @property
    def pointer_bits(self) -> int:
        """The width of a pointer and of C's ``size_t`` on the target: 32 for 32-bit ARM
        (``armv7l-linux-gnueabihf``: the packed ``void**`` arguments and the sizes passed to
        ``aligned_alloc`` are 32-bit there), 64 for x86-64, AArch64 and NVPTX64."""
        arch = self.arch_name
        return 32 if _is_arm32(arch) or arch in ("i386", "i486", "i586", "i686", "nvptx") else 64

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
        """Feature names switched on ("avx2", "neon", ...), without the leading '+': those
        of the CPU (the host's detected features for the host CPU, ``X86_CPU_FEATURES``
        for a named x86 CPU), plus -mattr's ``+name``, minus its ``-name``."""
        implied: set[str] = set()
        if self.kind == "llvm" and self.mcpu is None and self.mtriple is None:
            implied = {f[1:] for f in llvm.get_host_cpu_features().flatten().split(",") if f.startswith("+")}
        elif self.kind == "llvm" and self.mcpu is not None:
            implied = set(X86_CPU_FEATURES.get(self.mcpu, ())) if self.arch_name == "x86_64" else set()
        added = {f[1:] for f in self.mattr if f.startswith("+")}
        removed = {f[1:] for f in self.mattr if f.startswith("-")}
        return (implied | added) - removed

    def missing_host_features(self) -> list[str]:
        """The features this target's code may use that this machine's CPU lacks (sorted;
        empty for a target that runs here). Only features the host's CPUID reports on are
        judged (LLVM's tuning flags such as ``+prefer-256-bit`` are no instructions)."""
        if not self.is_host:
            return []
        host = llvm.get_host_cpu_features()
        return sorted(f for f in self.enabled_features() if f in host and not host[f])


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


def _is_arm32(arch: str) -> bool:
    """True for a 32-bit ARM architecture name ("armv7l", "armv7a", "arm", "thumbv7")."""
    return arch.startswith(("arm", "thumb")) and arch not in ("arm64", "arm64e")


def _vector_unit_bytes(target: Target) -> int:
    features = target.enabled_features()
    if "avx512f" in features:
        return 64
    if "avx2" in features or "avx" in features:
        return 32
    return 16


def _check_llvm_names(target: Target) -> None:
    """ValueError for a -mcpu or -mattr feature LLVM does not know for the target's triple
    (unchecked when LLVM has no back end for the triple: building reports that)."""
    if target.mcpu is None and not target.mattr:
        return
    known = llvm_cpus_and_features(target.triple)
    if known is None:
        return
    cpus, features = known
    if target.mcpu is not None and target.mcpu not in cpus:
        close = difflib.get_close_matches(target.mcpu, sorted(cpus), n=4)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"target option -mcpu={target.mcpu}: LLVM knows no processor '{target.mcpu}' for triple "
            f"{target.triple} ({len(cpus)} known){hint}"
        )
    for item in target.mattr:
        if item[1:] not in features:
            close = difflib.get_close_matches(item[1:], sorted(features), n=4)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"target option -mattr: LLVM knows no feature '{item[1:]}' for triple {target.triple}{hint}"
            )


_HELP_SCRIPT = """
import sys
import llvmlite.binding as llvm
llvm.initialize_all_targets()
llvm.initialize_all_asmprinters()
llvm.Target.from_triple(sys.argv[1]).create_target_machine(cpu="help")
"""


@functools.cache
def llvm_cpus_and_features(triple: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """(processors, features) LLVM knows for ``triple``, from what ``-mcpu=help`` prints
    ("Available CPUs for this target:" and "Available features for this target:" lists);
    None when LLVM has no back end for the triple or the listing fails. Asked in a child
    process: LLVM prints the lists to the C stderr."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _HELP_SCRIPT, triple], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sections: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in (done.stdout + done.stderr).splitlines():
        heading = re.fullmatch(r"Available (CPUs|features) for this target:", line.strip())
        if heading is not None:
            current = sections.setdefault(heading.group(1), set())
            continue
        entry = re.fullmatch(r"\s+([A-Za-z0-9._+-]+)\s+- .*", line)
        if current is not None and entry is not None:
            current.add(entry.group(1))
    if done.returncode != 0 or not sections.get("CPUs") or not sections.get("features"):
        return None
    return frozenset(sections["CPUs"]), frozenset(sections["features"])


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
