"""Paired statistics of two answer sets on the same items (evaluation/stats.py)."""
from __future__ import annotations

import time
from math import comb

import pytest

from toolace_r.evaluation.stats import (NO_DIFFERENCE, SIGNIFICANT, mcnemar_exact, paired_bootstrap_ci,
                                        paired_counts, paired_test, verdict)


def _sets(both_right=0, both_wrong=0, wins=0, losses=0):
    """Two answer sets with the given paired counts, ids interleaved so no block sits at one end."""
    kinds = [(1, 1)] * both_right + [(0, 0)] * both_wrong + [(1, 0)] * wins + [(0, 1)] * losses
    a = {f"item_{i:03d}": bool(x) for i, (x, _) in enumerate(kinds)}
    b = {f"item_{i:03d}": bool(y) for i, (_, y) in enumerate(kinds)}
    return a, b


def test_counts_use_only_the_shared_ids():
    a = {"x": True, "y": True, "z": False, "w": False, "only_a": True}
    b = {"x": True, "y": False, "z": True, "w": False, "only_b": False}
    assert paired_counts(a, b) == {"items": 4, "both_right": 1, "both_wrong": 1, "wins": 1, "losses": 1}
    t = paired_test(a, b)
    assert (t.accuracy_a, t.accuracy_b, t.difference) == (0.5, 0.5, 0.0)


@pytest.mark.parametrize("wins, losses, expected", [
    (0, 0, 1.0),
    (3, 3, 1.0),
    (1, 0, 1.0),               # 2 * 1/2
    (5, 0, 2 / 32),            # 0.0625: five to nothing is not enough
    (6, 0, 2 / 64),            # 0.031
    (8, 1, 2 * (1 + 9) / 2 ** 9),                   # 0.039
    (10, 2, 2 * (1 + 12 + 66) / 2 ** 12),           # 0.039
    (9, 2, 2 * (1 + 11 + 55) / 2 ** 11),            # 0.065
    (3, 2, 1.0),               # 2 * (1 + 5 + 10) / 32 = 1
])
def test_mcnemar_exact_matches_hand_computed_binomial_tails(wins, losses, expected):
    assert mcnemar_exact(wins, losses) == pytest.approx(expected)
    assert mcnemar_exact(losses, wins) == mcnemar_exact(wins, losses)  # two-sided: symmetric


def test_mcnemar_exact_matches_scipy_binomtest():
    stats = pytest.importorskip("scipy.stats")
    for n in range(0, 41):
        for k in range(n + 1):
            ours = mcnemar_exact(k, n - k)
            theirs = 1.0 if n == 0 else stats.binomtest(k, n, 0.5, alternative="two-sided").pvalue
            assert ours == pytest.approx(theirs, abs=1e-12), (k, n)


def test_mcnemar_exact_against_a_direct_sum_over_as_or_more_extreme_splits():
    # the definition, computed another way: every split at least as far from n/2 as the observed one
    for n in range(1, 30):
        for k in range(n + 1):
            dist = abs(k - n / 2)
            p = sum(comb(n, i) for i in range(n + 1) if abs(i - n / 2) >= dist) / 2 ** n
            assert mcnemar_exact(k, n - k) == pytest.approx(min(1.0, p))
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_verdict_is_significant_only_below_alpha():
    assert verdict(0.049) == SIGNIFICANT
    assert verdict(0.05) == verdict(0.5) == verdict(1.0) == NO_DIFFERENCE
    assert paired_test(*_sets(both_right=10, both_wrong=24, wins=6)).verdict == SIGNIFICANT
    # a lead of five items of 40 is still no detectable difference (p = 0.0625)
    t = paired_test(*_sets(both_right=10, both_wrong=25, wins=5))
    assert t.difference == pytest.approx(5 / 40) and t.verdict == NO_DIFFERENCE and not t.significant


def test_bootstrap_is_deterministic_with_a_seed_and_independent_of_id_order():
    a, b = _sets(both_right=8, both_wrong=20, wins=7, losses=5)
    first = paired_bootstrap_ci(a, b, seed=3)
    assert paired_bootstrap_ci(a, b, seed=3) == first
    reordered = (dict(reversed(list(a.items()))), dict(reversed(list(b.items()))))
    assert paired_bootstrap_ci(*reordered, seed=3) == first
    assert paired_test(a, b).to_dict() == paired_test(a, b).to_dict()
    # another seed moves the interval a little, not much
    other = paired_bootstrap_ci(a, b, seed=4)
    assert abs(other[0] - first[0]) <= 0.05 and abs(other[1] - first[1]) <= 0.05


@pytest.mark.parametrize("counts", [dict(both_right=8, both_wrong=20, wins=7, losses=5),
                                    dict(both_right=10, both_wrong=24, wins=6),
                                    dict(both_wrong=39, losses=1),
                                    dict(both_right=1, wins=2, losses=9)])
def test_bootstrap_interval_contains_the_observed_difference(counts):
    t = paired_test(*_sets(**counts))
    assert t.ci_low <= t.difference <= t.ci_high
    assert -1 <= t.ci_low < t.ci_high <= 1


def test_bootstrap_interval_of_a_known_case_is_about_the_normal_one():
    # 12 wins, 4 losses of 40: difference 0.2, bootstrap sd sqrt((16/40 - 0.04) / 40) = 0.095
    t = paired_test(*_sets(both_right=10, both_wrong=14, wins=12, losses=4))
    assert t.difference == pytest.approx(0.2)
    assert t.ci_low == pytest.approx(0.2 - 1.96 * 0.0949, abs=0.03)
    assert t.ci_high == pytest.approx(0.2 + 1.96 * 0.0949, abs=0.03)


def test_edge_cases_no_items_and_all_tied():
    t = paired_test({}, {})
    assert (t.items, t.p_value, t.verdict) == (0, 1.0, NO_DIFFERENCE)
    assert t.accuracy_a is t.difference is t.ci_low is t.ci_high is None
    assert paired_test({"a": True}, {"b": True}).items == 0  # no shared id: nothing to compare
    t = paired_test(*_sets(both_right=13, both_wrong=27))
    assert (t.wins, t.losses, t.p_value, t.difference) == (0, 0, 1.0, 0.0)
    assert (t.ci_low, t.ci_high) == (0.0, 0.0) and t.verdict == NO_DIFFERENCE
    with pytest.raises(ValueError):
        paired_bootstrap_ci({"a": True}, {"a": False}, resamples=0)


def test_bootstrap_is_cheap_enough_for_a_report():
    a, b = _sets(both_right=10, both_wrong=14, wins=12, losses=4)
    start = time.perf_counter()
    paired_test(a, b)
    assert time.perf_counter() - start < 5  # 10,000 resamples of 40 items: well under a second alone
