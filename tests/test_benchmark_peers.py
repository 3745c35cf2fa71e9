"""The peers that ``benchmarks/tune_ops.py`` times our kernels against compute the same
thing as the declarations: every numpy (and, when installed, PyTorch) formulation of
``benchmarks/numpy_peers.py`` agrees with ``ir.reference.evaluate`` on random inputs, at
small shapes of each operator's configuration format; plus the suite's bookkeeping."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ir.loop_state.api import get_init_state
from ir.loop_state.state import initial_state

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import numpy_peers
import tune_ops

from ir.compute_dag import ComputeDAG
from ir.reference import evaluate, random_inputs
from ir.topi.workloads import PAPER_SUITE

# small configurations in each operator's format (App. C of the paper, batch excluded)
SMALL = [
    ("C1D", (16, 8, 12, 3, 2, 1)),
    ("C2D", (9, 9, 8, 12, 3, 2, 1)),
    ("C2D", (5, 5, 8, 8, 1, 1, 0)),
    ("C3D", (4, 6, 6, 4, 8, 3, 1, 1)),
    ("GMM", (8, 12, 16)),
    ("GRP", (8, 8, 8, 12, 3, 2, 1)),
    ("DIL", (10, 10, 4, 8, 3, 1, 1)),
    ("DEP", (9, 9, 6, 3, 2, 1)),
    ("T2D", (4, 4, 8, 6, 4, 2, 1)),
    ("T2D", (5, 5, 3, 4, 3, 1, 0)),
    ("CAP", (6, 6, 4, 5, 3, 2, 1, 3)),
    ("NRM", (16, 24)),
    ("MBR", (8, 12, 16)),
    ("softmax", (6, 33)),
]
BATCHED = [(op, config) for op, config in SMALL if op in PAPER_SUITE]


def ident(case: tuple[str, tuple[int, ...]]) -> str:
    op, config = case
    return f"{op}-{'x'.join(map(str, config))}"


IDS = [ident(case) for case in SMALL]


def reference_case(tensors: list) -> tuple[list[np.ndarray], np.ndarray]:
    dag = ComputeDAG(tensors)
    inputs = random_inputs(dag, seed=3)
    (expected,) = evaluate(dag, inputs)
    assert np.abs(expected).max() > 0
    return inputs, expected


def assert_matches(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize(("op", "config"), SMALL, ids=IDS)
def test_numpy_formulations_match_reference(op: str, config: tuple[int, ...]) -> None:
    inputs, expected = reference_case(tune_ops.workload_tensors(op, config))
    formulations = numpy_peers.numpy_formulations(op, config)
    assert formulations
    for formulation in formulations:
        out = np.full(expected.shape, np.nan, np.float32)  # an element left unwritten fails
        formulation.run(inputs, out)
        assert_matches(out, expected)


@pytest.mark.parametrize(("op", "config"), BATCHED, ids=[ident(case) for case in BATCHED])
def test_numpy_formulations_handle_a_batch(op: str, config: tuple[int, ...]) -> None:
    builder = PAPER_SUITE[op][0]
    inputs, expected = reference_case(builder(2, *config))
    for formulation in numpy_peers.numpy_formulations(op, config):
        out = np.full(expected.shape, np.nan, np.float32)
        formulation.run(inputs, out)
        assert_matches(out, expected)


@pytest.mark.parametrize(("op", "config"), SMALL, ids=IDS)
def test_torch_formulation_matches_reference(op: str, config: tuple[int, ...]) -> None:
    torch = pytest.importorskip("torch", reason="PyTorch is optional (pip install torch==2.13.0)")
    inputs, expected = reference_case(tune_ops.workload_tensors(op, config))
    peer = numpy_peers.torch_formulation(op, config, torch)
    prepared = peer.prepare(inputs)
    with torch.inference_mode():
        assert_matches(peer.to_numpy(peer.run(*prepared)), expected)


def test_every_suite_op_has_peers_and_a_valid_default() -> None:
    assert set(tune_ops.SUITE) == set(numpy_peers.OPS)
    assert set(PAPER_SUITE) - set(tune_ops.SUITE) == {"ConvLayer", "TBS"}  # the subgraph suite
    for op in tune_ops.SUITE:
        index, config = tune_ops.resolve_config(op, None)
        assert 0 <= index < len(tune_ops.SUITE[op].configs)
        assert config == tuple(tune_ops.SUITE[op].configs[index])
    assert tune_ops.resolve_config("GMM", None) == (3, (1024, 1024, 1024))
    assert tune_ops.resolve_config("C2D", 1) == (1, (56, 56, 64, 64, 1, 1, 0))


def test_bad_names_and_indices_are_named_in_errors() -> None:
    with pytest.raises(tune_ops.BenchmarkError, match=r"config index 4 out of range \[0, 4\) for NRM"):
        tune_ops.resolve_config("NRM", 4)
    with pytest.raises(tune_ops.BenchmarkError, match="unknown op 'GEMM'"):
        tune_ops.workload_tensors("GEMM", (8, 8, 8))
    with pytest.raises(numpy_peers.PeerError, match="no peer formulation for op 'TBS'"):
        numpy_peers.numpy_formulations("TBS", (128, 12, 64))
    with pytest.raises(SystemExit):
        tune_ops.parse_args(["--ops", "NRM", "--config-index", "7"])


def test_table_reports_speeds_and_ratios() -> None:
    row = tune_ops.Row("GMM", 3, (1024, 1024, 1024), flop=2e9, tuned_s=0.02, naive_s=4.0)
    row.numpy_s, row.numpy_label = 0.025, "a @ b"
    row.tune_s, row.trials_run, row.trials_total, row.tuned_rank = 123.4, 64, 1000, 2
    skipped = tune_ops.Row("C3D", 2, (16, 14, 14, 256, 256, 3, 1, 1), flop=1.1e10, tuned_s=0.5)
    skipped.naive_note = "skipped (est. 44 s/run)"
    table = tune_ops.format_table([row, skipped], threads=2)
    gmm = next(line for line in table.splitlines() if line.startswith("GMM "))
    fields = gmm.split()
    assert fields[1] == "3:1024,1024,1024"
    assert fields[2:6] == ["100.0", "0.50", "200.00x", "80.0"]
    assert fields[6] == "1.25x"  # our speed / numpy's: 0.025 s / 0.02 s
    assert fields[7:9] == ["-", "-"]  # no torch
    assert fields[9:] == ["123", "1000", "(+64)", "2"]
    c3d = next(line for line in table.splitlines() if line.startswith("C3D "))
    assert c3d.split()[2:5] == ["22.0", "skip", "-"] and c3d.split()[-1] == "-"
    assert "naive skipped (est. 44 s/run)" in table


def test_pick_fastest_checks_and_times_each_record(tmp_path: Path) -> None:
    dag = ComputeDAG(tune_ops.workload_tensors("GMM", (48, 48, 48)))
    tiled = get_init_state(dag)
    io, _ = tiled.split("C", "i", [8])
    tiled.parallel("C", io)
    states = [initial_state(dag), tiled.loop_state]
    inputs = random_inputs(dag, seed=3)
    (expected,) = evaluate(dag, inputs)
    arrays = [*inputs, np.empty_like(expected)]
    row = tune_ops.Row("GMM", 0, (48, 48, 48), flop=dag.flop_ct)
    args = tune_ops.parse_args(["--repeat", "2", "--min-repeat-ms", "1"])
    args.work_dir = tmp_path
    call = tune_ops.pick_fastest(dag, states, arrays, expected, row, args)
    assert row.tuned_rank in (1, 2) and row.errors == []
    arrays[-1].fill(np.nan)
    call()
    a, b = inputs
    np.testing.assert_allclose(arrays[-1], a @ b, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # checked against a wrong expectation, no record qualifies: None, one error per record
    assert tune_ops.pick_fastest(dag, states, arrays, expected + 1.0, row, args) is None
    assert [e.split(":")[0] for e in row.errors] == ["GMM record 1", "GMM record 2"]
