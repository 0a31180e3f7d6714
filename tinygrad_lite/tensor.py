"""Tensor: an np.ndarray that remembers how it was made, so gradients can flow back through it.

`.data` is the array, `.grad` the accumulated gradient (an array of the same shape and dtype, or None), and `._ctx`
the Function that produced it (None for leaves). `backward()` walks the graph of Functions in reverse topological
order, computed iteratively so a chain of 100,000 ops needs no recursion, and calls each Function's `backward`.

Why the topological order matters (micrograd's classic case): for `b = a + a; c = b + b`, the gradient of `b` is the
sum of two contributions; it may only be passed on to `a` once both have arrived. Visiting nodes in reverse
topological order guarantees every consumer of a node has run before the node itself.

Dtypes follow PyTorch: float Python data becomes float32, float64 arrays stay float64, and a Python scalar in an
expression takes the tensor's dtype (`x * 0.5` stays float32).
"""

from __future__ import annotations

import numpy as np

from . import autograd as _autograd
from .function import is_grad_enabled
from .ops import activation as A
from .ops import elementwise as E
from .ops import matmul as M
from .ops import movement as V
from .ops import reduce as R

DEFAULT_FLOAT = np.float32


def as_generator(rng: np.random.Generator | None = None) -> np.random.Generator:
    """rng itself, or a fresh unseeded generator when it is None: everything that draws random numbers (Tensor.randn,
    dropout, layers' initial weights) takes an optional generator, so that a caller who passes one gets the same
    numbers every run."""
    return np.random.default_rng() if rng is None else rng


def _is_float(dtype: np.dtype) -> bool:
    return dtype.kind == "f"  # np.issubdtype says the same in ~20x the time, and this runs on every op


def _axis(op: str, axis: int, n: int, shape: tuple) -> int:
    """axis in [-n, n) as a non-negative index, or an IndexError naming the op (as torch's "dimension out of
    range"); a bare `axis % n` would silently turn axis 5 of a 2-d tensor into axis 1."""
    if not -n <= axis < n:
        raise IndexError(f"{op}: axis {axis} is out of range [{-n}, {n - 1}] for a tensor of shape {shape}")
    return axis % n


def _promote(a: Tensor, b: Tensor) -> tuple:
    """Bring two operands to a common dtype the way torch does, where NumPy would silently upcast to float64.

    - float with integer/bool: the integer side takes the float dtype (NumPy: float32 + int64 -> float64).
    - two float dtypes: a 0-d tensor is a scalar in disguise and takes the other operand's dtype; otherwise NumPy's
      rule (the wider wins) applies, as torch's does for two tensors with dimensions.
    """
    da, db = a.data.dtype, b.data.dtype
    if da == db:
        return a, b
    fa, fb = _is_float(da), _is_float(db)
    if fa and not fb:
        return a, Tensor._wrap(b.data.astype(da), False)  # integers never require grad: no graph node needed
    if fb and not fa:
        return Tensor._wrap(a.data.astype(db), False), b
    if fa and fb:
        if a.ndim == 0 and b.ndim > 0:
            return a.astype(db), b
        if b.ndim == 0 and a.ndim > 0:
            return a, b.astype(da)
    return a, b


