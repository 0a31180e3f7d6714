"""Optimizers (SGD, Adam, AdamW), gradient clipping and a learning-rate schedule, with torch.optim's exact rules.

Each update below is written in the same operation order as torch.optim's single-tensor (CPU default) code path,
so a float64 run agrees with PyTorch to rounding (~1e-12 over 20 steps; PyTorch's vectorised CPU kernels use fused
multiply-adds, so the last bit can differ). With g the gradient, p the parameter, t the step count (from 1):

    SGD     g += wd*p;  b = g (first step) or b = momentum*b + (1-dampening)*g;  g = g + momentum*b (nesterov) or b
            p -= lr*g
    Adam    g += wd*p                                     (L2 penalty folded into the gradient)
            m = lerp(m, g, 1-beta1) = m + (1-beta1)*(g - m)
            v = beta2*v + (1-beta2)*g*g
            p -= (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    AdamW   p *= 1 - lr*wd, then Adam with no L2 term     (decoupled weight decay, Loshchilov & Hutter 2019)

Adam: Kingma & Ba, "Adam: A Method for Stochastic Optimization" (2015), Algorithm 1, with eps added after the
bias-corrected square root as PyTorch does.

Speed matters because the training loop calls step() every iteration: every update works in place with `out=`
into two scratch buffers shared by all parameters of a dtype, so a step allocates nothing. Scalars are Python
floats, which under NumPy 2's promotion rules never turn a float32 array into float64; moment buffers have the
parameter's dtype.
"""

from __future__ import annotations

import math

import numpy as np

from .function import _implementations
from .tensor import Tensor


def _as_param_list(params, what: str) -> list:
    if isinstance(params, Tensor):
        return [params]
    if isinstance(params, (set, frozenset)):
        raise TypeError(f"{what} must be an ordered collection (a set's order changes between runs)")
    return list(params)


