"""Data quality of a window against the reference."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conveyor.errors import InvalidInput
from conveyor.monitoring import WindowAccumulator, analyze, build_profile


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 1000
    x = rng.uniform(0, 10, n)
    x[:50] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "city": rng.choice(["paris", "rome", "oslo"], n),
            "flag": rng.random(n) < 0.5,
            "when": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="h"),
        }
    )


def test_missing_type_errors_range_and_unseen(reference: pd.DataFrame) -> None:
    profile = build_profile(reference)
    window = pd.DataFrame(
        {
            "x": ["1.5", "oops", None, "12.0", "-3", "5", "", "7"],
            "city": ["paris", "lima", "lima", "rome", None, "oslo", "paris", "quito"],
            "flag": ["true", "no", "maybe", "1", None, "false", "0", "t"],
            "when": [
                "2024-01-02",
                "not a date",
                None,
                "2030-01-01",
                "2024-01-03",
                "2024-01-04",
                "2024-01-05",
                "",
            ],
        }
    )
    quality = analyze(profile, window).quality
    x = quality.column("x")
    assert (x.rows, x.type_errors, x.missing) == (8, 1, 2)
    assert x.missing_rate == pytest.approx(2 / 8)
    assert x.reference_missing_rate == pytest.approx(0.05)
    assert x.missing_rate_change == pytest.approx(0.25 - 0.05)
    assert (x.below_range, x.above_range) == (1, 1) and x.out_of_range_rate == pytest.approx(2 / 5)
    city = quality.column("city")
    assert city.unseen == 3 and city.unseen_top == [("lima", 2), ("quito", 1)]
    assert city.unseen_rate == pytest.approx(3 / 7) and city.below_range is None
    flag = quality.column("flag")
    assert (flag.type_errors, flag.missing) == (1, 1)
    when = quality.column("when")
    assert (when.type_errors, when.missing, when.above_range) == (1, 2, 1)
    json.dumps(quality.to_dict(), allow_nan=False)


def test_range_tolerance_widens_the_reference_range(reference: pd.DataFrame) -> None:
    profile = build_profile(reference)
    low, high = profile.columns["x"].min, profile.columns["x"].max
    window = pd.DataFrame({"x": [low - 0.05 * (high - low), high + 0.2 * (high - low)]})
    assert analyze(profile, window).quality.column("x").above_range == 1
    tolerant = analyze(profile, window, range_tolerance=0.1).quality.column("x")
    assert (tolerant.below_range, tolerant.above_range) == (0, 1)
    with pytest.raises(InvalidInput, match="range_tolerance"):
        WindowAccumulator(profile, range_tolerance=-1)


def test_schema_violations(reference: pd.DataFrame) -> None:
    profile = build_profile(reference)
    acc = WindowAccumulator(profile)
    acc.update(reference.iloc[:100].drop(columns=["city"]).assign(extra=1))
    acc.update(reference.iloc[100:150].drop(columns=["city", "flag"]))
    quality = acc.finish().quality
    assert quality.missing_columns == ["city"]
    assert quality.partially_missing_columns == {"flag": 50}
    assert quality.new_columns == ["extra"] and not quality.schema_ok
    assert quality.column("flag").absent_rows == 50
    assert analyze(profile, reference.iloc[:10]).quality.schema_ok


def test_duplicates_all_missing_and_constant_columns(reference: pd.DataFrame) -> None:
    profile = build_profile(reference)
    window = pd.concat([reference.iloc[:400], reference.iloc[:100]], ignore_index=True).assign(
        x=np.nan, city="oslo"
    )
    quality = analyze(profile, window).quality
    assert quality.duplicate_rate == pytest.approx(window.duplicated().mean(), abs=0.002)
    assert quality.duplicate_rate >= 100 / 500
    assert quality.reference_duplicate_rate == pytest.approx(0.0, abs=0.002)
    assert quality.all_missing_columns == ["x"]
    assert quality.constant_columns == ["city"]
    assert not quality.column("x").constant


def test_empty_window_reports_empty(reference: pd.DataFrame) -> None:
    report = analyze(build_profile(reference), pa.Table.from_pandas(reference.iloc[:0]))
    assert report.empty and report.quality.empty and report.quality.duplicate_rate is None
    assert report.quality.missing_columns == []
    assert report.quality.column("x").missing_rate is None
    json.dumps(report.to_dict(), allow_nan=False)


def test_unseen_categories_need_a_complete_reference() -> None:
    rng = np.random.default_rng(0)
    profile = build_profile(pd.DataFrame({"id": rng.integers(0, 500, 2000).astype(str)}), top_k=10)
    assert not profile.columns["id"].bins.complete
    assert analyze(profile, pd.DataFrame({"id": ["new"]})).quality.column("id").unseen is None
