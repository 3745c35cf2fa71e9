"""What the loop emitters ask of the function being emitted.

``vectorize.py`` and ``parallel.py`` emit one kind of loop each; ``emitter.FunctionEmitter``
calls them with itself as the argument. They depend on this protocol, not on
``emitter.py``, so the dependency runs one way: emitter -> loop emitters -> protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from llvmlite import ir

from codegen.llvm.context import ModuleContext
from ir.expr import Var
from ir.tir import Buffer, For, Stmt


class Emitter(Protocol):
    """A function being emitted: its module, builders, the values of the variables and
    buffer pointers in scope, and the statement and loop emission the loop emitters reuse
    (``emitter.FunctionEmitter`` documents each)."""

    mc: ModuleContext
    fn: ir.Function
    #: the builder at the current position; ``entry_builder`` writes the entry block
    b: ir.IRBuilder
    entry_builder: ir.IRBuilder
    vars: dict[Var, ir.Value]
    buffers: dict[Buffer, ir.Value]

    def child(self, fn: ir.Function) -> Emitter: ...

    def finish(self) -> None: ...

    def stmt(self, s: Stmt) -> None: ...

    def var(self, v: Var) -> ir.Value: ...

    def buffer_ptr(self, buffer: Buffer) -> ir.Value: ...

    def element_ptr(self, buffer: Buffer, index: ir.Value, index_dtype: str) -> ir.Value: ...

    def load_scalar(self, buffer: Buffer, index: ir.Value, index_dtype: str) -> ir.Value: ...

    def store_scalar(self, buffer: Buffer, index: ir.Value, index_dtype: str, value: ir.Value) -> None: ...

    def loop_bounds(self, s: For) -> tuple[ir.Value, ir.Value]: ...

    def serial(self, s: For, metadata: ir.MDValue | None = None) -> None: ...

    def unrolled(self, s: For) -> None: ...

    def counted_loop(
        self,
        var: Var,
        lo: ir.Value,
        hi: ir.Value,
        emit_body: Callable[[], None],
        metadata: ir.MDValue | None = None,
    ) -> None: ...
