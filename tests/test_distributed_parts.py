"""The pieces of data parallelism: the autograd hook it needs, how an iteration's work is divided between ranks,
what importing the package does, and tinygrad_lite.distributed's DataParallel on 3 ranks against one process."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_lite import Tensor
from training.options import OptionError, parse_args
from training.ranks import World, find_mpiexec

REPO = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------------------ the hook


def test_post_accumulate_grad_hook_sees_the_final_grad_before_backward_ends():
    """The hook runs once per backward, after the leaf's .grad holds everything of that backward (a used twice),
    and before backward has reached the leaves that come earlier in the graph: where a bucket can be sent off."""
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((3, 4)))
    w1 = Tensor(rng.standard_normal((4, 4)), requires_grad=True)
    w2 = Tensor(rng.standard_normal((4, 2)), requires_grad=True)
    seen = []
    w2.register_post_accumulate_grad_hook(lambda t: seen.append(("w2", t.grad.copy(), w1.grad is None)))
    w1.register_post_accumulate_grad_hook(lambda t: seen.append(("w1", t.grad.copy(), None)))
    h = x @ w1
    loss = ((h @ w2) + (h @ w2)).sum()  # w2 is reached twice: its hook must wait for both contributions
    loss.backward()
    assert [s[0] for s in seen] == ["w2", "w1"]
    assert seen[0][2] is True  # w1's gradient did not exist yet when w2's was final
    np.testing.assert_allclose(seen[0][1], 2 * h.data.T @ np.ones((3, 2)), rtol=1e-6)
    np.testing.assert_array_equal(seen[1][1], w1.grad)
    ((x @ w1) @ w2).sum().backward()  # a second backward accumulates; the hook sees the sum
    assert len(seen) == 4 and np.array_equal(seen[2][1], w2.grad)


def test_post_accumulate_grad_hook_is_for_leaves_that_require_grad():
    w = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        (w * 2).register_post_accumulate_grad_hook(print)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        Tensor(np.ones(2)).register_post_accumulate_grad_hook(print)


# ------------------------------------------------------------------------------------------------ the division of work


def _world(rank: int, size: int) -> World:
    w = World()
    w.rank, w.size, w.main = rank, size, rank == 0
    return w


@pytest.mark.parametrize("ranks, accumulation, batch", list(itertools.product([1, 2, 3, 4], [1, 2, 3, 4], [4, 7, 12])))
def test_every_row_of_every_micro_batch_is_computed_once_with_weights_summing_to_one(ranks, accumulation, batch):
    opts = parse_args(["--batch_size", str(batch), "--gradient_accumulation_steps", str(accumulation)])
    covered = np.zeros((accumulation, batch), dtype=int)
    weight = np.zeros((accumulation, batch))
    for r in range(ranks):
        for micro, rows, w in _world(r, ranks).work(opts):
            covered[micro, rows] += 1
            weight[micro, rows] += w / len(range(batch)[rows])  # each row's share of the global mean
    assert (covered == 1).all()
    np.testing.assert_allclose(weight, 1.0 / (accumulation * batch))
    if accumulation % ranks == 0:  # nanoGPT's rule: whole micro-batches, A / N of them per rank
        assert all(rows == slice(None) for r in range(ranks) for _, rows, _ in _world(r, ranks).work(opts))


def test_more_ranks_than_rows_is_a_one_line_error():
    with pytest.raises(OptionError, match=r"batch_size \(2\) must be at least the number of ranks \(3\)"):
        _world(0, 3).work(parse_args(["--batch_size", "2"]))
    assert len(_world(0, 3).work(parse_args(["--batch_size", "2", "--gradient_accumulation_steps", "3"]))) == 1


def test_zero_in_one_process_is_a_one_line_error():
    with pytest.raises(OptionError, match=r"--zero 1 shards AdamW's state over MPI ranks: use it with --ranks N"):
        World.start(parse_args(["--zero", "1"]))


def test_importing_the_package_starts_no_mpi_and_no_thread():
    code = ("import sys, threading\n"
            "import tinygrad_lite.distributed, training.ranks, training.loop\n"
            "print('mpi4py' in sys.modules, 'mpi4py.MPI' in sys.modules, threading.active_count())\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False", "1"]


# ------------------------------------------------------------------------------------------------ on 3 ranks

_ON_RANKS = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from models.gpt2 import GPT2, GPT2Config
from tinygrad_lite.distributed import DataParallel, world

comm = world()
config = GPT2Config(vocab_size=40, n_positions=8, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0, embd_pdrop=0.0,
                    attn_pdrop=0.0, bos_token_id=None, eos_token_id=None)
rng = np.random.default_rng(1)
x, y = rng.integers(0, 40, (7, 8)), rng.integers(0, 40, (7, 8))  # 7 rows: shares of 2, 2 and 3

def grads(size, rank, overlap=True, bucket_mb=0.002):
    model = GPT2(config, rng=np.random.default_rng(0)).train()
    params = model.parameters()
    dp = DataParallel(params, comm, bucket_mb=bucket_mb, overlap=overlap) if size > 1 else None
    rows = slice(7 * rank // size, 7 * (rank + 1) // size)
    loss = model(x[rows], targets=y[rows])[1] * ((rows.stop - rows.start) / 7)
    loss.backward()
    if dp is not None:
        dp.wait()
        return [p.grad for p in params], len(dp.buckets)
    return [p.grad for p in params], 1

mine, n_buckets = grads(comm.size, comm.rank)
plain, _ = grads(comm.size, comm.rank, overlap=False)
whole, _ = grads(1, 0)
out = {"buckets": n_buckets,
       "overlap_equal": all(np.array_equal(a, b) for a, b in zip(mine, plain)),
       "ranks_equal": bool((comm.allgather_values([float(np.abs(g).sum()) for g in mine]) ==
                            [float(np.abs(g).sum()) for g in mine]).all()),
       "vs_one_process": max(float(np.abs(a - b).max() / (np.abs(b).max() + 1e-12)) for a, b in zip(mine, whole))}

# A parameter only one rank uses gets that rank's gradient everywhere; one no rank uses keeps .grad None.
from tinygrad_lite import Tensor
a, b, c = (Tensor(np.zeros(n, np.float32), requires_grad=True) for n in (3, 5, 2))
dp = DataParallel([a, b, c], comm, bucket_mb=1e-5)
loss = (a * 1.0).sum() + ((b * 2.0).sum() if comm.rank == 1 else 0.0)
loss.backward()
dp.wait()
out.update(a=a.grad.tolist(), b=b.grad.tolist(), c=c.grad is None)
if comm.rank == 0:
    print(json.dumps(out))
"""


@pytest.mark.skipif(find_mpiexec() is None, reason='no mpiexec beside this Python or on PATH (pip install -e ".[mpi]")')
def test_data_parallel_on_three_ranks(tmp_path):
    pytest.importorskip("mpi4py", reason='mpi4py is not installed (pip install -e ".[mpi]")')
    script = tmp_path / "on_ranks.py"
    script.write_text(_ON_RANKS)
    r = subprocess.run([find_mpiexec(), "-n", "3", sys.executable, str(script), str(REPO)], cwd=REPO,
                       capture_output=True, text=True, timeout=180, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["buckets"] > 3  # small buckets: several collectives in flight during backward
    assert out["overlap_equal"]  # started during backward or after it: the same sums, bit for bit
    assert out["ranks_equal"]
    assert out["vs_one_process"] < 1e-5  # the gradient of the whole batch's mean loss, as in one process
    assert out["a"] == [3.0, 3.0, 3.0] and out["b"] == [2.0] * 5 and out["c"] is True
