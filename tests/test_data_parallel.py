"""tinygrad_lite.data_parallel: a batch split between forked processes gives the full batch's loss and gradients."""

from __future__ import annotations

import time

import numpy as np
import pytest

from models.gpt2 import GPT2, GPT2Config
from tinygrad_lite import Module, Parameter, Tensor
from tinygrad_lite.fast import data_parallel as dpm
from tinygrad_lite.fast.data_parallel import DataParallel, DataParallelError
from tinygrad_lite.optim import AdamW

pytestmark = pytest.mark.skipif(not dpm.available(), reason="data parallelism needs fork (Linux)")


def tiny_gpt(seed=0, dropout=0.0, dtype=np.float64):
    config = GPT2Config(vocab_size=11, n_positions=8, n_embd=16, n_layer=2, n_head=2, resid_pdrop=dropout,
                        embd_pdrop=dropout, attn_pdrop=dropout, bos_token_id=None, eos_token_id=None)
    model = GPT2(config, dtype=dtype, rng=np.random.default_rng(seed))
    model.train()
    return model


def batch(rows, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 11, (rows, 8)), rng.integers(0, 11, (rows, 8))


def full_batch_grads(model, x, y):
    _, loss = model(x, targets=y)
    loss.backward()
    grads = {n: p.grad.copy() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = None
    return float(loss.item()), grads


@pytest.mark.parametrize("processes, rows", [(2, 5), (3, 7), (3, 2)])
def test_loss_and_gradients_equal_the_full_batch(processes, rows):
    # Unequal shares (5 rows in 3 + 2), and more processes than rows (3 processes, 2 rows: one stays idle).
    model = tiny_gpt()
    x, y = batch(rows)
    want_loss, want = full_batch_grads(model, x, y)
    with DataParallel(model, lambda b: model(b[0], targets=b[1])[1], processes=processes) as dp:
        loss = dp.step((x, y))
    assert loss == pytest.approx(want_loss, rel=1e-13)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, want[name], rtol=1e-10, atol=1e-13, err_msg=name)


def test_the_last_steps_timings_are_reported():
    model = tiny_gpt()
    with DataParallel(model, lambda b: model(b[0], targets=b[1])[1], processes=2) as dp:
        t0 = time.perf_counter()
        dp.step(batch(4))
        wall = time.perf_counter() - t0
    assert list(dp.timings) == ["forward", "backward", "wait", "average"]
    assert all(t >= 0 for t in dp.timings.values()) and dp.timings["backward"] > 0
    assert sum(dp.timings.values()) <= wall


def test_step_adds_scaled_gradients_to_earlier_ones():
    # Gradient accumulation: each micro-batch adds scale * its gradient, as (loss * scale).backward() does.
    model = tiny_gpt()
    (x1, y1), (x2, y2) = batch(4, seed=1), batch(4, seed=2)
    _, g1 = full_batch_grads(model, x1, y1)
    _, g2 = full_batch_grads(model, x2, y2)
    with DataParallel(model, lambda b: model(b[0], targets=b[1])[1], processes=2) as dp:
        dp.step((x1, y1), scale=0.5)
        dp.step((x2, y2), scale=0.5)
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, 0.5 * (g1[name] + g2[name]), rtol=1e-10, atol=1e-13, err_msg=name)


def test_optimizer_steps_in_this_process_reach_the_workers():
    # The weights live in shared memory: after AdamW updates them here, the workers' next gradients use the new ones.
    ref, model = tiny_gpt(), tiny_gpt()
    opt_ref = AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1)
    opt = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    with DataParallel(model, lambda b: model(b[0], targets=b[1])[1], processes=2) as dp:
        for step in range(3):
            x, y = batch(6, seed=step)
            _, loss = ref(x, targets=y)
            loss.backward()
            opt_ref.step()
            opt_ref.zero_grad()
            assert dp.step((x, y)) == pytest.approx(float(loss.item()), rel=1e-12)
            opt.step()
            opt.zero_grad()
    for (name, a), b in zip(ref.named_parameters(), model.parameters()):
        np.testing.assert_allclose(b.data, a.data, rtol=1e-10, atol=1e-12, err_msg=name)


