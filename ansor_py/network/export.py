"""``export_library``: a whole compiled network as ONE shared object with a C entry point.

TVM's ``relay.build(...).export_library`` writes one library holding every fused kernel, the
graph executor's JSON and the parameters, run by the TVM runtime. Here the library needs no
runtime at all: the execution plan itself is compiled into it. ``network_entry.c`` (package
data) is the fixed part; a generated ``network_tables.h`` describes one network:

* the kernel calls in execution order, each a packed function ``int32_t k(void** args,
  int32_t nargs)`` (``codegen.llvm.build``) compiled for the export target, once per
  distinct (workload key, schedule): identical subgraphs share one kernel symbol;
* where each kernel argument lives: a graph input or output (the caller's buffers), a weight
  (a byte offset into the weights blob) or an intermediate value (a byte offset into one
  arena, the network's memory plan);
* copies for outputs no kernel writes (an output that is a graph input, a weight, or the
  same value listed twice).

The C side (``network_entry.c``'s comment) exports ``ansor_network_run(inputs, outputs)``,
``ansor_network_num_inputs/outputs``, per-position name/dtype/shape/nbytes queries and
``ansor_network_workspace_bytes``. Weights are embedded (``weights="embed"``) by an assembler
file whose ``.incbin`` puts the blob into ``.rodata``, assembled by the target's C compiler
(fast for hundreds of MB: nothing is turned into C text), or written (``weights="file"``) to
``<library stem>.weights`` beside the library, read once on the first call. Kernel symbols
are hidden: two exported networks can live in one process.

``NetworkProgram`` is what the exporter needs of a network; ``program_of`` reads it off the
executor's ``Network``. Running the result: ``ansor_py.network.export_run`` (ctypes loader
for the host, a C driver over SSH for a board).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ansor_py.network.memory_plan import BufferRequest, lifetimes, plan_memory
from ansor_py.network.subgraph import Subgraph
from ansor_py.network.types import TensorType
from codegen.llvm import LLVMModule
from codegen.llvm import build as llvm_build
from codegen.llvm.toolchain import ToolchainError, find_c_compiler, find_linker
from codegen.target import Target, as_target
from ir.loop_state.state import LoopState
from ir.lower.lower import lower

ENTRY_SOURCE = Path(__file__).with_name("network_entry.c")
#: alignment of every weight and arena buffer (a cache line, and AVX-512's vector width)
ALIGNMENT = 64
#: ``network_entry.c``'s kinds of argument location
ARG_INPUT, ARG_OUTPUT, ARG_WEIGHT, ARG_ARENA = range(4)
WEIGHTS_MAGIC = b"ANSORPYW"
WEIGHTS_HEADER_BYTES = 64
WEIGHT_MODES = ("embed", "file")
#: the ELF section holding the library's JSON description (``describe``)
DESCRIPTION_SECTION = ".ansor_network"


class ExportError(ValueError):
    """A network that cannot be exported as given (a bad plan, mode or name)."""


@dataclass(frozen=True)
class KernelCall:
    """One kernel call: the subgraph (its DAG's tensors are the arguments: ``inputs`` then
    ``outputs``) and its schedule (None: the naive one). ``module``: the kernel already
    compiled (by the executor), reused when its target is the export target."""

    subgraph: Subgraph
    state: LoopState | None
    module: LLVMModule | None = None


@dataclass(frozen=True)
class NetworkProgram:
    """What export needs of a built network.

    ``types`` maps every value to its type; ``arena_offsets`` gives the byte offset of every
    value that is neither a graph input, an output nor a constant (the memory plan), inside
    an arena of ``workspace_bytes``."""

    name: str
    inputs: dict[str, TensorType]
    outputs: tuple[str, ...]
    constants: dict[str, np.ndarray]
    types: dict[str, TensorType]
    calls: tuple[KernelCall, ...]
    arena_offsets: dict[str, int]
    workspace_bytes: int

    @staticmethod
    def planned(
        name: str,
        inputs: Mapping[str, TensorType],
        outputs: Sequence[str],
        constants: Mapping[str, np.ndarray],
        types: Mapping[str, TensorType],
        calls: Sequence[KernelCall],
    ) -> NetworkProgram:
        """A program whose arena holds the intermediate values only (the caller's buffers
        hold inputs and outputs), placed by ``memory_plan`` (values with disjoint lifetimes
        share bytes)."""
        steps = [(call.subgraph.inputs, call.subgraph.outputs) for call in calls]
        computed = [v for v in outputs if v not in inputs and v not in constants]
        spans = lifetimes(steps, inputs, computed, unplanned=constants)
        outside = {*inputs, *outputs}
        requests = [BufferRequest(v, types[v].nbytes, *span) for v, span in spans.items() if v not in outside]
        plan = plan_memory(requests)
        return NetworkProgram(
            name,
            dict(inputs),
            tuple(outputs),
            dict(constants),
            dict(types),
            tuple(calls),
            dict(plan.offsets),
            plan.arena_bytes,
        )


def program_of(network: Any) -> NetworkProgram:
    """The ``NetworkProgram`` of an executor ``Network`` (``executor.build_network``), or a
    program, returned as is. The exported arena is planned anew: the Network's own arena
    also holds the inputs and outputs, which the caller owns in the library."""
    if isinstance(network, NetworkProgram):
        return network
    needed = ("name", "input_types", "output_names", "constants", "value_types", "calls")
    missing = [attribute for attribute in needed if not hasattr(network, attribute)]
    if missing:
        raise ExportError(
            f"export_library takes a Network or NetworkProgram; {type(network).__name__} lacks {missing}"
        )
    calls = [KernelCall(c.subgraph, c.kernel.state, c.kernel.module) for c in network.calls]
    return NetworkProgram.planned(
        network.name,
        network.input_types,
        network.output_names,
        network.constants,
        network.value_types,
        calls,
    )


def export_library(
    network: Any,
    path: str | Path,
    target: str | Target | None = None,
    weights: str = "embed",
    compiler: Sequence[str] | str | None = None,
    linker: Sequence[str] | str | None = None,
) -> Path:
    """Write ``network`` as one shared library at ``path`` for ``target`` (default: the
    network's own target, else the host); see the module docstring. ``compiler`` and
    ``linker`` override ``codegen.llvm.toolchain``'s choice for the target's triple.
    With ``weights="file"`` the weights go to ``weights_path(path)``."""
    if weights not in WEIGHT_MODES:
        raise ExportError(f"export_library: weights={weights!r} is not one of {', '.join(WEIGHT_MODES)}")
    program = program_of(network)
    chosen = as_target(target if target is not None else getattr(network, "target", "llvm"))
    path = Path(path)
    layout = plan_arguments(program)
    with tempfile.TemporaryDirectory(prefix="ansor_py_export_") as tmp_name:
        tmp = Path(tmp_name)
        objects = compile_kernels(program, layout.symbols, chosen, tmp)
        blob = tmp / "weights.bin"
        size, digest = write_weights(program, layout, blob)
        header = tables_header(program, layout, size, digest, weights, weights_path(path).name)
        (tmp / "network_tables.h").write_text(header)
        cc = find_c_compiler(chosen, compiler)
        objects.append(_compile_c(cc, ENTRY_SOURCE, tmp / "entry.o", ["-I", str(tmp)]))
        (tmp / "description.json").write_text(json.dumps(describe(program, chosen, weights)))
        assembly = description_assembly(tmp / "description.json")
        if weights == "embed":
            assembly += weights_assembly(blob)
        else:
            _write_weights_file(blob, weights_path(path), digest)
        (tmp / "data.S").write_text(assembly)
        objects.append(_compile_c(cc, tmp / "data.S", tmp / "data.o", []))
        command = find_linker(chosen, linker).link_command(path, objects)
        _run(command, f"linking {path}")
    return path


def weights_path(library: str | Path) -> Path:
    """Where ``weights="file"`` puts the weights of ``library``: beside it, ``<stem>.weights``."""
    return Path(library).with_suffix(".weights")


# ------------------------------------------------------------------------------------------
# the plan: symbols, argument locations, weights


@dataclass(frozen=True)
class ArgumentLayout:
    """Every kernel argument's location (``network_entry.c``'s ``arg_ref``), per call."""

    symbols: tuple[str, ...]  # the kernel symbol of each call
    arguments: tuple[tuple[tuple[int, int], ...], ...]  # per call: (kind, where) per argument
    weight_offsets: dict[str, int]  # constant -> byte offset in the blob
    copies: tuple[tuple[int, tuple[int, int], int], ...]  # (output position, source, nbytes)


def plan_arguments(program: NetworkProgram) -> ArgumentLayout:
    """Kernel symbols (one per distinct workload and schedule), weight offsets (64-byte
    aligned, in order of first use) and where every argument lives; checks the memory plan."""
    input_position = {name: i for i, name in enumerate(program.inputs)}
    output_position: dict[str, int] = {}
    for i, name in enumerate(program.outputs):
        output_position.setdefault(name, i)
    weight_offsets: dict[str, int] = {}
    end = 0

    def weight(name: str) -> int:
        nonlocal end
        if name not in weight_offsets:
            weight_offsets[name] = end
            end = _aligned(end + program.constants[name].nbytes)
        return weight_offsets[name]

    def locate(name: str, call: str) -> tuple[int, int]:
        # a graph input or weight is read where it is, even when also an output (a copy
        # fills that output after the kernels ran)
        if name in input_position:
            return ARG_INPUT, input_position[name]
        if name in program.constants:
            return ARG_WEIGHT, weight(name)
        if name in output_position:
            return ARG_OUTPUT, output_position[name]
        if name not in program.arena_offsets:
            raise ExportError(f"kernel call '{call}': value '{name}' has no place in the memory plan")
        return ARG_ARENA, program.arena_offsets[name]

    symbols: list[str] = []
    arguments: list[tuple[tuple[int, int], ...]] = []
    kernels: dict[tuple[str, str], str] = {}
    for call in program.calls:
        sub = call.subgraph
        key = (sub.workload_key, repr(call.state.transform_steps) if call.state is not None else "")
        kernels.setdefault(key, f"ansor_k{len(kernels)}_{_identifier(sub.name)}")
        symbols.append(call.module.entry_name if call.module is not None else kernels[key])
        located = tuple(locate(name, sub.name) for name in (*sub.inputs, *sub.outputs))
        _check_no_overlap(program, sub, located)
        arguments.append(located)
    copies = []
    for i, name in enumerate(program.outputs):
        if output_position[name] != i:
            copies.append((i, (ARG_OUTPUT, output_position[name]), program.types[name].nbytes))
        elif name in input_position:
            copies.append((i, (ARG_INPUT, input_position[name]), program.types[name].nbytes))
        elif name in program.constants:
            copies.append((i, (ARG_WEIGHT, weight(name)), program.types[name].nbytes))
    return ArgumentLayout(tuple(symbols), tuple(arguments), weight_offsets, tuple(copies))


def _check_no_overlap(program: NetworkProgram, sub: Subgraph, located: tuple[tuple[int, int], ...]) -> None:
    """The kernels take their pointers ``noalias``: arena arguments of one call must not overlap."""
    spans = []
    for name, (kind, offset) in zip((*sub.inputs, *sub.outputs), located, strict=True):
        if kind == ARG_ARENA:
            nbytes = program.types[name].nbytes
            if offset < 0 or offset + nbytes > program.workspace_bytes:
                raise ExportError(
                    f"memory plan: value '{name}' at offset {offset} with {nbytes} bytes lies outside "
                    f"the arena of {program.workspace_bytes} bytes"
                )
            spans.append((offset, offset + nbytes, name))
    spans.sort()
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        if start < end:
            raise ExportError(
                f"memory plan: values '{first}' and '{second}' of kernel call '{sub.name}' overlap in "
                "the arena; a kernel's buffers must be disjoint"
            )


def write_weights(program: NetworkProgram, layout: ArgumentLayout, blob: Path) -> tuple[int, int]:
    """Write the weights blob (zero padding between weights); its size and 64-bit digest."""
    digest = hashlib.blake2b(digest_size=8)
    size = 0
    with open(blob, "wb") as out:
        for name, offset in layout.weight_offsets.items():
            padding = b"\0" * (offset - size)
            data = np.asarray(program.constants[name], order="C").tobytes()
            for chunk in (padding, data):
                out.write(chunk)
                digest.update(chunk)
            size = offset + len(data)
    return size, int.from_bytes(digest.digest(), "little")


def _write_weights_file(blob: Path, path: Path, digest: int) -> None:
    size = blob.stat().st_size
    header = WEIGHTS_MAGIC + size.to_bytes(8, "little") + digest.to_bytes(8, "little")
    with open(path, "wb") as out, open(blob, "rb") as data:
        out.write(header.ljust(WEIGHTS_HEADER_BYTES, b"\0"))
        while chunk := data.read(1 << 24):
            out.write(chunk)


# ------------------------------------------------------------------------------------------
# generated sources


def tables_header(
    program: NetworkProgram, layout: ArgumentLayout, weights_bytes: int, digest: int, mode: str, file: str
) -> str:
    """``network_tables.h``: the constants and tables ``network_entry.c`` includes. Every
    table ends with a sentinel entry, so none is empty in C."""
    lines = [
        "/* generated by ansor_py.network.export: one network's execution plan */",
        f"#define ANSOR_NETWORK_NAME {_c_string(program.name)}",
        f"#define ANSOR_NUM_INPUTS {len(program.inputs)}",
        f"#define ANSOR_NUM_OUTPUTS {len(program.outputs)}",
        f"#define ANSOR_NUM_CALLS {len(program.calls)}",
        f"#define ANSOR_NUM_ARGS {sum(len(a) for a in layout.arguments)}",
        f"#define ANSOR_NUM_COPIES {len(layout.copies)}",
        f"#define ANSOR_WORKSPACE_BYTES {program.workspace_bytes}LL",
        f"#define ANSOR_WEIGHTS_BYTES {weights_bytes}LL",
        f"#define ANSOR_WEIGHTS_DIGEST {digest}ULL",
        f"#define ANSOR_WEIGHTS_EMBEDDED {int(mode == 'embed')}",
        f"#define ANSOR_WEIGHTS_FILE {_c_string(file)}",
    ]
    for symbol in dict.fromkeys(layout.symbols):
        lines.append(f"extern int32_t {symbol}(void **args, int32_t nargs) HIDDEN;")
    for role, names in (("input", list(program.inputs)), ("output", list(program.outputs))):
        infos = []
        for i, name in enumerate(names):
            t = program.types[name]
            dims = ", ".join(f"{d}LL" for d in t.shape) or "0"
            lines.append(f"static const int64_t ansor_{role}_shape_{i}[] = {{{dims}}};")
            fields = (
                f"{_c_string(name)}, {_c_string(t.dtype)}, {t.ndim}, ansor_{role}_shape_{i}, {t.nbytes}LL"
            )
            infos.append(f"    {{{fields}}},")
        lines += [f"static const tensor_info ansor_{role}s[] = {{", *infos, "    {0, 0, 0, 0, 0}};"]
    lines.append("static const arg_ref ansor_args[] = {")
    for located in layout.arguments:
        lines.append("    " + " ".join(f"{{{kind}, {where}LL}}," for kind, where in located))
    lines += ["    {0, 0}};", "static const kernel_call ansor_calls[] = {"]
    first = 0
    for call, symbol, located in zip(program.calls, layout.symbols, layout.arguments, strict=True):
        lines.append(f"    {{{symbol}, {_c_string(call.subgraph.name)}, {first}, {len(located)}}},")
        first += len(located)
    lines += ["    {0, 0, 0, 0}};", "static const output_copy ansor_copies[] = {"]
    for output, (kind, where), nbytes in layout.copies:
        lines.append(f"    {{{output}, {{{kind}, {where}LL}}, {nbytes}LL}},")
    lines.append("    {0, {0, 0}, 0}};")
    return "\n".join(lines) + "\n"


def describe(program: NetworkProgram, target: Target, weights: str) -> dict[str, Any]:
    """The description stored in the library's ``DESCRIPTION_SECTION`` (read without loading
    the library, e.g. an AArch64 one on x86-64): name, target, weights mode, and each input
    and output as ``[name, dtype, shape]`` in graph order."""

    def entry(name: str) -> list[Any]:
        t = program.types[name]
        return [name, t.dtype, list(t.shape)]

    return {
        "name": program.name,
        "target": str(target),
        "triple": target.triple,
        "weights": weights,
        "workspace_bytes": program.workspace_bytes,
        "inputs": [entry(name) for name in program.inputs],
        "outputs": [entry(name) for name in program.outputs],
    }


def description_assembly(description: Path) -> str:
    """An assembler file putting the JSON ``description`` into a non-allocated section (kept
    by the linker, never mapped into memory)."""
    return "\n".join(
        [f'    .section {DESCRIPTION_SECTION},"",%progbits', f"    .incbin {_c_string(str(description))}", ""]
    )


def weights_assembly(blob: Path) -> str:
    """An assembler file putting ``blob`` into ``.rodata`` as the hidden symbol
    ``ansor_network_weights_blob`` (GNU as syntax, valid for x86-64 and AArch64)."""
    return "\n".join(
        [
            '    .section .rodata.ansor_weights,"a"',
            f"    .balign {ALIGNMENT}",
            "    .globl ansor_network_weights_blob",
            "    .hidden ansor_network_weights_blob",
            "ansor_network_weights_blob:",
            f"    .incbin {_c_string(str(blob))}",
            "    .byte 0",  # a symbol with at least one byte, even without weights
            '    .section .note.GNU-stack,"",%progbits',
            "",
        ]
    )


# ------------------------------------------------------------------------------------------
# compiling


def compile_kernels(program: NetworkProgram, symbols: Sequence[str], target: Target, tmp: Path) -> list[Path]:
    """One object file per distinct kernel symbol for ``target``: the call's compiled module
    when it was built for ``target``, else the subgraph lowered and compiled anew."""
    objects = []
    done: set[str] = set()
    for call, symbol in zip(program.calls, symbols, strict=True):
        if symbol in done:
            continue
        done.add(symbol)
        module = call.module
        if module is None or module.target != target:
            module = llvm_build(lower(call.subgraph.dag, call.state, name=symbol), target)
        obj = tmp / f"{symbol}.o"
        obj.write_bytes(module.get_object())
        objects.append(obj)
    return objects


def _compile_c(cc: Sequence[str], source: Path, output: Path, flags: list[str]) -> Path:
    _run([*cc, "-O2", "-fPIC", "-c", *flags, "-o", str(output), str(source)], f"compiling {source.name}")
    return output


def _run(command: list[str], doing: str) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise ToolchainError(f"{doing}: {command[0]!r} was not found on PATH") from None
    if done.returncode != 0:
        raise ToolchainError(f"{doing} failed ({' '.join(command)}):\n{done.stderr.strip()[-2000:]}")


def _aligned(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def _identifier(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)[:48]


def _c_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    if any(ord(c) < 32 or ord(c) > 126 for c in escaped):
        raise ExportError(f"name {text!r} has characters a C string of the export cannot hold")
    return f'"{escaped}"'
