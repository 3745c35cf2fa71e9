"""``partition_network`` and ``extract_tasks``: a network's subgraphs, run one after the
other through ``ir.reference``, compute what the original graph computes; identical
subgraphs make one task whose weight counts them."""

from __future__ import annotations

import numpy as np

from ansor_py.network import zoo
from ansor_py.network.graph import Graph, Node
from ansor_py.network.reference import run_reference
from ansor_py.network.tasks import extract_tasks, has_complex_op, partition_network
from ansor_py.network.types import TensorType
from codegen.build import build
from codegen.target import HardwareParams
from ir.reference import evaluate


def resnet_like(blocks: int = 3, channels: int = 8) -> Graph:
    """ONNX-style NCHW: conv-bn-relu stem, ``blocks`` residual blocks, pool, flatten, dense."""
    rng = np.random.default_rng(0)
    constants: dict[str, np.ndarray] = {}
    nodes: list[Node] = []

    def const(*shape: int, low: float = -1.0, high: float = 1.0) -> str:
        name = f"c{len(constants)}"
        constants[name] = rng.uniform(low, high, shape).astype(np.float32)
        return name

    def node(op: str, *inputs: str, **attrs: object) -> str:
        name = f"{op}{len(nodes)}"
        nodes.append(Node(op, inputs, (name,), attrs, name=name))
        return name

    def conv_bn(x: str, cin: int, cout: int, stride: int = 1) -> str:
        scale = (2.0 / (9 * cin)) ** 0.5
        y = node(
            "conv", x, const(cout, cin, 3, 3, low=-scale, high=scale), layout="NCHW",
            kernel_layout="OIHW", strides=(stride, stride), pads=(1, 1, 1, 1), dilations=(1, 1), groups=1,
        )  # fmt: skip
        params = (const(cout, low=0.5, high=1.5), const(cout), const(cout), const(cout, low=0.5, high=1.5))
        return node("batch_norm", y, *params, epsilon=1e-5, axis=1)

    y = node("relu", conv_bn("x", 3, channels, stride=2))
    for _ in range(blocks):
        t = node("relu", conv_bn(y, channels, channels))
        y = node("relu", node("add", conv_bn(t, channels, channels), y))
    y = node("reshape", node("global_avg_pool", y, layout="NCHW"), shape=(1, channels))
    y = node("add", node("dense", y, const(10, channels)), const(10))
    return Graph({"x": TensorType((1, 3, 12, 12))}, nodes, [y], constants, name="resnet_like")


def test_subgraphs_run_in_order_compute_the_network():
    graph = resnet_like()
    optimized, subgraphs = partition_network(graph)
    assert [n for s in subgraphs for n in s.nodes] == list(optimized.nodes)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 12, 12)).astype(np.float32)
    values: dict[str, np.ndarray] = {"x": x, **optimized.constants}
    for subgraph in subgraphs:
        results = evaluate(subgraph.dag, [values[v] for v in subgraph.inputs])
        values.update(zip(subgraph.outputs, results, strict=True))
    expected = run_reference(graph, {"x": x})[0]
    np.testing.assert_allclose(values[optimized.outputs[0]], expected, rtol=1e-4, atol=1e-5)


def test_extract_tasks_merges_identical_blocks():
    hardware = HardwareParams(2, 64, 64, 0, 0, 0, 0, 0)
    tasks, weights = extract_tasks(resnet_like(blocks=3), target="llvm", hardware_params=hardware)
    table = {task.desc: weight for task, weight in zip(tasks, weights, strict=True)}
    assert table == {
        "transpose, 1x3x12x12 -> 1x12x12x3": 1,
        "conv2d_nhwc + bias + relu, 1x12x12x3 -> 8, 3x3, stride 2": 1,
        "conv2d_nhwc + bias + relu, 1x6x6x8 -> 8, 3x3": 3,
        "conv2d_nhwc + bias + add + relu, 1x6x6x8 -> 8, 3x3": 3,
        "global_avg_pool2d_nhwc, 1x6x6x8": 1,
        "reshape, 1x1x1x8 -> 1x8": 1,
        "dense + bias, 1x8 -> 10": 1,
    }
    assert len({task.workload_key for task in tasks}) == len(tasks)
    assert all(task.hardware_params is hardware and str(task.target).startswith("llvm") for task in tasks)
    inputs, outputs = tasks[2].reference()  # a task is measurable: its DAG evaluates
    assert [a.shape for a in outputs] == [(1, 6, 6, 8)] and len(inputs) == 3


def test_extract_tasks_without_simple_tasks_and_in_nchw():
    tasks, weights = extract_tasks(resnet_like(blocks=2), include_simple_tasks=False)
    assert all(has_complex_op(task.compute_dag) for task in tasks)
    assert [w for task, w in zip(tasks, weights, strict=True) if "transpose" in task.desc] == []
    assert sum(weights) == 1 + 2 + 2 + 1 + 1  # stem, convs, convs with the add, pool, dense
    nchw, _ = extract_tasks(resnet_like(blocks=2), layout="NCHW")
    assert any(task.desc.startswith("conv2d_nchw + bias + relu") for task in nchw)


def test_resnet50_tasks():
    optimized, subgraphs = partition_network(zoo.resnet50())
    transposes = [n for n in optimized.nodes if n.op == "transpose"]
    assert len(transposes) == 1 and transposes[0].inputs == tuple(optimized.inputs)
    keys = {s.workload_key: s for s in subgraphs}
    convs = [s for s in keys.values() if s.desc.startswith("conv2d_nhwc")]
    assert len(convs) == 24 and sum(1 for s in subgraphs if "conv" in s.desc) == 53
    assert any(s.desc == "conv2d_nhwc + bias + add + relu, 1x14x14x256 -> 1024, 1x1" for s in convs)


def test_every_task_compiles_and_matches_its_reference():
    tasks, _ = extract_tasks(resnet_like(blocks=1))
    for task in tasks:
        inputs, expected = task.reference()
        kernel = build(task.compute_dag, None, "llvm")
        outputs = [np.zeros(e.shape, e.dtype) for e in expected]
        kernel(*inputs, *outputs)
        for got, want in zip(outputs, expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=task.desc)


def test_mobilenet_v2_has_no_transposes_between_convs():
    optimized, subgraphs = partition_network(zoo.mobilenet_v2())
    transposes = [n for n in optimized.nodes if n.op == "transpose"]
    assert len(transposes) == 1 and transposes[0].inputs == tuple(optimized.inputs)
    depthwise = [s for s in subgraphs if s.desc.startswith("depthwise_conv2d_nhwc + bias + clip")]
    assert len(depthwise) == 17
