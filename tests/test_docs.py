"""The documentation runs, so it cannot rot.

Every script in ``docs/tutorials/`` is run as its own process with ``--size 64`` (each
tutorial accepts ``--size`` to run small; the SSH tutorial also gets a local emulated
board) and must exit 0 and print what it promises; the Python block under "## Scheduling
by hand, in twenty lines" of README.md is executed with its matrices shrunk, and the one
under "## Running a network" with its tuning budget cut to 4 trials, and the one under
"## Tuning a network" with one trial per task and a small evolutionary search.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gpu_tools import opencl_device
from ssh_tools import ensure_tools

from ansor_py.network import NetworkBuildWarning
from ansor_py.task_scheduler import TaskScheduler


def measured_programs(log: Path) -> list[str]:
    """Each program of a log once, at its first record (in order): tuning ends by
    re-measuring its best programs, which appends later records of the same programs."""
    programs: dict[str, None] = {}
    for line in log.read_text().splitlines():
        programs.setdefault(json.dumps(json.loads(line)["i"]), None)
    return list(programs)


ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.py"))
SMALL_SIZE = 64
TIMEOUT_S = 300

#: lines each tutorial must print (besides exiting 0); a tutorial not listed must print "verified"
EXPECTED_OUTPUT: dict[str, list[str]] = {
    "walkthrough_matmul.py": [
        "C(i, j) += (A[i, k]*B[k, j])",
        f"FLOP count: {2 * SMALL_SIZE**3}",
        "ops in topological order: ['A', 'B', 'C']",
        f"[{SMALL_SIZE}, {SMALL_SIZE}], [{SMALL_SIZE}, {SMALL_SIZE}], [{SMALL_SIZE}, {SMALL_SIZE}]]",
        'workload key: ["',
        "cache_write after split is refused: cannot cache_write stage 'C'",
        "C.local = ...",
        "B.global = ...",
        "parallel j.0",
        's.cache_read("B", "global", ["C.local"])',
        '["CHW", 2, "local"]',
        "[replayed] the record and the script both rebuild the same state and program",
        "allocate B.global",
        "define ",
        "llvm.fmuladd",
        "numpy (OpenBLAS)",
        "all kernels verified against the numpy reference",
    ],
    "tune_network_x86.py": [
        "task 0: weight 1, conv2d_nhwc + bias + relu, 1x16x16x3 -> 16, 3x3",
        "|  ID  |",
        "Estimated total latency:",
        "0 trials resumed from",
        "network 'small_cnn' on llvm: 6 kernel calls, 6 distinct kernels (",
        "latency: tuned ",
        "[verified] the tuned and the untuned network match the numpy reference",
    ],
    "tune_conv2d_layer_cuda.py": [
        "Computational DAG:",
        "The best program as CUDA C (what nvcc compiled):",
        'extern "C" __global__ void __launch_bounds__(',
        "[verified] the best of 4 programs",
    ],
    "tune_network_arm_over_ssh.py": [
        "task 0: weight 1, conv2d_nhwc + bias + relu, 1x8x8x3 -> 8, 3x3",
        "Estimated total latency:",
        "network 'small_cnn_arm' on llvm: 5 kernel calls, 5 distinct kernels (",
        "on the board: ",
        "[verified] small_cnn_arm.so ran on ",
    ],
}
#: command lines of tutorials that need more than --size (the SSH one runs against a local
#: sshd with AArch64 code under qemu-user: ``--local-emulated``)
TUTORIAL_ARGS: dict[str, list[str]] = {
    "tune_raspberry_pi_over_ssh.py": ["--local-emulated", "--size", "32", "--trials", "4"],
    # one round of each of its 4 tasks, from a small evolutionary search
    "tune_network_x86.py": ["--size", "16", "--trials", "4", "--population", "32"],
    # 4 candidates of a 7x7 8-channel layer, each compiled by nvcc and run on PoCL
    "tune_conv2d_layer_cuda.py": ["--size", "7", "--channels", "8", "--trials", "4", "--population", "16"],
    "tune_network_arm_over_ssh.py": [
        "--local-emulated",
        "--size",
        "8",
        "--trials",
        "3",
        "--population",
        "32",
    ],
}
#: how many kernels each tutorial verifies against the numpy reference ("[verified]" lines)
EXPECTED_VERIFIED = {"walkthrough_matmul.py": 6}


def run_tutorial(path: Path, *args: str, temp_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a tutorial script; what it leaves in temporary files (a tutorial keeps its log
    for the reader) goes to ``temp_dir``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    if temp_dir is not None:
        env["TMPDIR"] = str(temp_dir)
    try:
        return subprocess.run(
            [sys.executable, str(path), *args],
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            cwd=ROOT,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{path.name} {' '.join(args)} did not finish within {TIMEOUT_S} s")


def test_the_walkthrough_is_among_the_tutorials() -> None:
    assert "walkthrough_matmul.py" in [p.name for p in TUTORIALS]
    for name in EXPECTED_OUTPUT:
        assert (ROOT / "docs" / "tutorials" / name).is_file(), f"expected output listed for missing {name}"


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.name)
def test_tutorial_runs_small_and_verifies(path: Path, tmp_path: Path) -> None:
    args = TUTORIAL_ARGS.get(path.name, ["--size", str(SMALL_SIZE)])
    if "--local-emulated" in args:
        ensure_tools()  # sshd, qemu-user and the AArch64 cross toolchain, from apt
    if path.name == "tune_conv2d_layer_cuda.py":
        opencl_device()  # the candidates run on PoCL where there is no GPU
    result = run_tutorial(path, *args, temp_dir=tmp_path)
    assert result.returncode == 0, (
        f"{path.name} {' '.join(args)} exited with {result.returncode}\n"
        f"--- stdout (end)\n{result.stdout[-4000:]}\n--- stderr (end)\n{result.stderr[-4000:]}"
    )
    out = result.stdout
    for text in EXPECTED_OUTPUT.get(path.name, ["verified"]):
        assert text in out, f"{path.name} did not print {text!r}; its output:\n{out[-4000:]}"
    if path.name in EXPECTED_VERIFIED:
        verified = [line for line in out.splitlines() if line.startswith("[verified]")]
        assert len(verified) == EXPECTED_VERIFIED[path.name], "\n".join(verified)


def test_walkthrough_rejects_a_bad_size() -> None:
    result = run_tutorial(ROOT / "docs" / "tutorials" / "walkthrough_matmul.py", "--size", "0")
    assert result.returncode == 2
    assert "--size must be at least 1, got 0" in result.stderr


def readme_block(heading: str) -> str:
    """The Python block right under the README.md section ``## <heading>``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\s*?\n+```python\n(.*?)^```", text, re.S | re.M)
    assert match is not None, f"README.md has no ```python block right under '## {heading}'"
    return match.group(1)


