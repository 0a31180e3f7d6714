"""samplers.generate: cached generation equals uncached, sliding window, EOS, streaming, seeds, no graph."""

from __future__ import annotations

import numpy as np
import pytest

from models.gpt2 import GPT2, GPT2Config
from samplers.generate import generate, iter_generate


@pytest.fixture(scope="module")
def model():
    cfg = GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
    return GPT2(cfg, rng=np.random.default_rng(0)).eval()


def naive_greedy(model, idx, n):
    """Reference: re-run the whole (windowed) context each step, argmax of the last position."""
    idx = np.array(idx)
    for _ in range(n):
        logits, _ = model(idx[:, -model.config.n_positions:])
        idx = np.concatenate([idx, logits.data[:, -1].argmax(-1)[:, None]], axis=1)
    return idx


def test_cached_greedy_equals_naive_recompute(model):
    prompt = np.random.default_rng(1).integers(0, 50, (3, 5))
    want = naive_greedy(model, prompt, 8)
    got = generate(model, prompt, 8, temperature=0)
    np.testing.assert_array_equal(got, want)


def test_sliding_window_when_context_is_full(model):
    prompt = np.random.default_rng(2).integers(0, 50, (2, 12))
    want = naive_greedy(model, prompt, 10)  # 12 + 10 > n_positions = 16
    np.testing.assert_array_equal(generate(model, prompt, 10, temperature=0), want)
    np.testing.assert_array_equal(generate(model, prompt, 10, temperature=0, use_cache=False), want)


def test_cached_sampling_equals_uncached_sampling(model):
    prompt = np.random.default_rng(3).integers(0, 50, (4, 3))
    kw = dict(temperature=0.9, top_k=20, top_p=0.9, repetition_penalty=1.2)
    a = generate(model, prompt, 20, rng=np.random.default_rng(7), **kw)
    b = generate(model, prompt, 20, rng=np.random.default_rng(7), use_cache=False, **kw)
    np.testing.assert_array_equal(a, b)
    c = generate(model, prompt, 20, rng=np.random.default_rng(8), **kw)
    assert not np.array_equal(a, c)  # another seed, other tokens


def test_eos_stops_rows_and_pads_them(model):
    prompt = np.random.default_rng(4).integers(0, 50, (2, 4))
    free = generate(model, prompt, 6, temperature=0)
    eos = int(free[0, 5])  # the token row 0 produces second: make it the EOS
    out = generate(model, prompt, 6, temperature=0, eos_token_id=eos)
    row0 = out[0, 4:]
    first = int(np.argmax(row0 == eos))
    assert (row0[first:] == eos).all()
    np.testing.assert_array_equal(row0[: first + 1], free[0, 4 : 5 + first])


def test_stream_callback_and_iterator(model):
    prompt = np.array([1, 2, 3])
    seen = []
    out = generate(model, prompt, 5, temperature=0, stream=seen.append)
    assert out.shape == (8,) and [int(s[0]) for s in seen] == out[3:].tolist()
    steps = list(iter_generate(model, prompt, 5, temperature=0))
    assert [int(s[0]) for s in steps] == out[3:].tolist()


def test_generation_builds_no_graph_and_restores_mode(model, monkeypatch):
    model.train()
    outputs = []
    forward = type(model).forward

    def spy(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        outputs.append(out[0])
        return out

    monkeypatch.setattr(type(model), "forward", spy)
    generate(model, np.array([[1, 2]]), 3, temperature=0)
    assert len(outputs) == 3
    assert all(not t.requires_grad and t._ctx is None for t in outputs)  # no graph recorded
    assert model.training  # back to the caller's mode
    model.eval()


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="non-empty"):
        generate(model, np.zeros((1, 0), dtype=np.int64), 3)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, np.array([1]), -1)


def test_model_generate_method_for_gpt2_and_moe(model):
    from models.moe import MoEConfig, MoEGPT

    prompt = np.array([[3, 1, 4]])
    np.testing.assert_array_equal(model.generate(prompt, 4, temperature=0), generate(model, prompt, 4, temperature=0))
    moe = MoEGPT(MoEConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=12,
                           num_local_experts=4), rng=np.random.default_rng(0)).eval()
    a = moe.generate(prompt, 12, temperature=0.8, rng=np.random.default_rng(0))  # 3 + 12 > 12: slides too
    b = moe.generate(prompt, 12, temperature=0.8, rng=np.random.default_rng(0), use_cache=False)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 15)
