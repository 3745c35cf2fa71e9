"""``Subgraph``: one fused group of graph nodes, compiled and run as one kernel.

Fusion (``ansor_py.network.fusion``) cuts an optimised graph into subgraphs; each becomes
one ComputeDAG, one search task when its workload key is new (Ansor paper section 6), and
one kernel call of the executor. The kernel's arguments are the DAG's tensors in order:
one placeholder per value in ``inputs`` (graph inputs, constants or outputs of earlier
subgraphs), then one tensor per value in ``outputs``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ansor_py.network.graph import Node
from ir.compute_dag import ComputeDAG


@dataclass(frozen=True)
class Subgraph:
    """A fused group (see the module docstring).

    ``name``: unique in the network, e.g. ``fused_conv_add_relu_3``; ``desc``: what a
    reader of the task table needs ("conv2d_nhwc + bias + relu, 1x56x56x64 -> 64, 3x3").
    ``dag.tensors == [placeholder for each of inputs] + [tensor for each of outputs]``.
    """

    name: str
    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dag: ComputeDAG
    desc: str

    @property
    def workload_key(self) -> str:
        return self.dag.workload_key()