def readme_example() -> str:
    return readme_block("Scheduling by hand, in twenty lines")


@pytest.mark.slow
def test_readme_tuning_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's tuning example, shrunk to a 32^3 matmul and 4 trials, in a scratch directory."""
    code = readme_block("Tuning an operator")
    code, sizes = re.subn(r"args=\(256, 256, 256,", "args=(32, 32, 32,", code)
    code, trials = re.subn(r"num_measure_trials=64", "num_measure_trials=4", code)
    assert sizes == 1 and trials == 1, "the README tuning example changed; update this test's substitutions"
    code = code.replace("def matmul_add(", "def readme_matmul_add(").replace(
        "func=matmul_add", "func=readme_matmul_add"
    )
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md, Tuning an operator", "exec"), {"__name__": "readme_tuning"})
    out = capsys.readouterr().out
    assert "Placeholder: A, B, C" in out and "s = get_init_state(dag)" in out, out
    assert len(measured_programs(tmp_path / "matmul.json")) == 4


def test_readme_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    code, count = re.subn(r"^N = M = K = \d+$", f"N = M = K = {SMALL_SIZE}", readme_example(), flags=re.M)
    assert count == 1, "the README example no longer sets its size as 'N = M = K = <int>'"
    # the example ends with np.testing.assert_allclose of the kernel against a @ b
    assert "assert_allclose" in code
    exec(compile(code, "README.md, In twenty lines", "exec"), {"__name__": "readme_example"})
    out = capsys.readouterr().out
    assert out.startswith("Placeholder: A, B\n"), out
    assert "parallel i.0" in out and "vectorize j.1" in out, out