def test_dropout_is_reproducible_from_this_processes_generators():
    # Each step draws one seed per generator here; worker r reseeds its copies from (seed, r). Two identical models
    # with identical generators give identical gradients; the reseeding depends on the rank, so shares get their own
    # masks.
    grads = []
    for _ in range(2):
        model = tiny_gpt(dropout=0.3)
        with DataParallel(model, lambda b, m=model: m(b[0], targets=b[1])[1], processes=2) as dp:
            x, y = batch(4)
            dp.step((x, y))
        grads.append([p.grad.copy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)
    g = np.random.default_rng(5)
    dpm._reseed(g, 123, 1)
    h = np.random.default_rng(6)
    dpm._reseed(h, 123, 1)
    k = np.random.default_rng(7)
    dpm._reseed(k, 123, 2)
    draws = [r.random(4).tolist() for r in (g, h, k)]
    assert draws[0] == draws[1] != draws[2]


class Fails(Module):
    """Mean over rows of x . w; raises on rows marked -1: a share that holds one fails, the others do not."""

    def __init__(self):
        self.w = Parameter(np.ones(3))

    def loss(self, x):
        if (x == -1).any():
            raise ValueError("marked row")
        return (Tensor(x) * self.w).sum() * (1.0 / len(x))


def test_a_workers_error_reaches_the_caller_and_the_next_step_works():
    model = Fails()
    x = np.ones((4, 3))
    x[3] = -1  # the last share, a worker's
    with DataParallel(model, model.loss, processes=2) as dp:
        with pytest.raises(DataParallelError, match="worker 1: ValueError: marked row"):
            dp.step(x)
        assert model.w.grad is None  # nothing half-done
        assert dp.step(np.ones((4, 3))) == pytest.approx(3.0)
        np.testing.assert_allclose(model.w.grad, np.ones(3))


def test_bad_use_is_reported():
    model = Fails()
    with DataParallel(model, model.loss, processes=2) as dp:
        with pytest.raises(TypeError, match="an array or a tuple of arrays"):
            dp.step("not a batch")
        with pytest.raises(ValueError, match="the batch is empty"):
            dp.step(np.ones((0, 3)))
        model.w.data = np.ones(3)  # a new array the workers cannot see
        with pytest.raises(DataParallelError, match="was replaced"):
            dp.step(np.ones((4, 3)))
    with pytest.raises(ValueError, match="processes must be an integer >= 1"):
        DataParallel(model, model.loss, processes=0)


def test_a_dead_worker_is_reported_and_the_workers_are_stopped():
    import os
    import signal

    model = Fails()
    dp = DataParallel(model, model.loss, processes=3)
    os.kill(dp.worker_pids()[0], signal.SIGKILL)
    dp._workers[0].join()
    with pytest.raises(DataParallelError, match="worker 1 is gone"):
        dp.step(np.ones((6, 3)))
    assert model.w.grad is None  # nothing half-done
    assert not any(w.is_alive() for w in dp._workers)  # the healthy worker was stopped too
    with pytest.raises(DataParallelError, match=r"after close\(\) \(data-parallel worker 1 is gone"):
        dp.step(np.ones((6, 3)))


def test_ctrl_c_during_a_step_stops_the_workers():
    import os

    main = os.getpid()

    def loss(x):
        if os.getpid() == main:
            raise KeyboardInterrupt  # as if Ctrl-C arrived while this process computed its share
        return Fails().loss(x)

    dp = DataParallel(Fails(), loss, processes=2)
    with pytest.raises(KeyboardInterrupt):
        dp.step(np.ones((4, 3)))
    assert dp.closed and not dp._workers[0].is_alive()
    with pytest.raises(DataParallelError, match="interrupted by KeyboardInterrupt"):
        dp.step(np.ones((4, 3)))


def test_close_stops_the_workers():
    model = Fails()
    dp = DataParallel(model, model.loss, processes=3)
    workers = list(dp._workers)
    assert all(w.is_alive() for w in workers)
    dp.close()
    assert not any(w.is_alive() for w in workers) and all(w.exitcode == 0 for w in workers)
    with pytest.raises(DataParallelError, match="after close"):
        dp.step(np.ones((4, 3)))
    dp.close()  # twice is fine
