"""The runner's child process: load a candidate's shared library, check it, time it.

``LocalRunner`` starts this file as a script (``python run_worker.py``), so the child
imports only numpy and ctypes, never the search, and stays warm across candidates: it is
restarted only after a crash or a timeout. Generated code may segfault, abort or loop
forever (Ansor paper section 6.1 measures every candidate on hardware); doing that here
costs the tuner one error record, not the run.

Protocol: one JSON request per line on stdin; JSON replies, one per line, on the file
descriptor that was stdout at start (fd 1 is then pointed at stderr, so a kernel that
prints cannot corrupt the replies).

* ``{"op": "task", "id": 3, "args": [{"name": "A", "role": "in" | "out", "cached": true,
  "file": ..., "rtol": 1e-4, "atol": 1e-4}, ...]}`` loads one task's reference: every tensor
  of the DAG in kernel-argument order, inputs as given and outputs as expected (``.npy``
  files written once per task by the parent). Reply ``{"ok": true}``.
* ``{"op": "run", "task": 3, "lib": path, "entry": name, "number": 3, "repeat": 1,
  "min_repeat_ms": 100, "flush_bytes": 0}`` measures one candidate. Replies
  ``{"phase": "loaded"}`` once the library is open (a crash after it is the kernel's),
  then ``{"status": "ok", "costs": [...]}`` or ``{"status": "error", "error": NAME,
  "msg": ...}`` with NAME one of COMPILE_DEVICE, RUNTIME_DEVICE, WRONG_ANSWER,
  UNKNOWN_ERROR.

Timing follows TVM's ``time_evaluator``: one warm-up call (whose outputs are checked
against the reference), then ``repeat`` repeats of ``number`` calls each, ``number``
growing by the golden ratio until a repeat lasts ``min_repeat_ms``; the cost of a repeat
is its mean seconds per call. With ``flush_bytes`` a buffer that large is written before
each repeat, evicting the kernel's data from the last-level cache, and then every input
marked ``cached`` is read once: the weights come from memory and the activations from the
caches, where in a network the layers before left them (the parent marks every input but
the weights, or, as TVM's ``cache_flush_cpu_non_first_arg``, the first argument alone).
The first kernel of the child that uses OpenMP also runs untimed for ``OPENMP_SETTLE_S``
after its warm-up, while the new thread team spreads over the cores.

Out-of-bounds accesses: every argument lives in its own ``mmap`` region (``GuardedBuffer``)
between two ``PROT_NONE`` guard pages, its data ending where the last accessible page ends
(rounded down to ``BUFFER_ALIGN``), the bytes around it filled with a canary, and the
inputs read-only. A kernel that writes one element past an output, or into an input,
faults at once instead of corrupting the heap that the next candidate then crashes on. A
SIGSEGV/SIGBUS/SIGFPE handler (``FaultReporter``) sends ``{"phase": "fault: ..."}`` naming
the buffer and the offset, then lets the signal kill the child; a changed canary (a write
into the alignment slack or before the data, which the guard pages cannot see) is a
RUNTIME_DEVICE error naming the buffer. Either way the parent starts a fresh child.
"""

from __future__ import annotations

import ctypes
import json
import math
import mmap
import os
import platform
import signal
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: int32_t entry(void** args, int32_t nargs), the packed signature of every kernel
PACKED_FUNC_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p), ctypes.c_int32)
#: how many tasks' references the child keeps loaded
MAX_TASKS = 4
GOLDEN_RATIO = 1.618
#: seconds the first OpenMP kernel of the process runs untimed (see ``Worker.measure``)
OPENMP_SETTLE_S = 0.1
#: alignment of every argument's first byte (a cache line, the widest vector)
BUFFER_ALIGN = 64
#: the byte written around every argument; a kernel that changes one wrote out of bounds
CANARY_BYTE = 0xA5
#: buffers this large ask for transparent huge pages, as numpy's allocator does
HUGE_PAGE_MIN_BYTES = 4 << 20


class CandidateError(Exception):
    """A classified failure of one candidate; ``error`` is a MeasureErrorNo name."""

    def __init__(self, error: str, msg: str):
        super().__init__(msg)
        self.error = error
        self.msg = msg


