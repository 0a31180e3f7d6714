"""GPT-2 at toy size: names and shapes of transformers' GPT2LMHeadModel, init, loss, causality, KV cache, gradients,
folders (round trip, the Hub's prefix-less layout, F16/BF16, bad folders), optimizer groups, dropout modes.
Comparisons with transformers itself are in test_models_ref.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_models_hf import check_param_grads, write_bf16_safetensors

from models import GPT2, GPT2Config, hf, reorder_cache
from tinygrad_lite import no_grad
from tinygrad_lite.optim import AdamW
from tinygrad_lite.serialization import load_safetensors, save_safetensors

TINY = dict(n_layer=2, n_embd=32, n_head=4, vocab_size=97, n_positions=64)


def tiny(dropout=0.0, seed=0, **kw):
    cfg = GPT2Config(**{**TINY, **kw}, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
    return GPT2(cfg, rng=np.random.default_rng(seed)).eval()


def ids(rng, B=2, T=9, V=97):
    return rng.integers(0, V, (B, T))


def test_parameter_names_and_shapes_are_transformers():
    m = tiny()
    C, V, P = 32, 97, 64
    expected = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (P, C),
                "transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)}
    for i in range(2):
        h = f"transformer.h.{i}."
        expected.update({h + "ln_1.weight": (C,), h + "ln_1.bias": (C,), h + "ln_2.weight": (C,), h + "ln_2.bias": (C,),
                         h + "attn.c_attn.weight": (C, 3 * C), h + "attn.c_attn.bias": (3 * C,),
                         h + "attn.c_proj.weight": (C, C), h + "attn.c_proj.bias": (C,),
                         h + "mlp.c_fc.weight": (C, 4 * C), h + "mlp.c_fc.bias": (4 * C,),
                         h + "mlp.c_proj.weight": (4 * C, C), h + "mlp.c_proj.bias": (C,)})
    got = {name: p.shape for name, p in m.named_parameters()}
    assert got == expected
    assert list(m.state_dict()) == list(got)  # lm_head is tied: one parameter, saved once
    assert m.lm_head is m.transformer.wte.weight
    assert m.num_parameters() == V * C + P * C + 2 * C + 2 * (4 * C + 3 * C * C + 3 * C + C * C + C + 8 * C * C + 5 * C)


def test_gpt2_initialisation():
    cfg = GPT2Config(n_layer=4, n_embd=128, n_head=4, vocab_size=500, n_positions=128)
    m = GPT2(cfg, rng=np.random.default_rng(0))
    p = dict(m.named_parameters())
    resid = np.concatenate([p[f"transformer.h.{i}.{k}.c_proj.weight"].data.ravel()
                            for i in range(4) for k in ("attn", "mlp")])
    assert resid.std() == pytest.approx(0.02 / math.sqrt(2 * 4), rel=0.03)
    for name in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
                 "transformer.h.3.mlp.c_fc.weight"):
        assert p[name].data.std() == pytest.approx(0.02, rel=0.05) and abs(p[name].data.mean()) < 2e-3
    assert not p["transformer.h.1.mlp.c_fc.bias"].data.any() and not p["transformer.ln_f.bias"].data.any()
    assert (p["transformer.h.2.ln_1.weight"].data == 1).all()
    assert all(q.dtype == np.float32 for q in m.parameters())


def test_forward_logits_and_loss(rng):
    m = tiny()
    idx, targets = ids(rng), ids(rng)
    logits, loss = m(idx)
    assert logits.shape == (2, 9, 97) and logits.dtype == np.float32 and loss is None
    _, loss = m(idx, targets)
    z = logits.data.astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    assert loss.item() == pytest.approx(nll.mean(), rel=1e-5)
    masked = targets.copy()
    masked[:, :4] = -100  # ignored positions contribute nothing
    assert m(idx, masked)[1].item() == pytest.approx(nll[:, 4:].mean(), rel=1e-5)
    # lists and last_only
    last, _ = m(idx.tolist(), last_only=True)
    np.testing.assert_allclose(last.data[:, 0], logits.data[:, -1], atol=1e-6)
    with pytest.raises(TypeError, match="integers"):
        m(idx.astype(np.float32))
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        m(idx[0])
    with pytest.raises(ValueError, match="exceed n_positions 64"):
        m(np.zeros((1, 65), dtype=np.int64))


def test_causality(rng):
    m = tiny()
    idx = ids(rng, T=12)
    ref, _ = m(idx)
    for t in (1, 5, 11):
        changed = idx.copy()
        changed[:, t:] = (changed[:, t:] + 1 + rng.integers(0, 90, changed[:, t:].shape)) % 97
        out, _ = m(changed)
        np.testing.assert_array_equal(out.data[:, :t], ref.data[:, :t])  # bit-identical: nothing leaks back
        assert not np.allclose(out.data[:, t:], ref.data[:, t:])


def test_cached_decoding_matches_full_forward(rng):
    m = tiny()
    idx = ids(rng, T=12)
    full, _ = m(idx)
    with no_grad():
        cache = m.make_cache(batch_size=2, max_len=12)
        steps = [m(idx[:, :5], cache=cache)[0].data]  # prefill
        steps += [m(idx[:, t : t + 1], cache=cache)[0].data for t in range(5, 12)]  # one token at a time
    assert [len(c) for c in cache] == [12, 12]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full.data, atol=2e-6)
    with pytest.raises(ValueError, match="exceed max_len"):
        with no_grad():
            m(idx[:, :1], cache=cache)
    with pytest.raises(ValueError, match="the cache has 1 layers, the model 2"):
        m(idx, cache=cache[:1])
    with pytest.raises(ValueError, match="max_len 65"):
        m.make_cache(1, 65)


def test_reorder_cache_selects_and_repeats_rows(rng):
    """Beam search's step: rows of the cache follow their beams (here: row 1 twice, then row 0)."""
    m = tiny()
    idx = ids(rng, T=6)
    nxt = ids(rng, B=3, T=1)
    with no_grad():
        cache = m.make_cache(2, 8)
        m(idx, cache=cache)
        reorder_cache(cache, [1, 1, 0])
        out, _ = m(nxt, cache=cache)
        full, _ = m(np.concatenate([idx[[1, 1, 0]], nxt], axis=1))
    np.testing.assert_allclose(out.data[:, 0], full.data[:, -1], atol=2e-6)


