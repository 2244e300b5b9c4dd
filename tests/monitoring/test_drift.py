"""Drift: values equal scipy's, size-aware defaults, corrections, calibration, bad windows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as sp
from scipy.spatial.distance import jensenshannon

from conveyor.errors import InvalidInput
from conveyor.monitoring import ReferenceProfile, WindowAccumulator, analyze, build_profile, calibrate
from conveyor.monitoring.stats import PSI_EPSILON
from tests.monitoring.frames import Frame, mixed_frame


@pytest.fixture(scope="module")
def small() -> tuple[pd.DataFrame, pd.DataFrame, ReferenceProfile]:
    ref, cur = mixed_frame(800, seed=1), mixed_frame(600, seed=2, shift=0.3)
    return ref, cur, build_profile(ref, predictions="pred")


def counts(values: pd.Series, categories: list[str]) -> np.ndarray:
    found = values.value_counts()
    return np.array([found.get(c, 0) for c in categories] + [0])


def test_sample_statistics_equal_scipy_on_the_raw_data(small) -> None:
    ref, cur, profile = small
    report = analyze(profile, cur, methods={"y": "wasserstein"}).drift
    x = report.column("x")
    expected = sp.ks_2samp(ref["x"], cur["x"])
    assert (x.method, x.exact) == ("ks", True)
    assert x.statistic == pytest.approx(expected.statistic, abs=1e-15)
    assert x.p_value == pytest.approx(expected.pvalue, rel=1e-12)
    y = report.column("y")
    assert y.statistic == pytest.approx(
        sp.wasserstein_distance(ref["y"], cur["y"]) / ref["y"].std(ddof=0), rel=1e-12
    )


def test_binned_statistics_equal_scipy_on_the_raw_data(small) -> None:
    ref, cur, profile = small
    categories = list(profile.columns["c"].bins.values)
    r, c = counts(ref["c"], categories), counts(cur["c"], categories)
    chi = analyze(profile, cur).drift.column("c")
    expected = sp.chi2_contingency(np.vstack([r, c])[:, :-1], correction=False)
    assert chi.method == "chisquare"
    assert (chi.statistic, chi.p_value) == (
        pytest.approx(expected.statistic),
        pytest.approx(expected.pvalue, rel=1e-10),
    )
    js = analyze(profile, cur, methods={"c": "jensenshannon"}).drift.column("c")
    assert js.statistic == pytest.approx(jensenshannon(r / r.sum(), c / c.sum()), rel=1e-12)
    psi = analyze(profile, cur, methods={"c": "psi"}).drift.column("c")
    rp, cp = np.maximum(r / r.sum(), PSI_EPSILON), np.maximum(c / c.sum(), PSI_EPSILON)
    assert psi.statistic == pytest.approx(np.sum((cp - rp) * np.log(cp / rp)), rel=1e-12)
    # Numbers: the window is counted into the reference's quantile bins.
    edges = np.asarray(profile.columns["y"].bins.values)
    ry = np.bincount(np.searchsorted(edges, ref["y"], side="left"), minlength=edges.size + 1)
    cy = np.bincount(np.searchsorted(edges, cur["y"], side="left"), minlength=edges.size + 1)
    js_y = analyze(profile, cur, methods={"y": "jensenshannon"}).drift.column("y")
    assert js_y.statistic == pytest.approx(jensenshannon(ry / ry.sum(), cy / cy.sum()), rel=1e-12)


def test_size_aware_default_methods(frame: Frame, small) -> None:
    _, cur, profile = small
    report = analyze(profile, cur).drift
    assert {c.column: c.method for c in report.features} == {
        "x": "ks",
        "y": "ks",
        "k": "chisquare",
        "c": "chisquare",
        "b": "chisquare",
        "t": "ks",
    }
    large = build_profile(frame(3000, seed=4), predictions="pred")
    report = analyze(large, frame(500, seed=5)).drift
    assert {c.column: c.method for c in report.features} == {
        "x": "wasserstein",
        "y": "wasserstein",
        "k": "jensenshannon",
        "c": "jensenshannon",
        "b": "jensenshannon",
        "t": "wasserstein",
    }
    assert [c.column for c in report.predictions] == ["pred"]


def test_p_values_are_corrected_across_features(small) -> None:
    _, cur, profile = small
    bh = analyze(profile, cur).drift
    raw = np.array([c.p_value for c in bh.features])
    np.testing.assert_allclose([c.adjusted_p_value for c in bh.features], sp.false_discovery_control(raw))
    assert all(c.drifted == (c.adjusted_p_value <= 0.05) for c in bh.features)
    bonferroni = analyze(profile, cur, correction="bonferroni").drift
    np.testing.assert_allclose(
        [c.adjusted_p_value for c in bonferroni.features], np.minimum(raw * raw.size, 1)
    )
    none = analyze(profile, cur, correction=None).drift
    assert [c.adjusted_p_value for c in none.features] == list(raw)
    with pytest.raises(InvalidInput, match="correction"):
        analyze(profile, cur, correction="holm")


def test_planted_drift_is_found_and_shared(frame: Frame) -> None:
    profile = build_profile(frame(20_000, seed=1))
    same = analyze(profile, frame(5000, seed=2)).drift
    assert same.drifted_columns() == [] and same.dataset_drift is False
    shifted = analyze(profile, frame(5000, seed=3, shift=1.0)).drift
    assert set(shifted.drifted_columns()) == {"x", "c"}
    assert shifted.share_drifted == pytest.approx(2 / 7)
    weighted = analyze(
        profile, frame(5000, seed=3, shift=1.0), feature_importance={"x": 3, "c": 1, "y": 1}
    ).drift
    assert weighted.weighted and weighted.share_drifted == pytest.approx(4 / 5) and weighted.dataset_drift


def test_streamed_window_keeps_binned_stats_exact(frame: Frame) -> None:
    profile = build_profile(frame(5000, seed=1), sample_size=1000)
    window = frame(20_000, seed=2)
    acc = WindowAccumulator(profile)
    for batch in pa.Table.from_pandas(window).to_batches(max_chunksize=1500):
        acc.update(batch)
    streamed = acc.finish(methods={"y": "psi", "x": "ks"}).drift
    one_shot = analyze(profile, window, methods={"y": "psi", "x": "ks"}).drift
    assert streamed.column("y").statistic == pytest.approx(one_shot.column("y").statistic, rel=1e-12)
    assert streamed.column("c").statistic == pytest.approx(one_shot.column("c").statistic, rel=1e-12)
    assert not streamed.column("x").exact  # KS on the quantile functions of both sides
    exact = sp.ks_2samp(frame(5000, seed=1)["x"], window["x"]).statistic
    assert streamed.column("x").statistic == pytest.approx(exact, abs=0.005)


def test_large_sides_use_quantile_functions_within_half_a_percent(frame: Frame) -> None:
    ref, cur = frame(20_000, seed=1), frame(30_000, seed=2, shift=0.2)
    exact_ks = sp.ks_2samp(ref["x"], cur["x"]).statistic
    exact_w = sp.wasserstein_distance(ref["y"], cur["y"]) / ref["y"].std(ddof=0)
    profile = build_profile(ref)  # 20,000 values > the sample of 10,000
    compact = ReferenceProfile.from_json(profile.to_json())  # no sample at all
    for reference in (profile, compact):
        report = analyze(reference, cur, methods={"x": "ks", "y": "wasserstein"}).drift
        x, y = report.column("x"), report.column("y")
        assert not x.exact and not y.exact
        assert x.statistic == pytest.approx(exact_ks, abs=0.005)
        assert y.statistic == pytest.approx(exact_w, abs=0.005)
        assert x.p_value < 1e-10


def test_missing_new_empty_and_all_nan_columns(small) -> None:
    _, cur, profile = small
    window = cur.drop(columns=["c"]).assign(surprise=1.0, x=np.nan)
    report = analyze(profile, window).drift
    assert (
        report.column("c").reason == "column missing from the window" and report.column("c").drifted is None
    )
    assert report.column("x").reason == "no values in the window (all missing)"
    assert report.column("y").drifted is not None and report.n_tested == 4
    empty = analyze(profile, cur.iloc[:0]).drift
    assert empty.empty and empty.rows == 0 and empty.share_drifted is None and empty.dataset_drift is None
    assert {c.reason for c in empty.features} == {"empty window"}
    json.dumps(empty.to_dict(), allow_nan=False)
    nothing = analyze(profile, []).drift
    assert nothing.empty


def test_constant_columns_are_well_defined() -> None:
    ref = pd.DataFrame({"flat": np.full(500, 3.0), "x": np.arange(500.0), "one": ["a"] * 500})
    profile = build_profile(ref)
    same = analyze(profile, ref.iloc[:200], methods={"flat": "wasserstein"}).drift
    assert same.column("flat").statistic == 0.0 and same.column("flat").drifted is False
    assert same.column("one").p_value == 1.0
    moved = pd.DataFrame({"flat": np.full(200, 4.0), "x": np.full(200, 7.0), "one": ["b"] * 200})
    report = analyze(profile, moved).drift
    assert report.column("flat").drifted and report.column("x").drifted and report.column("one").drifted
    json.dumps(report.to_dict(), allow_nan=False)


def test_bad_methods_are_refused(small) -> None:
    _, cur, profile = small
    with pytest.raises(InvalidInput, match="ks needs numbers but 'c' is categorical"):
        analyze(profile, cur, methods={"c": "ks"})
    with pytest.raises(InvalidInput, match="unknown drift method 'energy'"):
        analyze(profile, cur, methods={"x": "energy"})
    with pytest.raises(InvalidInput, match="not in the reference"):
        analyze(profile, cur, thresholds={"nope": 0.1})


def test_calibrated_thresholds_silence_same_distribution_data(frame: Frame) -> None:
    profile = build_profile(frame(20_000, seed=0), predictions="pred")
    calibrated = calibrate(profile, [frame(1000, seed=100 + i) for i in range(30)])
    assert {t.method for t in calibrated.calibration.values()} == {"wasserstein", "jensenshannon"}
    assert ReferenceProfile.from_json(calibrated.to_json()).calibration == calibrated.calibration
    alarms = tested = 0
    for seed in range(200, 240):
        report = analyze(calibrated, frame(1000, seed=seed)).drift
        assert report.dataset_drift is False
        assert all(c.calibrated for c in report.features)
        alarms += len(report.drifted_columns())
        tested += report.n_tested
    assert alarms / tested <= 0.02
    shifted = analyze(calibrated, frame(1000, seed=300, shift=0.5)).drift
    assert {"x", "c"} <= set(shifted.drifted_columns())


def test_calibration_refuses_p_value_methods_and_few_chunks(frame: Frame) -> None:
    profile = build_profile(frame(2000))
    with pytest.raises(InvalidInput, match="only distance methods"):
        calibrate(profile, [frame(100, seed=i) for i in range(6)], methods={"x": "ks"})
    with pytest.raises(InvalidInput, match="at least 5 reference chunks"):
        calibrate(profile, [frame(100, seed=i) for i in range(3)])
