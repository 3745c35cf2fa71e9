"""Workloads of TVM's sketch-generation tests (``tvm.testing.auto_scheduler``), declared once
for the search tests. Each returns ``[inputs..., outputs...]``; each is registered so that
tasks built from it have a workload key that records can name.
"""

from __future__ import annotations

from ansor_py.workload_registry import register_workload
from ir import te
from ir.lower.bound import infer_bound_from_state
from ir.te import Tensor
from ir.topi import reduction
from ir.topi.nn_conv import conv2d_nchw
from ir.topi.nn_norm import softmax
from ir.topi.nn_pool import max_pool2d


@register_workload
def search_test_matmul(N: int, M: int, K: int) -> list[Tensor]:
    A = te.placeholder((N, K), name="A")
    B = te.placeholder((K, M), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((N, M), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return [A, B, C]


@register_workload
def search_test_double_matmul(N: int) -> list[Tensor]:
    A = te.placeholder((N, N), name="A")
    B = te.placeholder((N, N), name="B")
    C = te.placeholder((N, N), name="C")
    k = te.reduce_axis((0, N), name="k")
    D = te.compute((N, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="D")
    k2 = te.reduce_axis((0, N), name="k")
    E = te.compute((N, N), lambda i, j: te.sum(D[i, k2] * C[k2, j], axis=k2), name="E")
    return [A, B, C, E]


@register_workload
def search_test_matmul_bias_relu(N: int, M: int, K: int) -> list[Tensor]:
    A = te.placeholder((N, K), name="A")
    B = te.placeholder((K, M), name="B")
    bias = te.placeholder((M,), name="bias")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((N, M), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    D = te.compute((N, M), lambda i, j: C[i, j] + bias[j], name="D")
    E = te.compute((N, M), lambda i, j: te.max(D[i, j], 0.0), name="E")
    return [A, B, bias, E]


@register_workload
def search_test_conv2d_nchw_bn_relu(
    N: int, H: int, W: int, CI: int, CO: int, kernel_size: int, stride: int, padding: int
):
    data = te.placeholder((N, CI, H, W), name="Data")
    kernel = te.placeholder((CO, CI, kernel_size, kernel_size), name="Kernel")
    bias = te.placeholder((CO, 1, 1), name="Bias")
    bn_scale = te.placeholder((CO, 1, 1), name="Bn_scale")
    bn_offset = te.placeholder((CO, 1, 1), name="Bn_offset")
    conv = conv2d_nchw(data, kernel, stride, padding)
    OH, OW = conv.shape[2], conv.shape[3]
    shape = (N, CO, OH, OW)
    conv = te.compute(shape, lambda n, c, h, w: conv[n, c, h, w] + bias[c, 0, 0], name="Bias_add")
    conv = te.compute(shape, lambda n, c, h, w: conv[n, c, h, w] * bn_scale[c, 0, 0], name="Bn_mul")
    conv = te.compute(shape, lambda n, c, h, w: conv[n, c, h, w] + bn_offset[c, 0, 0], name="Bn_add")
    out = te.compute(shape, lambda n, c, h, w: te.max(conv[n, c, h, w], 0.0), name="T_relu")
    return [data, kernel, bias, bn_offset, bn_scale, out]


@register_workload
def search_test_max_pool2d(N: int, H: int, W: int, CI: int, padding: int) -> list[Tensor]:
    data = te.placeholder((N, CI, H, W), name="Data")
    return [data, max_pool2d(data, 2, 1, padding, layout="NCHW", name="pool_max")]


@register_workload
def search_test_min_nm(N: int, M: int) -> list[Tensor]:
    A = te.placeholder((N, M), name="A")
    return [A, reduction.min(A, axis=-1, name="B")]


@register_workload
def search_test_softmax_nm(N: int, M: int) -> list[Tensor]:
    A = te.placeholder((N, M), name="A")
    return [A, softmax(A, axis=1)]


@register_workload
def search_test_softmax_abcd(a: int, b: int, c: int, d: int) -> list[Tensor]:
    A = te.placeholder((a, b, c, d), name="A")
    return [A, softmax(A, axis=-1)]


@register_workload
def search_test_zero_rank_reduce(N: int) -> list[Tensor]:
    """TVM sums to a 0-d tensor; the DSL's smallest output is shape (1,)."""
    A = te.placeholder((N,), name="A")
    k = te.reduce_axis((0, N), name="k")
    B = te.compute((1,), lambda i: te.sum(A[k], axis=k), name="B")
    return [A, B]


@register_workload
def search_test_elementwise_chain(N: int, M: int) -> list[Tensor]:
    """Two element-wise stages, the second reading a transpose (not inlineable): compute
    locations to choose."""
    A = te.placeholder((N, M), name="A")
    B = te.compute((N, M), lambda i, j: te.exp(A[i, j]) * 2.0, name="B")
    C = te.compute((M, N), lambda i, j: B[j, i] + 1.0, name="C")
    return [A, C]


# ---------------------------------------------------------------------------------------
# helpers shared by the search tests

#: small populations keep the search tests fast; the rules and the loop are the same
SMALL_PARAMS = {"evolutionary_search_population": 48, "sample_init_min_population": 8}


def small_policy(func, args, seed: int = 0, target: str = "llvm", **params):
    """A SketchPolicy with a seeded RandomModel and small populations, quiet."""
    from ansor_py.cost_model import RandomModel
    from ansor_py.search import SketchPolicy
    from ansor_py.search_task import SearchTask

    task = SearchTask(func=func, args=args, target=target)
    return SketchPolicy(task, RandomModel(seed=seed), params={**SMALL_PARAMS, **params}, seed=seed, verbose=0)


def check_program(task, state):
    """Build ``state`` (a LoopState of ``task``), run it and compare with numpy, also its
    replay and record round trip (``tests/differential.py``); and check that the search's
    bound-inferred state is what bound inference makes of its replayed steps."""
    from differential import check_schedule

    from ir.loop_state.replay import replay_steps

    dag = task.compute_dag
    replayed = replay_steps(dag, state.transform_steps)
    assert str(infer_bound_from_state(dag, replayed)) == str(state)

    def adopt(s) -> None:
        s.loop_state = replayed

    return check_schedule(dag, adopt)


@register_workload
def search_test_const_transform(P: int, CI: int) -> list[Tensor]:
    """A Winograd-style transform: ``out[eps, p, c] = sum_r data[r, p, c] * G[r, eps]`` with G
    a constant 4x4 matrix (a compute op reading nothing, so it is inlined); the op carries
    ``auto_scheduler_simplify_const_tensor_indices``."""
    data = te.placeholder((4, P, CI), name="data")
    G = te.compute(
        (4, 4),
        lambda r, e: te.if_then_else(r == e, 1.0, te.if_then_else(r < e, 0.5, -0.25)),
        name="G",
    )
    r = te.reduce_axis((0, 4), name="r")
    out = te.compute(
        (4, P, CI),
        lambda eps, p, c: te.sum(data[r, p, c] * G[r, eps], axis=r),
        name="transform",
        attrs={"auto_scheduler_simplify_const_tensor_indices": ["eps", "r"]},
    )
    return [data, out]
