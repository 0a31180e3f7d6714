"""MoEGPT (Mixtral architecture) at toy size: transformers' names with (in, out) layout, loss with the routers'
aux loss, expert counts, causality, KV cache, sliding window, gradients, folders and configs.
Comparisons with transformers' MixtralForCausalLM are in test_models_ref.py."""

from __future__ import annotations

import numpy as np
import pytest
from test_models_hf import check_param_grads

from models import MoEConfig, MoEGPT, hf
from tinygrad_lite import no_grad
from tinygrad_lite.serialization import load_safetensors, save_safetensors

TINY = dict(vocab_size=61, hidden_size=32, intermediate_size=24, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, max_position_embeddings=64,
            rope_theta=10000.0, router_aux_loss_coef=0.02)


def tiny(seed=0, **kw):
    return MoEGPT(MoEConfig(**{**TINY, **kw}), rng=np.random.default_rng(seed)).eval()


def ids(rng, B=2, T=9, V=61):
    return rng.integers(0, V, (B, T))


def test_parameter_names_are_transformers_with_our_layout():
    m = tiny(head_dim=12)  # head_dim independent of hidden_size / heads, as Mixtral's config allows
    got = {name: p.shape for name, p in m.named_parameters()}
    L0 = "model.layers.0."
    assert got["model.embed_tokens.weight"] == (61, 32) and got["lm_head.weight"] == (32, 61)
    assert got[L0 + "self_attn.q_proj.weight"] == (32, 4 * 12) and got[L0 + "self_attn.k_proj.weight"] == (32, 2 * 12)
    assert got[L0 + "self_attn.o_proj.weight"] == (48, 32)
    assert got[L0 + "block_sparse_moe.gate.weight"] == (32, 4)
    assert got[L0 + "block_sparse_moe.experts.3.w1.weight"] == (32, 24)
    assert got[L0 + "block_sparse_moe.experts.3.w2.weight"] == (24, 32)
    assert got[L0 + "input_layernorm.weight"] == (32,) and got["model.norm.weight"] == (32,)
    assert len(got) == 3 + 2 * (4 + 1 + 4 * 3 + 2)  # embed, norm, lm_head + per layer
    # transformers stores nn.Linear (out, in): every 2-D weight but the embedding is transposed on disk
    flags = {k: t for k, _, t in m.hf_parameters()}
    assert flags["lm_head.weight"] and flags[L0 + "block_sparse_moe.gate.weight"]
    assert not flags["model.embed_tokens.weight"] and not flags[L0 + "input_layernorm.weight"]


def test_loss_is_cross_entropy_plus_mean_aux_loss(rng):
    m = tiny()
    idx, targets = ids(rng), ids(rng)
    logits, loss = m(idx, targets)
    assert logits.shape == (2, 9, 61)
    z = logits.data.astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    ce = -np.take_along_axis(logp, targets[..., None], -1).mean()
    aux = [moe.aux_loss.item() for moe in m.moe_layers]
    assert m.aux_loss.item() == pytest.approx(np.mean(aux), rel=1e-6)
    assert loss.item() == pytest.approx(ce + 0.02 * np.mean(aux), rel=1e-5)
    # every token goes to top_k experts in every layer
    assert len(m.expert_counts) == 2 and all(c.sum() == 2 * 9 * 2 for c in m.expert_counts)
    assert tiny(router_aux_loss_coef=0.0)(idx, targets)[1].item() == pytest.approx(ce, rel=1e-5)
    assert m(idx)[1] is None


def test_aux_loss_gradient_reaches_the_router(rng):
    m = tiny()
    m.train()
    _, loss = m(ids(rng), ids(rng))
    loss.backward()
    gate = m.model.layers[0].block_sparse_moe.gate.weight
    assert gate.grad is not None and np.abs(gate.grad).max() > 0


def test_causality(rng):
    m = tiny()
    idx = ids(rng, T=12)
    ref, _ = m(idx)
    for t in (2, 7):
        changed = idx.copy()
        changed[:, t:] = (changed[:, t:] + 1) % 61
        out, _ = m(changed)
        # Not bit-identical: each expert multiplies the rows routed to it in one product, and BLAS may round a
        # row differently when the batch of rows around it changes. Causality shows as float32 rounding only.
        np.testing.assert_allclose(out.data[:, :t], ref.data[:, :t], rtol=0, atol=1e-6)
        assert not np.allclose(out.data[:, t:], ref.data[:, t:])


@pytest.mark.parametrize("window", [None, 4])
def test_cached_decoding_matches_full_forward(rng, window):
    m = tiny(sliding_window=window)
    idx = ids(rng, T=12)
    full, _ = m(idx)
    with no_grad():
        cache = m.make_cache(batch_size=2, max_len=16)
        steps = [m(idx[:, :3], cache=cache)[0].data]
        steps += [m(idx[:, t : t + 1], cache=cache)[0].data for t in range(3, 12)]
        np.testing.assert_allclose(np.concatenate(steps, axis=1), full.data, atol=2e-5)
        # a second chunk after the prefill, and last_only
        cache = m.make_cache(2, 16)
        m(idx[:, :5], cache=cache)
        last, _ = m(idx[:, 5:], cache=cache, last_only=True)
    np.testing.assert_allclose(last.data[:, 0], full.data[:, -1], atol=2e-5)


