"""A register-tiled GEMM written by hand in the loop-nest IR (what Ansor's multi-level
tiling with cache_write produces, paper section 4.1): a ``C.local`` tile of MR x NR
accumulators, ``ii`` unrolled, ``ji`` vectorized, the k loop outside the tile, and the
outer tile loops fused into one parallel loop. Optionally B is first packed into panels
``Bp[jo, k, ji]`` so the inner loop reads it contiguously (layout rewrite)."""

from __future__ import annotations

from ir.expr import Var, const
from ir.tir import (
    Allocate,
    Buffer,
    BufferLoad,
    BufferStore,
    For,
    ForKind,
    MemoryScope,
    PrimFunc,
    seq,
)


def gemm_tir(
    n: int, m: int, k: int, mr: int = 4, nr: int = 32, kc: int | None = None, pack_b: bool = False
) -> PrimFunc:
    """C[n, m] = A[n, k] @ B[k, m] with an mr x nr register tile (n % mr == m % nr == 0).

    ``kc`` splits the k loop (cache blocking): the tile is loaded from / stored to C
    around each k block instead of being zeroed once.
    """
    assert n % mr == 0 and m % nr == 0
    kc = kc or k
    assert k % kc == 0
    A = Buffer("A", (n, k), "float32")
    B = Buffer("B", (k, m), "float32")
    C = Buffer("C", (n, m), "float32")
    local = Buffer("C_local", (mr, nr), "float32", scope=MemoryScope.LOCAL)
    tile = Var("tile")
    io, jo = tile // (m // nr), tile % (m // nr)
    ko, kk, ii, ji = Var("k.0"), Var("k.1"), Var("i.1"), Var("j.1")
    row = io * mr + ii
    col = jo * nr + ji
    kidx = ko * kc + kk
    acc = BufferLoad(local, (ii * nr + ji,))

    def tile_loop(body):
        return For(
            ii, const(0), const(mr), ForKind.UNROLLED, For(ji, const(0), const(nr), ForKind.VECTORIZED, body)
        )

    if pack_b:
        packed = Buffer("B_packed", (m // nr, k, nr), "float32")
        pj, pk, pl = Var("pj"), Var("pk"), Var("pl")
        pack = For(
            pj,
            const(0),
            const(m // nr),
            ForKind.PARALLEL,
            For(
                pk,
                const(0),
                const(k),
                ForKind.SERIAL,
                For(
                    pl,
                    const(0),
                    const(nr),
                    ForKind.VECTORIZED,
                    BufferStore(packed, BufferLoad(B, (pk * m + pj * nr + pl,)), ((pj * k + pk) * nr + pl,)),
                ),
            ),
        )
        b_value = BufferLoad(packed, ((jo * k + kidx) * nr + ji,))
    else:
        b_value = BufferLoad(B, (kidx * m + col,))
    update = BufferStore(local, acc + BufferLoad(A, (row * k + kidx,)) * b_value, (ii * nr + ji,))
    first = BufferStore(local, const(0.0, "float32"), (ii * nr + ji,))
    load_c = BufferStore(local, BufferLoad(C, (row * m + col,)), (ii * nr + ji,))
    store_c = BufferStore(C, acc, (row * m + col,))
    from ir.tir import IfThenElse

    init = IfThenElse(ko == 0, tile_loop(first), tile_loop(load_c)) if kc < k else tile_loop(first)
    inner = seq(init, For(kk, const(0), const(kc), ForKind.SERIAL, tile_loop(update)), tile_loop(store_c))
    body = For(
        tile,
        const(0),
        const((n // mr) * (m // nr)),
        ForKind.PARALLEL,
        Allocate(local, For(ko, const(0), const(k // kc), ForKind.SERIAL, inner)),
    )
    if pack_b:
        body = Allocate(packed, seq(pack, body))
    return PrimFunc("gemm", (A, B, C), body)
