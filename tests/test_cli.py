"""The ``ansor-py`` command line (``ansor_py.cli``): every subcommand through ``main([...])``
in this process, ``--help`` through ``python -m ansor_py`` in a child, and the one-line
errors (no traceback) for a missing file, an unknown workload and a bad target.

Tuning runs at tiny budgets: a 64 x 64 x 64 matmul and a one-layer ONNX model
(``relu(x @ W + b)`` with a dynamic batch dimension) written here with ``onnx.helper``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ansor_py.cli import COMMANDS, main
from ansor_py.cli.run import verified
from ansor_py.cli.workloads import parse_workload_arg, workload_args
from ansor_py.records import load_records

ROOT = Path(__file__).resolve().parents[1]
SMALL_SEARCH = ["--per-round", "4", "--population", "64", "--seed", "0", "--verbose", "0"]


def write_dense_model(path: Path) -> Path:
    """``y = relu(x @ W + b)``, x [N, 16] with N dynamic, W [16, 8] and b [8] random."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["xwb"]),
        helper.make_node("Relu", ["xwb"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "dense_relu",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def record_count(log: Path) -> int:
    return sum(1 for line in log.read_text().splitlines() if line.strip())


def program_count(log: Path) -> int:
    """Distinct programs (trials) of a log: the best few are measured again at the end of
    a run and recorded once more (``ansor_py.remeasure``)."""
    return len({inp.state.transform_steps for inp, _ in load_records(log)})


# --- help -------------------------------------------------------------------------------


def test_help_through_python_dash_m_lists_every_command() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout, not another install
    done = subprocess.run(
        [sys.executable, "-m", "ansor_py", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ansor-py")
    for command in ("tune", "run", "explain", "distill", "check-host", "demo"):
        assert f"    {command}" in done.stdout, done.stdout


@pytest.mark.parametrize("command", ["tune", "run", "explain", "distill", "check-host", "demo"])
def test_every_command_help_shows_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: ansor-py {command}" in out
    examples = out.split("examples:")[1]
    assert f"ansor-py {command} " in examples, out
    assert "``" not in out  # docstrings are shown without their reStructuredText quotes


def test_one_module_per_command() -> None:
    names = [module.__name__.rsplit(".", 1)[1] for module in COMMANDS]
    assert names == ["tune", "run", "explain", "distill", "check_host", "demo"]


# --- workloads --------------------------------------------------------------------------


def test_workload_arguments_are_ints_then_floats_then_strings() -> None:
    assert [parse_workload_arg(t) for t in ("512", "-1", "0.5", "float32", "NCHW")] == [
        512,
        -1,
        0.5,
        "float32",
        "NCHW",
    ]


def test_list_workloads_shows_names_and_signatures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tune", "--list-workloads"]) == 0
    out = capsys.readouterr().out
    assert "matmul(N, M, K, dtype='float32')" in out
    assert "conv2d(N, H, W, CI, CO, k, s=1, p=0, dilation=1, groups=1, layout='NHWC'" in out


def test_import_adds_a_users_workload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cli_test_ops.py").write_text(
        textwrap.dedent(
            '''
            import ansor_py as ansor
            from ansor_py import te

            @ansor.register_workload
            def cli_test_scale(n):
                """B = 2 * A, n elements."""
                A = te.placeholder((n,), name="A")
                return [A, te.compute((n,), lambda i: A[i] * 2.0, name="B")]
            '''
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the import adds the directory
    assert main(["tune", "--import", "cli_test_ops", "--list-workloads"]) == 0
    out = capsys.readouterr().out
    assert "cli_test_scale(n)" in out and "B = 2 * A, n elements." in out


def test_workload_arguments_are_checked_against_the_signature() -> None:
    assert workload_args("matmul", ["8", "8", "8"], "tune") == [8, 8, 8]
    from ansor_py.cli.options import CommandError

    with pytest.raises(CommandError, match=r"workload 'matmul' takes \(N, M, K, dtype='float32'\)"):
        workload_args("matmul", ["8", "8"], "tune")


# --- errors: one line on stderr, no traceback -------------------------------------------


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1]


def test_missing_model_file_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.onnx"
    assert main(["tune", str(missing), "--log", str(tmp_path / "log.json")]) == 1
    line = one_error_line(capsys)
    assert str(missing) in line and "does not exist" in line


def test_run_names_a_missing_model_or_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing_model = tmp_path / "missing.onnx"
    assert main(["run", str(missing_model)]) == 1
    assert f"ONNX model file '{missing_model}' does not exist" in one_error_line(capsys)
    model = write_dense_model(tmp_path / "model.onnx")
    missing_log = tmp_path / "missing.json"
    assert main(["run", str(model), "--log", str(missing_log)]) == 1
    assert f"record log '{missing_log}' does not exist" in one_error_line(capsys)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["explain", "{f}"], "record log '{f}' does not exist"),
        (["distill", "{f}", "{d}/out.json"], "record log '{f}' does not exist"),
    ],
)
def test_log_commands_name_the_missing_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    missing = tmp_path / "missing.json"
    assert main([a.format(f=missing, d=tmp_path) for a in argv]) == 1
    assert needle.format(f=missing) in one_error_line(capsys)


def test_unknown_workload_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["tune", "--workload", "matmull", "--args", "8", "8", "8", "--log", str(tmp_path / "l.json")])
        == 1
    )
    line = one_error_line(capsys)
    assert "unknown workload 'matmull'" in line and "matmul" in line.split("known workloads:")[1]


