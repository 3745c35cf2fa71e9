"""A guarded read is never executed: the input array fills exactly one page and the pages
on both sides are PROT_NONE, so touching A[-1] or A[n] kills the process (SIGSEGV).
Each check runs in a child process so a crash fails the test instead of the session."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SETUP = textwrap.dedent(
    """
    import ctypes, mmap
    import numpy as np
    from codegen.llvm import build
    from ir.expr import Var, const, select
    from ir.tir import Buffer, BufferLoad, BufferStore, For, ForKind, IfThenElse, PrimFunc

    PAGE = mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    keep = []

    def guarded_floats():
        '''float32 array filling one page, with inaccessible pages before and after.'''
        region = mmap.mmap(-1, 3 * PAGE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        base = ctypes.addressof(ctypes.c_char.from_buffer(region))
        for page in (0, 2):
            assert libc.mprotect(base + page * PAGE, PAGE, 0) == 0
        keep.append(region)
        array = np.frombuffer(region, dtype=np.float32, count=PAGE // 4, offset=PAGE)
        array[:] = np.random.default_rng(0).uniform(1, 2, PAGE // 4)
        return array

    def loop(var, extent, body, kind):
        return For(var, const(0), const(extent), kind, body)

    a = guarded_floats()
    n = a.size
    A = Buffer("A", (n,), "float32")
    i, j = Var("i"), Var("j")
    """
)

CHECKS = textwrap.dedent(
    """
    inside = (i >= 1) & (i <= n)
    for kind in (ForKind.SERIAL, ForKind.VECTORIZED):
        # contiguous read guarded by Select (masked vector load)
        B = Buffer("B", (n + 2,), "float32")
        body = BufferStore(B, select(inside, BufferLoad(A, (i - 1,)), const(-1.0)), (i,))
        b = np.zeros(n + 2, "float32")
        build(PrimFunc("pad", (A, B), loop(i, n + 2, body, kind)))(a, b)
        assert (b[1:-1] == a).all() and b[0] == -1 and b[-1] == -1

        # strided gather guarded by Select: A[2 * (i - 1) + 1] for 1 <= i <= n / 2
        half = n // 2
        G = Buffer("G", (half + 2,), "float32")
        cond = (i >= 1) & (i <= half)
        body = BufferStore(G, select(cond, BufferLoad(A, (2 * (i - 1) + 1,)), const(-1.0)), (i,))
        g = np.zeros(half + 2, "float32")
        build(PrimFunc("gather", (A, G), loop(i, half + 2, body, kind)))(a, g)
        assert (g[1:-1] == a[1::2]).all() and g[0] == -1 and g[-1] == -1

        # IfThenElse with a per-lane condition guarding the read (masked store)
        C = Buffer("C", (n + 2,), "float32")
        body = IfThenElse(inside, BufferStore(C, BufferLoad(A, (i - 1,)) * 2.0, (i,)))
        c = np.full(n + 2, 5.0, "float32")
        build(PrimFunc("guarded_if", (A, C), loop(i, n + 2, body, kind)))(a, c)
        assert (c[1:-1] == 2 * a).all() and c[0] == 5 and c[-1] == 5

        # a lane-independent address under a per-lane condition: A[j - 1] at j == 0
        D = Buffer("D", (3, 8), "float32")
        cond = (j >= 1) & (i >= 0)
        body = BufferStore(D, select(cond, BufferLoad(A, (j - 1,)), const(-1.0)), (j * 8 + i,))
        d = np.zeros((3, 8), "float32")
        build(PrimFunc("uniform", (A, D), loop(j, 3, loop(i, 8, body, kind), ForKind.SERIAL)))(a, d)
        assert (d[0] == -1).all() and (d[1] == a[0]).all() and (d[2] == a[1]).all()
    print("ok")
    """
)

UNGUARDED = textwrap.dedent(
    """
    B = Buffer("B", (n + 1,), "float32")
    body = BufferStore(B, BufferLoad(A, (i - 1,)), (i,))
    b = np.zeros(n + 1, "float32")
    build(PrimFunc("unguarded", (A, B), loop(i, n + 1, body, ForKind.SERIAL)))(a, b)
    print("survived")
    """
)


def _run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SETUP + script], capture_output=True, text=True, timeout=120)


def test_guarded_reads_never_touch_neighbouring_pages():
    done = _run(CHECKS)
    assert done.returncode == 0, f"child exited with {done.returncode}:\n{done.stderr[-3000:]}"
    assert done.stdout.strip() == "ok"


def test_the_guard_pages_do_catch_an_unguarded_read():
    """Negative control: reading A[-1] without a guard must crash the child."""
    done = _run(UNGUARDED)
    assert done.returncode != 0 and "survived" not in done.stdout
