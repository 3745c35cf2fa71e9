"""C stand-ins for built kernels, shared by the SSH runner tests: ``C[N, N] = A @ B`` with a
fault chosen at compile time (``-DCRASH``, ``-DHANG``, ``-DWRONG``, ``-DSTATUS``), compiled
to a shared object that the runner copies to a board and times with its harness."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

#: the matrices' side
N = 8

KERNEL_C = """
#define N %d
int default_function(void** args, int nargs) {
    const float* A = args[0]; const float* B = args[1]; float* C = args[2];
    if (nargs != 3) return -1;
    for (int i = 0; i < N; ++i)
        for (int j = 0; j < N; ++j) {
            float s = 0.0f;
            for (int k = 0; k < N; ++k) s += A[i * N + k] * B[k * N + j];
            C[i * N + j] = s;
        }
#if defined(CRASH)
    *(volatile int*)0 = 1;
#elif defined(HANG)
    for (volatile int x = 0;; ++x) {}
#elif defined(WRONG)
    C[3 * N + 5] += 0.5f;
#elif defined(STATUS)
    return 7;
#endif
    return 0;
}
"""


def c_library(directory: Path, behaviour: str | None, compiler: Sequence[str]) -> str:
    """The kernel compiled with the ``compiler`` command into ``directory`` (``behaviour``:
    None for the correct kernel, else one of the macros above); the shared object's path."""
    name = behaviour or "GOOD"
    source = directory / f"{name}.c"
    source.write_text(KERNEL_C % N)
    library = directory / f"{name}.so"
    flags = [f"-D{behaviour}"] if behaviour else []
    subprocess.run(
        [*compiler, "-O1", "-shared", "-fPIC", *flags, "-o", str(library), str(source)], check=True
    )
    return str(library)