def test_bad_target_is_a_usage_error_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["tune", "--workload", "matmul", "--args", "8", "8", "8", "--target", "llvmx -mcpu=foo"])
    assert exited.value.code == 2
    assert "bad target 'llvmx -mcpu=foo'" in one_error_line(capsys)


def test_a_target_this_machine_cannot_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = "llvm -mtriple=aarch64-linux-gnu -mattr=+neon"
    argv = ["tune", "--workload", "matmul", "--args", "8", "8", "8", "--target", target]
    assert main([*argv, "--log", str(tmp_path / "l.json")]) == 1
    line = one_error_line(capsys)
    assert f"target '{target}' does not run on this machine" in line
    assert not (tmp_path / "l.json").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["tune"],  # neither a model nor a workload
        ["tune", "m.onnx", "--workload", "matmul"],  # both
        ["tune", "m.onnx", "--args", "8"],  # --args without --workload
        ["tune", "--workload", "matmul", "--args", "8", "8", "8", "--shape", "x=1,2"],
    ],
)
def test_options_that_do_not_go_together_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert one_error_line(capsys).startswith("ansor-py: tune: ")


@pytest.mark.parametrize("shape", ["x", "x=1,a", "x=0,3", "=1,2"])
def test_bad_shape_is_a_usage_error(shape: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "m.onnx", "--shape", shape])
    assert exited.value.code == 2
    assert f"shape {shape!r}" in one_error_line(capsys)


def test_an_unwritable_log_is_refused_before_tuning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tune", "--workload", "matmul", "--args", "8", "8", "8", "--log", str(tmp_path)]
    assert main(argv) == 1
    assert f"the record log {tmp_path} is a directory" in one_error_line(capsys)


# --- tune a workload, resume, explain, distill ------------------------------------------


MATMUL = ["--workload", "matmul", "--args", "64", "64", "64"]


