"""The logits processors on hand-checked cases and on the expected outputs published in transformers' test suite
(tests/generation/test_logits_process.py: test_top_k_dist_warper, test_top_p_dist_warper, test_min_p_dist_warper,
test_repetition_penalty_dist_process), written here as literal values."""

import numpy as np
import pytest

from samplers import (
    apply_repetition_penalty,
    apply_temperature,
    min_p_filter,
    softmax,
    top_k_filter,
    top_p_filter,
)

NEG_INF = -np.inf


# --- published vectors ---------------------------------------------------------------------------------------------


def test_top_k_published_ramp():
    # Row 0 is the ramp 0..9; row 1 adds 10 to its first half, so its three largest are entries 2, 3, 4.
    ramp = np.tile(np.arange(10, dtype=np.float32), (2, 1))
    ramp[1, :5] += 10
    out = top_k_filter(ramp, 3)
    assert np.isinf(out[0]).tolist() == 7 * [True] + 3 * [False]
    assert np.isinf(out[1]).tolist() == 2 * [True] + 3 * [False] + 5 * [True]


def test_top_k_published_min_tokens_to_keep_overrides_k():
    uniform = np.full((2, 5), 1 / 5, dtype=np.float32)
    assert np.isfinite(top_k_filter(uniform, 1, min_tokens_to_keep=3)).all()  # all tied: nothing removed
    ramp = np.tile(np.arange(5, dtype=np.float32), (2, 1))
    assert np.isinf(top_k_filter(ramp, 1, min_tokens_to_keep=3)).sum(axis=-1).tolist() == [2, 2]


@pytest.mark.parametrize("p", [0.7, 0.8])
def test_top_p_published_distribution(p):
    # p = 0.7 is the published case; the current transformers suite uses 0.8 with the same expectation, where row 0
    # keeps exactly 0.3 + 0.5 = 0.8. That boundary is decided by float32 rounding (log(0.1) rounds down, leaving the
    # removed 0.1 + 0.1 about 4e-9 below 1 - 0.8), far above float64's rounding error, so it is not a coin flip.
    dist = np.log(np.array([[0.3, 0.1, 0.1, 0.5], [0.15, 0.3, 0.3, 0.25]], dtype=np.float32))
    expected = np.array([[0.3, 0.0, 0.0, 0.5], [0.0, 0.3, 0.3, 0.25]])
    np.testing.assert_allclose(np.exp(top_p_filter(dist, p)), expected, atol=1e-6)


def test_top_p_published_extreme_logits_and_min_tokens_to_keep():
    ramp = np.tile(np.arange(10, dtype=np.float32) - 5, (2, 1))
    ramp[1] *= 100.0
    kept = np.isfinite(top_p_filter(ramp, 0.9, min_tokens_to_keep=2)).sum(axis=-1)
    # Row 0 needs 3 tokens for 0.9; row 1 would keep 1 but min_tokens_to_keep=2 keeps 2.
    assert kept.tolist() == [3, 2]


