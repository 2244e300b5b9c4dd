"""Reference profiles: one streaming pass, mergeable, exact where promised, compact JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from conveyor.errors import InvalidInput
from conveyor.monitoring import ProfileBuilder, ReferenceProfile, build_profile
from conveyor.monitoring.profile import QUANTILE_LEVELS
from tests.monitoring.frames import Frame


def chunks(df: pd.DataFrame, size: int) -> list[pa.RecordBatch]:
    return pa.Table.from_pandas(df, preserve_index=False).to_batches(max_chunksize=size)


def test_kinds_counts_and_moments(frame: Frame) -> None:
    df = frame(5000)
    df.loc[::7, "x"] = np.nan
    profile = build_profile(chunks(df, 700), predictions="pred")
    kinds = {name: (c.kind, c.role) for name, c in profile.columns.items()}
    assert kinds == {
        "x": ("numerical", "feature"),
        "y": ("numerical", "feature"),
        "k": ("numerical", "feature"),
        "c": ("categorical", "feature"),
        "b": ("boolean", "feature"),
        "t": ("datetime", "feature"),
        "pred": ("numerical", "prediction"),
    }
    x = profile.columns["x"]
    assert (x.rows, x.missing) == (5000, df["x"].isna().sum())
    assert x.mean == pytest.approx(df["x"].mean(), rel=1e-12)
    assert x.std == pytest.approx(df["x"].std(ddof=0), rel=1e-12)
    values = df["x"].dropna().to_numpy()
    np.testing.assert_array_equal(x.quantiles, np.quantile(values, QUANTILE_LEVELS, method="inverted_cdf"))
    assert x.sample_complete and x.bins.complete and x.bins.counts.sum() == values.size
    k = profile.columns["k"]
    assert k.n_unique == 4 and k.bins.kind == "levels"
    assert list(k.bins.counts) == [*df["k"].value_counts().sort_index(), 0]
    c = profile.columns["c"]
    assert dict(zip(c.bins.values, c.bins.counts, strict=False)) == df["c"].value_counts().to_dict()
    assert c.bins.counts[-1] == 0 and c.n_unique == 5
    assert profile.columns["b"].bins.values == ("false", "true")
    assert profile.columns["t"].min == pd.Timestamp(df["t"].min()).timestamp()
    assert profile.rows == 5000 and profile.duplicate_rate == pytest.approx(0.0, abs=1e-3)


def test_large_reference_uses_the_sketch_within_one_percent(frame: Frame) -> None:
    df = frame(60_000, seed=1)
    profile = build_profile(chunks(df, 10_000), sample_size=2000)
    y = profile.columns["y"]
    assert not y.sample_complete and y.sample.size == 2000 and not y.bins.complete
    ordered = np.sort(df["y"].to_numpy())
    ranks = np.searchsorted(ordered, y.quantiles[1:-1], side="right") / ordered.size
    assert np.abs(ranks - QUANTILE_LEVELS[1:-1]).max() < 0.01
    assert y.bins.counts.sum() == 60_000
    exact = np.bincount(
        np.searchsorted(np.asarray(y.bins.values), ordered, side="left"), minlength=y.bins.size
    )
    assert np.abs(y.bins.counts - exact).max() < 0.002 * 60_000


def test_merged_partitions_equal_one_pass(frame: Frame) -> None:
    df = frame(9000, seed=2)
    whole = build_profile(df)
    parts = []
    for i, part in enumerate([df.iloc[:2500], df.iloc[2500:6000], df.iloc[6000:]]):
        builder = ProfileBuilder(partition=i)
        builder.update(part)
        parts.append(builder)
    parts[0].merge(parts[1])
    parts[0].merge(parts[2])
    merged = parts[0].finish()
    for name, column in whole.columns.items():
        other = merged.columns[name]
        assert (other.rows, other.missing, other.n_unique) == (column.rows, column.missing, column.n_unique)
        np.testing.assert_array_equal(other.bins.counts, column.bins.counts)
        if column.numeric:
            assert other.mean == pytest.approx(column.mean, rel=1e-12)
            np.testing.assert_array_equal(other.quantiles, column.quantiles)


def test_json_is_stable_versioned_and_compact(frame: Frame) -> None:
    profile = build_profile(frame(3000), predictions="pred")
    text = profile.to_json()
    again = ReferenceProfile.from_json(text)
    assert again.to_json() == text
    assert json.loads(text)["version"] == 1
    assert again.columns["x"].sample is None
    with_samples = ReferenceProfile.from_json(profile.to_json(include_samples=True))
    np.testing.assert_array_equal(with_samples.columns["x"].sample, profile.columns["x"].sample)
    assert with_samples.columns["x"].sample_complete
    np.testing.assert_allclose(again.columns["x"].quantiles, profile.columns["x"].quantiles, rtol=1e-6)


def test_json_of_a_thousand_columns_stays_under_a_megabyte() -> None:
    rng = np.random.default_rng(0)
    data = {f"n{i}": rng.normal(size=2000) for i in range(500)}
    data |= {f"c{i}": rng.choice([f"category_{j}" for j in range(30)], 2000) for i in range(500)}
    text = build_profile(pd.DataFrame(data)).to_json()
    assert len(text) < 1_000_000, len(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"format": "other"}', "not a Conveyor reference profile"),
        ('{"format": "conveyor.monitoring.profile", "version": 99}', "version 99 is not supported"),
    ],
)
def test_from_json_refuses_foreign_documents(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ReferenceProfile.from_json(text)


def test_labels_text_and_kind_overrides() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    sentences = [f"customer wrote message number {i} about order {rng.integers(10**6)}" for i in range(n)]
    df = pd.DataFrame(
        {"note": sentences, "code": rng.integers(0, 3, n).astype(str), "label": rng.integers(0, 2, n)}
    )
    profile = build_profile(df, labels="label", kinds={"code": "categorical"})
    assert profile.columns["note"].kind == "text"
    assert profile.columns["note"].mean == pytest.approx(df["note"].str.len().mean())
    assert profile.columns["label"].role == "label" and profile.columns["label"].n_unique == 2
    assert profile.role("label")[0].name == "label"
    assert build_profile(df, kinds={"note": "categorical"}).columns["note"].kind == "categorical"
    with pytest.raises(InvalidInput, match="unknown column kinds"):
        build_profile(df, kinds={"code": "colour"})


def test_all_missing_late_and_mistyped_columns() -> None:
    first = pa.record_batch({"a": pa.array([1.0, 2.0, None]), "empty": pa.nulls(3)})
    second = pa.record_batch({"a": pa.array(["3.5", "oops", ""]), "late": pa.array(["x", "y", "x"])})
    profile = build_profile([first, second])
    a = profile.columns["a"]
    assert (a.rows, a.missing, a.type_errors, a.count) == (6, 3, 1, 3)
    assert a.max == 3.5
    empty = profile.columns["empty"]
    assert (empty.rows, empty.missing, empty.bins) == (6, 6, None)
    late = profile.columns["late"]
    assert (late.rows, late.missing, late.count) == (6, 3, 3)
    nan_column = build_profile(pd.DataFrame({"z": [np.nan] * 5})).columns["z"]
    assert nan_column.kind == "numerical" and nan_column.count == 0 and nan_column.mean is None


def test_builder_memory_does_not_grow_with_rows(frame: Frame) -> None:
    builder = ProfileBuilder(sample_size=1000)
    sizes = []
    for seed in range(40):
        builder.update(frame(5000, seed=seed))
        sizes.append(builder.nbytes())
    assert sizes[-1] < 1.5 * sizes[9]
    assert builder.finish().rows == 200_000


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInput, match="RecordBatches or Tables or pandas DataFrames"):
        build_profile([[1, 2, 3]])
    with pytest.raises(InvalidInput, match="sample_size"):
        build_profile(pd.DataFrame({"a": [1]}), sample_size=0)
