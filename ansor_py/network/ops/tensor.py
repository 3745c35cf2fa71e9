"""Placeholder: filled in by the op family's author."""

from __future__ import annotations

from ansor_py.network.ops.base import OpDef

TENSOR_OPS: dict[str, OpDef] = {}
