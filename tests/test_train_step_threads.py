"""A whole GPT-2 training step (forward, backward, clipping, AdamW) with every op split between threads: float32 from
end to end (no silent float64), and the same loss, gradients and updated weights as on one thread."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_lite.functional as F
from layers import attention_function
from models import GPT2, GPT2Config
from tinygrad_lite import threads
from tinygrad_lite.optim import clip_grad_norm_


def one_step(threads_env: str, monkeypatch, bias: bool, activation: str):
    monkeypatch.setenv("LAYERS_NUM_THREADS", threads_env)
    # Split even this small model: every parallel path runs (Linear, LayerNorm, GELU, the fused MLP, attention,
    # AdamW).
    monkeypatch.setattr(F, "PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(F, "LAYER_NORM_MIN_PARALLEL", 0)
    monkeypatch.setattr(attention_function, "PARALLEL_MIN_SCORES", 0)
    monkeypatch.setattr(threads, "MIN_PARALLEL_SIZE", 0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=97, n_positions=16, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bias=bias, activation_function=activation)
    model = GPT2(config, rng=np.random.default_rng(0)).train()
    opt = model.configure_optimizer(weight_decay=0.1, learning_rate=1e-2, betas=(0.9, 0.99))
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 97, (5, 16)), rng.integers(0, 97, (5, 16))
    logits, loss = model(x, targets=y)
    loss.backward()
    grads = {n: p.grad.copy() for n, p in model.named_parameters()}
    clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return logits, loss, grads, model, opt


@pytest.mark.parametrize("bias, activation", [(True, "gelu_new"), (False, "gelu")])
def test_float32_end_to_end_and_equal_to_one_thread(monkeypatch, bias, activation):
    logits, loss, grads, model, opt = one_step("3", monkeypatch, bias, activation)
    assert logits.dtype == np.float32 and loss.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(p.dtype == np.float32 for p in model.parameters())
    for state in opt.state.values():
        assert state["exp_avg"].dtype == np.float32 and state["exp_avg_sq"].dtype == np.float32

    logits1, loss1, grads1, model1, _ = one_step("1", monkeypatch, bias, activation)
    np.testing.assert_allclose(loss.data, loss1.data, rtol=1e-6)
    np.testing.assert_allclose(logits.data, logits1.data, rtol=1e-5, atol=1e-6)
    for name, g in grads.items():
        np.testing.assert_allclose(g, grads1[name], rtol=1e-4, atol=1e-6, err_msg=name)
    # The key biases' gradient is zero up to rounding (softmax ignores a shift shared by all keys), and Adam turns
    # rounding noise g into a step of lr * g / (|g| + eps): those weights may differ by ~1e-5 after the step.
    for (name, p), (_, q) in zip(model.named_parameters(), model1.named_parameters()):
        np.testing.assert_allclose(p.data, q.data, rtol=1e-5, atol=1e-4, err_msg=name)
