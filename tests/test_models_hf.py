"""models/hf.py: config.json and safetensors folders, key checks, dtypes; plus helpers the model tests import
(`from test_models_hf import ...`): a parameter gradcheck and a hand-written BF16 safetensors writer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models import hf
from tinygrad_lite import no_grad
from tinygrad_lite.serialization import load_safetensors, save_safetensors

# --------------------------------------------------------------------------------------------- helpers


def check_param_grads(model, loss_fn, names, n_elems=3, eps=1e-6, rtol=1e-5, atol=1e-8, seed=0):
    """Central differences on a few random elements of the named parameters vs backprop, in float64.

    The engine's gradcheck perturbs the Tensors it is given; a model's parameters live inside it, so this perturbs
    `p.data` in place and re-runs the whole loss. loss_fn() must be deterministic (dropout off).
    """
    model.to_dtype(np.float64)
    params = dict(model.named_parameters())
    model.zero_grad()
    loss = loss_fn()
    assert loss.dtype == np.float64
    loss.backward()
    rng = np.random.default_rng(seed)
    for name in names:
        p = params[name]
        flat, grad = p.data.reshape(-1), p.grad.reshape(-1)
        for j in rng.choice(flat.size, size=min(n_elems, flat.size), replace=False):
            orig = flat[j]
            with no_grad():
                flat[j] = orig + eps
                plus = float(loss_fn().data)
                flat[j] = orig - eps
                minus = float(loss_fn().data)
            flat[j] = orig
            numerical = (plus - minus) / (2 * eps)
            assert abs(grad[j] - numerical) <= atol + rtol * abs(numerical), (name, j, grad[j], numerical)


def write_bf16_safetensors(path, tensors: dict) -> dict:
    """Write float32 arrays as BF16 (truncated to their top 16 bits) by hand, since the project's writer has no
    BF16; returns the float32 values a reader must get back."""
    header, blobs, offset, expected = {}, [], 0, {}
    for name in sorted(tensors):
        bits = np.ascontiguousarray(tensors[name], dtype="<f4").view("<u4")
        b16 = (bits >> 16).astype("<u2")
        expected[name] = (b16.astype(np.uint32) << 16).view(np.float32)
        header[name] = {"dtype": "BF16", "shape": list(b16.shape), "data_offsets": [offset, offset + b16.nbytes]}
        blobs.append(b16.tobytes())
        offset += b16.nbytes
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(len(head).to_bytes(8, "little") + head + b"".join(blobs))
    return expected


# --------------------------------------------------------------------------------------------- config.json


def test_read_config_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        hf.read_config(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"config\.json not found"):
        hf.read_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(hf.CheckpointError, match=r"config\.json: not valid JSON"):
        hf.read_config(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(hf.CheckpointError, match="expected a JSON object"):
        hf.read_config(tmp_path)
    with pytest.raises(hf.CheckpointError, match="is a file"):
        hf.read_config(tmp_path / "config.json")


def test_config_round_trip_keeps_unknown_keys(tmp_path):
    from models import GPT2Config

    d = {"model_type": "gpt2", "n_layer": 3, "n_embd": 48, "n_head": 4, "summary_type": "cls_index",
         "task_specific_params": {"text-generation": {"do_sample": True}}}
    cfg = GPT2Config.from_hf(d)
    assert (cfg.n_layer, cfg.n_embd, cfg.vocab_size) == (3, 48, 50257)
    hf.write_config(tmp_path, cfg.to_hf())
    back = hf.read_config(tmp_path)
    assert back["task_specific_params"] == d["task_specific_params"] and back["summary_type"] == "cls_index"
    assert GPT2Config.from_hf(back) == cfg
    with pytest.raises(hf.CheckpointError, match="model_type is 'llama'"):
        GPT2Config.from_hf({"model_type": "llama"}, source="x/config.json")
    with pytest.raises(hf.CheckpointError, match="not divisible"):
        GPT2Config.from_hf({"n_embd": 30, "n_head": 4})


# --------------------------------------------------------------------------------------------- weights


def test_read_weights_single_sharded_and_missing(tmp_path, rng):
    a, b = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    single = tmp_path / "single"
    hf.write_weights(single, {"a": a, "b": b})
    tensors, origin = hf.read_weights(single)
    assert np.array_equal(tensors["a"], a) and origin["b"].endswith("model.safetensors")

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    save_safetensors(sharded / "model-00001-of-00002.safetensors", {"a": a})
    save_safetensors(sharded / "model-00002-of-00002.safetensors", {"b": b})
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors"}}
    (sharded / hf.INDEX_NAME).write_text(json.dumps(index))
    tensors, origin = hf.read_weights(sharded)
    assert np.array_equal(tensors["b"], b) and origin["b"].endswith("model-00002-of-00002.safetensors")
    (sharded / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model-00002-of-00002.safetensors not found"):
        hf.read_weights(sharded)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        hf.read_weights(empty)
    (empty / "pytorch_model.bin").write_bytes(b"\x80\x02")
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin, a pickle file"):
        hf.read_weights(empty)


def test_write_weights_declares_pt_format(tmp_path):
    # transformers refuses a safetensors file whose metadata lacks a known "format".
    hf.write_weights(tmp_path, {"w": np.zeros(2, np.float32)})
    _, meta = load_safetensors(tmp_path / "model.safetensors", return_metadata=True)
    assert meta == {"format": "pt"}


def test_check_keys_lists_every_problem():
    expected = {"w": (2, 3), "b": (3,), "gone": (1,)}
    found = {"w": np.zeros((3, 2)), "b": np.zeros(3, np.int64), "extra": np.zeros(1)}
    origin = dict.fromkeys(found, "/ckpt/model.safetensors")
    with pytest.raises(hf.CheckpointError) as e:
        hf.check_keys(expected, found, origin, "/ckpt", "Toy")
    msg = str(e.value)
    assert "cannot load Toy from /ckpt/model.safetensors" in msg
    assert "missing keys (1): gone" in msg and "unexpected keys (1): extra" in msg
    assert "wrong shape for w in /ckpt/model.safetensors: the file has (3, 2)" in msg and "needs (2, 3)" in msg
    assert "b in /ckpt/model.safetensors has dtype int64" in msg
    hf.check_keys({"w": (3, 2)}, {"w": np.zeros((3, 2))}, {"w": "f"}, "/ckpt", "Toy")  # no problem, no error


def test_bf16_file_reads_as_float32(tmp_path, rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    expected = write_bf16_safetensors(tmp_path / "model.safetensors", {"x": x})
    got = hf.read_weights(tmp_path)[0]["x"]
    assert got.dtype == np.float32 and np.array_equal(got, expected["x"])
    assert np.abs(got - x).max() <= np.abs(x).max() * 2**-7  # bf16 keeps 8 bits of mantissa


def test_as_dtype():
    assert hf.as_dtype("float16") == np.float16 and hf.as_dtype(np.float64) == np.float64
    with pytest.raises(ValueError, match="unsupported dtype"):
        hf.as_dtype(np.int32)
    with pytest.raises(ValueError, match="unsupported dtype"):
        hf.as_dtype("float16", compute=True)  # a save format, not a compute dtype here