@dataclass
class Argument:
    """One kernel argument: its name, role ("in" or "out"), reference array (the input, or
    the expected output), the output check's tolerances, and whether a flushed timing
    reads it back into the caches (``cached``)."""

    name: str
    role: str
    reference: np.ndarray
    rtol: float
    atol: float
    cached: bool = False


@dataclass
class TaskData:
    """A task's kernel arguments, in order."""

    args: list[Argument]


_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.mmap.restype = ctypes.c_void_p
_LIBC.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_LIBC.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_LIBC.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_LIBC.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_LIBC.signal.restype = ctypes.c_void_p
_LIBC.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
_MAP_FAILED = ctypes.c_void_p(-1).value


class GuardedBuffer:
    """One kernel argument in its own mapping: ``[guard page][canary][data][slack][guard page]``.

    The data ends at most ``BUFFER_ALIGN - 1`` bytes before the last accessible page ends,
    so a write one element past it hits the slack (canary) or the guard page; the canary
    before the data catches small negative offsets. ``array`` views the data; it must not be
    used after ``close()``. Inputs become read-only once filled (``protect_read_only``).
    """

    def __init__(self, name: str, role: str, shape: tuple[int, ...], dtype: np.dtype[Any]):
        self.name, self.role, self.dtype = name, role, np.dtype(dtype)
        self.nbytes = int(math.prod(shape)) * self.dtype.itemsize
        page = mmap.PAGESIZE
        self.body_bytes = math.ceil((self.nbytes + BUFFER_ALIGN) / page) * page
        self.total = self.body_bytes + 2 * page
        base = _LIBC.mmap(
            None, self.total, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0
        )
        if base is None or base == _MAP_FAILED:
            raise MemoryError(
                f"mmap of {self.total} bytes for argument '{name}' failed: {os.strerror(ctypes.get_errno())}"
            )
        self.base = int(base)
        self.body_start = self.base + page
        self.body_end = self.body_start + self.body_bytes
        self.data_start = (self.body_end - self.nbytes) // BUFFER_ALIGN * BUFFER_ALIGN
        self.data_end = self.data_start + self.nbytes
        for guard in (self.base, self.body_end):
            _check_libc(_LIBC.mprotect(guard, page, 0), f"mprotect of the guard page of '{name}'")
        if self.body_bytes >= HUGE_PAGE_MIN_BYTES and hasattr(mmap, "MADV_HUGEPAGE"):
            _LIBC.madvise(self.body_start, self.body_bytes, mmap.MADV_HUGEPAGE)  # a hint only
        ctypes.memset(self.body_start, CANARY_BYTE, self.data_start - self.body_start)
        ctypes.memset(self.data_end, CANARY_BYTE, self.body_end - self.data_end)
        data = (ctypes.c_ubyte * self.nbytes).from_address(self.data_start)
        self.array: np.ndarray = np.frombuffer(memoryview(data), self.dtype).reshape(shape)

    @property
    def description(self) -> str:
        """``input 'A' (float32[16, 16], 1024 bytes)``."""
        what = "input" if self.role == "in" else "output"
        shape = ", ".join(str(d) for d in self.array.shape)
        return f"{what} '{self.name}' ({self.dtype.name}[{shape}], {self.nbytes} bytes)"

    def protect_read_only(self) -> None:
        _check_libc(
            _LIBC.mprotect(self.body_start, self.body_bytes, mmap.PROT_READ),
            f"mprotect of input '{self.name}'",
        )

    def guards(self) -> list[tuple[int, int, str]]:
        """(first address, end address, where) of the regions a kernel must never touch."""
        page = mmap.PAGESIZE
        return [
            (self.base, self.body_start, "before the start of"),
            (self.body_end, self.body_end + page, "after the end of"),
        ]

    def canary_damage(self) -> str | None:
        """None when every canary byte is intact, else which ones the kernel overwrote."""
        before = self._changed(self.body_start, self.data_start)
        if before.size:
            first, last = self.data_start - self.body_start - before[::-1][[0, -1]]
            return (
                f"the kernel wrote {before.size} byte(s) before the start of {self.description}: "
                f"{first} to {last} bytes before it"
            )
        after = self._changed(self.data_end, self.body_end)
        if after.size:
            first, last = after[[0, -1]]
            return (
                f"the kernel wrote {after.size} byte(s) after the end of {self.description}: "
                f"{first} to {last} bytes past it"
            )
        return None

    @staticmethod
    def _changed(start: int, end: int) -> np.ndarray:
        """Offsets from ``start`` of the canary bytes in [start, end) that changed."""
        if end <= start:
            return np.zeros(0, np.int64)
        canary = np.frombuffer(memoryview((ctypes.c_ubyte * (end - start)).from_address(start)), np.uint8)
        return np.flatnonzero(canary != CANARY_BYTE)

    def describe_fault(self, address: int, where: str, access: str) -> str:
        """The fault at ``address`` in one of this buffer's guard pages, in words."""
        if where.startswith("after"):
            offset = f"{address - self.data_end} bytes past its end"
        else:
            offset = f"{self.data_start - address} bytes before its start"
        index = (address - self.data_start) // self.dtype.itemsize
        return f"the kernel {access} the guard page {where} {self.description}: {offset} (flat index {index})"

    def close(self) -> None:
        if self.base:
            _LIBC.munmap(self.base, self.total)
            self.base = 0


