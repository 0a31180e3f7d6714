"""One Function subclass per op, forward and backward side by side, grouped by kind."""

from .elementwise import (  # noqa: F401
    Abs,
    Add,
    Cast,
    Div,
    Erf,
    Exp,
    Log,
    MaskedFill,
    Mul,
    Neg,
    Pow,
    PowScalar,
    Relu,
    Sigmoid,
    Silu,
    Sqrt,
    Sub,
    Tanh,
    Where,
    unbroadcast,
)
from .activation import Clip, Elu, Hardswish, LeakyRelu, Mish, Relu6, Sign, Softplus  # noqa: F401
from .matmul import Matmul  # noqa: F401
from .movement import Cat, Expand, Getitem, Permute, Reshape, Stack  # noqa: F401
from .reduce import LogSoftmax, Max, Mean, Min, Softmax, Sum, Var  # noqa: F401