def test_forward_under_no_grad_builds_no_graph(rng):
    m = tiny()
    with no_grad():
        logits, loss = m(ids(rng), ids(rng))
    assert not logits.requires_grad and logits._ctx is None and not loss.requires_grad


def test_gradcheck_float64(rng):
    m = tiny(n_layer=1, n_embd=16, n_head=2, vocab_size=23, n_positions=8)
    idx, targets = ids(rng, 2, 6, 23), ids(rng, 2, 6, 23)
    targets[0, 2] = -100
    names = ["transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.attn.c_attn.weight",
             "transformer.h.0.attn.c_attn.bias", "transformer.h.0.mlp.c_proj.weight", "transformer.h.0.ln_1.weight",
             "transformer.ln_f.bias"]
    check_param_grads(m, lambda: m(idx, targets)[1], names, n_elems=3)
    assert m.lm_head is m.transformer.wte.weight and m.lm_head.dtype == np.float64  # to_dtype kept the tie


def test_save_load_round_trip(tmp_path, rng):
    m = tiny(seed=3)
    idx = ids(rng)
    m.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    saved = load_safetensors(tmp_path / "m" / "model.safetensors")
    assert "lm_head.weight" not in saved and len(saved) == len(m.state_dict())
    back = GPT2.from_pretrained(tmp_path / "m")
    assert back.config == m.config and not back.training
    np.testing.assert_array_equal(back(idx)[0].data, m(idx)[0].data)
    config = hf.read_config(tmp_path / "m")
    assert config["model_type"] == "gpt2" and config["tie_word_embeddings"] and config["n_embd"] == 32
    # float16 on disk, float32 in memory
    m.save_pretrained(tmp_path / "half", dtype="float16")
    assert load_safetensors(tmp_path / "half" / "model.safetensors")["transformer.wte.weight"].dtype == np.float16
    half = GPT2.from_pretrained(tmp_path / "half")
    assert half.lm_head.dtype == np.float32
    np.testing.assert_allclose(half(idx)[0].data, m(idx)[0].data, atol=5e-3)