def _check_libc(status: int, what: str) -> None:
    if status != 0:
        raise OSError(ctypes.get_errno(), f"{what} failed: {os.strerror(ctypes.get_errno())}")


def fresh_arguments(task: TaskData) -> list[GuardedBuffer]:
    """Guarded copies of the inputs (read-only) and outputs pre-filled with a sentinel (NaN
    for floats), so a kernel that leaves an element unwritten cannot pass the check by luck."""
    buffers: list[GuardedBuffer] = []
    try:
        for arg in task.args:
            buffer = GuardedBuffer(arg.name, arg.role, arg.reference.shape, arg.reference.dtype)
            buffers.append(buffer)
            out = buffer.array
            if arg.role == "in":
                out[...] = arg.reference
                buffer.protect_read_only()
            elif np.issubdtype(out.dtype, np.floating):
                out.fill(np.nan)
            elif out.dtype == np.bool_:
                out.fill(True)
            else:
                out.fill(np.iinfo(out.dtype).max)
    except BaseException:
        for buffer in buffers:
            buffer.close()
        raise
    return buffers


#: offsets into the kernel's ``siginfo_t`` (Linux, 64-bit): si_code, si_addr
_SI_CODE_OFFSET, _SI_ADDR_OFFSET = 8, 16
#: offset of ``uc_mcontext.gregs[REG_ERR]`` in x86-64 Linux's ``ucontext_t``; bit 1 of the
#: page-fault error code is set for a write
_X86_64_REG_ERR_OFFSET = 40 + 19 * 8
_FPE_INTDIV = 1
_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class _SigAction(ctypes.Structure):
    """glibc's ``struct sigaction`` on 64-bit Linux."""

    _fields_ = [
        ("sa_sigaction", _HANDLER_TYPE),
        ("sa_mask", ctypes.c_ulong * 16),
        ("sa_flags", ctypes.c_int),
        ("sa_restorer", ctypes.c_void_p),
    ]


_SA_SIGINFO = 4
_LIBC.sigaction.argtypes = [ctypes.c_int, ctypes.POINTER(_SigAction), ctypes.POINTER(_SigAction)]


