"""The NN op family of the graph IR: ``NN_OPS``, the union of its modules' ops.

``nn_conv`` (conv, conv_transpose), ``nn_dense`` (dense, matmul), ``nn_pool`` (max_pool,
avg_pool, global_avg_pool) and ``nn_norm`` (batch_norm, layer_norm, softmax, reduce_mean,
reduce_sum, reduce_max). Each op's attributes, ONNX semantics and topi declaration are
described in its module; the shared attribute checks are in ``nn_common``.
"""

from __future__ import annotations

from ansor_py.network.ops.base import OpDef, op_table
from ansor_py.network.ops.nn_conv import CONV, CONV_TRANSPOSE
from ansor_py.network.ops.nn_dense import DENSE, MATMUL
from ansor_py.network.ops.nn_norm import (
    BATCH_NORM,
    LAYER_NORM,
    REDUCE_MAX,
    REDUCE_MEAN,
    REDUCE_SUM,
    SOFTMAX,
)
from ansor_py.network.ops.nn_pool import AVG_POOL, GLOBAL_AVG_POOL, MAX_POOL

NN_OPS: dict[str, OpDef] = op_table(
    CONV,
    CONV_TRANSPOSE,
    DENSE,
    MATMUL,
    BATCH_NORM,
    LAYER_NORM,
    SOFTMAX,
    MAX_POOL,
    AVG_POOL,
    GLOBAL_AVG_POOL,
    REDUCE_MEAN,
    REDUCE_SUM,
    REDUCE_MAX,
)
