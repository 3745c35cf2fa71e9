"""A network's first run pins libgomp's worker threads, not the caller's thread, unless the
user placed the threads (``ansor_py.network.openmp_team``, and the same rule in the
exported library's C entry, ``network_entry.c``). Each case runs in a fresh process: the
pinning is once per process and reads the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ansor_py.network.executor import NetworkBuildWarning, build_network
from ansor_py.network.export import export_library
from ansor_py.network.zoo import NETWORKS

PROBE = r"""
import ctypes, json, os, sys
import numpy as np
from ansor_py.network.executor import NetworkBuildWarning, build_network
from ansor_py.network.export_run import load_exported
from ansor_py.network.reference import run_reference
from ansor_py.network.zoo import NETWORKS, random_inputs

graph = NETWORKS["dcgan"]()
inputs = random_inputs(graph, 3)
if len(sys.argv) > 1:  # the exported library: its C entry pins, no Python code does
    got = load_exported(sys.argv[1])(inputs)[0]
else:
    got = build_network(graph, "llvm").run_inputs(inputs, copy=True)[0]
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


def probe(library: Path | None = None, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    environment.update(env)
    command = [sys.executable, "-c", PROBE, *([str(library)] if library else [])]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def exported_dcgan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NetworkBuildWarning)  # untuned on purpose
        network = build_network(NETWORKS["dcgan"](), "llvm")
    return export_library(network, tmp_path_factory.mktemp("dcgan") / "dcgan.so")


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two CPUs; this process has one")
@pytest.mark.parametrize("exported", [False, True], ids=["in_process", "exported_library"])
def test_the_first_run_pins_the_workers_and_leaves_the_caller_alone(exported: bool, request) -> None:
    found = probe(request.getfixturevalue("exported_dcgan") if exported else None)
    cpus, masks = found["cpus"], {int(k): v for k, v in found["masks"].items()}
    assert found["error"] < 1e-4
    assert masks[0] == cpus, "the caller's thread keeps the process's CPUs"
    assert len(masks) == len(cpus), masks  # the default team: one thread per CPU
    for thread, mask in masks.items():
        if thread > 0:
            assert mask == [cpus[thread % len(cpus)]], (thread, mask)


@pytest.mark.parametrize("exported", [False, True], ids=["in_process", "exported_library"])
def test_omp_proc_bind_false_turns_the_pinning_off(exported: bool, request) -> None:
    found = probe(request.getfixturevalue("exported_dcgan") if exported else None, OMP_PROC_BIND="false")
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