class FaultReporter:
    """A SIGSEGV / SIGBUS / SIGFPE handler that says which argument a kernel overran.

    ``buffers`` are the arguments of the call in progress (set by ``Worker.measure``). On a
    fault the handler writes one ``{"phase": "fault: ..."}`` reply on ``fd`` (the address
    in a guard page named by its buffer, read or write where the CPU says so), puts the
    signal back to its default action and returns: the faulting instruction runs again and
    the signal kills the child, so the parent sees both the reason and the death. The
    handler is Python called through ctypes; it runs while the kernel (a ctypes call that
    released the GIL) is stopped, which is all it needs.
    """

    SIGNALS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE)

    def __init__(self, fd: int):
        self.fd = fd
        self.buffers: list[GuardedBuffer] = []
        self._handler = _HANDLER_TYPE(self._on_signal)  # kept alive: the kernel calls it
        self._x86_64 = platform.machine() in ("x86_64", "AMD64") and sys.platform.startswith("linux")

    def install(self) -> None:
        if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
            return  # the structure layouts above are Linux's, 64-bit
        action = _SigAction()
        action.sa_sigaction = self._handler
        action.sa_flags = _SA_SIGINFO
        for signum in self.SIGNALS:
            _check_libc(_LIBC.sigaction(int(signum), ctypes.byref(action), None), f"sigaction({signum.name})")

    def describe(self, signum: int, code: int, address: int, write: bool | None) -> str:
        if signum == signal.SIGFPE:
            what = (
                "divided an integer by zero"
                if code == _FPE_INTDIV
                else f"raised an arithmetic fault (si_code {code})"
            )
            return f"the kernel {what} (SIGFPE)"
        access = {True: "wrote to", False: "read from", None: "accessed"}[write]
        for buffer in self.buffers:
            for start, end, where in buffer.guards():
                if start <= address < end:
                    return buffer.describe_fault(address, where, access)
            if buffer.role == "in" and buffer.body_start <= address < buffer.body_end:  # readable: a write
                index = (address - buffer.data_start) // buffer.dtype.itemsize
                return f"the kernel wrote into {buffer.description}, which is read-only (flat index {index})"
        name = signal.Signals(signum).name
        return f"the kernel {access} address {address:#x}, outside every argument buffer ({name})"

    def _on_signal(self, signum: int, info: int | None, context: int | None) -> None:
        try:
            code = ctypes.c_int.from_address(info + _SI_CODE_OFFSET).value if info else 0
            address = (ctypes.c_void_p.from_address(info + _SI_ADDR_OFFSET).value or 0) if info else 0
            write = None
            if self._x86_64 and context and signum == signal.SIGSEGV:
                write = bool(ctypes.c_ulong.from_address(context + _X86_64_REG_ERR_OFFSET).value & 2)
            message = self.describe(signum, code, address, write)
            os.write(self.fd, (json.dumps({"phase": f"fault: {message}"}) + "\n").encode())
        finally:
            _LIBC.signal(signum, None)  # SIG_DFL: the instruction faults again and kills us


