"""Module: a container of parameters and submodules, found by attribute, as in PyTorch.

Anything assigned as an attribute is registered by what it is: a `Parameter` is a parameter, a `Module` a
submodule, and a list, tuple or dict of Modules a numbered (or named) group of submodules. Names are dotted paths
(`h.0.attn.c_attn.weight`), which is also the key format of state_dict and of safetensors checkpoints.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A Tensor that is a trainable parameter of a Module (requires_grad=True by default)."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor"):]


class Module:
    training = True

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ----- traversal -----
    def named_children(self):
        for name, value in vars(self).items():
            if isinstance(value, Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, Module):
                        yield f"{name}.{i}", item
            elif isinstance(value, dict):
                for key, item in value.items():
                    if isinstance(item, Module):
                        yield f"{name}.{key}", item

    def children(self):
        return [m for _, m in self.named_children()]

    def named_modules(self, prefix: str = ""):
        """Every module in the tree, depth first, each once, with its dotted name ('' for self)."""
        seen, stack = set(), [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            kids = [(f"{name}.{n}" if name else n, m) for n, m in mod.named_children()]
            stack.extend(reversed(kids))

    def modules(self):
        return [m for _, m in self.named_modules()]

    def named_parameters(self, prefix: str = ""):
        """(dotted name, Parameter) pairs in registration order; a shared (tied) parameter appears once."""
        seen = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, value in vars(mod).items():
                if isinstance(value, Parameter) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{mod_name}.{name}" if mod_name else name), value

    def parameters(self) -> list:
        return [p for _, p in self.named_parameters()]

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # ----- buffers: arrays saved in state_dict but not trained -----
    def register_buffer(self, name: str, array: np.ndarray) -> None:
        if "_buffers" not in vars(self):
            self._buffers = {}
        self._buffers[name] = np.asarray(array)
        object.__setattr__(self, name, self._buffers[name])

    def named_buffers(self):
        for mod_name, mod in self.named_modules():
            for name in vars(mod).get("_buffers", {}):
                yield (f"{mod_name}.{name}" if mod_name else name), getattr(mod, name)

    # ----- state -----
    def state_dict(self) -> dict:
        """Dotted name -> np.ndarray (the live arrays, not copies)."""
        sd = {name: p.data for name, p in self.named_parameters()}
        sd.update(self.named_buffers())
        return sd

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays into the parameters in place. Shape mismatches always raise; with strict=True missing and
        unexpected keys raise too, all listed in one error."""
        # Tensors (e.g. another model's parameters) are read through their arrays; np.shape(Tensor) would not work.
        state_dict = {k: (v.data if isinstance(v, Tensor) else v) for k, v in state_dict.items()}
        own = dict(self.named_parameters())
        modules = dict(self.named_modules())
        own_buffers = dict(self.named_buffers())
        missing = [k for k in list(own) + sorted(own_buffers) if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own and k not in own_buffers]
        mismatched = [
            f"{k}: checkpoint {tuple(np.shape(state_dict[k]))} vs model {tuple(np.shape(v))}"
            for k, v in [(k, p.data) for k, p in own.items()] + list(own_buffers.items())
            if k in state_dict and tuple(np.shape(state_dict[k])) != tuple(np.shape(v))
        ]
        problems = []
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise ValueError(f"load_state_dict for {type(self).__name__}: " + " | ".join(problems))
        for k, p in own.items():
            if k in state_dict:
                np.copyto(p.data, np.asarray(state_dict[k]), casting="unsafe")
        for k in own_buffers:
            if k in state_dict:
                mod_name, _, name = k.rpartition(".")
                modules[mod_name].register_buffer(name, np.array(state_dict[k]))
        return IncompatibleKeys(missing, unexpected)

    # ----- modes and gradients -----
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def __repr__(self):
        kids = list(self.named_children())
        if not kids:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({n}): " + repr(m).replace("\n", "\n  ") for n, m in kids]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"

    def extra_repr(self) -> str:
        return ""
