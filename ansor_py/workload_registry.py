"""Registered workloads: a function declaring tensors, found again from its name and args.

A workload key is ``json.dumps([func_name, *args])`` for a registered function, as in TVM,
so a record written by one process is understood by another that registered the same
function. DAGs built from tensors directly get ``ComputeDAG.workload_key()`` instead (an
md5 of the DAG's text plus the I/O shapes).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ir.te import Tensor

WorkloadFunc = Callable[..., Sequence[Tensor]]
F = TypeVar("F", bound=WorkloadFunc)

#: name -> function returning the workload's input and output tensors
WORKLOAD_FUNCS: dict[str, WorkloadFunc] = {}


class WorkloadError(ValueError):
    """An unknown workload name, or a workload key that cannot be decoded."""


def register_workload(func: F | str, f: F | None = None, override: bool = False) -> Any:
    """Register a workload function (decorator), as ``tvm.auto_scheduler.register_workload``.

    ``@register_workload`` uses the function's name; ``register_workload("name", f)`` or
    ``@register_workload("name")`` a given one. Re-registering a name needs ``override``.
    """
    if isinstance(func, str):
        name = func

        def register(g: F) -> F:
            _add(name, g, override)
            return g

        return register(f) if f is not None else register
    _add(func.__name__, func, override)
    return func


def _add(name: str, func: WorkloadFunc, override: bool) -> None:
    if name in WORKLOAD_FUNCS and WORKLOAD_FUNCS[name] is not func and not override:
        raise WorkloadError(f"workload '{name}' is already registered; pass override=True to replace it")
    WORKLOAD_FUNCS[name] = func


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    raise WorkloadError(
        f"workload argument {value!r} of type {type(value).__name__} is not JSON-serialisable"
    )


def make_workload_key(func: WorkloadFunc | str, args: Sequence[Any]) -> str:
    if isinstance(func, str):
        name = func
    else:  # the name it was registered under, which may differ from func.__name__
        name = next((n for n, f in WORKLOAD_FUNCS.items() if f is func), func.__name__)
    if name not in WORKLOAD_FUNCS:
        raise WorkloadError(f"workload '{name}' is not registered; decorate it with @register_workload")
    return json.dumps([name, *_jsonable(list(args))])


def decode_workload_key(key: str) -> tuple[str, list[Any]]:
    """``(name or DAG hash, args or shapes)`` of a workload key."""
    try:
        decoded = json.loads(key)
    except json.JSONDecodeError as error:
        raise WorkloadError(f"workload key {key!r} is not JSON: {error}") from None
    if not isinstance(decoded, list) or not decoded or not isinstance(decoded[0], str):
        raise WorkloadError(f"workload key {key!r} must be a JSON list starting with a name")
    return decoded[0], decoded[1:]


def workload_key_to_tensors(key: str) -> list[Tensor]:
    """Call the registered function a key names with the key's arguments."""
    name, args = decode_workload_key(key)
    if name not in WORKLOAD_FUNCS:
        raise WorkloadError(f"workload key {key!r} names '{name}', which is not registered in this process")
    return list(WORKLOAD_FUNCS[name](*args))