def compare_output(name: str, got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> str | None:
    """None when ``got`` matches ``expected``, else a message naming the output, how many
    elements differ, and the largest error with its index. Floats are compared with
    ``|got - expected| <= atol * scale + rtol * |expected|`` (scale: the largest finite
    ``|expected|``, at least 1; NaN matches NaN); integers and bools exactly."""
    if np.issubdtype(expected.dtype, np.floating):
        finite = np.abs(expected[np.isfinite(expected)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        ok = np.isclose(got, expected, rtol=rtol, atol=atol * scale, equal_nan=True)
        error = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        error[ok] = 0.0
        error = np.where(np.isnan(error), np.inf, error)
        tolerance = f"rtol={rtol:g}, atol={atol:g}*{scale:.3g}"
    else:
        ok = got == expected
        error = np.abs(got.astype(np.float64) - expected.astype(np.float64))
        tolerance = "exact"
    if bool(ok.all()):
        return None
    worst = np.unravel_index(int(np.argmax(error)), error.shape) if error.ndim else ()
    index = tuple(int(i) for i in worst)
    return (
        f"output '{name}' differs from the reference at {int((~ok).sum())} of {ok.size} elements: "
        f"max error {float(error[worst]):.4g} at index {index} (got {got[worst]!r}, expected "
        f"{expected[worst]!r}; tolerance {tolerance})"
    )


class Worker:
    """The request loop: loaded tasks, the open library, the flush buffer."""

    def __init__(self, faults: FaultReporter, wake_team: Callable[[], None] | None = None) -> None:
        self.faults = faults
        self.wake_team = wake_team  # TeamWaker: after a flush, before an OpenMP kernel
        self.tasks: OrderedDict[int, TaskData] = OrderedDict()
        self.flush_buffer = np.zeros(0, np.int64)
        self.flush_value = 0
        self.openmp_settled = False

    # requests -------------------------------------------------------------------------------
    def load_task(self, request: dict[str, Any]) -> dict[str, Any]:
        args = [
            Argument(
                name=a["name"],
                role=a["role"],
                reference=np.load(a["file"]),
                rtol=float(a["rtol"]),
                atol=float(a["atol"]),
                cached=a["cached"],
            )
            for a in request["args"]
        ]
        # a task loaded again counts as the newest: the parent knows only what it loaded
        # since it last cleared its list, so the child must keep the latest loads
        self.tasks.pop(int(request["id"]), None)
        self.tasks[int(request["id"])] = TaskData(args)
        while len(self.tasks) > MAX_TASKS:
            self.tasks.popitem(last=False)
        return {"ok": True}

    def run(self, request: dict[str, Any], reply: Any) -> dict[str, Any]:
        task = self.tasks.get(int(request["task"]))
        if task is None:
            raise CandidateError("UNKNOWN_ERROR", f"task {request['task']} was not loaded into the runner")
        try:
            library = ctypes.CDLL(request["lib"])
            entry = PACKED_FUNC_TYPE((request["entry"], library))
        except (OSError, AttributeError) as error:
            raise CandidateError("COMPILE_DEVICE", f"cannot load {request['lib']}: {error}") from None
        reply({"phase": "loaded"})
        uses_openmp = _uses_openmp(request["lib"])
        try:
            costs = self.measure(task, entry, request, uses_openmp)
        finally:
            del entry
            _dlclose(library)
        return {"status": "ok", "costs": costs}

    # measuring ------------------------------------------------------------------------------
    def measure(self, task: TaskData, entry: Any, request: dict[str, Any], uses_openmp: bool) -> list[float]:
        buffers = fresh_arguments(task)
        self.faults.buffers = buffers
        try:
            return self._measure(task, buffers, entry, request, uses_openmp)
        finally:
            self.faults.buffers = []
            for buffer in buffers:
                buffer.close()

    def _measure(
        self,
        task: TaskData,
        buffers: list[GuardedBuffer],
        entry: Any,
        request: dict[str, Any],
        uses_openmp: bool,
    ) -> list[float]:
        pointers = (ctypes.c_void_p * len(buffers))(*[b.data_start for b in buffers])
        nargs = len(buffers)

        def call() -> None:
            status = entry(pointers, nargs)
            if status != 0:
                raise CandidateError("RUNTIME_DEVICE", f"kernel returned error status {status}")

        start = time.perf_counter()
        call()  # warm-up, discarded; its outputs are checked
        warmup_ms = (time.perf_counter() - start) * 1e3
        check_canaries(buffers)
        for arg, got in zip(task.args, buffers, strict=True):
            if arg.role == "out":
                message = compare_output(arg.name, got.array, arg.reference, arg.rtol, arg.atol)
                if message is not None:
                    raise CandidateError("WRONG_ANSWER", message)
        if uses_openmp and not self.openmp_settled:
            # A new OpenMP team's threads start on the caller's core; until the kernel's
            # scheduler spreads them (a few balancing periods), every barrier waits a
            # time slice. Run the first parallel kernel of this process a while first.
            end = time.perf_counter() + OPENMP_SETTLE_S
            while time.perf_counter() < end:
                call()
            self.openmp_settled = True
        min_repeat_ms = float(request["min_repeat_ms"])
        # A slow candidate needs fewer calls to fill min_repeat_ms: a 2 s program is timed
        # once per repeat, not `number` times (each repeat still lasts >= min_repeat_ms).
        number = int(request["number"])
        if min_repeat_ms > 0:
            number = max(1, min(number, math.ceil(min_repeat_ms / max(warmup_ms, 1e-3))))
        flush_bytes = int(request["flush_bytes"])
        cached = [buffer.array for arg, buffer in zip(task.args, buffers, strict=True) if arg.cached]
        costs = []
        for _ in range(int(request["repeat"])):
            duration_ms = 0.0
            while True:
                if duration_ms > 0.0:
                    number = int(max(min_repeat_ms / (duration_ms / number) + 1, number * GOLDEN_RATIO))
                if flush_bytes:
                    self.flush_cache(flush_bytes)
                    for array in cached:
                        read_through(array)  # the activations stay in the caches
                    if uses_openmp and self.wake_team is not None:
                        self.wake_team()
                start = time.perf_counter()
                for _ in range(number):
                    call()
                duration_ms = (time.perf_counter() - start) * 1e3
                if duration_ms >= min_repeat_ms:
                    break
            costs.append(duration_ms / 1e3 / number)
        check_canaries(buffers)
        return costs

    def flush_cache(self, nbytes: int) -> None:
        """Write ``nbytes`` of memory, evicting the kernel's data from the caches."""
        count = math.ceil(nbytes / 8)
        if self.flush_buffer.size != count:
            self.flush_buffer = np.zeros(count, np.int64)
        self.flush_value += 1
        self.flush_buffer.fill(self.flush_value)


def read_through(array: np.ndarray) -> None:
    """Read every byte of ``array`` once, bringing it back into the caches."""
    np.bitwise_or.reduce(array.reshape(-1).view(np.uint8))


def check_canaries(buffers: list[GuardedBuffer]) -> None:
    """Raise RUNTIME_DEVICE naming the first buffer whose canary bytes a kernel changed."""
    for buffer in buffers:
        damage = buffer.canary_damage()
        if damage is not None:
            raise CandidateError("RUNTIME_DEVICE", damage)


def _dlclose(library: ctypes.CDLL) -> None:
    """Unload a candidate's library; thousands of candidates pass through one child."""
    import _ctypes

    _ctypes.dlclose(library._handle)


def _uses_openmp(path: str) -> bool:
    """Whether a library calls libgomp (its dynamic symbol table names GOMP_parallel)."""
    with open(path, "rb") as f:
        return b"GOMP_parallel" in f.read()


def _pin_openmp() -> ctypes.CDLL | None:
    """Load libgomp for good: unloading the last library that used it would unload
    libgomp too, under its still-running worker threads (a segfault). None without one."""
    # without an OpenMP runtime, libraries needing it fail to load (COMPILE_DEVICE)
    try:
        return ctypes.CDLL("libgomp.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return None


class TeamWaker:
    """Runs an empty OpenMP parallel region: every thread of the team calls ``free(NULL)``
    (a no-op taking one pointer, as a region's body does) and the team joins.

    The cache flush writes its buffer from this thread alone, for milliseconds, while the
    team's other threads stop spinning and sleep, and on a virtual machine their idle
    vCPUs are descheduled by the host. The first parallel region after that waited for
    them, a scheduler tick or more added to a sub-millisecond kernel, a penalty a network,
    which calls its kernels back to back, never pays. Waking the team after the flush,
    untimed, leaves its threads spinning when the kernel starts
    (``benchmarks/results/cold_measurement.md``)."""

    def __init__(self, gomp: ctypes.CDLL) -> None:
        self.parallel = gomp.GOMP_parallel
        self.parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        self.parallel.restype = None
        self.body = ctypes.cast(_LIBC.free, ctypes.c_void_p)

    def __call__(self) -> None:
        self.parallel(self.body, None, 0, 0)  # 0 threads: the team's default size


def main() -> None:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # what kernels print goes to the log, never into the replies

    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    gomp = _pin_openmp()
    faults = FaultReporter(replies.fileno())
    faults.install()
    worker = Worker(faults, None if gomp is None else TeamWaker(gomp))
    reply({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "task":
                reply(worker.load_task(request))
            else:
                reply(worker.run(request, reply))
        except CandidateError as error:
            reply({"status": "error", "error": error.error, "msg": error.msg})
        except Exception:  # the isolation boundary: anything else is reported, not fatal
            reply({"status": "error", "error": "UNKNOWN_ERROR", "msg": traceback.format_exc()})


if __name__ == "__main__":
    main()
