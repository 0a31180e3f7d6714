"""Positional encodings: the sinusoidal table, learned positions, and rotary embeddings in both layouts."""

from __future__ import annotations

import numpy as np
import pytest
from test_layers_support import gradcheck_module

from layers import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding, sinusoidal_positions
from tinygrad_lite import Tensor, gradcheck

# --------------------------------------------------------------------------------------------- sinusoidal


@pytest.mark.parametrize("dim", [8, 7])
def test_sinusoidal_is_the_paper_formula(dim):
    pe = sinusoidal_positions(50, dim, base=10000.0)
    assert pe.shape == (50, dim) and pe.dtype == np.float32
    for p in (0, 1, 17, 49):
        for j in range(dim):
            i = j // 2
            angle = p / 10000.0 ** (2 * i / dim)
            expected = np.sin(angle) if j % 2 == 0 else np.cos(angle)
            assert pe[p, j] == pytest.approx(expected, abs=1e-6)


def test_sinusoidal_relative_shift_is_a_rotation():
    # PE[p + k] is a fixed linear map of PE[p] (the paper's motivation): per pair a rotation by k * omega_i.
    pe = sinusoidal_positions(40, 6, base=100.0).astype(np.float64)
    k = 5
    omega = 100.0 ** (-np.arange(0, 6, 2) / 6)
    for i, w in enumerate(omega):
        s, c = pe[:-k, 2 * i], pe[:-k, 2 * i + 1]
        np.testing.assert_allclose(pe[k:, 2 * i], s * np.cos(k * w) + c * np.sin(k * w), atol=1e-6)
        np.testing.assert_allclose(pe[k:, 2 * i + 1], c * np.cos(k * w) - s * np.sin(k * w), atol=1e-6)


def test_sinusoidal_module_positions_and_growth():
    enc = SinusoidalPositionalEncoding(6, max_len=4)
    np.testing.assert_array_equal(enc(np.arange(2, 5)).data, sinusoidal_positions(5, 6)[2:5])
    np.testing.assert_array_equal(enc(3).data, sinusoidal_positions(3, 6))
    assert enc(np.array([[0, 9]])).shape == (1, 2, 6)  # grows past max_len
    assert enc.state_dict() == {} and enc.parameters() == []


def test_learned_positions(rng):
    wpe = LearnedPositionalEmbedding(10, 4, rng=rng)
    assert [(n, p.shape) for n, p in wpe.named_parameters()] == [("weight", (10, 4))]
    np.testing.assert_array_equal(wpe(np.arange(3, 6)).data, wpe.weight.data[3:6])
    assert gradcheck_module(wpe, np.array([1, 1, 4]))
    with pytest.raises(IndexError):
        wpe(np.arange(11))


# --------------------------------------------------------------------------------------------- rotary