def test_prefixless_hub_layout_with_buffers_loads(tmp_path, rng):
    """The Hub's gpt2 checkpoint: GPT2Model keys without `transformer.`, causal-mask buffers, no lm_head."""
    m = tiny(seed=5)
    m.save_pretrained(tmp_path)
    tensors = load_safetensors(tmp_path / "model.safetensors")
    hub = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    for i in range(2):
        hub[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 64, 64), dtype=np.float32))
        hub[f"h.{i}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    save_safetensors(tmp_path / "model.safetensors", hub)
    back = GPT2.from_pretrained(tmp_path)
    idx = ids(rng)
    np.testing.assert_array_equal(back(idx)[0].data, m(idx)[0].data)
    # an lm_head key (GPT2LMHeadModel saved by older transformers) is the tied matrix again: ignored
    hub["lm_head.weight"] = hub["wte.weight"]
    save_safetensors(tmp_path / "model.safetensors", hub)
    np.testing.assert_array_equal(GPT2.from_pretrained(tmp_path)(idx)[0].data, m(idx)[0].data)


def test_f16_and_bf16_checkpoints_compute_in_float32(tmp_path, rng):
    m = tiny(seed=7)
    m.save_pretrained(tmp_path)
    tensors = load_safetensors(tmp_path / "model.safetensors")
    save_safetensors(tmp_path / "model.safetensors", {k: v.astype(np.float16) for k, v in tensors.items()})
    f16 = GPT2.from_pretrained(tmp_path)
    assert f16.lm_head.dtype == np.float32
    np.testing.assert_array_equal(f16.lm_head.data, tensors["transformer.wte.weight"].astype(np.float16))
    expected = write_bf16_safetensors(tmp_path / "model.safetensors", tensors)
    bf16 = GPT2.from_pretrained(tmp_path)
    for name, p in bf16.named_parameters():
        assert p.dtype == np.float32 and np.array_equal(p.data, expected[name]), name
    idx = ids(rng)
    np.testing.assert_allclose(bf16(idx)[0].data, m(idx)[0].data, atol=0.05)


def test_bad_folders_give_clear_errors(tmp_path):
    m = tiny()
    folder = tmp_path / "m"
    m.save_pretrained(folder)
    weights = folder / "model.safetensors"
    tensors = load_safetensors(weights)

    (folder / "config.json").rename(folder / "config.bak")
    with pytest.raises(FileNotFoundError, match=r"m/config\.json not found"):
        GPT2.from_pretrained(folder)
    (folder / "config.bak").rename(folder / "config.json")

    save_safetensors(weights, {k: v for k, v in tensors.items() if k != "transformer.h.1.mlp.c_fc.bias"})
    with pytest.raises(hf.CheckpointError, match=r"(?s)model\.safetensors.*missing keys \(1\): "
                                                 r"transformer\.h\.1\.mlp\.c_fc\.bias"):
        GPT2.from_pretrained(folder)

    save_safetensors(weights, {**tensors, "transformer.h.0.attn.rotary.weight": np.zeros(3, np.float32)})
    with pytest.raises(hf.CheckpointError, match=r"unexpected keys \(1\): transformer\.h\.0\.attn\.rotary\.weight"):
        GPT2.from_pretrained(folder)

    save_safetensors(weights, tensors)
    config = hf.read_config(folder)
    hf.write_config(folder, {**config, "n_positions": 128})
    with pytest.raises(hf.CheckpointError, match=r"wrong shape for transformer\.wpe\.weight in .*model\.safetensors: "
                                                 r"the file has \(64, 32\).*needs \(128, 32\)"):
        GPT2.from_pretrained(folder)

    hf.write_config(folder, {**config, "model_type": "mixtral"})
    with pytest.raises(hf.CheckpointError, match="model_type is 'mixtral'"):
        GPT2.from_pretrained(folder)
    hf.write_config(folder, {**config, "activation_function": "relu"})
    with pytest.raises(hf.CheckpointError, match="activation_function 'relu' is not supported"):
        GPT2.from_pretrained(folder)
    hf.write_config(folder, {**config, "scale_attn_by_inverse_layer_idx": True})
    with pytest.raises(hf.CheckpointError, match="scale_attn_by_inverse_layer_idx=True is not supported"):
        GPT2.from_pretrained(folder)
    weights.unlink()
    hf.write_config(folder, config)
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        GPT2.from_pretrained(folder)


def test_configure_optimizer_decays_only_2d_weights(rng):
    m = tiny()
    opt = m.configure_optimizer(weight_decay=0.1, learning_rate=3e-3, betas=(0.9, 0.95))
    assert isinstance(opt, AdamW)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(p) for p in m.parameters() if p.ndim == 2}
    assert len(decay["params"]) + len(no_decay["params"]) == len(m.parameters())
    assert decay["lr"] == 3e-3 and decay["betas"] == (0.9, 0.95)
    idx = ids(rng, 4, 16)
    losses = []
    for _ in range(15):  # one batch, memorised quickly
        _, loss = m(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5


def test_dropout_follows_train_and_eval(rng):
    m = tiny(dropout=0.2, seed=1)
    idx = ids(rng)
    m.eval()
    np.testing.assert_array_equal(m(idx)[0].data, m(idx)[0].data)
    m.train()
    a, b = m(idx)[0].data, m(idx)[0].data
    assert not np.allclose(a, b)
    # the same seed reproduces the same masks
    np.testing.assert_array_equal(tiny(dropout=0.2, seed=1).train()(idx)[0].data,
                                  tiny(dropout=0.2, seed=1).train()(idx)[0].data)


def test_float64_model():
    m = GPT2(GPT2Config(**TINY), dtype=np.float64, rng=np.random.default_rng(0)).eval()
    logits, _ = m(np.zeros((1, 3), dtype=np.int64))
    assert logits.dtype == np.float64 and all(p.dtype == np.float64 for p in m.parameters())


def test_bias_free_gpt2_saves_zero_biases_and_round_trips(tmp_path):
    """bias=False (nanoGPT's default): no bias parameters; the folder carries zero biases so transformers' GPT-2
    (which always has them) loads the same function, and a non-zero one is refused on the way back in."""
    from models.gpt2 import GPT2, GPT2Config
    from tinygrad_lite.serialization import load_safetensors, save_safetensors

    cfg = GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=2, bias=False, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2(cfg, rng=np.random.default_rng(0))
    assert not any(name.endswith(".bias") for name, _ in model.named_parameters())
    model.save_pretrained(tmp_path)
    tensors = load_safetensors(tmp_path / "model.safetensors")
    biases = {k: v for k, v in tensors.items() if k.endswith(".bias")}
    assert len(biases) == 2 * 6 + 1 and all(not v.any() for v in biases.values())
    assert biases["transformer.h.0.attn.c_attn.bias"].shape == (48,)
    loaded = GPT2.from_pretrained(tmp_path)
    x = np.random.default_rng(1).integers(0, 40, (2, 10))
    np.testing.assert_array_equal(loaded(x)[0].data, model(x)[0].data)
    tensors["transformer.h.1.mlp.c_fc.bias"][3] = 0.5
    save_safetensors(tmp_path / "model.safetensors", tensors)
    with pytest.raises(ValueError, match="transformer.h.1.mlp.c_fc.bias"):
        GPT2.from_pretrained(tmp_path)
