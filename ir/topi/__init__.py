"""The operator library (TVM's ``topi``), declared with the ``te`` DSL.

Every operator is a function from te tensors to te tensors that only *declares* its
computation; Ansor derives the schedules (paper section 4). Names and tags follow TVM's
topi so DAGs print and tune like TVM's. Op names must be unique within a ComputeDAG, so
every operator takes a ``name`` (ops that declare helpers derive their names from it:
``{name}_pad``, ``{name}_maxelem``, ...).

Modules, by family: ``pad`` (pad, dilate), ``elemwise`` (activations, broadcasting
arithmetic, comparisons, logical ops, where, bias_add), ``transform`` (transpose, reshape, concatenate,
strided_slice, take, broadcast_to), ``nn_dense`` (matmul, dense, batch_matmul), ``nn_conv``
(1/2/3-D convolutions, groups, dilation), ``nn_depthwise``, ``nn_conv_transpose``,
``nn_capsule``, ``nn_pool``, ``nn_norm`` (softmax, layer_norm, batch_norm), ``reduction``
(sum/max/min, norm_bmn), and ``workloads`` (the paper's benchmark suite as ready-made tensor lists).
"""

from ir.topi import workloads
from ir.topi.elemwise import (
    add,
    bias_add,
    broadcast_shape,
    cast,
    clip,
    divide,
    elemwise,
    equal,
    erf,
    exp,
    gelu,
    greater,
    greater_equal,
    leaky_relu,
    less,
    less_equal,
    logical_and,
    logical_not,
    logical_or,
    maximum,
    minimum,
    multiply,
    negative,
    power,
    relu,
    sigmoid,
    sqrt,
    subtract,
    tanh,
    where,
)
from ir.topi.nn_capsule import conv2d_capsule_nhwijc
from ir.topi.nn_conv import (
    conv1d_ncw,
    conv1d_nwc,
    conv2d_nchw,
    conv2d_nhwc,
    conv3d_ncdhw,
    conv3d_ndhwc,
    conv_nd,
)
from ir.topi.nn_conv_transpose import conv2d_transpose_nchw, conv2d_transpose_nhwc
from ir.topi.nn_dense import batch_matmul, dense, matmul
from ir.topi.nn_depthwise import depthwise_conv2d_nchw, depthwise_conv2d_nhwc
from ir.topi.nn_norm import batch_norm_inference, layer_norm, log_softmax, softmax
from ir.topi.nn_pool import (
    avg_pool2d,
    avg_pool3d,
    global_avg_pool,
    global_avg_pool2d,
    global_avg_pool3d,
    max_pool2d,
    max_pool3d,
    pool,
)
from ir.topi.pad import dilate, pad
from ir.topi.reduction import max, min, norm_bmn, sum  # noqa: A004 - TVM's names
from ir.topi.transform import broadcast_to, concatenate, reshape, strided_slice, take, transpose
from ir.topi.utils import TopiError

__all__ = [
    "TopiError",
    "add",
    "avg_pool2d",
    "avg_pool3d",
    "batch_matmul",
    "batch_norm_inference",
    "bias_add",
    "broadcast_shape",
    "broadcast_to",
    "cast",
    "clip",
    "concatenate",
    "conv1d_ncw",
    "conv1d_nwc",
    "conv2d_capsule_nhwijc",
    "conv2d_nchw",
    "conv2d_nhwc",
    "conv2d_transpose_nchw",
    "conv2d_transpose_nhwc",
    "conv3d_ncdhw",
    "conv3d_ndhwc",
    "conv_nd",
    "dense",
    "depthwise_conv2d_nchw",
    "depthwise_conv2d_nhwc",
    "dilate",
    "divide",
    "elemwise",
    "equal",
    "erf",
    "exp",
    "gelu",
    "global_avg_pool",
    "global_avg_pool2d",
    "global_avg_pool3d",
    "greater",
    "greater_equal",
    "layer_norm",
    "leaky_relu",
    "less",
    "less_equal",
    "log_softmax",
    "logical_and",
    "logical_not",
    "logical_or",
    "matmul",
    "max",
    "max_pool2d",
    "max_pool3d",
    "maximum",
    "min",
    "minimum",
    "multiply",
    "negative",
    "norm_bmn",
    "pad",
    "pool",
    "power",
    "relu",
    "reshape",
    "sigmoid",
    "softmax",
    "sqrt",
    "strided_slice",
    "subtract",
    "sum",
    "take",
    "tanh",
    "transpose",
    "where",
    "workloads",
]
