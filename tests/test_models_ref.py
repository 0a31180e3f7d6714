"""Reference checks against transformers (marker `ref`): tiny random GPT-2 and Mixtral models move both ways between
transformers and this project with the same logits, and 10 AdamW steps on one batch give the same losses and first
gradients as PyTorch (the way llm.c's test_gpt2 checks its C implementation).

transformers imports Hugging Face's `tokenizers`, which the project's own `tokenizers` package shadows inside the
repository. So everything torch/transformers does runs in ONE subprocess started in a temporary folder, without the
repository on sys.path, and the two sides exchange model folders and .npy/.npz files through that folder. One
process for all checks, because importing transformers costs several seconds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from models import GPT2, GPT2Config, MoEConfig, MoEGPT

pytestmark = pytest.mark.ref

STEPS, LR, WD, BETAS = 10, 1e-3, 0.1, (0.9, 0.95)
GPT2_TINY = dict(n_layer=2, n_embd=32, n_head=4, vocab_size=97, n_positions=64)
MIX_TINY = dict(vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, head_dim=12, num_local_experts=4, num_experts_per_tok=2,
                max_position_embeddings=64, rms_norm_eps=1e-5, router_aux_loss_coef=0.02)
ROPE_THETA = 10000.0  # not transformers' default (1e6), so reading it from the config is checked

REFERENCE = textwrap.dedent(
    """
    import json
    import numpy as np
    import torch
    import torch.nn.functional as F
    from transformers import GPT2Config, GPT2LMHeadModel, MixtralConfig, MixtralForCausalLM
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    spec = json.load(open("spec.json"))
    torch.manual_seed(0)

    def logits_of(model, idx):
        with torch.no_grad():
            return model.eval()(torch.from_numpy(idx)).logits.numpy()

    def adamw_run(model, idx, tgt, loss_of, grad_names):
        model.train()
        params = list(model.parameters())
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": spec["wd"]},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=spec["lr"], betas=tuple(spec["betas"]), eps=1e-8)
        named = dict(model.named_parameters())
        idx, tgt = torch.from_numpy(idx), torch.from_numpy(tgt)
        losses, grads = [], {}
        for step in range(spec["steps"]):
            loss = loss_of(model, idx, tgt)
            opt.zero_grad()
            loss.backward()
            if step == 0:
                grads = {n: named[n].grad.numpy().copy() for n in grad_names}
            opt.step()
            losses.append(loss.item())
        return np.array(losses), grads

    # ---------------- GPT-2
    idx = np.load("gpt2_idx.npy")
    hf = GPT2LMHeadModel(GPT2Config(**spec["gpt2"]))
    hf.save_pretrained("gpt2_hf")
    hf.save_pretrained("gpt2_hf_sharded", max_shard_size="20KB")
    np.save("gpt2_hf_logits.npy", logits_of(hf, idx))
    hf.to(torch.bfloat16).save_pretrained("gpt2_hf_bf16")
    bf16 = GPT2LMHeadModel.from_pretrained("gpt2_hf_bf16", dtype=torch.float32)
    np.save("gpt2_hf_bf16_logits.npy", logits_of(bf16, idx))

    ours = GPT2LMHeadModel.from_pretrained("gpt2_ours")
    assert ours.lm_head.weight.data_ptr() == ours.transformer.wte.weight.data_ptr(), "lm_head not tied"
    np.save("gpt2_hf_on_ours_logits.npy", logits_of(ours, idx))
    np.save("gpt2_hf_on_ours_nobias_logits.npy", logits_of(GPT2LMHeadModel.from_pretrained("gpt2_ours_nobias"), idx))

    def gpt2_loss(model, idx, tgt):
        logits = model(idx).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)

    names = [n for n, _ in ours.named_parameters()]
    losses, grads = adamw_run(ours, idx, np.load("gpt2_tgt.npy"), gpt2_loss, names)
    np.savez("gpt2_train.npz", losses=losses, **grads)

    # ---------------- Mixtral
    idx = np.load("mix_idx.npy")
    cfg = MixtralConfig(**spec["mixtral"], rope_parameters={"rope_theta": spec["rope_theta"], "rope_type": "default"})
    hf = MixtralForCausalLM(cfg)
    hf.save_pretrained("mix_hf")
    np.save("mix_hf_logits.npy", logits_of(hf, idx))

    ours = MixtralForCausalLM.from_pretrained("mix_ours")
    assert ours.config.rope_parameters["rope_theta"] == spec["rope_theta"]
    np.save("mix_hf_on_ours_logits.npy", logits_of(ours, idx))

    def mixtral_loss(model, idx, tgt):
        out = model(idx, output_router_logits=True)
        ce = F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), tgt.reshape(-1))
        E, k = model.config.num_local_experts, model.config.num_experts_per_tok
        # Our loss averages the layers' own load-balancing losses (transformers pools all layers' tokens).
        aux = torch.stack([load_balancing_loss_func((r,), E, k) for r in out.router_logits]).mean()
        return ce + model.config.router_aux_loss_coef * aux

    names = ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", "model.layers.1.mlp.gate.weight",
             "model.layers.0.post_attention_layernorm.weight", "lm_head.weight"]
    losses, grads = adamw_run(ours, idx, np.load("mix_tgt.npy"), mixtral_loss, names)
    np.savez("mix_train.npz", losses=losses, **grads)
    print("reference done")
    """
)


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    """Build our models, save them, run the transformers side once; return the folder with everything."""
    for name in ("torch", "transformers"):
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed (pip install -e '.[ref]')")
    work = tmp_path_factory.mktemp("models_ref")
    rng = np.random.default_rng(0)
    gpt2 = GPT2(GPT2Config(**GPT2_TINY, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0), rng=rng).eval()
    gpt2.save_pretrained(work / "gpt2_ours")
    nobias = GPT2(GPT2Config(**GPT2_TINY, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bias=False,
                             activation_function="gelu"), rng=rng).eval()  # nanoGPT's: no biases, exact GELU
    nobias.save_pretrained(work / "gpt2_ours_nobias")
    mix = MoEGPT(MoEConfig(**MIX_TINY, rope_theta=ROPE_THETA), rng=rng).eval()
    mix.save_pretrained(work / "mix_ours")
    for name in ("gpt2", "mix"):
        np.save(work / f"{name}_idx.npy", rng.integers(0, 97, (3, 16)))
        tgt = rng.integers(0, 97, (3, 16))
        tgt[0, :3] = -100 if name == "gpt2" else tgt[0, :3]  # ignored positions (GPT-2 side)
        np.save(work / f"{name}_tgt.npy", tgt)
    spec = dict(gpt2=GPT2_TINY, mixtral=MIX_TINY, rope_theta=ROPE_THETA, steps=STEPS, lr=LR, wd=WD, betas=BETAS)
    (work / "spec.json").write_text(json.dumps(spec))

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               HF_HUB_DISABLE_PROGRESS_BARS="1", TOKENIZERS_PARALLELISM="false")
    # cwd is the temporary folder: neither it nor sys.path holds the repository, so `tokenizers` is Hugging Face's.
    proc = subprocess.run([sys.executable, "-c", REFERENCE], cwd=work, env=env, capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"the transformers reference script failed:\n{proc.stderr[-5000:]}")
    return work, gpt2, mix


def _load(path):
    return np.load(path)


# --------------------------------------------------------------------------------------------- GPT-2


def test_gpt2_from_transformers_same_logits(ref):
    work, _, _ = ref
    idx = _load(work / "gpt2_idx.npy")
    expected = _load(work / "gpt2_hf_logits.npy")
    for folder in ("gpt2_hf", "gpt2_hf_sharded"):
        logits, _ = GPT2.from_pretrained(work / folder)(idx)
        np.testing.assert_allclose(logits.data, expected, atol=1e-4, rtol=0, err_msg=folder)
    assert any(p.name.endswith(".index.json") for p in (work / "gpt2_hf_sharded").iterdir())


def test_gpt2_bf16_checkpoint_from_transformers(ref):
    work, _, _ = ref
    logits, _ = GPT2.from_pretrained(work / "gpt2_hf_bf16")(_load(work / "gpt2_idx.npy"))
    np.testing.assert_allclose(logits.data, _load(work / "gpt2_hf_bf16_logits.npy"), atol=1e-4, rtol=0)


def test_gpt2_to_transformers_same_logits(ref):
    work, gpt2, _ = ref
    logits, _ = gpt2(_load(work / "gpt2_idx.npy"))
    np.testing.assert_allclose(_load(work / "gpt2_hf_on_ours_logits.npy"), logits.data, atol=1e-4, rtol=0)


def test_bias_free_gpt2_to_transformers_same_logits(ref):
    """nanoGPT-style bias=False and exact GELU (nn.GELU(), transformers' "gelu"): transformers reads the zero biases
    we write and the activation from config.json, and computes the same logits."""
    work, _, _ = ref
    nobias = GPT2.from_pretrained(work / "gpt2_ours_nobias")
    logits, _ = nobias(_load(work / "gpt2_idx.npy"))
    np.testing.assert_allclose(_load(work / "gpt2_hf_on_ours_nobias_logits.npy"), logits.data, atol=1e-4, rtol=0)


def _adamw_steps_match(model, work, prefix: str, ours_grad_of) -> None:
    """STEPS AdamW steps of `model` on the saved batch: first gradients and every loss equal torch's.

    ours_grad_of(torch name, expected gradient) -> (our gradient, expected in our layout).
    """
    expected = _load(work / f"{prefix}_train.npz")
    idx, tgt = _load(work / f"{prefix}_idx.npy"), _load(work / f"{prefix}_tgt.npy")
    opt = model.configure_optimizer(weight_decay=WD, learning_rate=LR, betas=BETAS)
    losses = []
    for step in range(STEPS):
        _, loss = model(idx, tgt)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            for name in set(expected.files) - {"losses"}:
                ours, g = ours_grad_of(name, expected[name])
                np.testing.assert_allclose(ours, g, atol=1e-5 * np.abs(g).max() + 1e-8, rtol=1e-3, err_msg=name)
        opt.step()
        losses.append(loss.item())
    np.testing.assert_allclose(losses, expected["losses"], rtol=1e-5, atol=0)
    assert losses[-1] < losses[0] - 0.1  # and it did learn something


def test_gpt2_adamw_steps_match_torch(ref):
    work, _, _ = ref
    model = GPT2.from_pretrained(work / "gpt2_ours").train()
    params = dict(model.named_parameters())
    assert set(params) == set(_load(work / "gpt2_train.npz").files) - {"losses"}  # every gradient is compared
    _adamw_steps_match(model, work, "gpt2", lambda name, g: (params[name].grad, g))


# --------------------------------------------------------------------------------------------- Mixtral


def test_mixtral_from_transformers_same_logits(ref):
    work, _, _ = ref
    model = MoEGPT.from_pretrained(work / "mix_hf")
    assert model.config.rope_theta == ROPE_THETA and model.config.head_dim == 12
    logits, _ = model(_load(work / "mix_idx.npy"))
    np.testing.assert_allclose(logits.data, _load(work / "mix_hf_logits.npy"), atol=1e-4, rtol=0)


def test_mixtral_to_transformers_same_logits(ref):
    work, _, mix = ref
    logits, _ = mix(_load(work / "mix_idx.npy"))
    np.testing.assert_allclose(_load(work / "mix_hf_on_ours_logits.npy"), logits.data, atol=1e-4, rtol=0)


def test_mixtral_adamw_steps_match_torch(ref):
    work, _, _ = ref
    model = MoEGPT.from_pretrained(work / "mix_ours").train()
    params = dict(model.named_parameters())
    # transformers 5 keeps the router as `mlp.gate`; its checkpoints (and ours) say `block_sparse_moe.gate`
    ours_name = {"model.layers.1.mlp.gate.weight": "model.layers.1.block_sparse_moe.gate.weight"}

    def grad_of(name, g):
        p = params[ours_name.get(name, name)]
        return p.grad, (g.T if p.ndim == 2 and "embed_tokens" not in name else g)  # torch nn.Linear is (out, in)

    _adamw_steps_match(model, work, "mix", grad_of)
