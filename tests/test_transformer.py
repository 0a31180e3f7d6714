"""The encoder-decoder Transformer (Vaswani et al. 2017) at toy size: loss with label smoothing, decoder causality,
padding masks, cached decoding, gradients (post-LN and pre-LN), folders, shared embeddings, greedy and beam search
(checked against exhaustive search)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_models_hf import check_param_grads

from models import Transformer, TransformerConfig, hf
from tinygrad_lite import no_grad

PAD, BOS, EOS = 0, 1, 2


def tiny(seed=0, **kw):
    cfg = dict(src_vocab_size=11, tgt_vocab_size=13, d_model=16, n_heads=4, n_encoder_layers=2, n_decoder_layers=2,
               d_ff=32, dropout=0.0)
    return Transformer(TransformerConfig(**{**cfg, **kw}), rng=np.random.default_rng(seed)).eval()


def ids(rng, shape, V, low=3):
    return rng.integers(low, V, shape)


def test_shapes_names_and_label_smoothed_loss(rng):
    m = tiny()
    src, tgt = ids(rng, (2, 7), 11), ids(rng, (2, 6), 13)
    logits = m(src, tgt[:, :-1])
    assert logits.shape == (2, 5, 13) and logits.dtype == np.float32
    names = [n for n, _ in m.named_parameters()]
    assert names[:2] == ["src_embed.weight", "tgt_embed.weight"] and "out_proj.weight" not in names  # tied output
    assert "decoder.layers.1.cross_attn.k_proj.weight" in names and "encoder.norm.weight" not in names  # post-LN
    targets = tgt[:, 1:].copy()
    targets[1, 3:] = PAD
    loss = m.loss(logits, targets)
    z = logits.data.astype(np.float64)
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    eps = 0.1  # the paper's label smoothing: 0.9 on the target, 0.1 spread over all 13 classes
    per_token = -(1 - eps) * np.take_along_axis(logp, targets[..., None], -1)[..., 0] - eps * logp.mean(-1)
    assert loss.item() == pytest.approx(per_token[targets != PAD].mean(), rel=1e-5)


def test_decoder_is_causal_and_encoder_is_not(rng):
    m = tiny()
    src, tgt = ids(rng, (2, 7), 11), ids(rng, (2, 8), 13)
    ref = m(src, tgt).data
    changed = tgt.copy()
    changed[:, 4:] = (changed[:, 4:] + 1) % 13
    out = m(src, changed).data
    np.testing.assert_array_equal(out[:, :4], ref[:, :4])
    assert not np.allclose(out[:, 4:], ref[:, 4:])
    src2 = src.copy()
    src2[:, -1] = (src2[:, -1] + 1) % 11  # the last source token is visible from every target position
    assert not np.allclose(m(src2, tgt).data[:, 0], ref[:, 0])


def test_padding_masks_hide_padding(rng):
    m = tiny()
    src, tgt = ids(rng, (1, 5), 11), ids(rng, (1, 4), 13)
    ref = m(src, tgt).data
    padded_src = np.concatenate([src, np.full((1, 3), PAD)], axis=1)
    padded_tgt = np.concatenate([tgt, np.full((1, 2), PAD)], axis=1)
    out = m(padded_src, padded_tgt, src_pad_mask=padded_src == PAD, tgt_pad_mask=padded_tgt == PAD).data
    np.testing.assert_allclose(out[:, :4], ref, atol=1e-5)
    memory = m.encode(padded_src, padded_src == PAD).data
    np.testing.assert_allclose(memory[:, :5], m.encode(src).data, atol=1e-5)
    with pytest.raises(ValueError, match="padding mask of shape"):
        m(src, tgt, src_pad_mask=np.zeros((1, 4), dtype=bool))


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decoding_matches_full_decode(rng, norm_first):
    m = tiny(norm_first=norm_first)
    src, tgt = ids(rng, (2, 7), 11), ids(rng, (2, 6), 13)
    with no_grad():
        memory = m.encode(src)
        full = m.decode(tgt, memory).data
        cache = m.make_cache(batch_size=2, max_len=6, src_len=7)
        steps = [m.decode(tgt[:, :2], memory, cache=cache).data]
        steps += [m.decode(tgt[:, t : t + 1], memory, cache=cache).data for t in range(2, 6)]
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(), dict(norm_first=True, share_embeddings=True, tgt_vocab_size=11,
                                               tie_output=False)])
def test_gradcheck_float64(rng, kw):
    m = tiny(d_model=8, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=12, **kw)
    V = m.config.tgt_vocab_size
    src, tgt = ids(rng, (2, 5), 11), ids(rng, (2, 5), V)
    src_pad = np.zeros((2, 5), dtype=bool)
    src_pad[1, 3:] = True
    names = ["src_embed.weight", "encoder.layers.0.self_attn.q_proj.weight", "encoder.layers.0.ff.fc1.bias",
             "decoder.layers.0.cross_attn.k_proj.weight", "decoder.layers.0.cross_attn.v_proj.bias",
             "decoder.layers.0.self_attn.o_proj.weight", "decoder.layers.0.norm3.weight"]
    names += ["tgt_embed.weight"] if not m.config.share_embeddings else ["out_proj.weight", "decoder.norm.bias"]
    check_param_grads(m, lambda: m.loss(m(src, tgt[:, :-1], src_pad_mask=src_pad), tgt[:, 1:]), names)


def test_shared_embeddings_are_one_parameter():
    m = tiny(share_embeddings=True, tgt_vocab_size=11)
    assert m.src_embed is m.tgt_embed
    assert [n for n, _ in m.named_parameters()].count("src_embed.weight") == 1
    assert "tgt_embed.weight" not in dict(m.named_parameters())
    with pytest.raises(ValueError, match="share_embeddings needs one vocabulary"):
        TransformerConfig(src_vocab_size=11, tgt_vocab_size=13, share_embeddings=True)


@pytest.mark.parametrize("kw", [dict(), dict(norm_first=True, share_embeddings=True, tgt_vocab_size=11,
                                               tie_output=False)])
def test_save_load_round_trip(tmp_path, rng, kw):
    m = tiny(seed=2, **kw)
    m.save_pretrained(tmp_path)
    assert hf.read_config(tmp_path)["model_type"] == "vaswani_transformer"
    back = Transformer.from_pretrained(tmp_path)
    assert back.config == m.config
    src, tgt = ids(rng, (2, 7), 11), ids(rng, (2, 6), 11)
    np.testing.assert_array_equal(back(src, tgt).data, m(src, tgt).data)


def test_dropout_modes_and_decoding_restores_mode(rng):
    m = tiny(dropout=0.3).train()
    src, tgt = ids(rng, (2, 7), 11), ids(rng, (2, 6), 13)
    assert not np.allclose(m(src, tgt).data, m(src, tgt).data)
    out = m.greedy_decode(src, max_len=5, bos=BOS, eos=EOS)
    assert m.training and out == m.greedy_decode(src, max_len=5, bos=BOS, eos=EOS)  # decoding runs in eval mode
    m.eval()
    np.testing.assert_array_equal(m(src, tgt).data, m(src, tgt).data)


# --------------------------------------------------------------------------------------------- decoding


def _sequence_logprobs(m, src, ys):
    """log P(y | src) by teacher forcing for each y (ids without bos); sequences of one length share a batch."""
    out = {}
    for n in sorted({len(y) for y in ys}):
        batch = np.array([y for y in ys if len(y) == n])  # (N, n)
        tgt_in = np.concatenate([np.full((len(batch), 1), BOS), batch[:, :-1]], axis=1)
        z = m(np.repeat(src, len(batch), axis=0), tgt_in).data.astype(np.float64)  # (N, n, V)
        logp = z - z.max(-1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
        totals = np.take_along_axis(logp, batch[..., None], -1)[..., 0].sum(-1)
        out.update(zip(map(tuple, batch.tolist()), totals.tolist()))
    return out


def _small_vocab(seed):
    return tiny(seed=seed, tgt_vocab_size=5, d_model=8, n_heads=2, d_ff=16)


def test_greedy_decode_matches_stepwise_argmax(rng):
    m = tiny()
    src = ids(rng, (3, 6), 11)
    out = m.greedy_decode(src, max_len=6, bos=BOS, eos=EOS)
    for b in range(3):
        y = [BOS]
        for _ in range(6):
            nxt = int(m(src[b : b + 1], np.array([y])).data[0, -1].argmax())
            y.append(nxt)
            if nxt == EOS:
                break
        assert out[b] == y[1:]


def test_beam_search_of_width_one_is_greedy(rng):
    for seed in range(3):
        m = _small_vocab(seed)
        src = ids(rng, (2, 6), 11)
        greedy = m.greedy_decode(src, max_len=5, bos=BOS, eos=EOS)
        assert m.beam_search(src, beam_size=1, max_len=5, bos=BOS, eos=EOS, length_penalty=0.0) == greedy


def test_wide_beam_search_is_exhaustive_search(rng):
    V, L = 5, 3
    found_better_than_greedy = False
    for seed in range(6):
        m = _small_vocab(seed)
        src = ids(rng, (1, 6), 11)
        others = [t for t in range(V) if t != EOS]
        candidates = [list(p) + [EOS] for n in range(L) for p in itertools.product(others, repeat=n)]
        candidates += [list(p) for p in itertools.product(others, repeat=L)]  # cut by max_len, no eos
        scores = _sequence_logprobs(m, src, candidates)
        best = max(scores, key=scores.get)
        beam = m.beam_search(src, beam_size=(V - 1) ** L, max_len=L, bos=BOS, eos=EOS, length_penalty=0.0)[0]
        assert scores[tuple(beam)] == pytest.approx(scores[best], abs=1e-9)
        greedy = m.greedy_decode(src, max_len=L, bos=BOS, eos=EOS)[0]
        found_better_than_greedy |= scores[best] > scores[tuple(greedy)] + 1e-6
        # with the length penalty and a narrow beam: a well-formed hypothesis
        small = m.beam_search(src, beam_size=2, max_len=L, bos=BOS, eos=EOS, length_penalty=0.6)[0]
        assert 1 <= len(small) <= L and (EOS not in small[:-1])
    assert found_better_than_greedy  # otherwise this test would not tell beam search from greedy


def test_beam_search_batch_equals_rows_alone(rng):
    m = tiny(seed=1)
    src = ids(rng, (3, 6), 11)
    src[2, 4:] = PAD
    pad = src == PAD
    together = m.beam_search(src, beam_size=3, max_len=6, bos=BOS, eos=EOS, src_pad_mask=pad)
    alone = [m.beam_search(src[b : b + 1, : (4 if b == 2 else 6)], beam_size=3, max_len=6, bos=BOS, eos=EOS)[0]
             for b in range(3)]
    assert together == alone
    greedy = m.greedy_decode(src, max_len=6, bos=BOS, eos=EOS, src_pad_mask=pad)
    assert greedy[2] == m.greedy_decode(src[2:, :4], max_len=6, bos=BOS, eos=EOS)[0]


@pytest.mark.slow
def test_learns_to_reverse_sequences():
    """A 2+2-layer model learns to reverse digit strings in a few hundred AdamW steps (pre-LN, no warmup)."""
    from tinygrad_lite.optim import AdamW

    rng = np.random.default_rng(0)
    m = Transformer(TransformerConfig(src_vocab_size=13, tgt_vocab_size=13, d_model=32, n_heads=4,
                                      n_encoder_layers=2, n_decoder_layers=2, d_ff=64, dropout=0.0,
                                      label_smoothing=0.0, norm_first=True, share_embeddings=True),
                    rng=np.random.default_rng(0)).train()
    opt = AdamW(m.parameters(), lr=3e-3, weight_decay=0.0)

    def batch(n):
        src = rng.integers(3, 13, (n, 6))
        tgt = np.concatenate([np.full((n, 1), BOS), src[:, ::-1], np.full((n, 1), EOS)], axis=1)
        return src, tgt

    for _ in range(400):
        src, tgt = batch(32)
        loss = m.loss(m(src, tgt[:, :-1]), tgt[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    src, tgt = batch(20)
    out = m.greedy_decode(src, max_len=8, bos=BOS, eos=EOS)
    assert np.mean([o == t[1:].tolist() for o, t in zip(out, tgt)]) >= 0.9
    beam = m.beam_search(src, beam_size=3, max_len=8, bos=BOS, eos=EOS)
    assert np.mean([o == t[1:].tolist() for o, t in zip(beam, tgt)]) >= 0.9