def rope_loop(x, positions, base, interleaved):
    """Straight from the definition: rotate each pair of features by position * theta_i."""
    D = x.shape[-1]
    out = np.array(x, dtype=np.float64)
    for t, p in enumerate(positions):
        for i in range(D // 2):
            a, b = (2 * i, 2 * i + 1) if interleaved else (i, i + D // 2)
            ang = p * base ** (-2 * i / D)
            xa, xb = x[..., t, a], x[..., t, b]
            out[..., t, a] = xa * np.cos(ang) - xb * np.sin(ang)
            out[..., t, b] = xb * np.cos(ang) + xa * np.sin(ang)
    return out


@pytest.mark.parametrize("interleaved", [False, True])
def test_rope_matches_the_definition(rng, interleaved):
    rope = RotaryEmbedding(8, base=500.0, interleaved=interleaved)
    x = rng.standard_normal((2, 3, 5, 8))
    pos = np.array([0, 1, 7, 8, 30])
    np.testing.assert_allclose(rope(Tensor(x), pos).data, rope_loop(x, pos, 500.0, interleaved), atol=1e-12)
    y32 = rope(Tensor(x.astype(np.float32)), pos)
    assert y32.dtype == np.float32


@pytest.mark.parametrize("interleaved", [False, True])
def test_rope_scores_depend_only_on_position_difference(rng, interleaved):
    rope = RotaryEmbedding(16, interleaved=interleaved)
    q = Tensor(rng.standard_normal((1, 1, 1, 16)))
    k = Tensor(rng.standard_normal((1, 1, 1, 16)))

    def score(p, s):
        return float((rope(q, np.array([p])).data * rope(k, np.array([s])).data).sum())

    for delta in (0, 1, 5, 100):
        ref = score(delta, 0)
        for s in (3, 50, 1000):
            assert score(s + delta, s) == pytest.approx(ref, rel=1e-9, abs=1e-9)
    assert score(5, 0) != pytest.approx(score(6, 0))  # and it does depend on the difference
    # rotations keep lengths
    x = rng.standard_normal((2, 2, 4, 16))
    np.testing.assert_allclose(np.linalg.norm(rope(Tensor(x), np.arange(4)).data, axis=-1),
                               np.linalg.norm(x, axis=-1))


def test_rope_layouts_are_a_feature_permutation(rng):
    D = 8
    perm = np.concatenate([np.arange(0, D, 2), np.arange(1, D, 2)])  # interleaved pair (2i, 2i+1) -> (i, i + D/2)
    x = rng.standard_normal((1, 2, 6, D))
    pos = np.arange(6)
    half = RotaryEmbedding(D)(Tensor(x[..., perm]), pos).data
    inter = RotaryEmbedding(D, interleaved=True)(Tensor(x), pos).data
    np.testing.assert_allclose(half, inter[..., perm], atol=1e-12)


def test_rope_per_sequence_positions_and_growth(rng):
    rope = RotaryEmbedding(4, max_positions=8)
    x = rng.standard_normal((2, 3, 4, 4))
    pos = np.array([[0, 1, 2, 3], [20, 21, 22, 23]])  # second sequence continues a long cache
    y = rope(Tensor(x), pos).data
    np.testing.assert_allclose(y[0], rope(Tensor(x[:1]), pos[0]).data[0])
    np.testing.assert_allclose(y[1], rope(Tensor(x[1:]), pos[1]).data[0])
    np.testing.assert_allclose(y[1], rope_loop(x[1], pos[1], 10000.0, False), atol=1e-12)
    with pytest.raises(ValueError, match="positions"):
        rope(Tensor(x), np.arange(3))
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(5)


@pytest.mark.parametrize("interleaved", [False, True])
def test_rope_gradcheck(rng, interleaved):
    rope = RotaryEmbedding(6, interleaved=interleaved)
    x = Tensor(rng.standard_normal((2, 2, 3, 6)), requires_grad=True)
    assert gradcheck(lambda x: rope(x, np.array([4, 0, 9])), x)


@pytest.mark.ref
@pytest.mark.parametrize("interleaved", [False, True])
def test_rope_matches_torch_implementation(rng, interleaved):
    torch = pytest.importorskip("torch")
    B, H, T, D, base = 2, 3, 7, 8, 10000.0
    x = rng.standard_normal((B, H, T, D)).astype(np.float32)
    pos = np.arange(5, 5 + T)
    g = rng.standard_normal((B, H, T, D)).astype(np.float32)

    inv_freq = 1.0 / base ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    freqs = torch.outer(torch.tensor(pos, dtype=torch.float64), inv_freq)  # (T, D/2)
    xt = torch.tensor(x, requires_grad=True)
    if interleaved:  # Meta's form: consecutive pairs as complex numbers, multiplied by e^(i p theta)
        z = torch.view_as_complex(xt.double().reshape(B, H, T, D // 2, 2))
        ref = torch.view_as_real(z * torch.polar(torch.ones_like(freqs), freqs)).reshape(B, H, T, D)
    else:  # Hugging Face's form: x * cos + rotate_half(x) * sin, frequencies concatenated
        emb = torch.cat([freqs, freqs], dim=-1)
        x1, x2 = xt.double()[..., : D // 2], xt.double()[..., D // 2 :]
        ref = xt.double() * emb.cos() + torch.cat([-x2, x1], dim=-1) * emb.sin()
    ref.backward(torch.tensor(g, dtype=torch.float64))

    ours = Tensor(x, requires_grad=True)
    y = RotaryEmbedding(D, base=base, interleaved=interleaved)(ours, pos)
    y.backward(g)
    np.testing.assert_allclose(y.data, ref.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(ours.grad, xt.grad.numpy(), atol=1e-5)