def test_min_p_published_distribution():
    dist = np.log(
        np.array(
            [
                [0.9, 0.0274, 0.047, 0.0274],  # threshold 0.05 * 0.9 = 0.045: 0.047 stays
                [0.15, 0.3, 0.3, 0.25],  # threshold 0.015: all stay
                [0.97, 0.01, 0.01, 0.01],  # threshold 0.0485: only the first stays
            ],
            dtype=np.float32,
        )
    )
    expected = np.array([[0.9, 0.0, 0.047, 0.0], [0.15, 0.3, 0.3, 0.25], [0.97, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(np.exp(min_p_filter(dist, 0.05)), expected, atol=1e-6)


def test_min_p_published_extreme_logits_and_min_tokens_to_keep():
    ramp = np.tile(np.arange(10, dtype=np.float32) - 5, (2, 1))
    ramp[1] *= 100.0
    kept = np.isfinite(min_p_filter(ramp, 0.9, min_tokens_to_keep=2)).sum(axis=-1)
    assert kept.tolist() == [2, 2]


def test_repetition_penalty_published():
    scores = np.full((2, 10), 1 / 10, dtype=np.float32)
    scores[0, 0] = -1 / 10
    scores[1, 5] = 4 / 10
    out = apply_repetition_penalty(scores, np.array([[0, 1], [5, 0]]), 2.0)
    assert out[0, 0] == pytest.approx(-0.1 * 2)  # negative: multiplied
    assert out[0, 1] == pytest.approx(0.1 / 2)  # positive: divided
    assert out[1, 0] == pytest.approx(0.1 / 2)
    assert out[1, 5] == pytest.approx(0.4 / 2)
    untouched = np.ones((2, 10), dtype=bool)
    untouched[[0, 0, 1, 1], [0, 1, 5, 0]] = False
    np.testing.assert_array_equal(out[untouched], scores[untouched])


# --- temperature ---------------------------------------------------------------------------------------------------


def test_temperature_divides_and_keeps_dtype():
    x = np.array([[1.0, -2.0, 3.0]], dtype=np.float32)
    out = apply_temperature(x, 0.5)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[2.0, -4.0, 6.0]])


def test_temperature_sharpens_and_flattens():
    x = np.array([0.1, 0.2, 0.5, -0.4])
    p, sharp, flat = softmax(x), softmax(apply_temperature(x, 0.5)), softmax(apply_temperature(x, 1.3))
    assert sharp.max() > p.max() > flat.max()
    assert sharp.min() < p.min() < flat.min()
    np.testing.assert_allclose(softmax(apply_temperature(np.zeros(7), 0.3)), np.full(7, 1 / 7))


def test_temperature_zero_points_to_greedy():
    with pytest.raises(ValueError, match="greedy"):
        apply_temperature(np.zeros(3), 0)


@pytest.mark.parametrize("t", [-1.0, float("nan"), float("inf"), True, "1"])
def test_temperature_invalid(t):
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(np.zeros(3), t)


# --- top-k ---------------------------------------------------------------------------------------------------------


def test_top_k_keeps_ties_with_the_kth():
    out = top_k_filter(np.array([1.0, 3.0, 2.0, 3.0, 2.0, 0.0]), 3)
    np.testing.assert_array_equal(out, [NEG_INF, 3.0, 2.0, 3.0, 2.0, NEG_INF])


def test_top_k_larger_than_vocab_keeps_all():
    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_array_equal(top_k_filter(x, 100), x)


def test_top_k_any_leading_shape():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    out = top_k_filter(x, 2)
    assert out.shape == x.shape
    assert (np.isfinite(out).sum(axis=-1) == 2).all()
    np.testing.assert_array_equal(out[..., 2:], x[..., 2:])


@pytest.mark.parametrize("k", [0, -3, 2.0, None, True])
def test_top_k_invalid(k):
    with pytest.raises(ValueError, match="k must be"):
        top_k_filter(np.zeros(4), k)


def test_min_tokens_to_keep_invalid():
    for f in (top_k_filter, top_p_filter, min_p_filter):
        with pytest.raises(ValueError, match="min_tokens_to_keep"):
            f(np.zeros(4), 1, min_tokens_to_keep=0)


# --- top-p ---------------------------------------------------------------------------------------------------------


def test_top_p_keeps_the_token_that_crosses_p():
    x = np.log([0.5, 0.3, 0.15, 0.05])
    # 0.5 < 0.6, so 0.3 is needed to reach 0.6 and stays; 0.5 + 0.3 = 0.8 >= 0.6, so 0.15 goes.
    assert np.isfinite(top_p_filter(x, 0.6)).tolist() == [True, True, False, False]


def test_top_p_zero_keeps_only_min_tokens_to_keep():
    x = np.array([0.0, 2.0, 1.0, 3.0])
    assert np.isfinite(top_p_filter(x, 0.0)).tolist() == [False, False, False, True]
    assert np.isfinite(top_p_filter(x, 0.0, min_tokens_to_keep=2)).tolist() == [False, True, False, True]


def test_top_p_one_keeps_everything():
    x = np.array([0.0, -5.0, 3.0, 1.0], dtype=np.float32)
    np.testing.assert_array_equal(top_p_filter(x, 1.0), x)


def test_top_p_ties_drop_lower_indices_first():
    # Uniform over 4: the stable ascending order is 0, 1, 2, 3, whose cumulative sums 0.25, 0.5 are <= 1 - 0.5.
    assert np.isfinite(top_p_filter(np.zeros(4), 0.5)).tolist() == [False, False, True, True]


def test_top_p_ignores_already_removed_tokens():
    x = np.array([NEG_INF, 0.0, NEG_INF, 0.0])
    np.testing.assert_array_equal(top_p_filter(x, 0.9), x)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), None, "0.5"])
def test_top_p_and_min_p_invalid(p):
    for f in (top_p_filter, min_p_filter):
        with pytest.raises(ValueError, match="p must be"):
            f(np.zeros(4), p)


# --- min-p ---------------------------------------------------------------------------------------------------------


