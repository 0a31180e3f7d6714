"""Module: registration by attribute (lists and dicts of modules too), named_parameters with dotted names, tied
parameters counted once, state_dict / load_state_dict and their errors, buffers, train/eval, zero_grad."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_lite import Module, Parameter, Tensor


class Lin(Module):
    def __init__(self, n_in, n_out, bias=True):
        self.weight = Parameter(np.full((n_in, n_out), 0.5, dtype=np.float32))
        self.bias = Parameter(np.zeros(n_out, dtype=np.float32)) if bias else None
        self.not_a_param = Tensor(np.ones(2))  # plain tensors are not parameters (as torch)
        self.n_in = n_in

    def forward(self, x):
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y


class Block(Module):
    def __init__(self):
        self.fc = Lin(2, 3)
        self.proj = Lin(3, 2, bias=False)

    def forward(self, x):
        return self.proj(self.fc(x).relu())


class Net(Module):
    def __init__(self, n_blocks=2):
        self.embed = Parameter(np.ones((4, 2), dtype=np.float32))
        self.h = [Block() for _ in range(n_blocks)]
        self.heads = {"a": Lin(2, 1), "b": Lin(2, 1, bias=False)}
        self.pair = (Lin(1, 1, bias=False), Lin(1, 1, bias=False))
        self.register_buffer("mask", np.tril(np.ones((2, 2))))
        self.config = {"n_blocks": n_blocks}  # a dict that holds no modules is ignored

    def forward(self, ids, head="a"):
        x = self.embed[ids]
        for block in self.h:
            x = x + block(x)
        return self.heads[head](x)


EXPECTED_NAMES = [
    "embed",
    "h.0.fc.weight", "h.0.fc.bias", "h.0.proj.weight",
    "h.1.fc.weight", "h.1.fc.bias", "h.1.proj.weight",
    "heads.a.weight", "heads.a.bias", "heads.b.weight",
    "pair.0.weight", "pair.1.weight",
]


def test_named_parameters_dotted_names_in_registration_order():
    net = Net()
    assert [name for name, _ in net.named_parameters()] == EXPECTED_NAMES
    assert [name for name, _ in Net().named_parameters()] == EXPECTED_NAMES  # deterministic


def test_parameters_are_the_registered_tensors():
    net = Net()
    params = net.parameters()
    assert len(params) == len(EXPECTED_NAMES)
    assert params[1] is net.h[0].fc.weight and params[-1] is net.pair[1].weight
    assert all(isinstance(p, Parameter) and p.requires_grad for p in params)
    assert net.num_parameters() == 8 + 2 * (6 + 3 + 6) + (2 + 1 + 2) + 2


def test_modules_and_children():
    net = Net()
    names = [name for name, _ in net.named_modules()]
    assert names[:4] == ["", "h.0", "h.0.fc", "h.0.proj"]
    assert "heads.b" in names and "pair.1" in names
    assert [n for n, _ in net.named_children()] == ["h.0", "h.1", "heads.a", "heads.b", "pair.0", "pair.1"]
    assert net.children()[0] is net.h[0]


def test_tied_parameters_are_counted_once():
    net = Net()
    net.heads["b"].weight = net.heads["a"].weight  # weight tying, as GPT-2's wte / lm_head
    names = [name for name, _ in net.named_parameters()]
    assert "heads.b.weight" not in names and names.count("heads.a.weight") == 1
    assert len(net.parameters()) == len({id(p) for p in net.parameters()}) == len(EXPECTED_NAMES) - 1


def test_shared_submodule_is_visited_once():
    net = Net()
    net.h[1] = net.h[0]
    names = [name for name, _ in net.named_parameters()]
    assert not any(n.startswith("h.1.") for n in names)
    assert len([m for m in net.modules() if m is net.h[0]]) == 1


def test_call_runs_forward_and_gradients_reach_every_used_parameter():
    net = Net()
    out = net(np.array([0, 3]), head="b")
    assert out.shape == (2, 1)
    out.sum().backward()
    for name, p in net.named_parameters():
        used = not name.startswith(("heads.a", "pair"))
        assert (p.grad is not None) == used, name


def test_zero_grad():
    net = Net()
    net(np.array([1])).sum().backward()
    assert net.embed.grad is not None
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_train_eval_recursive():
    net = Net()
    assert net.training and net.h[0].fc.training
    assert net.eval() is net
    assert not net.training and not net.h[1].proj.training and not net.heads["a"].training
    net.h[0].train()
    assert net.h[0].fc.training and not net.training
    net.train()
    assert all(m.training for m in net.modules())


# ----------------------------------------------------------------------------- state_dict


def test_state_dict_has_parameters_and_buffers_as_live_arrays():
    net = Net()
    sd = net.state_dict()
    assert list(sd)[: len(EXPECTED_NAMES)] == EXPECTED_NAMES and "mask" in sd
    assert sd["h.0.fc.weight"] is net.h[0].fc.weight.data
    assert isinstance(sd["mask"], np.ndarray)


def test_load_state_dict_round_trip_in_place():
    src, dst = Net(), Net()
    rng = np.random.default_rng(0)
    for p in src.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    arrays_before = [p.data for p in dst.parameters()]
    result = dst.load_state_dict({k: v.copy() for k, v in src.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (name, a), b in zip(src.named_parameters(), dst.parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    assert all(p.data is before for p, before in zip(dst.parameters(), arrays_before))  # in place: optimizers keep
    x = np.array([0, 1, 2])
    np.testing.assert_array_equal(src(x).data, dst(x).data)


def test_load_state_dict_casts_to_the_parameter_dtype_and_accepts_tensors():
    net = Lin(2, 2)
    net.load_state_dict({"weight": Tensor(np.full((2, 2), 3.0)), "bias": np.array([1.0, 2.0])})
    assert net.weight.dtype == np.float32 and net.weight.data[0, 0] == 3.0
    np.testing.assert_array_equal(net.bias.data, [1.0, 2.0])


def test_load_state_dict_error_lists_missing_unexpected_and_mismatched():
    net = Net()
    sd = dict(net.state_dict())
    del sd["h.1.fc.bias"], sd["mask"]
    sd["h.0.fc.weight"] = np.zeros((3, 3))
    sd["lm_head.weight"] = np.zeros(2)
    with pytest.raises(ValueError) as info:
        net.load_state_dict(sd)
    msg = str(info.value)
    assert "missing keys: h.1.fc.bias, mask" in msg
    assert "unexpected keys: lm_head.weight" in msg
    assert "h.0.fc.weight: checkpoint (3, 3) vs model (2, 3)" in msg
    assert net.h[0].fc.weight.data[0, 0] == 0.5  # nothing was loaded


def test_load_state_dict_non_strict():
    net = Net()
    sd = {"embed": np.full((4, 2), 9.0), "extra": np.ones(1)}
    result = net.load_state_dict(sd, strict=False)
    assert result.unexpected_keys == ["extra"] and "h.0.fc.weight" in result.missing_keys
    assert net.embed.data[0, 0] == 9.0
    with pytest.raises(ValueError, match=r"embed: checkpoint \(2,\) vs model \(4, 2\)"):
        net.load_state_dict({"embed": np.ones(2)}, strict=False)  # shape mismatches always raise


def test_buffers_load_and_mismatch():
    net = Net()
    sd = dict(net.state_dict())
    sd["mask"] = np.zeros((2, 2))
    net.load_state_dict(sd)
    np.testing.assert_array_equal(net.mask, 0.0)
    sd["mask"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"mask: checkpoint \(5,\) vs model \(2, 2\)"):
        net.load_state_dict(sd)


# ----------------------------------------------------------------------------- Parameter and repr


def test_parameter_is_a_leaf_tensor_requiring_grad():
    p = Parameter([1.0, 2.0])
    assert isinstance(p, Tensor) and p.requires_grad and p.is_leaf and p.dtype == np.float32
    assert repr(p).startswith("Parameter(")
    assert not Parameter(np.ones(2), requires_grad=False).requires_grad
    assert not isinstance(p * 2, Parameter)  # op results are plain tensors


def test_module_repr_nests_children():
    r = repr(Block())
    assert r.startswith("Block(") and "(fc): Lin()" in r and "(proj): Lin()" in r
