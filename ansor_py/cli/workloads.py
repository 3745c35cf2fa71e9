"""The workloads ``ansor-py tune --workload NAME --args ...`` knows by name.

A workload is a function registered in ``ansor_py.workload_registry`` (TVM's
``register_workload``); a record names it by its workload key ``[name, *args]``, so a log
written by ``tune --workload matmul --args 512 512 512`` is read back by any process that
registered the same function under the same name. The command line registers
``BUILTIN_WORKLOADS``, the operators of the Ansor paper's benchmark suite (section 7.1,
declared in ``ir.topi.workloads``), when a command starts, never on import; ``--import
MODULE`` imports a user's module whose ``@register_workload`` functions then count too.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Sequence
from typing import Any

from ansor_py.cli.options import CommandError, help_text
from ansor_py.workload_registry import WORKLOAD_FUNCS, WorkloadFunc, register_workload
from ir.topi import workloads as topi

#: name -> declaration, as registered by ``register_builtin_workloads``
BUILTIN_WORKLOADS: dict[str, WorkloadFunc] = {
    "matmul": topi.gemm,
    "batch_matmul": topi.batch_gemm,
    "matmul_bias_relu": topi.matmul_bias_relu,
    "conv1d": topi.conv1d,
    "conv2d": topi.conv2d_layer,
    "conv3d": topi.conv3d,
    "depthwise_conv2d": topi.depthwise,
    "conv2d_transpose": topi.t2d,
    "capsule_conv2d": topi.capsule,
    "norm": topi.norm,
    "conv2d_bn_relu": topi.conv2d_bn_relu,
    "attention_scores": topi.tbs,
}


def register_builtin_workloads() -> None:
    """Register ``BUILTIN_WORKLOADS`` under their names, leaving alone a name this
    process already registered (a user's own ``matmul`` wins)."""
    for name, func in BUILTIN_WORKLOADS.items():
        if name not in WORKLOAD_FUNCS:
            register_workload(name, func)


def import_workload_modules(modules: Sequence[str], command: str) -> None:
    """Import each module (found from the current directory too), so that the workloads
    it registers with ``@register_workload`` can be named."""
    if modules and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            raise CommandError(f"{command}: --import {module}: {error}") from None


def parse_workload_arg(text: str) -> int | float | str:
    """A command-line word as a workload argument: an int, else a float, else the string
    (a dtype such as "float32", a layout such as "NCHW")."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def workload_args(name: str, texts: Sequence[str], command: str) -> list[Any]:
    """The arguments of workload ``name`` parsed from ``texts``, checked against the
    function's signature; CommandError naming the workload and what it takes."""
    if name not in WORKLOAD_FUNCS:
        known = ", ".join(sorted(WORKLOAD_FUNCS))
        raise CommandError(f"{command}: unknown workload '{name}'; known workloads: {known}")
    args = [parse_workload_arg(text) for text in texts]
    signature = plain_signature(WORKLOAD_FUNCS[name])
    try:
        signature.bind(*args)
    except TypeError:
        given = " ".join(texts) or "none"
        raise CommandError(
            f"{command}: workload '{name}' takes {signature}; the arguments given ({given}) do not fit it"
        ) from None
    return args


def plain_signature(func: WorkloadFunc) -> inspect.Signature:
    """``func``'s signature without annotations: "(N, M, K, dtype='float32')"."""
    signature = inspect.signature(func)
    parameters = [p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
    return signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)


def workload_listing() -> str:
    """Each registered workload: its name and signature, and the first paragraph of its
    docstring."""
    lines = ["registered workloads (give --workload NAME --args ARG...):"]
    for name in sorted(WORKLOAD_FUNCS):
        func = WORKLOAD_FUNCS[name]
        summary = " ".join(help_text(inspect.getdoc(func)).split("\n\n")[0].split())
        lines.append(f"  {name}{plain_signature(func)}")
        if summary:
            lines.append(f"      {summary}")
    return "\n".join(lines)
