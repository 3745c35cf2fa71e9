"""The two printed forms of a state: Ansor's loop tree (``str``) and the step history as
a Python script (``to_python``), pinned by golden text; the script must rebuild the state."""

from __future__ import annotations

import textwrap

import pytest
import workloads

from ir.compute_dag import ComputeDAG
from ir.loop_state.api import State, get_init_state
from ir.loop_state.python_names import PythonNames
from ir.loop_state.python_printer import steps_to_python
from ir.loop_state.state import initial_state, print_state


def golden(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def run_script(dag: ComputeDAG, script: str) -> State:
    namespace: dict = {"dag": dag}
    exec(script, namespace)
    return namespace["s"]


def tiled_matmul() -> tuple[ComputeDAG, State]:
    dag = ComputeDAG(workloads.matmul_relu(n=16, m=12, k=8))
    s = get_init_state(dag)
    s.cache_write("C", "local")
    i0, i1 = s.split("C", "i", [4])
    j0, j1 = s.split("C", "j", [6])
    s.reorder("C", [i0, j0, i1, j1])
    s.compute_at("C.local", "C", j0)
    fused = s.fuse("C", [i0, j0])
    s.parallel("C", fused)
    s.vectorize("C", j1)
    s.pragma("C", fused, "auto_unroll_max_step$8")
    s.compute_at("C", "D", "j")
    return dag, s


def test_initial_state_prints_every_root_stage() -> None:
    s = get_init_state(ComputeDAG(workloads.conv2d_nchw(n=1, ci=2, h=4, w=4, co=3)))
    assert str(s) == golden(
        """
        Placeholder: data, kernel
        for i1 (0,2)
          for i2 (0,6)
            for i3 (0,6)
              pad_temp = ...
        for ff (0,3)
          for yy (0,4)
            for xx (0,4)
              for rc (0,2)
                for ry (0,3)
                  for rx (0,3)
                    conv = ...
        """
    )


def test_trivial_loops_are_hidden_only_by_default() -> None:
    s = get_init_state(ComputeDAG(workloads.conv2d_nchw(n=1, ci=2, h=4, w=4, co=3)))
    full = print_state(s.loop_state, delete_trivial_loop=False)
    assert "for i0 (0,1)" in full and "for nn (0,1)" in full
    assert "i0" not in str(s)


def test_tiled_state_golden() -> None:
    _, s = tiled_matmul()
    assert str(s) == golden(
        """
        Placeholder: A, B
        for i (0,16)
          for j (0,12)
            C auto_unroll: 8
            parallel i.0@j.0@ (None)
              for i.c (None)
                for j.c (None)
                  for k (None)
                    C.local = ...
              for i.1 (None)
                vectorize j.1 (None)
                  C = ...
            D = ...
        """
    )


def test_tiled_state_python_golden() -> None:
    _, s = tiled_matmul()
    assert s.to_python() == golden(
        """
        from ir.loop_state.api import get_init_state
        s = get_init_state(dag)
        s.cache_write("C", "local")
        C_i, C_j = s["C"].iters
        C_i_0, C_i_1 = s.split("C", C_i, [4])
        C_j_0, C_j_1 = s.split("C", C_j, [6])
        s.reorder("C", [C_i_0, C_j_0, C_i_1, C_j_1])
        s.compute_at("C.local", "C", C_j_0)
        C_i_0_j_0_fused = s.fuse("C", [C_i_0, C_j_0])
        s.parallel("C", C_i_0_j_0_fused)
        s.vectorize("C", C_j_1)
        s.pragma("C", C_i_0_j_0_fused, "auto_unroll_max_step$8")
        D_i, D_j = s["D"].iters
        s.compute_at("C", "D", D_j)
        """
    )


def test_rfactor_state_and_script_golden() -> None:
    dag = ComputeDAG(workloads.row_reduce(m=6, n=10))
    s2 = get_init_state(dag)
    _, r1 = s2.split("row_sum", "r", [4])
    s2.rfactor("row_sum", r1, 1)
    s2.vectorize("row_sum.rf", "r.1")
    assert str(s2) == golden(
        """
        Placeholder: A
        for i (0,6)
          vectorize r.1 (0,4)
            for r.0 (0,3)
              row_sum.rf = ...
        for i (0,6)
          for r.1.v (0,4)
            row_sum = ...
        """
    )
    assert s2.to_python() == golden(
        """
        from ir.loop_state.api import get_init_state
        s = get_init_state(dag)
        row_sum_i, row_sum_r = s["row_sum"].iters
        row_sum_r_0, row_sum_r_1 = s.split("row_sum", row_sum_r, [4])
        s.rfactor("row_sum", row_sum_r_1, 1)
        row_sum_rf_i, row_sum_rf_r_1, row_sum_rf_r_0 = s["row_sum.rf"].iters
        s.vectorize("row_sum.rf", row_sum_rf_r_1)
        """
    )


def test_rfactor_stage_puts_the_factored_leaf_among_spatial_axes() -> None:
    dag = ComputeDAG(workloads.row_reduce(m=6, n=10))
    s = get_init_state(dag)
    _, r1 = s.split("row_sum", "r", [4])
    s.rfactor("row_sum", r1, 1)
    assert [it.name for it in s["row_sum.rf"].iters] == ["i", "r.1", "r.0"]


def all_kinds_state() -> tuple[ComputeDAG, State]:
    """Every step kind once, through the State API."""
    dag = ComputeDAG(workloads.matmul_bias_relu(n=16, m=24, k=8))
    s = get_init_state(dag)
    s.compute_inline("biased")
    s.cache_write("C", "local")
    s.cache_read("A", "shared", ["C.local"])
    i_parts = s.split("C", "i", [2, 4])
    j_parts = s.split("C", "j", [3, 2])
    s.reorder("C", [i_parts[0], j_parts[0], i_parts[1], j_parts[1], i_parts[2], j_parts[2]])
    s.follow_split("C.local", "i.c", 3, 2)
    outer = s.fuse("relu", ["i", "j"])
    s.follow_fused_split("relu", outer, [3, 4], 0, True)
    s.compute_at("A.shared", "C.local", "i.c.0")
    s.storage_align("A.shared", "ax1", 8, 2)
    s.bind("C", i_parts[0], "blockIdx.x")
    s.bind("C", j_parts[0], "vthread")
    s.unroll("C", i_parts[2])
    s.pragma("C", i_parts[0], "auto_unroll_max_step$4")
    s.compute_root("A.shared")
    _, k1 = s.split("C.local", "k", [2])
    s.rfactor("C.local", k1, 2)
    s.annotate("C", j_parts[2], "tensorize")
    return dag, s


def test_every_step_kind_prints_and_reruns() -> None:
    dag, s = all_kinds_state()
    script = s.to_python()
    rebuilt = run_script(dag, script)
    assert rebuilt.transform_steps == s.transform_steps
    assert str(rebuilt) == str(s)
    tags = {step.record_prefix for step in s.transform_steps}
    assert tags == {"CI", "CHW", "CHR", "SP", "RE", "FSP", "FU", "FFSP", "CA", "SA", "AN", "PR", "CR", "RF"}


@pytest.mark.parametrize("workload", ["matmul", "softmax", "row_reduce", "conv2d_nchw"])
def test_scripts_of_rfactor_and_cache_states_rerun(workload: str) -> None:
    dag = ComputeDAG(getattr(workloads, workload)())
    s = get_init_state(dag)
    reduction = next(st for st in s.stages if st.iters and st.iters[-1].kind.value == "reduction")
    last = reduction.iters[-1]
    _, inner = s.split(reduction.name, last, [2])
    s.rfactor(reduction.name, inner, 0)
    s.cache_read(
        s.stages[0].name,
        "local",
        [st.name for st in s.stages if s.stages[0].name in {t.name for t in st.op.input_tensors}],
    )
    rebuilt = run_script(dag, s.to_python())
    assert rebuilt.transform_steps == s.transform_steps
    assert str(rebuilt) == str(s)


def test_one_loop_stage_unpacks_with_a_trailing_comma() -> None:
    dag = ComputeDAG(workloads.vector_scale())
    s = get_init_state(dag)
    s.vectorize("B", "i")
    script = s.to_python()
    assert script.splitlines()[2] == 'B_i, = s["B"].iters'
    assert str(run_script(dag, script)) == str(s)


def test_step_prints_on_its_own() -> None:
    dag = ComputeDAG(workloads.matmul())
    s = get_init_state(dag)
    s.split("C", "k", [4], inner_to_outer=False)
    step = s.transform_steps[0]
    assert step.to_python(initial_state(dag)) == 'C_k_0, C_k_1 = s.split("C", C_k, [4], inner_to_outer=False)'
    header = "from ir.loop_state.api import get_init_state\ns = get_init_state(dag)\n"
    assert steps_to_python(dag, []) == header


def test_variable_names_stay_unique() -> None:
    names = PythonNames()
    assert names.iter_var("C", "i.0") == "C_i_0"
    assert names.iter_var("C", "i_0") == "C_i_0_1"
    assert names.iter_var("C.local", "i@j@") == "C_local_i_j_fused"
    assert names.iter_var("C", "i.0") == "C_i_0"
    assert names.iter_var("2d", "x") == "_2d_x"