def test_min_p_bounds():
    x = np.log(np.array([0.4, 0.4, 0.15, 0.05]))
    np.testing.assert_array_equal(min_p_filter(x, 0.0), x)  # p = 0 keeps everything
    assert np.isfinite(min_p_filter(x, 1.0)).tolist() == [True, True, False, False]  # p = 1 keeps the maxima


def test_min_p_threshold_is_relative_to_the_max():
    x = np.log(np.array([0.5, 0.25, 0.2, 0.05]))
    assert np.isfinite(min_p_filter(x, 0.45)).tolist() == [True, True, False, False]  # threshold 0.225


def test_min_p_min_tokens_to_keep_keeps_ties():
    x = np.log(np.array([0.9, 0.04, 0.04, 0.02]))
    assert np.isfinite(min_p_filter(x, 0.5, min_tokens_to_keep=2)).tolist() == [True, True, True, False]


# --- repetition penalty --------------------------------------------------------------------------------------------


def test_repetition_penalty_once_per_distinct_id():
    x = np.array([2.0, -2.0, 1.0, 0.0])
    out = apply_repetition_penalty(x, [0, 0, 0, 1, 3, 1], 2.0)
    np.testing.assert_array_equal(out, [1.0, -4.0, 1.0, 0.0])


def test_repetition_penalty_below_one_rewards():
    out = apply_repetition_penalty(np.array([2.0, -2.0, 1.0]), [0, 1], 0.5)
    np.testing.assert_array_equal(out, [4.0, -1.0, 1.0])


def test_repetition_penalty_ragged_histories_and_dtype():
    x = np.array([[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [1.0, 1.0, -1.0]], dtype=np.float32)
    out = apply_repetition_penalty(x, [[2], [], [0, 1, 1, 0]], 4.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1.0, 1.0, -4.0], [1.0, 1.0, -1.0], [0.25, 0.25, -1.0]])


def test_repetition_penalty_empty_history_is_identity():
    x = np.array([1.0, -1.0])
    np.testing.assert_array_equal(apply_repetition_penalty(x, [], 1.5), x)
    np.testing.assert_array_equal(apply_repetition_penalty(x[None], np.zeros((1, 0), dtype=np.int64), 1.5), x[None])


@pytest.mark.parametrize("penalty", [0, -1.0, float("nan"), float("inf"), None])
def test_repetition_penalty_invalid_penalty(penalty):
    with pytest.raises(ValueError, match="penalty"):
        apply_repetition_penalty(np.zeros(3), [0], penalty)


@pytest.mark.parametrize(
    "logits, prev_ids, match",
    [
        (np.zeros(3), [3], "outside the vocabulary"),
        (np.zeros(3), [-1], "outside the vocabulary"),
        (np.zeros(3), [0.0, 1.0], "integer ids"),
        (np.zeros(3), [[0], [1]], "1-D"),
        (np.zeros((2, 3)), [[0]], "2 rows"),
        (np.zeros((2, 3)), np.array([0, 1]), r"\(batch, T\)"),
        (np.zeros((2, 2, 3)), [[0]], r"\(vocab,\) or \(batch, vocab\)"),
    ],
)
def test_repetition_penalty_bad_ids(logits, prev_ids, match):
    with pytest.raises(ValueError, match=match):
        apply_repetition_penalty(logits, prev_ids, 1.2)


# --- shared behaviour ----------------------------------------------------------------------------------------------


PROCESSORS = [
    lambda x: apply_temperature(x, 0.7),
    lambda x: top_k_filter(x, 2),
    lambda x: top_p_filter(x, 0.5),
    lambda x: min_p_filter(x, 0.3),
    lambda x: apply_repetition_penalty(x, [[1, 2]] * len(x), 1.3),
]


@pytest.mark.parametrize("process", PROCESSORS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_kept_and_input_untouched(process, dtype):
    x = np.array([[0.5, -1.0, 2.0, 0.25], [3.0, 3.0, -2.0, 0.0]], dtype=dtype)
    before = x.copy()
    out = process(x)
    assert out.dtype == dtype and out.shape == x.shape
    assert not np.shares_memory(out, x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("process", PROCESSORS)
def test_lists_and_integers_become_float64(process):
    out = process([[1, 0, 3, 2]])
    assert out.dtype == np.float64


@pytest.mark.parametrize("bad", [np.zeros(0), np.float64(1.0), np.array(["a", "b"])])
def test_logits_shape_and_type_checked(bad):
    with pytest.raises((ValueError, TypeError), match="logits"):
        top_k_filter(bad, 1)
