"""The spellings in which CUDA C and OpenCL C differ, as one table per dialect.

The GPU emitter (``codegen.cuda.source``) writes one program text for both: kernels,
qualifiers, thread indices, barriers and math functions come from a ``Dialect``, the rest
(loops, indices, arithmetic) is the C both languages share. CUDA C is what nvcc compiles
for an NVIDIA GPU; OpenCL C runs the same kernels on any OpenCL device, which is how GPU
programs are executed and checked on a machine without a GPU (PoCL on the CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ir.expr import Intrinsic

#: C type of each dtype (CUDA's long long and OpenCL's long are both 64 bits)
_COMMON_TYPES = {
    "float32": "float",
    "float64": "double",
    "int8": "signed char",
    "int16": "short",
    "int32": "int",
    "uint8": "unsigned char",
    "uint16": "unsigned short",
    "uint32": "unsigned int",
}

#: single-precision spellings of the CUDA math library (double drops the ``f``)
_CUDA_FLOAT_FUNCTIONS = {
    Intrinsic.EXP: "expf",
    Intrinsic.EXP2: "exp2f",
    Intrinsic.LOG: "logf",
    Intrinsic.LOG2: "log2f",
    Intrinsic.LOG10: "log10f",
    Intrinsic.SQRT: "sqrtf",
    Intrinsic.RSQRT: "rsqrtf",
    Intrinsic.TANH: "tanhf",
    Intrinsic.ERF: "erff",
    Intrinsic.POW: "powf",
    Intrinsic.ABS: "fabsf",
    Intrinsic.FLOOR: "floorf",
    Intrinsic.CEIL: "ceilf",
    # numpy (and the LLVM back end) round half to even: rint in the default rounding mode
    Intrinsic.ROUND: "rintf",
    Intrinsic.TRUNC: "truncf",
    Intrinsic.SIN: "sinf",
    Intrinsic.COS: "cosf",
    Intrinsic.FMOD: "fmodf",
}

#: OpenCL C's math functions are overloaded on float and double
_OPENCL_FUNCTIONS = {fn: name.removesuffix("f") for fn, name in _CUDA_FLOAT_FUNCTIONS.items()} | {
    Intrinsic.ABS: "fabs",
    Intrinsic.ROUND: "rint",
}


@dataclass(frozen=True)
class Dialect:
    """How one GPU language spells what the emitter needs."""

    name: str
    #: lines that open the translation unit
    prelude: tuple[str, ...]
    #: before ``void name(...)``; ``{threads}`` is the block size
    kernel_qualifier: str
    #: a kernel parameter of element type ``{ctype}`` named ``{name}``
    param_format: str
    shared_qualifier: str
    #: helper functions (floordiv) are ``{qualifier} {ctype} name(...)``
    function_qualifier: str
    barrier: str
    #: "blockIdx.x" -> the built-in that reads it
    thread_index: dict[str, str]
    types: dict[str, str]
    #: float32 spellings of the math functions, and how a float64 one is derived
    float_functions: dict[Intrinsic, str]
    double_suffix_dropped: bool
    #: +inf of float32 and float64, as expressions
    infinity: dict[str, str] = field(default_factory=dict)

    def ctype(self, dtype: str) -> str:
        try:
            return self.types[dtype]
        except KeyError:
            raise ValueError(
                f"dtype {dtype} has no {self.name} type here; supported: {', '.join(sorted(self.types))}"
            ) from None

    def math_function(self, fn: Intrinsic, dtype: str) -> str:
        name = self.float_functions[fn]
        if dtype == "float64" and self.double_suffix_dropped:
            return name.removesuffix("f")
        return name


_AXES = ("x", "y", "z")

CUDA = Dialect(
    name="CUDA C",
    prelude=(),
    kernel_qualifier='extern "C" __global__ void __launch_bounds__({threads})',
    param_format="{ctype}* __restrict__ {name}",
    shared_qualifier="__shared__",
    function_qualifier="static __device__ __forceinline__",
    barrier="__syncthreads();",
    thread_index={f"{kind}.{axis}": f"{kind}.{axis}" for kind in ("blockIdx", "threadIdx") for axis in _AXES},
    types=_COMMON_TYPES | {"int64": "long long", "uint64": "unsigned long long", "bool": "bool"},
    float_functions=_CUDA_FLOAT_FUNCTIONS,
    double_suffix_dropped=True,
    infinity={
        "float32": "__int_as_float(0x7f800000)",
        "float64": "__longlong_as_double(0x7ff0000000000000LL)",
    },
)

OPENCL = Dialect(
    name="OpenCL C",
    prelude=("#pragma OPENCL EXTENSION cl_khr_fp64 : enable",),
    kernel_qualifier="__kernel __attribute__((reqd_work_group_size({block_x}, {block_y}, {block_z}))) void",
    param_format="__global {ctype}* restrict {name}",
    shared_qualifier="__local",
    function_qualifier="static inline",
    barrier="barrier(CLK_LOCAL_MEM_FENCE);",
    thread_index={
        **{f"blockIdx.{axis}": f"(int)get_group_id({i})" for i, axis in enumerate(_AXES)},
        **{f"threadIdx.{axis}": f"(int)get_local_id({i})" for i, axis in enumerate(_AXES)},
    },
    # OpenCL forbids bool in __global buffers; a bool tensor is stored as one byte
    types=_COMMON_TYPES | {"int64": "long", "uint64": "unsigned long", "bool": "uchar"},
    float_functions=_OPENCL_FUNCTIONS,
    double_suffix_dropped=False,
    infinity={"float32": "INFINITY", "float64": "((double)INFINITY)"},
)

DIALECTS = {"cuda": CUDA, "opencl": OPENCL}