def test_sliding_window_limits_what_a_token_sees(rng):
    m = tiny(sliding_window=4)  # 2 layers: a token depends on at most 2 * (4 - 1) = 6 earlier positions
    idx = ids(rng, T=12)
    ref, _ = m(idx)
    changed = idx.copy()
    changed[:, 0] = (changed[:, 0] + 1) % 61
    out, _ = m(changed)
    assert not np.allclose(out.data[:, 6], ref.data[:, 6])
    np.testing.assert_allclose(out.data[:, 7:], ref.data[:, 7:], rtol=0, atol=1e-6)
    # with a window wider than the sequence the model is plain causal
    np.testing.assert_array_equal(tiny(sliding_window=64)(idx)[0].data, tiny()(idx)[0].data)


def test_gradcheck_float64(rng):
    m = tiny(vocab_size=19, hidden_size=16, intermediate_size=12, num_attention_heads=2, num_key_value_heads=1)
    idx, targets = ids(rng, 2, 5, 19), ids(rng, 2, 5, 19)
    L = "model.layers.0."
    names = ["model.embed_tokens.weight", L + "self_attn.q_proj.weight", L + "self_attn.k_proj.weight",
             L + "block_sparse_moe.gate.weight", L + "block_sparse_moe.experts.1.w1.weight",
             L + "block_sparse_moe.experts.2.w2.weight", L + "post_attention_layernorm.weight", "lm_head.weight"]
    # The loss includes 0.02 * aux_loss, so the router's gradient through the load-balancing term is checked too.
    # (Routing itself is piecewise constant; an eps of 1e-6 never flips a top-k choice at these random weights.)
    check_param_grads(m, lambda: m(idx, targets)[1], names, n_elems=3)


def test_save_load_round_trip_and_config(tmp_path, rng):
    m = tiny(seed=4, head_dim=12, sliding_window=32)
    m.save_pretrained(tmp_path)
    config = hf.read_config(tmp_path)
    assert config["model_type"] == "mixtral" and config["architectures"] == ["MixtralForCausalLM"]
    assert config["rope_theta"] == 10000.0 and config["rope_parameters"]["rope_theta"] == 10000.0
    tensors = load_safetensors(tmp_path / "model.safetensors")
    assert tensors["model.layers.1.self_attn.k_proj.weight"].shape == (24, 32)  # (out, in) on disk
    assert tensors["model.layers.0.block_sparse_moe.gate.weight"].shape == (4, 32)
    back = MoEGPT.from_pretrained(tmp_path)
    assert back.config == m.config
    idx = ids(rng)
    np.testing.assert_array_equal(back(idx)[0].data, m(idx)[0].data)


def test_config_rope_theta_spellings():
    base = {"model_type": "mixtral", **{k: v for k, v in TINY.items() if k != "rope_theta"}}
    assert MoEConfig.from_hf({**base, "rope_theta": 500.0}).rope_theta == 500.0  # transformers 4
    v5 = {**base, "rope_parameters": {"rope_theta": 250.0, "rope_type": "default"}}
    assert MoEConfig.from_hf(v5).rope_theta == 250.0  # transformers 5
    assert MoEConfig.from_hf({**base, "rope_scaling": None}).rope_theta == 1e6
    with pytest.raises(hf.CheckpointError, match="rope_type 'yarn' is not supported"):
        MoEConfig.from_hf({**base, "rope_parameters": {"rope_theta": 1e6, "rope_type": "yarn", "factor": 4.0}},
                          source="ckpt/config.json")
    with pytest.raises(hf.CheckpointError, match="model_type is 'gpt2'"):
        MoEConfig.from_hf({**base, "model_type": "gpt2"})
    with pytest.raises(hf.CheckpointError, match="tie_word_embeddings=True is not supported"):
        MoEConfig.from_hf({**base, "tie_word_embeddings": True})


def test_rope_theta_changes_the_model(rng):
    idx = ids(rng)
    a, b = tiny(rope_theta=10000.0)(idx)[0].data, tiny(rope_theta=100.0)(idx)[0].data
    np.testing.assert_array_equal(a[:, 0], b[:, 0])  # position 0 is not rotated
    assert not np.allclose(a[:, 1:], b[:, 1:])


def test_bad_folder_names_the_expert_key(tmp_path):
    m = tiny()
    m.save_pretrained(tmp_path)
    tensors = load_safetensors(tmp_path / "model.safetensors")
    key = "model.layers.1.block_sparse_moe.experts.2.w3.weight"
    save_safetensors(tmp_path / "model.safetensors", {k: v for k, v in tensors.items() if k != key})
    with pytest.raises(hf.CheckpointError, match=f"missing keys \\(1\\): {key}"):
        MoEGPT.from_pretrained(tmp_path)
    tensors["model.layers.0.self_attn.q_proj.weight"] = tensors["model.layers.0.self_attn.q_proj.weight"].T.copy()
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.ones(4, np.float32)  # a buffer: skipped
    save_safetensors(tmp_path / "model.safetensors", tensors)
    # q_proj is square here, so a transposed copy has the right shape; change the config to break a shape instead
    hf.write_config(tmp_path, {**hf.read_config(tmp_path), "num_key_value_heads": 4})
    with pytest.raises(hf.CheckpointError, match=r"wrong shape for model\.layers\.0\.self_attn\.k_proj\.weight.*"
                                                 r"the file has \(16, 32\).*needs \(32, 32\)"):
        MoEGPT.from_pretrained(tmp_path)


def test_configure_optimizer_and_a_few_steps(rng):
    m = tiny().train()
    opt = m.configure_optimizer(weight_decay=0.1, learning_rate=1e-2)
    assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in m.parameters() if p.ndim == 2}
    idx = ids(rng, 4, 12)
    losses = []
    for _ in range(10):
        _, loss = m(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5