@pytest.fixture(scope="module")
def matmul_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A log of 3 trials of the 64 x 64 x 64 matmul, and what ``tune`` printed."""
    log = tmp_path_factory.mktemp("tuned") / "mm.json"
    capture = tmp_path_factory.getbasetemp() / "tune_stdout.txt"
    with open(capture, "w") as out, contextlib.redirect_stdout(out):
        assert main(["tune", *MATMUL, "--log", str(log), "--trials", "3", *SMALL_SEARCH]) == 0
    return log, capture.read_text()


@pytest.mark.slow
def test_tune_a_workload_prints_the_best_program(matmul_log: tuple[Path, str]) -> None:
    log, out = matmul_log
    assert program_count(log) == 3
    assert 'task ["matmul", 64, 64, 64]' in out and "== best of 3 trials:" in out
    assert "C = ..." in out  # the loop tree
    assert "s = get_init_state(dag)" in out  # the step script
    assert all(inp.task.workload_key == '["matmul", 64, 64, 64]' for inp, _ in load_records(log))


@pytest.mark.slow
def test_tune_resumes_the_log_and_distill_keeps_the_best(
    matmul_log: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "mm.json"
    shutil.copy(matmul_log[0], log)
    lines = record_count(log)
    tune = ["tune", *MATMUL, "--log", str(log), *SMALL_SEARCH]
    # the same budget again: the log holds it already, nothing is measured
    assert main([*tune, "--trials", "3"]) == 0
    assert "already holds 3 programs of the task (budget 3): nothing to measure" in capsys.readouterr().out
    assert record_count(log) == lines
    # a larger budget measures only what the log lacks, and only programs not measured yet
    assert main([*tune, "--trials", "5"]) == 0
    assert "tuning 2 trials into" in capsys.readouterr().out
    assert program_count(log) == 5

    best = tmp_path / "best.json"
    assert main(["distill", str(log), str(best)]) == 0
    assert f"{best}: 1 best record(s), from {record_count(log)} line(s)" in capsys.readouterr().out
    assert record_count(best) == 1


@pytest.mark.slow
def test_explain_the_best_record_of_a_tuned_workload(
    matmul_log: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explain", str(matmul_log[0]), *MATMUL]) == 0
    out = capsys.readouterr().out
    assert "C = ..." in out  # the loop tree
    assert "get_init_state(dag)" in out  # the step script
    assert "define" in out  # LLVM IR


@pytest.mark.slow
def test_explain_asks_which_workload_of_a_log_of_several(
    matmul_log: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = matmul_log[0].read_text()
    log = tmp_path / "two.json"
    log.write_text(text + text.replace('[\\"matmul\\", 64, 64, 64]', '[\\"matmul\\", 64, 64, 32]'))
    assert main(["explain", str(log), "--no-run"]) == 1
    assert "workload_key" in one_error_line(capsys)
    assert main(["explain", str(log), "--workload", "matmul", "--args", "8", "8", "8"]) == 1
    assert "matmul" in one_error_line(capsys)


# --- tune and run a model ---------------------------------------------------------------


@pytest.mark.slow
def test_tune_a_model_then_run_it_verified_and_timed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_dense_model(tmp_path / "dense.onnx")
    log = tmp_path / "dense.json"
    argv = ["tune", str(model), "--shape", "x=4,16", "--log", str(log), "--trials", "2", *SMALL_SEARCH]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 tasks for 'llvm', budget 2 trials" in out
    assert "estimated network latency (sum of weight x best):" in out
    assert f"== next: ansor-py run {model} --shape x=4,16 --log {log}" in out
    assert program_count(log) == 2

    assert (
        main(["run", str(model), "--shape", "x=4,16", "--log", str(log), "--repeat", "3", "--summary"]) == 0
    )
    out = capsys.readouterr().out
    assert "1 distinct kernels (1 tuned)" in out
    assert "ansor-py: 1 output(s) verified against the numpy reference" in out
    assert "time (median of 3 calls):" in out
    if "onnxruntime is not installed" not in out:
        assert "onnxruntime: 1 output(s) verified" in out and "ansor-py time / onnxruntime time:" in out


def test_run_untuned_says_so_and_a_wrong_output_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = write_dense_model(tmp_path / "dense.onnx")
    assert main(["run", str(model), "--shape", "x=2,16", "--repeat", "2", "--no-onnxruntime"]) == 0
    out = capsys.readouterr().out
    assert "note: " in out and "(0 tuned)" in out and "verified against the numpy reference" in out

    expected = [np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)]
    wrong = [expected[0].copy()]
    wrong[0][1, 2] += 0.5
    assert verified("ansor-py", ["y"], expected, expected)
    assert not verified("ansor-py", ["y"], wrong, expected)
    assert (
        "ERROR: ansor-py: output 'y' differs from the reference at 1 of 12 elements"
        in capsys.readouterr().out
    )


# --- check-host and demo ----------------------------------------------------------------


def test_check_host_reports_an_unreachable_board_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    assert main(["check-host", "nobody@127.0.0.1:1", "--known-hosts", str(known_hosts)]) == 1
    line = one_error_line(capsys)
    assert line.startswith("check-host: ") and "127.0.0.1" in line


def test_demo_passes_its_options_to_run_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo itself (tuning, printing, verifying, timing) is run through
    ``python -m ansor_py demo`` by tests/test_demo.py; here, only what the command hands it."""
    import ansor_py.demo

    calls: list[tuple[object, ...]] = []

    def run_demo(*args: object) -> int:
        calls.append(args)
        return 7

    monkeypatch.setattr(ansor_py.demo, "run_demo", run_demo)
    assert main(["demo", "--size", "16", "--trials", "2", "--log", "d.json"]) == 7
    assert main(["demo"]) == 7
    assert calls == [(16, 2, "d.json"), (512, 64, None)]