class Tensor:
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_hooks", "_post_hooks", "_retains_grad", "name",
                 "__weakref__")
    __array_priority__ = 1000  # so ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False, dtype=None, name: str | None = None):
        if isinstance(data, Tensor):
            data = data.data
        if dtype is not None:
            arr = np.asarray(data, dtype=dtype)
        elif isinstance(data, np.ndarray):
            arr = data  # shares memory, like torch.from_numpy
        elif isinstance(data, np.generic):
            arr = np.asarray(data)  # a NumPy scalar keeps its dtype, as a NumPy array does
        else:
            arr = np.asarray(data)
            if arr.dtype == np.float64:
                arr = arr.astype(DEFAULT_FLOAT)  # Python floats become float32, as torch.tensor does
        if requires_grad and not _is_float(arr.dtype):
            raise ValueError(f"only floating-point tensors can require grad, got dtype {arr.dtype}")
        self.data = arr
        self.grad = None
        self.requires_grad = bool(requires_grad)
        self._ctx = None
        self._hooks = self._post_hooks = None
        self._retains_grad = False
        self.name = name

    @staticmethod
    def _wrap(arr, requires_grad: bool) -> Tensor:
        """Fast constructor for op outputs: no dtype logic, no copy; always a plain Tensor."""
        t = Tensor.__new__(Tensor)
        t.data = arr if isinstance(arr, np.ndarray) else np.asarray(arr)
        t.grad = None
        t.requires_grad = requires_grad
        t._ctx = None
        t._hooks = t._post_hooks = None
        t._retains_grad = False
        t.name = None
        return t

    # ----- properties and conversions -----
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._ctx is None)
    T = property(lambda self: self.permute(*reversed(range(self.ndim))))

    def __len__(self):
        return len(self.data)

    def __bool__(self):
        # Without this, Python would fall back to __len__: bool(Tensor([0.0])) would be True.
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()")
        return bool(self.data)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def numpy(self) -> np.ndarray:
        return self.data

    def __array__(self, dtype=None, copy=None):
        """np.asarray(tensor) is its data (as for a torch tensor on the CPU)."""
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> Tensor:
        """A new leaf sharing the same data, cut from the graph."""
        return Tensor._wrap(self.data, False)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not _is_float(self.dtype):
            raise ValueError(f"only floating-point tensors can require grad, got dtype {self.dtype}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor; use detach() instead")
        self.requires_grad = requires_grad
        return self

    def astype(self, dtype) -> Tensor:
        return E.Cast.apply(self, dtype=np.dtype(dtype))

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def __repr__(self):
        op = f", grad_fn={type(self._ctx).__name__}" if self._ctx is not None else ""
        rg = ", requires_grad=True" if self.requires_grad and self._ctx is None else ""
        body = np.array2string(self.data, precision=4, separator=", ", threshold=20, edgeitems=2)
        return f"Tensor({body}, shape={self.shape}, dtype={self.dtype}{rg}{op})"

    # ----- constructors -----
    @staticmethod
    def zeros(*shape, dtype=DEFAULT_FLOAT, requires_grad=False) -> Tensor:
        return Tensor(np.zeros(_shape_arg(shape), dtype=dtype), requires_grad=requires_grad)

    @staticmethod
    def ones(*shape, dtype=DEFAULT_FLOAT, requires_grad=False) -> Tensor:
        return Tensor(np.ones(_shape_arg(shape), dtype=dtype), requires_grad=requires_grad)

    @staticmethod
    def randn(*shape, rng=None, dtype=DEFAULT_FLOAT, requires_grad=False) -> Tensor:
        return Tensor(as_generator(rng).standard_normal(_shape_arg(shape)).astype(dtype), requires_grad=requires_grad)

    # ----- autograd -----
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) * grad into every leaf's .grad (implicit grad 1 for a one-element tensor).

        The graph walk itself is `tinygrad_lite.autograd.backward`: set a breakpoint there to watch backprop.
        """
        _autograd.backward(self, grad, retain_graph)

    def retain_grad(self) -> Tensor:
        """Keep .grad on a non-leaf tensor after backward (leaves always keep theirs)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True
        return self

    def register_hook(self, fn):
        """fn(grad) runs when this tensor's gradient is complete; a non-None return value replaces the gradient."""
        if not self.requires_grad:
            raise RuntimeError("register_hook() on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)
        return fn

    def register_post_accumulate_grad_hook(self, fn):
        """fn(tensor) runs after backward has added this leaf's gradient into .grad (torch's hook of that name):
        where data parallelism starts averaging a parameter's gradient while the rest of backward goes on."""
        if not self.requires_grad or self._ctx is not None:
            raise RuntimeError("register_post_accumulate_grad_hook() needs a leaf tensor that requires grad")
        if self._post_hooks is None:
            self._post_hooks = []
        self._post_hooks.append(fn)
        return fn

    # ----- arithmetic -----
    def _other(self, x) -> Tensor:
        """Turn the other operand into a Tensor without letting a Python scalar change this tensor's dtype."""
        if isinstance(x, Tensor):
            return x
        if isinstance(x, np.generic):
            # A NumPy scalar is a scalar too: as weak as a Python number (np.sqrt(2 / np.pi) * x keeps x's dtype),
            # and converted exactly (not through float32 first, which would cost a float64 tensor 1e-7 of precision).
            x = x.item()
        kind = type(x)
        if kind is float or kind is int or kind is bool:  # exact types: np.float64 (a float subclass) is not weak
            dtype = self.data.dtype
            if dtype.kind != "f":
                if kind is float:
                    dtype = DEFAULT_FLOAT  # int tensor * 0.5 is float32, as torch
                elif kind is int and dtype.kind == "b":
                    dtype = np.int64  # True + 2 is 3, not True
            return Tensor._wrap(np.asarray(x, dtype=dtype), False)
        return Tensor(x)

    def _binary(self, op, other, reverse=False):
        other = self._other(other)
        a, b = (other, self) if reverse else (self, other)
        a, b = _promote(a, b)
        return op.apply(a, b)

    def __add__(self, o):
        return self._binary(E.Add, o)

    def __radd__(self, o):
        return self._binary(E.Add, o, reverse=True)

    def __sub__(self, o):
        return self._binary(E.Sub, o)

    def __rsub__(self, o):
        return self._binary(E.Sub, o, reverse=True)

    def __mul__(self, o):
        return self._binary(E.Mul, o)

    def __rmul__(self, o):
        return self._binary(E.Mul, o, reverse=True)

    def __truediv__(self, o):
        if not _is_float(self.dtype) and not (isinstance(o, Tensor) and _is_float(o.dtype)):
            return self.astype(DEFAULT_FLOAT)._binary(E.Div, o)  # integer / integer is true division in float32
        return self._binary(E.Div, o)

    def __rtruediv__(self, o):
        if not _is_float(self.dtype):
            return self.astype(DEFAULT_FLOAT)._binary(E.Div, o, reverse=True)
        return self._binary(E.Div, o, reverse=True)

    def __pow__(self, o):
        if isinstance(o, (int, float, np.integer, np.floating)) and not isinstance(o, (bool, np.bool_)):
            # A Python number: np.float64(2.0) as exponent would turn float32 ** it into float64 under NumPy 2.
            o = int(o) if isinstance(o, (int, np.integer)) else float(o)
            x = self if _is_float(self.dtype) or isinstance(o, int) else self.astype(DEFAULT_FLOAT)
            return E.PowScalar.apply(x, exponent=o)
        return self._binary(E.Pow, o)

    def __rpow__(self, o):
        return self._binary(E.Pow, o, reverse=True)

    def __neg__(self):
        return E.Neg.apply(self)

    def __matmul__(self, o):
        # _promote: float32 @ an int64 array would otherwise be a float64 product, twice the time and memory.
        return M.Matmul.apply(*_promote(self, o if isinstance(o, Tensor) else Tensor(o)))

    def __rmatmul__(self, o):
        return M.Matmul.apply(*_promote(Tensor(o), self))

    def matmul(self, o):
        return self @ o

    # Comparisons give boolean tensors with no gradient (torch semantics); Tensors still hash by identity.
    __hash__ = object.__hash__

    def _compare(self, fn, o):
        return Tensor._wrap(fn(self.data, o.data if isinstance(o, Tensor) else o), False)

    def __lt__(self, o):
        return self._compare(np.less, o)

    def __le__(self, o):
        return self._compare(np.less_equal, o)

    def __gt__(self, o):
        return self._compare(np.greater, o)

    def __ge__(self, o):
        return self._compare(np.greater_equal, o)

    def __eq__(self, o):
        return self._compare(np.equal, o)

    def __ne__(self, o):
        return self._compare(np.not_equal, o)

    # ----- unary -----
    def exp(self):
        return E.Exp.apply(self)

    def log(self):
        return E.Log.apply(self)

    def sqrt(self):
        return E.Sqrt.apply(self)

    def tanh(self):
        return E.Tanh.apply(self)

    def sigmoid(self):
        return E.Sigmoid.apply(self)

    def relu(self):
        return E.Relu.apply(self)

    def abs(self):
        return E.Abs.apply(self)

    def silu(self):
        return E.Silu.apply(self)

    # Activations and clip/sign (ops/activation.py), with torch's names, defaults and subgradients. Number arguments
    # become Python numbers first: an np.float64 beta or bound would turn a float32 tensor's result into float64.
    def clip(self, min=None, max=None):
        """torch.clamp: either bound may be None (unbounded); with min > max every entry becomes max, as in torch."""
        lo, hi = (b.item() if isinstance(b, np.generic) else b for b in (min, max))
        x = self.astype(DEFAULT_FLOAT) if float in (type(lo), type(hi)) and not _is_float(self.dtype) else self
        return A.Clip.apply(x, lo=lo, hi=hi)  # an integer tensor with a float bound clips in float32, as torch

    clamp = clip

    def sign(self):
        return A.Sign.apply(self)

    def softplus(self, beta: float = 1.0, threshold: float = 20.0):
        return A.Softplus.apply(self, beta=float(beta), threshold=float(threshold))

    def elu(self, alpha: float = 1.0):
        return A.Elu.apply(self, alpha=float(alpha))

    def leaky_relu(self, negative_slope: float = 0.01):
        return A.LeakyRelu.apply(self, negative_slope=float(negative_slope))

    def relu6(self):
        return A.Relu6.apply(self)

    def hardswish(self):
        return A.Hardswish.apply(self)

    def mish(self):
        return A.Mish.apply(self)

    def gelu(self, approximate: str = "tanh"):
        from .functional import gelu  # functional builds on Tensor: imported when first used

        return gelu(self, approximate)

    def softmax(self, axis: int = -1):
        return R.Softmax.apply(self, axis=axis)

    def log_softmax(self, axis: int = -1):
        return R.LogSoftmax.apply(self, axis=axis)

    # ----- reductions -----
    def sum(self, axis=None, keepdims: bool = False):
        return R.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims: bool = False):
        return R.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims: bool = False):
        return R.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims: bool = False):
        return R.Min.apply(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims: bool = False, correction: int = 0):
        return R.Var.apply(self, axis=axis, keepdims=keepdims, correction=correction)

    # ----- movement -----
    def reshape(self, *shape):
        return V.Reshape.apply(self, shape=_shape_arg(shape))

    view = reshape

    def permute(self, *axes):
        return V.Permute.apply(self, axes=_shape_arg(axes))

    def transpose(self, ax1: int = -2, ax2: int = -1):
        ax1, ax2 = _axis("transpose", ax1, self.ndim, self.shape), _axis("transpose", ax2, self.ndim, self.shape)
        axes = list(range(self.ndim))
        axes[ax1], axes[ax2] = axes[ax2], axes[ax1]
        return self.permute(*axes)

    def expand(self, *shape):
        return V.Expand.apply(self, shape=_shape_arg(shape))

    def squeeze(self, axis=None):
        if axis is None:
            shape = tuple(s for s in self.shape if s != 1)
        else:
            axes = {_axis("squeeze", a, self.ndim, self.shape) for a in ((axis,) if isinstance(axis, int) else axis)}
            for a in axes:
                if self.shape[a] != 1:
                    raise ValueError(f"squeeze: axis {a} has size {self.shape[a]}, not 1 (shape {self.shape})")
            shape = tuple(s for i, s in enumerate(self.shape) if i not in axes)
        return V.Reshape.apply(self, shape=shape)

    def unsqueeze(self, axis: int):
        axis = _axis("unsqueeze", axis, self.ndim + 1, self.shape)
        return V.Reshape.apply(self, shape=self.shape[:axis] + (1,) + self.shape[axis:])

    def flatten(self, start_axis: int = 0, end_axis: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = _axis("flatten", start_axis, self.ndim, self.shape), _axis("flatten", end_axis, self.ndim, self.shape)
        return V.Reshape.apply(self, shape=self.shape[:s] + (-1,) + self.shape[e + 1 :])

    def __getitem__(self, index):
        return V.Getitem.apply(self, index=_plain_index(index))

    @staticmethod
    def cat(tensors, axis: int = 0):
        return V.Cat.apply(*tensors, axis=axis)

    @staticmethod
    def stack(tensors, axis: int = 0):
        return V.Stack.apply(*tensors, axis=axis)

    def split(self, size: int, axis: int = 0) -> list:
        """Pieces of `size` along axis (the last may be smaller), as torch.split with an int."""
        if size < 1:
            raise ValueError(f"split: size must be >= 1, got {size}")
        axis = _axis("split", axis, self.ndim, self.shape)
        n = self.shape[axis]
        pre = (slice(None),) * axis
        return [self[pre + (slice(i, min(i + size, n)),)] for i in range(0, n, size)]

    @staticmethod
    def where(cond, a, b):
        cond = np.asarray(cond.data if isinstance(cond, Tensor) else cond, dtype=bool)
        if not isinstance(a, Tensor):
            a = b._other(a) if isinstance(b, Tensor) else Tensor(a)
        if not isinstance(b, Tensor):
            b = a._other(b)
        return E.Where.apply(*_promote(a, b), cond=cond)

    def masked_fill(self, mask, value: float):
        mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask, dtype=bool)
        return E.MaskedFill.apply(self, mask=mask, value=value)


def _shape_arg(shape) -> tuple:
    """Accept both f(2, 3) and f((2, 3))."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _plain_index(index):
    """An index with its Tensors and lists turned into NumPy arrays: a plain NumPy index."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    return np.asarray(index) if isinstance(index, list) else index


__all__ = ["Tensor", "is_grad_enabled"]
