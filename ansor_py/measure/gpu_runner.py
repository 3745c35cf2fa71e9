"""Timing and checking GPU candidates: ``CUDARunner`` (pycuda, a real GPU) and ``OpenCLRunner``
(pyopencl: any OpenCL device, PoCL on the CPU where there is no GPU).

Both load the artifacts ``GPUBuilder`` writes and run them in a child process of their own,
so a kernel that hangs or kills its process costs one candidate, never the tuner: the
child is replaced and the candidate gets RUN_TIMEOUT (past ``timeout`` seconds) or
RUNTIME_DEVICE. Each candidate's first call runs on the task's reference inputs and its
outputs are compared with the reference result (``reference_arguments``, the tolerances
of the CPU runner): a mismatch is WRONG_ANSWER with the largest error. Then ``repeat``
timings of ``number`` back-to-back runs on the device (CUDA events; OpenCL profiling
events), each cost in seconds per run.

An OpenCL device on the CPU says nothing about a GPU's speed: ``OpenCLRunner`` is there to
execute and verify GPU programs (their thread bindings, shared memory, barriers and
cross-thread reductions) on a machine without one; its costs rank programs for PoCL.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import ansor_py
from ansor_py.measure.gpu_builder import remove_artifact
from ansor_py.measure.local import reference_arguments
from ansor_py.measure.types import (
    ERROR_COST,
    BuildResult,
    MeasureErrorNo,
    MeasureInput,
    MeasureResult,
    ResultCallback,
)
from ansor_py.measure.worker_process import WorkerDied, WorkerProcess, WorkerTimeout
from ansor_py.search_task import SearchTask

#: the package root the child imports ansor_py and codegen from
_PACKAGE_ROOT = str(Path(ansor_py.__file__).resolve().parents[1])


class _GPURunner:
    """The child process, the reference files and the timing loop of both runners."""

    backend = ""

    def __init__(self, timeout: float = 10, number: int = 3, repeat: int = 3):
        for name, value in (("number", number), ("repeat", repeat)):
            if value < 1:
                raise ValueError(f"{type(self).__name__}: {name} {value} must be >= 1")
        if timeout <= 0:
            raise ValueError(f"{type(self).__name__}: timeout {timeout} must be > 0")
        self.timeout = float(timeout)
        self.number = int(number)
        self.repeat = int(repeat)
        self._dir = Path(tempfile.mkdtemp(prefix=f"ansor_py_{self.backend}_run_"))
        self._workers: list[WorkerProcess] = []  # at most one, in a list the finalizer shares
        self._references: dict[str, list[dict[str, object]]] = {}
        weakref.finalize(self, _shutdown, self._workers, self._dir)

    # lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        _shutdown(self._workers, None)

    def __enter__(self) -> _GPURunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _worker(self) -> WorkerProcess:
        if not self._workers:
            python_path = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
            argv = [sys.executable, "-u", "-m", "ansor_py.measure.gpu_worker", self.backend]
            worker = WorkerProcess(self._dir / "child.log", argv, env={"PYTHONPATH": python_path})
            self._workers.append(worker)
        return self._workers[0]

    # running --------------------------------------------------------------------------------
    def run(
        self,
        inputs: Sequence[MeasureInput],
        build_results: Sequence[BuildResult],
        verbose: int = 1,
        on_result: ResultCallback | None = None,
    ) -> list[MeasureResult]:
        """One MeasureResult per input, in order (the ``ProgramRunner`` contract); inputs
        whose build failed keep the build's error."""
        if len(inputs) != len(build_results):
            raise ValueError(
                f"{type(self).__name__}.run: {len(inputs)} inputs but {len(build_results)} build results"
            )
        results = []
        for index, (inp, built) in enumerate(zip(inputs, build_results, strict=True)):
            start = time.monotonic()
            if built.error_no is MeasureErrorNo.NO_ERROR:
                costs, error_no, message = self._run_one(inp.task, built.filename)
                remove_artifact(built.filename)
            else:
                costs, error_no, message = (ERROR_COST,), built.error_no, built.error_msg
            result = MeasureResult(
                costs, error_no, message, built.time_cost + time.monotonic() - start, time.time()
            )
            results.append(result)
            if on_result is not None:
                on_result(index, result)
            if verbose >= 1:
                print("*" if error_no is MeasureErrorNo.NO_ERROR else "*E", end="", flush=True)
        if verbose >= 1:
            print(flush=True)
        return results

    def _run_one(self, task: SearchTask, artifact: str) -> tuple[tuple[float, ...], MeasureErrorNo, str]:
        request = {
            "artifact": artifact,
            "arguments": self._reference_files(task),
            "number": self.number,
            "repeat": self.repeat,
        }
        try:
            reply, _ = self._worker().request(request, self.timeout)
        except WorkerTimeout:
            self.close()
            return (ERROR_COST,), MeasureErrorNo.RUN_TIMEOUT, f"running took longer than {self.timeout:g} s"
        except WorkerDied as died:
            self.close()
            return (ERROR_COST,), MeasureErrorNo.RUNTIME_DEVICE, str(died)
        if "costs" in reply:
            return tuple(float(c) for c in reply["costs"]), MeasureErrorNo.NO_ERROR, ""
        self.close()  # nothing a failed kernel left on the device reaches the next one
        codes = {
            "wrong": MeasureErrorNo.WRONG_ANSWER,
            "build": MeasureErrorNo.COMPILE_DEVICE,
            "error": MeasureErrorNo.RUNTIME_DEVICE,
        }
        kind = next(k for k in codes if k in reply)
        return (ERROR_COST,), codes[kind], str(reply[kind])

    def _reference_files(self, task: SearchTask) -> list[dict[str, object]]:
        """The task's reference arguments as .npy files, written once per task."""
        key = task.reference_key
        if key not in self._references:
            entries = []
            for position, arg in enumerate(reference_arguments(task)):
                path = self._dir / f"task{len(self._references)}_{position}.npy"
                np.save(path, arg.array)
                entries.append(
                    {
                        "role": arg.role,
                        "name": arg.name,
                        "path": str(path),
                        "rtol": arg.rtol,
                        "atol": arg.atol,
                    }
                )
            self._references[key] = entries
        return self._references[key]


def _shutdown(workers: list[WorkerProcess], directory: Path | None) -> None:
    while workers:
        workers.pop().close()
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


class OpenCLRunner(_GPURunner):
    """Runs the OpenCL text of GPU artifacts on the first OpenCL device (module docstring)."""

    backend = "opencl"


class CUDARunner(_GPURunner):
    """Runs the cubins of GPU artifacts on NVIDIA GPU 0 through pycuda (module docstring).
    Where pycuda or the driver is missing, every candidate is a RUNTIME_DEVICE error that
    says so; ``check_available()`` raises it up front."""

    backend = "cuda"

    @staticmethod
    def check_available() -> None:
        """Raise ``CUDAUnavailableError`` (naming what is missing) where no GPU can run."""
        from codegen.cuda.cuda_kernel import _pycuda

        _pycuda()
