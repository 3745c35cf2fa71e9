"""A network's first run pins libgomp's worker threads, not the caller's thread, unless the
user placed the threads (``ansor_py.network.openmp_team``). Each case runs in a fresh
process: the pinning is once per process and reads the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = r"""
import ctypes, json, os
import numpy as np
from ansor_py.network.executor import build_network
from ansor_py.network.reference import run_reference
from ansor_py.network.zoo import NETWORKS, random_inputs

graph = NETWORKS["dcgan"]()
inputs = random_inputs(graph, 3)
network = build_network(graph, "llvm")
got = network.run_inputs(inputs, copy=True)[0]
want = run_reference(graph, inputs)[0]
error = float(np.abs(got - want).max() / np.abs(want).max())

gomp = ctypes.CDLL("libgomp.so.1")
gomp.GOMP_parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
masks = {}
def body(_):
    masks[gomp.omp_get_thread_num()] = sorted(os.sched_getaffinity(0))
callback = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(body)
gomp.GOMP_parallel(ctypes.cast(callback, ctypes.c_void_p), None, 0, 0)
print(json.dumps({"error": error, "masks": masks, "cpus": sorted(os.sched_getaffinity(0))}))
"""


def probe(**env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two CPUs; this process has one")
def test_the_first_run_pins_the_workers_and_leaves_the_caller_alone() -> None:
    found = probe()
    cpus, masks = found["cpus"], {int(k): v for k, v in found["masks"].items()}
    assert found["error"] < 1e-4
    assert masks[0] == cpus, "the caller's thread keeps the process's CPUs"
    assert len(masks) == len(cpus), masks  # the default team: one thread per CPU
    for thread, mask in masks.items():
        if thread > 0:
            assert mask == [cpus[thread % len(cpus)]], (thread, mask)


def test_omp_proc_bind_false_turns_the_pinning_off() -> None:
    found = probe(OMP_PROC_BIND="false")
    assert found["error"] < 1e-4
    assert all(mask == found["cpus"] for mask in found["masks"].values()), found


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="places need two CPUs; this process has one")
def test_omp_places_is_left_to_libgomp() -> None:
    """With OMP_PLACES set libgomp binds every thread, the caller's too, one place each."""
    found = probe(OMP_PLACES="threads")
    masks = {int(k): v for k, v in found["masks"].items()}
    assert found["error"] < 1e-4
    assert all(len(mask) == 1 for mask in masks.values()), masks
    assert len({mask[0] for mask in masks.values()}) == len(masks), masks
