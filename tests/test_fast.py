"""The speed backend (tinygrad_lite.fast) is opt-in: importing the library changes nothing outside it, and turning
the backend on changes no number a training step computes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models import GPT2, GPT2Config
from tinygrad_lite import fast
from tinygrad_lite.fast import blocks
from tinygrad_lite.optim import clip_grad_norm_

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: record every thread start and every ctypes library load, the environment and the
# BLAS's thread count, import the packages, and report what changed.
_PROBE = r"""
import ctypes, json, os, sys, threading
import numpy as np
import regex  # the tokenizers' dependency, loaded first like NumPy: only our own packages are under test
loaded, started = [], []
real_cdll_init = ctypes.CDLL.__init__
def cdll_init(self, name, *a, **k):
    loaded.append(str(name))
    real_cdll_init(self, name, *a, **k)
ctypes.CDLL.__init__ = cdll_init
real_start = threading.Thread.start
def start(self):
    started.append(self.name)
    real_start(self)
threading.Thread.start = start
tasks = lambda: len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 0
env, native = dict(os.environ), tasks()
import tinygrad_lite, tinygrad_lite.functional, layers, models, samplers, tokenizers, training
print(json.dumps({"loaded": loaded, "started": started, "native_threads": tasks() - native,
                  "env_changed": sorted(k for k in set(env) | set(os.environ) if env.get(k) != os.environ.get(k)),
                  "fast_imported": "tinygrad_lite.fast" in sys.modules}))
"""


def test_importing_the_packages_changes_no_process_wide_state():
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report == {"loaded": [], "started": [], "native_threads": 0, "env_changed": [], "fast_imported": False}


def test_enable_says_what_it_turned_on_and_blocks_can_be_undone():
    try:
        done = fast.enable()
        assert any("slices" in d for d in done)
        from tinygrad_lite.fused import gelu

        assert gelu.runner is blocks.in_blocks
    finally:
        blocks.uninstall()
    assert gelu.runner is gelu._whole


def _step(bias: bool, activation: str):
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
def test_a_training_step_is_float32_and_the_same_with_cache_blocks(monkeypatch, bias, activation):
    plain = _step(bias, activation)
    monkeypatch.setattr(blocks, "CACHE_BLOCK", 1000)  # small enough that the (5, 16, 128) GELU is cut in slices
    blocks.install()
    try:
        logits, loss, grads, model, opt = _step(bias, activation)
    finally:
        blocks.uninstall()
    assert logits.dtype == np.float32 and loss.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())
    assert all(p.dtype == np.float32 for p in model.parameters())
    for state in opt.state.values():
        assert state["exp_avg"].dtype == np.float32 and state["exp_avg_sq"].dtype == np.float32
    # Elementwise kernels give the same numbers on any slices: bit for bit.
    np.testing.assert_array_equal(loss.data, plain[1].data)
    for name, g in grads.items():
        np.testing.assert_array_equal(g, plain[2][name], err_msg=name)
    for (name, p), (_, q) in zip(model.named_parameters(), plain[3].named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
