"""Which programs link a kernel's object file, and compile C, for a target triple.

The LLVM back end writes an object file for any triple llvmlite carries; turning it into a
shared library needs a linker for that triple, and the remote timing harness of
``ansor_py.measure.ssh`` needs a C compiler for it. For the host triple both are ``cc``.

For a board (AArch64, or 32-bit ARM such as ``armv7l-linux-gnueabihf``) candidates are
cross-compiled here, so the board needs nothing but sshd. The default cross toolchain is
zig's clang from the ``ziglang`` pip package (what ``python -m ziglang cc -target
aarch64-linux-gnu.2.17`` runs, called as the package's ``zig`` binary): the glibc version
is part of zig's target, so the harness and the kernels bind only symbol versions that
glibc 2.17 already had and load on old boards (Raspberry Pi OS Bullseye, Ubuntu 20.04,
JetPack 5) as well as new ones. Debian's cross toolchains link against the build
machine's glibc (2.36 on Debian 12), whose programs need that glibc or newer on the
board. The version is ``glibc=`` of ``find_linker`` / ``find_c_compiler``, else the
environment variable ``ANSOR_PY_GLIBC``, else ``DEFAULT_GLIBC``.

zig ships no libgomp, and kernels with parallel loops call ``GOMP_parallel``,
``omp_get_thread_num`` and ``omp_get_num_threads`` (``codegen.llvm.parallel``). They are
linked against a stub ``libgomp.so.1`` (``gomp_stub``) that zig builds once per target:
the same soname and symbol versions as GCC's libgomp, empty bodies. The stub only
satisfies the link; at run time the board's own ``libgomp.so.1`` is loaded and runs the
threads, as it would for a library linked against the real one.

Choice, in order: the explicit argument; the environment variable
``ANSOR_PY_<ARCH>_LINKER`` / ``ANSOR_PY_<ARCH>_CC`` (a command line, split like a shell
would; ``<ARCH>`` is the triple's first part, ``AARCH64`` or ``ARMV7L``); for a foreign
triple, zig when ``ziglang`` is installed, then Debian's cross GCC
(``aarch64-linux-gnu-gcc``, ``arm-linux-gnueabihf-gcc``), then for linking only LLVM's
``ld.lld`` with the cross libgomp given by its full path (lld does not search a cross
sysroot by itself). Nothing found raises ``ToolchainError`` naming the triple, what was
tried and what provides it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codegen.llvm.errors import CodegenError
from codegen.target import Target

#: the glibc a cross-built harness or kernel may assume on the board (zig's oldest for AArch64)
DEFAULT_GLIBC = "2.17"
#: libraries every kernel library is linked against: OpenMP for parallel loops, libm
KERNEL_LIBRARIES = ("gomp", "m")
#: the OpenMP runtime calls of compiled kernels -> their symbol version in GCC's libgomp
GOMP_SYMBOLS = {
    "GOMP_parallel": "GOMP_4.0",
    "omp_get_thread_num": "OMP_1.0",
    "omp_get_num_threads": "OMP_1.0",
}


class ToolchainError(CodegenError):
    """No linker or C compiler for a triple."""


@dataclass(frozen=True)
class Linker:
    """A command that links objects into a shared library: ``command -shared -o OUT OBJS``
    followed by ``libraries`` (``-lgomp -lm`` for a compiler driver, full paths for lld
    and for zig's libgomp stub)."""

    command: tuple[str, ...]
    libraries: tuple[str, ...]

    def link_command(self, output: str | Path, objects: Sequence[str | Path]) -> list[str]:
        return [*self.command, "-shared", "-o", str(output), *map(str, objects), *self.libraries]


@dataclass(frozen=True)
class CrossArch:
    """A board architecture: its GNU triple (zig's ``-target`` without the glibc version,
    the prefix of Debian's cross GCC and the name of its sysroot under /usr) and the
    Debian packages of that GCC."""

    gnu_triple: str
    packages: str

    @property
    def gcc(self) -> str:
        return f"{self.gnu_triple}-gcc"

    @property
    def sysroot(self) -> Path:
        return Path("/usr") / self.gnu_triple


def cross_arch(target: Target) -> CrossArch | None:
    """The board architecture of a foreign ``target`` (None for the host and for triples
    no cross toolchain is known for): ``aarch64-*`` -> AArch64; ``armv7l-*``, ``armv7-*``,
    ``arm-*`` -> 32-bit ARM, hard-float unless the triple ends in ``gnueabi``."""
    arch = target.arch_name
    if arch in ("aarch64", "arm64"):
        return CrossArch("aarch64-linux-gnu", "gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
    if arch.startswith(("arm", "thumb")):
        abi = "gnueabi" if target.triple.endswith("-gnueabi") else "gnueabihf"
        cross = "armhf" if abi == "gnueabihf" else "armel"
        return CrossArch(f"arm-linux-{abi}", f"gcc-arm-linux-{abi} libc6-dev-{cross}-cross")
    return None


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ansor_py`` (default ``~/.cache/ansor_py``): built helper programs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ansor_py"


def glibc_version(glibc: str | None = None) -> str:
    """``glibc``, else ``ANSOR_PY_GLIBC``, else ``DEFAULT_GLIBC``; checked to read "2.N"."""
    value = glibc or os.environ.get("ANSOR_PY_GLIBC", "").strip() or DEFAULT_GLIBC
    if re.fullmatch(r"2\.\d+", value) is None:
        raise ToolchainError(f"glibc version {value!r} must read like '2.17' (ANSOR_PY_GLIBC or glibc=)")
    return value


def zig_cc() -> tuple[str, ...] | None:
    """The command running zig's C compiler from the ``ziglang`` package, or None. The
    package's ``zig`` binary is called directly (``python -m ziglang cc`` would start an
    interpreter for every kernel linked)."""
    spec = importlib.util.find_spec("ziglang")
    if spec is None or not spec.submodule_search_locations:
        return None
    zig = Path(next(iter(spec.submodule_search_locations))) / "zig"
    return (str(zig), "cc") if zig.is_file() else None


def zig_compiler(cross: CrossArch, glibc: str | None = None) -> tuple[str, ...] | None:
    """zig's clang for ``cross`` and the glibc version (``glibc_version``), or None."""
    zig = zig_cc()
    if zig is None:
        return None
    return (*zig, "-target", f"{cross.gnu_triple}.{glibc_version(glibc)}")


def gomp_stub(compiler: Sequence[str]) -> Path:
    """A link-time ``libgomp.so.1`` for ``compiler``'s target (module docstring): soname
    ``libgomp.so.1``, ``GOMP_SYMBOLS`` with GCC's versions, no code behind them. Cached
    under ``cache_dir()`` by the digest of the command and the symbol list.

    It is linked against the target's libc on purpose: zig builds its glibc stubs and
    compiler-rt for a target on first use (tens of seconds, then cached), and doing it
    here, when ``find_linker`` is first asked, keeps that cost out of the first kernel
    link, which may run under a build timeout."""
    nodes: dict[str, list[str]] = {}
    for name, version in GOMP_SYMBOLS.items():
        nodes.setdefault(version, []).append(name)
    script = "\n".join(f"{v} {{ global: {'; '.join(names)}; }};" for v, names in sorted(nodes.items()))
    source = "".join(f"void {name}(void) {{}}\n" for name in GOMP_SYMBOLS)
    flags = ("-shared", "-Wl,-soname,libgomp.so.1")
    digest = hashlib.sha256("\0".join([*compiler, *flags, script, source]).encode()).hexdigest()
    stub = cache_dir() / "gomp-stub" / digest[:20] / "libgomp.so.1"
    if stub.exists():
        return stub
    stub.parent.mkdir(parents=True, exist_ok=True)
    work = stub.with_name(f"build.{os.getpid()}")
    work.mkdir(exist_ok=True)
    (work / "gomp.c").write_text(source)
    (work / "gomp.map").write_text(script + "\n")
    partial = work / "libgomp.so.1"
    version_script = f"-Wl,--version-script={work / 'gomp.map'}"
    command = [*compiler, *flags, version_script, "-o", str(partial), str(work / "gomp.c")]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ToolchainError(f"building the libgomp link stub failed ({shlex.join(command)}):\n{done.stderr}")
    partial.replace(stub)  # atomic: concurrent builders never see half a file
    shutil.rmtree(work, ignore_errors=True)
    return stub


def _from_env(variable: str) -> tuple[str, ...] | None:
    value = os.environ.get(variable, "").strip()
    return tuple(shlex.split(value)) if value else None


def _env_name(target: Target, kind: str) -> str:
    return f"ANSOR_PY_{target.arch_name.replace('-', '_').upper()}_{kind}"


def _driver_linker(command: Sequence[str]) -> Linker:
    return Linker(tuple(command), tuple(f"-l{name}" for name in KERNEL_LIBRARIES))


def _lld_linker(command: Sequence[str], sysroot: Path) -> Linker:
    """lld links against the sysroot's libraries by path (it has no notion of a driver)."""
    lib = sysroot / "lib"
    return Linker((*command, f"-L{lib}"), (str(lib / "libgomp.so.1"), "-lm"))


def _zig_linker(compiler: Sequence[str]) -> Linker:
    """zig links with -O2, as the harness is compiled: zig builds its compiler-rt and glibc
    pieces once per target and optimisation mode, so they are built once, optimised."""
    command = (*compiler, "-O2")
    return Linker(command, (str(gomp_stub(command)), "-lm"))


def find_linker(
    target: Target, linker: Sequence[str] | str | None = None, glibc: str | None = None
) -> Linker:
    """The linker for ``target``'s triple (module docstring: argument, environment, zig,
    cross GCC, lld). A given command whose name contains ``lld`` is used like ``ld.lld``
    (libraries by full path from the cross sysroot); a zig command (``zig cc`` or
    ``python -m ziglang cc``) links against the libgomp stub; any other command is a
    compiler driver (``-lgomp -lm``)."""
    if isinstance(linker, str):
        linker = shlex.split(linker)
    variable = _env_name(target, "LINKER")
    command = tuple(linker) if linker else _from_env(variable)
    cross = cross_arch(target)
    if command:
        if "lld" in Path(command[0]).name and cross is not None:
            return _lld_linker(command, cross.sysroot)
        if any("zig" in Path(part).name for part in command[:3]):
            return _zig_linker(command)
        return _driver_linker(command)
    if target.is_host:
        return _driver_linker(("cc",))
    if cross is None:
        raise ToolchainError(
            f"no linker for triple {target.triple}: no cross toolchain is known for this architecture; "
            f"set {variable} or pass linker=[...]"
        )
    zig = zig_compiler(cross, glibc)
    if zig is not None:
        return _zig_linker(zig)
    if shutil.which(cross.gcc):
        return _driver_linker((cross.gcc,))
    if shutil.which("ld.lld") and (cross.sysroot / "lib" / "libgomp.so.1").exists():
        return _lld_linker(("ld.lld",), cross.sysroot)
    raise ToolchainError(
        f"no linker for triple {target.triple}: tried {variable}, zig (pip package ziglang), {cross.gcc}, "
        f"ld.lld with {cross.sysroot}/lib/libgomp.so.1. Install ziglang (pip install ziglang), or "
        f"{cross.packages} (or lld for linking only), or pass linker=[...]"
    )


def find_c_compiler(
    target: Target, compiler: Sequence[str] | str | None = None, glibc: str | None = None
) -> tuple[str, ...]:
    """A C compiler driver producing executables for ``target``'s triple (module
    docstring: argument, environment, zig, cross GCC)."""
    if isinstance(compiler, str):
        compiler = shlex.split(compiler)
    variable = _env_name(target, "CC")
    command = tuple(compiler) if compiler else _from_env(variable)
    if command:
        return command
    if target.is_host:
        return ("cc",)
    cross = cross_arch(target)
    if cross is None:
        raise ToolchainError(
            f"no C compiler for triple {target.triple}: no cross toolchain is known for this "
            f"architecture; set {variable} or pass compiler=[...]"
        )
    zig = zig_compiler(cross, glibc)
    if zig is not None:
        return zig
    if shutil.which(cross.gcc):
        return (cross.gcc,)
    raise ToolchainError(
        f"no C compiler for triple {target.triple}: tried {variable}, zig (pip package ziglang) and "
        f"{cross.gcc}. Install ziglang (pip install ziglang) or {cross.packages}, or pass compiler=[...]"
    )
