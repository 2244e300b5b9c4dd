"""The window accumulator: chunk by chunk, mergeable across partitions, bounded memory."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from conveyor.errors import InvalidInput
from conveyor.monitoring import WindowAccumulator, analyze, build_profile
from tests.monitoring.frames import Frame


def test_merged_partitions_give_the_one_pass_report(frame: Frame) -> None:
    profile = build_profile(frame(5000, seed=1), sample_size=2000)
    window = frame(12_000, seed=2, shift=0.2)
    batches = pa.Table.from_pandas(window).to_batches(max_chunksize=1000)
    whole = WindowAccumulator(profile)
    for batch in batches:
        whole.update(batch)
    parts = [WindowAccumulator(profile, partition=i) for i in range(3)]
    for i, batch in enumerate(batches):
        parts[i % 3].update(batch)
    parts[0].merge(parts[1])
    parts[0].merge(parts[2])
    one, merged = whole.finish().to_dict(), parts[0].finish().to_dict()
    assert merged["rows"] == one["rows"] == 12_000
    for a, b in zip(one["drift"]["features"], merged["drift"]["features"], strict=True):
        if a["method"] in ("jensenshannon", "psi", "chisquare"):
            assert a["statistic"] == pytest.approx(b["statistic"], rel=1e-12)
        else:  # KS and Wasserstein: from the quantile sketches, merged or not
            assert a["statistic"] == pytest.approx(b["statistic"], abs=0.005)
    for a, b in zip(one["quality"]["columns"], merged["quality"]["columns"], strict=True):
        assert {k: v for k, v in a.items() if k != "unseen_top"} == {
            k: v for k, v in b.items() if k != "unseen_top"
        }
    assert merged["quality"]["duplicate_rate"] == pytest.approx(one["quality"]["duplicate_rate"], abs=1e-9)


def test_retained_memory_stays_bounded(frame: Frame) -> None:
    profile = build_profile(frame(3000), sample_size=1000)
    acc = WindowAccumulator(profile)
    sizes = []
    for seed in range(60):
        acc.update(frame(4000, seed=seed))
        sizes.append(acc.nbytes())
    assert acc.rows == 240_000
    assert sizes[-1] < 1.3 * sizes[5]
    assert sizes[-1] < 6 * 2**20  # 4 MiB duplicate bitmap + sketches and samples of 7 columns


def test_report_is_json_safe_and_merge_checks_the_profile(frame: Frame) -> None:
    profile = build_profile(frame(2000))
    report = analyze(profile, frame(500, seed=3))
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert '"drift"' in text and '"quality"' in text
    other = build_profile(frame(2000).drop(columns=["x"]))
    with pytest.raises(InvalidInput, match="same reference profile"):
        WindowAccumulator(profile).merge(WindowAccumulator(other))
