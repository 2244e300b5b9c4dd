"""Every statistic equals scipy's on the same data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sp
from scipy.spatial.distance import jensenshannon

from conveyor.monitoring import stats


@pytest.fixture
def samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=800), rng.normal(0.2, 1.1, size=500)


def test_ks_equals_scipy(samples: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = samples
    expected = sp.ks_2samp(ref, cur)
    assert stats.ks(ref, cur) == (
        pytest.approx(expected.statistic, abs=1e-15),
        pytest.approx(expected.pvalue, rel=1e-12),
    )


def test_wasserstein_is_scipys_over_reference_std(samples: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = samples
    expected = sp.wasserstein_distance(ref, cur) / np.std(ref)
    assert stats.wasserstein(ref, cur, float(np.std(ref))) == pytest.approx(expected, rel=1e-12)
    # A constant reference does not divide by zero: the floor of 0.001 applies.
    assert stats.wasserstein(np.ones(10), np.ones(10) * 2, 0.0) == pytest.approx(1000.0)


def test_binned_statistics_equal_scipy() -> None:
    ref = np.array([120, 80, 50, 0, 30])
    cur = np.array([100, 90, 40, 10, 0])
    assert stats.jensenshannon(ref, cur) == pytest.approx(
        jensenshannon(ref / ref.sum(), cur / cur.sum()), rel=1e-12
    )
    chi2 = sp.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert stats.chisquare(ref, cur) == (
        pytest.approx(chi2.statistic, rel=1e-12),
        pytest.approx(chi2.pvalue, rel=1e-12),
    )
    r = np.where(ref == 0, 1e-4, ref / ref.sum())
    c = np.where(cur == 0, 1e-4, cur / cur.sum())
    assert stats.psi(ref, cur) == pytest.approx(np.sum((c - r) * np.log(c / r)), rel=1e-12)


def test_chisquare_drops_empty_bins_and_handles_one_category() -> None:
    with_empty = stats.chisquare(np.array([10, 0, 5]), np.array([8, 0, 9]))
    assert with_empty == stats.chisquare(np.array([10, 5]), np.array([8, 9]))
    assert stats.chisquare(np.array([10, 0]), np.array([7, 0])) == (0.0, 1.0)


def test_two_category_chisquare_is_the_two_proportion_z_test() -> None:
    ref, cur = np.array([700, 300]), np.array([640, 360])
    p1, p2 = 300 / 1000, 360 / 1000
    pooled = 660 / 2000
    z = (p2 - p1) / np.sqrt(pooled * (1 - pooled) * (2 / 1000))
    statistic, p_value = stats.chisquare(ref, cur)
    assert statistic == pytest.approx(z**2, rel=1e-12)
    assert p_value == pytest.approx(2 * sp.norm.sf(abs(z)), rel=1e-9)


def test_identical_histograms_give_zero_distance() -> None:
    counts = np.array([5, 10, 0, 3])
    assert stats.psi(counts, counts * 3) == 0.0
    assert stats.jensenshannon(counts, counts * 3) == 0.0


def test_multiple_testing_corrections() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.005])
    np.testing.assert_allclose(stats.benjamini_hochberg(p), sp.false_discovery_control(p), rtol=1e-12)
    np.testing.assert_allclose(stats.bonferroni(p), [0.05, 0.2, 0.15, 1.0, 0.025])
    assert stats.benjamini_hochberg(np.array([])).size == 0


def test_ks_on_quantile_functions_approximates_the_full_test() -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(size=50_000), rng.normal(0.05, 1, size=5_000)
    points = np.quantile(ref, (np.arange(1000) + 0.5) / 1000)
    statistic, p_value = stats.ks_asymptotic(points, cur, ref.size, cur.size)
    full = sp.ks_2samp(ref, cur)
    assert statistic == pytest.approx(full.statistic, abs=0.002)
    assert p_value == pytest.approx(full.pvalue, rel=0.5)