@pytest.mark.slow
def test_readme_arm_board_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's ARM board example against a private sshd with AArch64 code under
    qemu-user: the board address becomes the local server, the matmul 16^3, 4 trials."""
    from ansor_py.measure.ssh.local_sshd import QEMU_PREFIX, SSHServer

    ensure_tools()
    tuning = readme_block("Tuning an operator")
    definition = tuning[: tuning.index("task = ")].replace("def matmul_add(", "def readme_arm_matmul_add(")
    code = readme_block("Tuning for an ARM board over SSH")
    substitutions = [
        (
            r'ansor\.SSHHost\.parse\("pi@raspberrypi\.local", key_filename="~/\.ssh/id_ed25519"\)',
            "server.host()",
        ),
        (r"func=matmul_add, args=\(256, 256, 256,", "func=readme_arm_matmul_add, args=(16, 16, 16,"),
        (
            r"ansor\.SSHRunner\(\[board\]\)",
            "ansor.SSHRunner([board], command_prefix=QEMU_PREFIX, timeout=30)",
        ),
        (r"num_measure_trials=200", "num_measure_trials=4"),
    ]
    for pattern, replacement in substitutions:
        code, count = re.subn(pattern, replacement, code)
        assert count == 1, f"the README ARM example changed ({pattern}); update this test"
    monkeypatch.chdir(tmp_path)
    with SSHServer() as server:
        namespace = {"__name__": "readme_arm", "server": server, "QEMU_PREFIX": QEMU_PREFIX}
        exec(compile(definition + code, "README.md, ARM board", "exec"), namespace)
    assert len(measured_programs(tmp_path / "pi.json")) == 4
    assert "aarch64-linux-gnu" in (tmp_path / "pi.json").read_text()
    assert (tmp_path / "matmul_add_pi.so").read_bytes()[18] == 183  # ELF e_machine: EM_AARCH64


@pytest.mark.slow
def test_readme_gpu_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's GPU example where there is no GPU, as the README says to run it: the
    OpenCL runner (PoCL) for the CUDA runner, a 32^3 matmul, 4 trials."""
    opencl_device()
    tuning = readme_block("Tuning an operator")
    definition = tuning[: tuning.index("task = ")].replace("def matmul_add(", "def readme_gpu_matmul_add(")
    code = readme_block("Tuning for an NVIDIA GPU")
    substitutions = [
        (r"func=matmul_add, args=\(1024, 1024, 1024,", "func=readme_gpu_matmul_add, args=(32, 32, 32,"),
        (r"with CUDARunner\(\) as runner:", "with OpenCLRunner(timeout=60) as runner:"),
        (r"num_measure_trials=200", "num_measure_trials=4"),
    ]
    for pattern, replacement in substitutions:
        code, count = re.subn(pattern, replacement, code)
        assert count == 1, f"the README GPU example changed ({pattern}); update this test"
    monkeypatch.chdir(tmp_path)
    exec(compile(definition + code, "README.md, NVIDIA GPU", "exec"), {"__name__": "readme_gpu"})
    assert len(measured_programs(tmp_path / "gpu.json")) == 4
    assert 'extern "C" __global__ void' in capsys.readouterr().out


@pytest.mark.slow
def test_readme_network_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's network example (MobileNet-V2 from the zoo, through ONNX, one task tuned
    with 4 trials, built, checked, profiled and exported), in a scratch directory."""
    code = readme_block("Running a network")
    code, trials = re.subn(r"num_measure_trials=16", "num_measure_trials=4", code)
    assert trials == 1, "the README network example changed; update this test's substitution"
    monkeypatch.chdir(tmp_path)
    with pytest.warns(NetworkBuildWarning, match="33 of 34 tasks have no tuning record"):
        exec(compile(code, "README.md, Running a network", "exec"), {"__name__": "readme_network"})
    out = capsys.readouterr().out
    assert "1 conv2d_nhwc + bias + clip, 1x224x224x3 -> 32, 3x3, stride 2" in out, out
    assert "(1 tuned, 33 default)" in out, out
    assert "overhead" in out, out
    assert (tmp_path / "mobilenet_v2.so").stat().st_size > 3_000_000  # the weights are embedded
    assert len(measured_programs(tmp_path / "mobilenet_v2.json")) == 4


@pytest.mark.slow
def test_readme_network_tuning_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's network tuning example (DCGAN, all its tasks tuned by the task
    scheduler), cut to one trial per task and a 32-state evolutionary search, then run a
    second time: the scheduler resumes from the log and measures nothing again."""
    code = readme_block("Tuning a network")
    substitutions = [
        (r"num_measure_trials=100 \* len\(tasks\)", "num_measure_trials=len(tasks)"),
        (
            r"^scheduler\.tune\(options\)",
            'scheduler.tune(options, search_policy_params={"evolutionary_search_population": 32})',
        ),
    ]
    for pattern, replacement in substitutions:
        code, count = re.subn(pattern, replacement, code, flags=re.M)
        assert count == 1, f"the README network tuning example changed ({pattern}); update this test"
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md, Tuning a network", "exec"), {"__name__": "readme_network_tuning"})
    out = capsys.readouterr().out
    assert "Estimated total latency:" in out and "|  ID  |" in out, out
    assert "network 'dcgan' on llvm: 7 kernel calls, 7 distinct kernels (" in out, out
    records = measured_programs(tmp_path / "dcgan.json")
    assert len(records) == 7  # one round of one trial for each of DCGAN's 7 tasks

    # again, with the log there: the scheduler restores the 7 records and measures 7 new
    # programs (num_measure_trials counts this call's trials, as TVM's), none a repeat
    resumed: dict[str, object] = {"__name__": "readme_network_tuning_resumed"}
    exec(compile(code, "README.md, Tuning a network (resumed)", "exec"), resumed)
    scheduler = resumed["scheduler"]
    assert isinstance(scheduler, TaskScheduler) and scheduler.restored_trials == 7
    after = measured_programs(tmp_path / "dcgan.json")
    # a program the search measured twice would count once here, and fewer than ct new
    assert after[:7] == records and len(after) == 7 + scheduler.ct and scheduler.ct > 0, (
        "a program was measured twice"
    )
