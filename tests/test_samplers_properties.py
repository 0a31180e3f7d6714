"""Invariants of the logits processors and of sample, checked by hypothesis on random logits."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from samplers import (
    apply_repetition_penalty,
    apply_temperature,
    greedy,
    min_p_filter,
    process_logits,
    sample,
    softmax,
    top_k_filter,
    top_p_filter,
)

# Finite float32 logits, at most a few rows; the small value range makes ties common.
finite = st.floats(-30, 30, width=32)
logits_2d = hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 40)), elements=finite)
# Ties and removed (-inf) entries as well.
coarse = st.one_of(st.sampled_from([-2.0, 0.0, 0.5, 3.0, -np.inf]), finite)
with_ties = hnp.arrays(np.float32, st.tuples(st.integers(1, 4), st.integers(1, 40)), elements=coarse).filter(
    lambda x: np.isfinite(x).any(axis=-1).all()  # every row keeps a token
)
probability = st.floats(0.0, 1.0)
keep = st.integers(1, 5)

SETTINGS = settings(max_examples=60, deadline=None)


def _untouched(process, x):
    before = x.copy()
    out = process(x)
    np.testing.assert_array_equal(x, before)
    assert out.dtype == x.dtype and out.shape == x.shape and not np.shares_memory(out, x)
    return out


@SETTINGS
@given(with_ties, st.integers(1, 50), keep)
def test_top_k_keeps_at_least_k_and_only_the_largest(x, k, m):
    out = _untouched(lambda a: top_k_filter(a, k, min_tokens_to_keep=m), x)
    kept = out > -np.inf
    finite_count = np.isfinite(x).sum(axis=-1)
    assert (kept.sum(axis=-1) >= np.minimum(max(k, m), finite_count)).all()
    np.testing.assert_array_equal(out[kept], x[kept])
    for row, mask in zip(x, kept):
        if (~mask).any():
            assert row[mask].min() > row[~mask].max()  # strictly: a tie with a kept token is kept


@SETTINGS
@given(with_ties, probability, keep)
def test_top_p_mass_reaches_p_and_is_minimal(x, p, m):
    out = _untouched(lambda a: top_p_filter(a, p, min_tokens_to_keep=m), x)
    probs = softmax(x)
    kept = out > -np.inf
    np.testing.assert_array_equal(out[kept], x[kept])
    for row, row_probs, mask in zip(x, probs, kept):
        mass = row_probs[mask].sum()
        assert mass >= p - 1e-9
        assert mask.sum() >= min(m, np.isfinite(row).sum())
        if mask.sum() > m:
            # Dropping the least likely kept token would fall short of p: no smaller nucleus exists.
            assert mass - row_probs[mask].min() < p + 1e-9
        if (~mask).any():
            assert row_probs[mask].min() >= row_probs[~mask].max()


@SETTINGS
@given(with_ties, probability, keep)
def test_min_p_keeps_exactly_the_tokens_above_the_threshold(x, p, m):
    out = _untouched(lambda a: min_p_filter(a, p, min_tokens_to_keep=m), x)
    probs = softmax(x)
    kept = out > -np.inf
    threshold = p * probs.max(axis=-1, keepdims=True)
    above = (probs >= threshold) & np.isfinite(x)
    assert (kept >= above).all()  # everything at or above the threshold stays
    extra = kept & ~above  # anything else stays only to reach min_tokens_to_keep
    assert (extra.sum(axis=-1) == 0).all() or (above.sum(axis=-1)[extra.any(axis=-1)] < m).all()


@SETTINGS
@given(
    logits_2d,
    st.floats(0.05, 20.0),
    st.data(),
)
def test_repetition_penalty_touches_only_previous_ids(x, penalty, data):
    vocab = x.shape[1]
    prev = [data.draw(st.lists(st.integers(0, vocab - 1), max_size=8)) for _ in range(x.shape[0])]
    out = _untouched(lambda a: apply_repetition_penalty(a, prev, penalty), x)
    for xr, outr, ids in zip(x, out, prev):
        seen = np.zeros(vocab, dtype=bool)
        seen[ids] = True
        np.testing.assert_array_equal(outr[~seen], xr[~seen])
        expected = np.where(xr < 0, xr * np.float32(penalty), xr / np.float32(penalty))
        np.testing.assert_array_equal(outr[seen], expected[seen])
        # Deduplicating the history first changes nothing: a token is penalised once.
        once = apply_repetition_penalty(xr, sorted(set(ids)), penalty)
        np.testing.assert_array_equal(once, outr)


@SETTINGS
@given(logits_2d, st.floats(0.05, 20.0))
def test_temperature_preserves_the_ranking(x, t):
    out = _untouched(lambda a: apply_temperature(a, t), x)
    np.testing.assert_array_equal(greedy(out), greedy(x))


@SETTINGS
@given(with_ties, st.integers(0, 2**32 - 1))
def test_sample_with_top_k_1_is_argmax(x, seed):
    ids = sample(x, np.random.default_rng(seed), top_k=1)
    rows = np.arange(x.shape[0])
    assert (x[rows, ids] == x.max(axis=-1)).all()  # one of the maxima (top-k keeps ties)
    unique_max = (x == x.max(axis=-1, keepdims=True)).sum(axis=-1) == 1
    np.testing.assert_array_equal(ids[unique_max], greedy(x)[unique_max])


@SETTINGS
@given(
    with_ties,
    st.integers(0, 2**32 - 1),
    st.one_of(st.none(), st.integers(1, 10)),
    st.one_of(st.none(), probability),
    st.one_of(st.none(), probability),
)
def test_sample_draws_only_surviving_tokens(x, seed, top_k, top_p, min_p):
    before = x.copy()
    ids = sample(x, np.random.default_rng(seed), temperature=0.8, top_k=top_k, top_p=top_p, min_p=min_p)
    np.testing.assert_array_equal(x, before)
    assert ids.shape == x.shape[:1] and ids.dtype == np.int64
    survivors = process_logits(x, temperature=0.8, top_k=top_k, top_p=top_p, min_p=min_p)
    assert np.isfinite(survivors[np.arange(x.shape[0]), ids]).all()
