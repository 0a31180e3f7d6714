"""greedy and sample: shapes, dtypes, determinism, errors, and the empirical distribution of the draws
(a chi-square goodness-of-fit test against the renormalised probabilities)."""

import math

import numpy as np
import pytest

from samplers import greedy, process_logits, sample, softmax, top_k_filter, top_p_filter

# Standard normal quantile of 0.999: chi-square tests below fail by chance once in a thousand seeds.
Z_999 = 3.090232306167813


def chi_square_quantile(df: int, z: float = Z_999) -> float:
    """Wilson & Hilferty (1931): (X / df)^(1/3) is close to normal with mean 1 - 2/(9 df) and variance 2/(9 df)."""
    v = 2.0 / (9.0 * df)
    return df * (1.0 - v + z * math.sqrt(v)) ** 3


def chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = counts.sum() * probs
    return float(np.sum((counts - expected) ** 2 / expected))


def test_wilson_hilferty_against_tabulated_quantiles():
    # 99.9% quantiles from standard chi-square tables. At this tail the approximation errs high (a slightly more
    # lenient threshold): by 3% at df = 1, under 1% from df = 10 on.
    for df, table in [(1, 10.828), (2, 13.816), (5, 20.515), (10, 29.588), (30, 59.703)]:
        assert table <= chi_square_quantile(df) <= 1.035 * table


def test_sample_after_top_p_matches_renormalised_probabilities():
    rng = np.random.default_rng(1234)
    logits = rng.normal(size=12) * 1.5
    p = 0.8
    kept = np.isfinite(top_p_filter(logits, p))
    target = softmax(logits)[kept] / softmax(logits)[kept].sum()
    assert 2 <= kept.sum() < 12  # the test is only meaningful if top-p removed something and left a choice

    n = 20_000
    ids = sample(np.tile(logits, (n, 1)), np.random.default_rng(0), top_p=p)  # one draw per row
    counts = np.bincount(ids, minlength=12)
    assert counts[~kept].sum() == 0
    assert chi_square(counts[kept], target) < chi_square_quantile(int(kept.sum()) - 1)


def test_sample_with_temperature_matches_softmax():
    logits = np.array([1.0, 0.0, -1.0, 2.0, 0.5], dtype=np.float32)
    n = 20_000
    ids = sample(np.tile(logits, (n, 1)), np.random.default_rng(7), temperature=1.7)
    target = softmax(logits.astype(np.float64) / 1.7)
    assert chi_square(np.bincount(ids, minlength=5), target) < chi_square_quantile(4)


def test_sample_shape_dtype_and_seed():
    logits = np.random.default_rng(3).normal(size=(2, 3, 50)).astype(np.float32)
    a = sample(logits, np.random.default_rng(5), top_k=10)
    b = sample(logits, np.random.default_rng(5), top_k=10)
    assert a.shape == (2, 3) and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    one = sample(logits[0, 0], np.random.default_rng(5))
    assert isinstance(one, np.int64) and one.shape == ()


def test_sample_one_draw_per_call_per_row():
    # The generator advances by exactly one uniform per row, whatever the processors: runs stay reproducible when a
    # filter is switched on or off.
    logits = np.zeros((3, 4))
    rng = np.random.default_rng(9)
    sample(logits, rng, top_p=0.5, min_p=0.1)
    reference = np.random.default_rng(9)
    reference.random(3)
    assert rng.random() == reference.random()


def test_sample_never_draws_a_filtered_token():
    logits = np.random.default_rng(0).normal(size=(500, 30))
    ids = sample(logits, np.random.default_rng(1), top_k=3)
    kept = np.isfinite(top_k_filter(logits, 3))
    assert kept[np.arange(500), ids].all()


def test_sample_handles_underflowing_and_removed_tokens():
    # Token 0's probability underflows to exactly 0 in float64, token 2 is -inf; only 1 and 3 can come out.
    logits = np.array([-1e4, 0.0, -np.inf, 0.0])
    ids = sample(np.tile(logits, (2000, 1)), np.random.default_rng(2))
    assert set(np.unique(ids).tolist()) == {1, 3}


def test_sample_applies_processors_in_transformers_order():
    # Repetition penalty before top-k: penalising the leader (4 -> 1) lets token 2 win the single top-k slot.
    logits = np.array([0.0, 3.0, 3.5, 4.0])
    out = process_logits(logits, top_k=1, repetition_penalty=4.0, prev_ids=[3])
    assert np.isfinite(out).tolist() == [False, False, True, False]
    # Temperature before top-p: a high temperature flattens the distribution, so the nucleus grows.
    cold = np.isfinite(process_logits(logits, temperature=0.5, top_p=0.9)).sum()
    hot = np.isfinite(process_logits(logits, temperature=5.0, top_p=0.9)).sum()
    assert cold < hot


def test_sample_temperature_zero_points_to_greedy():
    with pytest.raises(ValueError, match="greedy"):
        sample(np.zeros(3), np.random.default_rng(0), temperature=0.0)


@pytest.mark.parametrize(
    "logits, kwargs, error, match",
    [
        (np.zeros(3), {"rng": 0}, TypeError, "default_rng"),
        (np.zeros(3), {"repetition_penalty": 1.2}, ValueError, "prev_ids"),
        (np.array([[0.0, 1.0], [-np.inf, -np.inf]]), {}, ValueError, "row 1"),
        (np.array([0.0, np.nan]), {}, ValueError, "NaN"),
        (np.array([0.0, np.inf]), {}, ValueError, r"\+inf"),
        (np.zeros(3), {"top_k": 0}, ValueError, "k must be"),
        (np.zeros(3), {"top_p": 1.2}, ValueError, "p must be"),
    ],
)
def test_sample_errors(logits, kwargs, error, match):
    kwargs = {"rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(error, match=match):
        sample(logits, **kwargs)


def test_sample_input_untouched():
    logits = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    before = logits.copy()
    sample(logits, np.random.default_rng(0), temperature=0.5, top_k=2, top_p=0.9, min_p=0.1,
           repetition_penalty=1.5, prev_ids=[[2]])  # fmt: skip
    np.testing.assert_array_equal(logits, before)


def test_greedy():
    logits = np.array([[0.1, 2.0, 2.0, -1.0], [5.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    ids = greedy(logits)
    assert ids.dtype == np.int64
    assert ids.tolist() == [1, 0]  # the first index among ties, as np.argmax and torch.argmax
    assert isinstance(greedy(logits[0]), np.int64)
    assert greedy(np.zeros((2, 3, 5))).shape == (2, 3)