class Optimizer:
    """Base class: parameter groups, per-parameter state, zero_grad, state_dict / load_state_dict.

    `param_groups` is a list of dicts, each holding "params" (a list of Tensors) and that group's hyperparameters
    (defaulting to the constructor's); edit them between steps, e.g. `opt.param_groups[0]["lr"] = 1e-4`.
    `state` maps each parameter (by identity) to its dict of buffers, created at its first update.
    """

    _state_keys: tuple = ()  # keys every per-parameter state entry must hold (checked when loading)

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.param_groups: list[dict] = []
        self.state: dict = {}
        self._scratch: dict = {}  # dtype -> (2, largest parameter size) work array
        groups = _as_param_list(params, "params")
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        if not isinstance(group, dict):
            raise TypeError(f"a parameter group must be a dict with a 'params' key, got {type(group).__name__}")
        if "params" not in group:
            raise ValueError("a parameter group needs a 'params' key")
        group = dict(group)  # our copy: the defaults we add must not leak into the caller's dict
        group["params"] = params = _as_param_list(group["params"], "a group's params")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(getattr(p, "data", None), np.ndarray) or not np.issubdtype(p.data.dtype, np.floating):
                raise TypeError(f"can only optimize floating-point Tensors, got {p!r:.80}")
            if id(p) in seen:
                raise ValueError(f"a parameter of shape {p.data.shape} appears more than once in the optimizer")
            seen.add(id(p))
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check(group)
        self.param_groups.append(group)
        self._scratch.clear()  # sized for the largest parameter: a new group may hold a bigger one

    def _check(self, group: dict) -> None:
        """Reject invalid hyperparameters (with torch's bounds)."""
        if group["lr"] < 0:
            raise ValueError(f"invalid learning rate: {group['lr']}")
        if group["weight_decay"] < 0:
            raise ValueError(f"invalid weight_decay value: {group['weight_decay']}")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: drop them (the default, as torch) or fill them with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.fill(0)

    def step(self, closure=None):
        """One update of every parameter that has a gradient; parameters whose .grad is None are skipped."""
        loss = closure() if closure is not None else None
        work = []  # (parameter array, gradient, state, hyperparameters), checked before anything changes
        for group in self.param_groups:
            hyper = self._hyper(group)
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if grad.shape != p.data.shape:
                    raise ValueError(f"gradient of shape {grad.shape} for a parameter of shape {p.data.shape}")
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = self._init_state(p.data)
                work.append((p.data, grad, state, hyper))
        for data, grad, state, hyper in work:
            self._update(data, grad, state, *self._buffers(data), **hyper)
        return loss

    def _buffers(self, data: np.ndarray):
        """Two scratch arrays shaped like `data`, views into one work array per dtype (no allocation per step)."""
        work = self._scratch.get(data.dtype)
        if work is None:
            biggest = max(p.data.size for g in self.param_groups for p in g["params"] if p.data.dtype == data.dtype)
            work = self._scratch[data.dtype] = np.empty((2, biggest), dtype=data.dtype)
        n = data.size
        return work[0, :n].reshape(data.shape), work[1, :n].reshape(data.shape)

    # ----- state_dict: plain dicts of numpy arrays and numbers, parameters named by their index as in torch -----

    def state_dict(self) -> dict:
        """{"state": {index: {name: array or number}}, "param_groups": [{hyperparameters, "params": [index...]}]}.

        Parameters are numbered in order across groups. Arrays are copies, so training on does not change a saved
        state dict.
        """
        index, groups = {}, []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = list(range(len(index), len(index) + len(group["params"])))
            for p in group["params"]:
                index[id(p)] = len(index)
            groups.append(packed)
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    entry = self.state[p]
                    state[index[id(p)]] = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in entry.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and buffers saved by state_dict(), so training continues bit for bit.

        Everything is checked before anything changes: group count, parameters per group, the state's keys and
        buffer shapes. Buffers are copied and cast to each parameter's dtype.
        """
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            n, m = len(saved_groups), len(self.param_groups)
            raise ValueError(f"loaded state dict has {n} parameter groups, this optimizer has {m}")
        by_index, new_groups = {}, []
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"parameter group {i}: loaded state dict has {len(saved['params'])} parameters, "
                    f"this optimizer has {len(group['params'])}"
                )
            by_index.update(zip(saved["params"], group["params"]))
            new_group = {k: v for k, v in saved.items() if k != "params"}
            new_group["params"] = group["params"]
            self._check(new_group)
            new_groups.append(new_group)

        new_state = {}
        for idx, entry in state_dict["state"].items():
            p = by_index.get(int(idx))
            if p is None:
                raise ValueError(f"loaded state dict has state for parameter {idx}, which no group lists")
            missing = [k for k in self._state_keys if k not in entry]
            if missing:
                raise ValueError(f"state of parameter {idx} lacks {missing} (saved by a different optimizer?)")
            restored = {}
            for key, value in entry.items():
                if key == "step":
                    restored[key] = int(value)
                elif value is None or isinstance(value, (int, float)):
                    restored[key] = value
                else:
                    value = np.asarray(value)
                    if value.shape != p.data.shape:
                        raise ValueError(
                            f"state {key!r} of parameter {idx} has shape {value.shape}, "
                            f"the parameter has shape {p.data.shape}"
                        )
                    restored[key] = np.array(value, dtype=p.data.dtype, order="C")  # a copy
            new_state[p] = restored
        self.param_groups[:] = new_groups
        self.state = new_state

    def __repr__(self):
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            hyper = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} params, {hyper}")
        return "\n".join(lines + [")"])


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (heavy ball or Nesterov) and L2 weight decay."""

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _check(self, group):
        super()._check(group)
        if group["momentum"] < 0:
            raise ValueError(f"invalid momentum value: {group['momentum']}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")

    def _hyper(self, group):
        return dict(
            lr=float(group["lr"]),
            momentum=float(group["momentum"]),
            dampening=float(group["dampening"]),
            wd=float(group["weight_decay"]),
            nesterov=bool(group["nesterov"]),
        )

    def _init_state(self, data):
        return {}  # the momentum buffer is born from the first gradient

    def _update(self, p, g, state, a, b, lr, momentum, dampening, wd, nesterov):
        if wd != 0:
            np.multiply(p, wd, out=a)
            a += g  # g + wd*p
            g = a
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(g, dtype=p.dtype)  # first step: b = g, undamped
            else:
                buf *= momentum
                if dampening == 0:
                    buf += g
                else:
                    np.multiply(g, 1.0 - dampening, out=b)
                    buf += b
            if nesterov:
                np.multiply(buf, momentum, out=b)
                b += g  # g + momentum*b
                g = b
            else:
                g = buf
        out = g if (g is a or g is b) else a  # scale in place only when g is our own scratch
        np.multiply(g, -lr, out=out)
        p += out


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient (torch.optim.Adam's `weight_decay`)."""

    _state_keys = ("step", "exp_avg", "exp_avg_sq")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check(self, group):
        super()._check(group)
        if group["eps"] < 0:
            raise ValueError(f"invalid epsilon value: {group['eps']}")
        beta1, beta2 = group["betas"]
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"invalid betas {group['betas']}: each must be in [0, 1)")

    def _hyper(self, group):
        beta1, beta2 = group["betas"]
        return dict(
            lr=float(group["lr"]),
            beta1=float(beta1),
            beta2=float(beta2),
            eps=float(group["eps"]),
            wd=float(group["weight_decay"]),
        )

    def _init_state(self, data):
        return {"step": 0, "exp_avg": np.zeros_like(data), "exp_avg_sq": np.zeros_like(data)}

    def _update(self, p, g, state, a, b, lr, beta1, beta2, eps, wd):
        m, v = state["exp_avg"], state["exp_avg_sq"]
        state["step"] = t = state["step"] + 1
        if self._decoupled and (override := _implementations.get("adamw_step")) is not None:
            return override(p, g, m, v, t, lr, beta1, beta2, eps, wd)
        if wd != 0:
            if self._decoupled:
                p *= 1.0 - lr * wd
            else:
                np.multiply(p, wd, out=a)
                a += g  # g + wd*p
                g = a
        np.subtract(g, m, out=b)
        b *= 1.0 - beta1
        m += b  # lerp(m, g, 1-beta1)
        np.multiply(g, 1.0 - beta2, out=b)
        b *= g
        v *= beta2
        v += b  # beta2*v + (1-beta2)*g*g
        # g is used up, so `a` is free for the denominator.
        step_size = lr / (1.0 - beta1**t)
        np.sqrt(v, out=a)
        a /= (1.0 - beta2**t) ** 0.5
        a += eps
        np.multiply(m, -step_size, out=b)
        b /= a
        p += b


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr*wd before the Adam step (torch.optim.AdamW)."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def weight_decay_groups(params, weight_decay: float) -> list:
    """Parameter groups for AdamW with weight decay on the 2-D parameters (matrices, embeddings) only, as GPT-2 and
    nanoGPT train: decaying biases and norm gains towards 0 would only fight the normalisation."""
    params = _as_param_list(params, "params")
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


