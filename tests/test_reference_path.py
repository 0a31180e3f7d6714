"""The reference path of whole models: with tinygrad_lite.set_fused(False), the graph of a GPT-2, MoEGPT or Transformer
loss holds primitive ops (tinygrad_lite/ops/) only, its loss and gradients equal the fused path's, a breakpoint in
a primitive's backward is reached during loss.backward(), and a training step runs on the main thread alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinygrad_lite.ops as ops
from models import GPT2, GPT2Config, MoEConfig, MoEGPT, Transformer, TransformerConfig
from tinygrad_lite import set_fused
from tinygrad_lite.debug import graph_lines

ROOT = Path(__file__).resolve().parents[1]


def gpt2(seed: int) -> GPT2:
    config = GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.1,
                        embd_pdrop=0.1, attn_pdrop=0.1)
    return GPT2(config, rng=np.random.default_rng(seed))


def moe(seed: int) -> MoEGPT:
    config = MoEConfig(vocab_size=40, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
                       max_position_embeddings=32)
    return MoEGPT(config, rng=np.random.default_rng(seed))


def transformer(seed: int) -> Transformer:
    config = TransformerConfig(src_vocab_size=30, tgt_vocab_size=30, d_model=16, n_heads=2, n_encoder_layers=2,
                               n_decoder_layers=2, d_ff=32, dropout=0.1)
    return Transformer(config, rng=np.random.default_rng(seed))


def loss_of(model, seed: int = 0):
    """A training-mode loss (dropout on) on a fixed random batch."""
    rng = np.random.default_rng(seed)
    if isinstance(model, Transformer):
        src, tgt = rng.integers(1, 30, size=(3, 7)), rng.integers(1, 30, size=(3, 6))
        src_pad = np.zeros((3, 7), dtype=bool)
        src_pad[0, 5:] = True  # padding: masked keys in the encoder and the cross-attention
        tgt[1, 4:] = 0  # pad_id: ignored targets
        logits = model(src, tgt[:, :-1], src_pad_mask=src_pad, tgt_pad_mask=tgt[:, :-1] == 0)
        return model.loss(logits, tgt[:, 1:])
    idx = rng.integers(0, 40, size=(3, 9))
    return model(idx[:, :-1], targets=idx[:, 1:])[1]


MODELS = {"gpt2": gpt2, "moe": moe, "transformer": transformer}


def graph_ops(out) -> set:
    ops_seen, seen, stack = set(), set(), [out]
    while stack:
        t = stack.pop()
        if t._ctx is None or id(t) in seen:
            continue
        seen.add(id(t))
        ops_seen.add(type(t._ctx))
        stack.extend(t._ctx.parents)
    return ops_seen


@pytest.mark.parametrize("name", list(MODELS))
def test_reference_graph_holds_only_primitive_ops(name):
    with set_fused(False):
        loss = loss_of(MODELS[name](0))
    found = graph_ops(loss)
    foreign = sorted(f"{op.__module__}.{op.__name__}" for op in found
                     if not op.__module__.startswith("tinygrad_lite.ops"))
    assert not foreign, f"non-primitive ops in the reference graph: {foreign}"
    # What debug.graph_lines prints names the same ops, and every op the graph needs is a primitive of ops/.
    printed = {line.lstrip("│├└─ ").split(" ")[0] for line in graph_lines(loss)} - {"leaf"}
    assert printed == {op.__name__ for op in found}
    assert {"Matmul", "Softmax"} <= printed and all(hasattr(ops, n) for n in printed), printed
    # ... and the default path does use the fused Functions
    with set_fused(True):
        fused = {op.__module__ for op in graph_ops(loss_of(MODELS[name](0)))}
    assert any(not m.startswith("tinygrad_lite.ops") for m in fused), fused


@pytest.mark.parametrize("name", list(MODELS))
def test_reference_loss_and_gradients_equal_the_fused_path(name):
    results = []
    for fused in (True, False):
        model = MODELS[name](1)  # the same weights and the same dropout draws on both paths
        with set_fused(fused):
            loss = loss_of(model, seed=2)
            loss.backward()
        assert loss.dtype == np.float32
        results.append((loss.item(), dict((n, p.grad) for n, p in model.named_parameters())))
    (loss_f, grads_f), (loss_r, grads_r) = results
    assert loss_r == pytest.approx(loss_f, rel=1e-5)
    assert grads_f.keys() == grads_r.keys()
    largest = max(float(np.abs(g).max()) for g in grads_f.values() if g is not None)
    for n in grads_f:
        a, b = grads_f[n], grads_r[n]
        assert (a is None) == (b is None), n
        if a is None:
            continue
        if n.endswith("k_proj.bias"):
            # Zero in exact arithmetic: a key bias adds q . b to every score of a row, which softmax ignores. Both
            # paths give float32 rounding noise around 0.
            assert max(np.abs(a).max(), np.abs(b).max()) < 1e-6 * largest, n
            continue
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * float(np.abs(a).max()), err_msg=n)


def test_breakpoint_in_a_primitive_backward_is_reached():
    # A debugger stops in a function when the interpreter enters its code object: that is what sys.settrace sees.
    watched = {ops.Matmul.backward.__code__: "Matmul.backward", ops.Softmax.backward.__code__: "Softmax.backward",
               ops.Mean.backward.__code__: "Mean.backward"}  # attention, its softmax, layer norm's mean
    hit = []

    def tracer(frame, event, arg):
        if event == "call" and frame.f_code in watched:
            hit.append(watched[frame.f_code])
        return None  # no line events: only function entries matter

    with set_fused(False):
        loss = loss_of(gpt2(0))
        sys.settrace(tracer)
        try:
            loss.backward()
        finally:
            sys.settrace(None)
    assert set(hit) == set(watched.values()), hit


STEP_SCRIPT = textwrap.dedent("""
    import json, threading
    import numpy as np
    import tinygrad_lite
    from models import GPT2, GPT2Config
    from tinygrad_lite.optim import clip_grad_norm_

    started = []
    start = threading.Thread.start
    def recording_start(self, *a, **kw):
        started.append(self.name)
        return start(self, *a, **kw)
    threading.Thread.start = recording_start

    before = [t.name for t in threading.enumerate()]
    # Big enough (8 x 4 heads x 64 x 64 attention scores, (512, 64) x (64, 256) products) that code splitting
    # large calls between threads would split these.
    config = GPT2Config(vocab_size=40, n_positions=64, n_embd=64, n_layer=2, n_head=4, resid_pdrop=0.1,
                        embd_pdrop=0.1, attn_pdrop=0.1)
    model = GPT2(config, rng=np.random.default_rng(0))
    opt = model.configure_optimizer(weight_decay=0.1, learning_rate=1e-3)
    idx = np.random.default_rng(1).integers(0, 40, size=(8, 65))
    with tinygrad_lite.set_fused(False):
        for _ in range(2):
            loss = model(idx[:, :-1], targets=idx[:, 1:])[1]
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
    after = [t.name for t in threading.enumerate()]
    print(json.dumps({"before": before, "after": after, "started": started, "loss": loss.item()}))
""")


def test_a_reference_training_step_runs_on_the_main_thread_alone():
    # A fresh interpreter: no thread left over from other tests, and the patched Thread.start sees every new one.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", STEP_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["started"] == [], report
    assert report["before"] == report["after"] == ["MainThread"], report
    assert np.isfinite(report["loss"])
