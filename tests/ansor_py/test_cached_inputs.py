"""Which inputs a cache-flushed timing reads back: a network's activations, not its weights.

``LocalRunner(enable_cpu_cache_flush=True)`` evicts the caches before each repeat. In a
network a layer's weights come from memory but its activations (the data input, and the
residual input of a fused add) were just written by the layers before it. A runner that
reads back only the first argument times a residual block with its second activation cold,
and ranks its programs unlike the network runs them.
"""

from __future__ import annotations

import ctypes

import numpy as np

from ansor_py.measure import run_worker
from ansor_py.measure.local import cached_inputs, reference_arguments
from ansor_py.measure.run_worker import PACKED_FUNC_TYPE, Argument, FaultReporter, TaskData, Worker
from ansor_py.measure.ssh.harness import argument_line
from ansor_py.search_task import SearchTask
from ir import te
from ir.compute_dag import ComputeDAG
from ir.topi.nn_conv import conv2d_nhwc


def conv_add_dag() -> ComputeDAG:
    """A 1x1 convolution whose output is added to a residual input, then relu'd."""
    data = te.placeholder((1, 7, 7, 16), name="data")
    kernel = te.placeholder((1, 1, 16, 32), name="kernel")
    residual = te.placeholder((1, 7, 7, 32), name="residual")
    conv = conv2d_nhwc(data, kernel, 1, 0)
    out = te.compute(conv.shape, lambda *i: te.max(conv[i] + residual[i], 0.0), name="add_relu")
    return ComputeDAG([data, kernel, residual, out])


def plain_matmul_dag() -> ComputeDAG:
    """A matmul declared without ``layout_free_placeholders``: no input is known to be a weight."""
    a = te.placeholder((8, 16), name="a")
    b = te.placeholder((16, 4), name="b")
    k = te.reduce_axis((0, 16), name="k")
    c = te.compute((8, 4), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="c")
    return ComputeDAG([a, b, c])


def test_every_input_but_the_weights_is_cached() -> None:
    assert cached_inputs(conv_add_dag()) == {"data", "residual"}


def test_without_named_weights_only_the_first_argument_is_cached() -> None:
    """TVM's ``cache_flush_cpu_non_first_arg`` rule, for DAGs that name no weight."""
    assert cached_inputs(plain_matmul_dag()) == {"a"}


def test_reference_arguments_carry_the_mark_to_both_runners() -> None:
    task = SearchTask(compute_dag=conv_add_dag(), workload_key="cached_inputs_conv_add", target="llvm")
    arguments = reference_arguments(task)
    assert [(a.name, a.role, a.cached) for a in arguments] == [
        ("data", "in", True),
        ("kernel", "in", False),
        ("residual", "in", True),
        ("add_relu", "out", False),
    ]
    roles = [argument_line(a, f"arg_{i}.bin").split()[0] for i, a in enumerate(arguments)]
    assert roles == ["hot", "in", "hot", "out"]  # the SSH harness's args.txt


def test_the_worker_reads_back_exactly_the_cached_inputs_after_each_flush(monkeypatch) -> None:
    """Timed with a flush, each repeat reads the cached inputs back and never the weight."""
    rng = np.random.default_rng(0)
    data, weight, residual = (rng.standard_normal(n).astype(np.float32) for n in (64, 4096, 64))
    expected = data + residual
    task = TaskData(
        [
            Argument("data", "in", data, 0.0, 0.0, cached=True),
            Argument("weight", "in", weight, 0.0, 0.0, cached=False),
            Argument("residual", "in", residual, 0.0, 0.0, cached=True),
            Argument("out", "out", expected, 1e-6, 1e-6),
        ]
    )
    addresses: list[int] = []

    def kernel(args, nargs):  # out = data + residual, as a packed function
        addresses[:] = [args[i] for i in range(nargs)]
        floats = ctypes.POINTER(ctypes.c_float)
        data_in, residual_in, out = (
            np.ctypeslib.as_array(ctypes.cast(args[i], floats), (64,)) for i in (0, 2, 3)
        )
        out[:] = data_in + residual_in
        return 0

    read_back: list[int] = []
    monkeypatch.setattr(run_worker, "read_through", lambda array: read_back.append(array.ctypes.data))
    worker = Worker(FaultReporter(2))
    request = {"number": 1, "repeat": 3, "min_repeat_ms": 0, "flush_bytes": 1 << 16}
    costs = worker.measure(task, PACKED_FUNC_TYPE(kernel), request, uses_openmp=False)
    assert len(costs) == 3
    assert read_back == [addresses[0], addresses[2]] * 3


def test_the_child_keeps_the_tasks_loaded_last_even_when_one_is_loaded_again(tmp_path):
    """The parent clears its list of loaded tasks when it reaches ``MAX_TASKS`` and loads
    again what it needs; a task loaded again must count as the newest in the child, or the
    child drops it next while the parent believes it loaded (an UNKNOWN_ERROR "task ... was
    not loaded into the runner" in a long layout-rewrite tuning)."""
    np.save(tmp_path / "a.npy", np.ones(4, np.float32))
    arg = {
        "name": "A",
        "role": "in",
        "file": str(tmp_path / "a.npy"),
        "rtol": 0.0,
        "atol": 0.0,
        "cached": False,
    }
    worker = Worker(FaultReporter(2))
    for task_id in range(run_worker.MAX_TASKS):
        worker.load_task({"id": task_id, "args": [arg]})
    worker.load_task({"id": 0, "args": [arg]})  # the parent cleared its list and needs task 0
    worker.load_task({"id": run_worker.MAX_TASKS, "args": [arg]})
    assert 0 in worker.tasks and 1 not in worker.tasks