# ----------------------------------------------------------------- gradient clipping


def _grads(params) -> list:
    return [p.grad for p in _as_param_list(params, "params") if p.grad is not None]


def clip_grad_norm_(params, max_norm: float, eps: float = 1e-6) -> float:
    """Scale all gradients together so their global L2 norm is at most about `max_norm`; return the norm before.

    total = sqrt(sum over grads of sum(g**2)); coef = max_norm / (total + eps); if coef < 1, every g *= coef
    (torch.nn.utils.clip_grad_norm_ clamps coef to 1, which is the same). Parameters whose .grad is None are skipped.
    """
    grads = _grads(params)
    total = 0.0
    for g in grads:
        flat = g.reshape(-1)  # a view when contiguous; dot is one BLAS call in the gradient's dtype
        total += float(np.dot(flat, flat))
    total = math.sqrt(total)
    coef = float(max_norm) / (total + eps)
    if coef < 1.0:
        for g in grads:
            g *= coef
    return total


def clip_grad_value_(params, clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    c = float(clip_value)
    for g in _grads(params):
        np.clip(g, -c, c, out=g)


# ----------------------------------------------------------------- learning-rate schedule


def cosine_with_warmup(it: int, learning_rate: float, warmup_iters: int, lr_decay_iters: int, min_lr: float) -> float:
    """nanoGPT's get_lr: linear warmup, then cosine decay to min_lr, then constant min_lr.

        it < warmup_iters:                lr = learning_rate * (it + 1) / (warmup_iters + 1)
        warmup_iters <= it <= decay_iters: r = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
                                           lr = min_lr + 0.5 * (1 + cos(pi * r)) * (learning_rate - min_lr)
        it > lr_decay_iters:               lr = min_lr

    The warmup counts from it + 1 so the very first step does not use lr = 0 (a wasted step).
    """
    if warmup_iters < 0 or lr_decay_iters < warmup_iters:
        raise ValueError(f"need 0 <= warmup_iters <= lr_decay_iters, got {warmup_iters} and {lr_decay_iters}")
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:  # equal: cos(pi) gives min_lr anyway, and this avoids 0/0 when the two are equal
        return min_lr
    decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)

