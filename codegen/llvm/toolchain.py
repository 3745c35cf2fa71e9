"""Which programs link a kernel's object file, and compile C, for a target triple.

The LLVM back end writes an object file for any triple llvmlite carries; turning it into a
shared library needs a linker for that triple, and the remote timing harness of
``ansor_py.measure.ssh`` needs a C compiler for it. For the host triple both are ``cc``.
For AArch64 (candidates are cross-compiled here, so a board needs nothing but sshd) they
are Debian's cross GCC ``aarch64-linux-gnu-gcc`` or, for linking only, LLVM's ``ld.lld``
with the arm64 libgomp given by its full path (lld does not search a cross sysroot by
itself).

Choice, in order: the explicit argument; the environment variable
``ANSOR_PY_<ARCH>_LINKER`` / ``ANSOR_PY_<ARCH>_CC`` (a command line, split like a shell
would); the first candidate found on PATH. Nothing found raises ``ToolchainError`` naming
the triple, what was tried and the Debian packages that provide it.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codegen.llvm.errors import CodegenError
from codegen.target import Target

#: where Debian's cross packages put the AArch64 libraries (libgomp, libm, libc)
AARCH64_SYSROOT = Path("/usr/aarch64-linux-gnu")
#: libraries every kernel library is linked against: OpenMP for parallel loops, libm
KERNEL_LIBRARIES = ("gomp", "m")
#: the Debian packages behind each architecture's cross tools
_PACKAGES = {"aarch64": "gcc-aarch64-linux-gnu libc6-dev-arm64-cross (or lld for linking only)"}


class ToolchainError(CodegenError):
    """No linker or C compiler for a triple."""


@dataclass(frozen=True)
class Linker:
    """A command that links objects into a shared library: ``command -shared -o OUT OBJS``
    followed by ``libraries`` (``-lgomp -lm`` for a compiler driver, full paths for lld)."""

    command: tuple[str, ...]
    libraries: tuple[str, ...]

    def link_command(self, output: str | Path, objects: Sequence[str | Path]) -> list[str]:
        return [*self.command, "-shared", "-o", str(output), *map(str, objects), *self.libraries]


def _arch(target: Target) -> str:
    return target.arch_name.replace("-", "_")


def _from_env(variable: str) -> tuple[str, ...] | None:
    value = os.environ.get(variable, "").strip()
    return tuple(shlex.split(value)) if value else None


def _driver_linker(command: Sequence[str]) -> Linker:
    return Linker(tuple(command), tuple(f"-l{name}" for name in KERNEL_LIBRARIES))


def _lld_linker(command: Sequence[str], sysroot: Path) -> Linker:
    """lld links against the sysroot's libraries by path (it has no notion of a driver)."""
    lib = sysroot / "lib"
    gomp = lib / "libgomp.so.1"
    return Linker((*command, f"-L{lib}"), (str(gomp), "-lm"))


def find_linker(target: Target, linker: Sequence[str] | str | None = None) -> Linker:
    """The linker for ``target``'s triple (module docstring: argument, environment, PATH).

    For AArch64 a given command whose name contains ``lld`` is used like ``ld.lld``
    (libraries by full path from ``AARCH64_SYSROOT``); any other command as a compiler
    driver (``-lgomp -lm``)."""
    arch = _arch(target)
    if isinstance(linker, str):
        linker = shlex.split(linker)
    command = tuple(linker) if linker else _from_env(f"ANSOR_PY_{arch.upper()}_LINKER")
    if command:
        if "lld" in Path(command[0]).name and arch == "aarch64":
            return _lld_linker(command, AARCH64_SYSROOT)
        return _driver_linker(command)
    if target.is_host:
        return _driver_linker(("cc",))
    if arch == "aarch64":
        if shutil.which("aarch64-linux-gnu-gcc"):
            return _driver_linker(("aarch64-linux-gnu-gcc",))
        if shutil.which("ld.lld") and (AARCH64_SYSROOT / "lib" / "libgomp.so.1").exists():
            return _lld_linker(("ld.lld",), AARCH64_SYSROOT)
        tried = "aarch64-linux-gnu-gcc, ld.lld with /usr/aarch64-linux-gnu/lib/libgomp.so.1"
    else:
        tried = "(no known cross linker for this architecture)"
    raise ToolchainError(
        f"no linker for triple {target.triple}: tried ANSOR_PY_{arch.upper()}_LINKER, {tried}. "
        f"Install {_PACKAGES.get(arch, 'a cross toolchain')} or pass linker=[...]"
    )


def find_c_compiler(target: Target, compiler: Sequence[str] | str | None = None) -> tuple[str, ...]:
    """A C compiler driver producing executables for ``target``'s triple (module docstring)."""
    arch = _arch(target)
    if isinstance(compiler, str):
        compiler = shlex.split(compiler)
    command = tuple(compiler) if compiler else _from_env(f"ANSOR_PY_{arch.upper()}_CC")
    if command:
        return command
    if target.is_host:
        return ("cc",)
    if arch == "aarch64" and shutil.which("aarch64-linux-gnu-gcc"):
        return ("aarch64-linux-gnu-gcc",)
    raise ToolchainError(
        f"no C compiler for triple {target.triple}: tried ANSOR_PY_{arch.upper()}_CC and "
        f"aarch64-linux-gnu-gcc. Install {_PACKAGES.get(arch, 'a cross toolchain')} or pass compiler=[...]"
    )
