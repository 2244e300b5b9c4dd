"""The HTML report: self-contained, escaped, small for 1,000 columns, and faithful to the report."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from conveyor.monitoring import WindowAccumulator, analyze, build_profile, classification_metrics
from conveyor.monitoring.report import render_html
from tests.monitoring.frames import Frame, mixed_frame

VOID = {"meta", "input", "br", "hr", "img", "link", "wbr", "col", "area", "base", "source"}
#: Every tag the report may contain; anything else (an <img> from a column name) is a bug.
ALLOWED = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "div", "b", "span"}
ALLOWED |= {"table", "thead", "tbody", "tr", "th", "td", "button", "label", "input", "ul", "li", "script"}
EVIL = "<img src=x onerror=alert(1)>"
EVIL_CATEGORY = '</script><script>alert("x")</script>&amp;'


class StrictParser(HTMLParser):
    """Fails on unbalanced tags; collects tags, attributes and each script's text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "script":
            self.scripts.append((dict(attrs), ""))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1] == "script":
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        else:
            self.text.append(data)


def parse(page: str) -> StrictParser:
    assert page.startswith("<!DOCTYPE html>")
    parser = StrictParser()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def data_of(parser: StrictParser) -> dict:
    (text,) = [t for a, t in parser.scripts if a.get("type") == "application/json"]
    return json.loads(text)


@pytest.fixture(scope="module")
def window() -> tuple:
    """A reference and a window shifted by one standard deviation (drifts as a dataset)."""
    profile = build_profile([mixed_frame(3000, seed=1)], predictions="pred")
    report = analyze(profile, [mixed_frame(2000, seed=2, shift=1.0)])
    return profile, report


def test_window_report_keeps_the_current_histograms_in_the_reference_bins(frame: Frame) -> None:
    profile = build_profile([frame(3000, seed=1)], predictions="pred")
    whole = WindowAccumulator(profile)
    parts = [WindowAccumulator(profile, partition=i) for i in range(2)]
    window = frame(2000, seed=2, shift=0.5)
    whole.update(window)
    parts[0].update(window.iloc[:700])
    parts[1].update(window.iloc[700:])
    parts[0].merge(parts[1])
    report, merged = whole.finish(), parts[0].finish()
    assert report.histograms == merged.histograms
    assert set(report.histograms) == set(profile.columns)
    for name, counts in report.histograms.items():
        assert len(counts) == profile.columns[name].bins.size
        assert sum(counts) == report.drift.column(name).n_current, name
    assert report.to_dict()["histograms"] == report.histograms
    json.dumps(report.to_dict(), allow_nan=False)


def test_report_is_valid_self_contained_html_with_the_summary(window: tuple) -> None:
    profile, report = window
    page = render_html(report, profile, title="churn v3 @champion")
    parser = parse(page)
    assert {tag for tag, _ in parser.tags} <= ALLOWED
    # Nothing loads from elsewhere: no src/href, no URL but the SVG namespace in the script.
    assert not [a for _, attrs in parser.tags for a in attrs if a in {"src", "href", "srcset", "action"}]
    assert set(re.findall(r"https?://[^\s'\"]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert "url(" not in page and "@import" not in page
    text = " ".join(parser.text)
    drift = report.drift
    assert f"{100 * drift.share_drifted:.2f}% ({drift.n_drifted} of {drift.n_tested})" in text
    verdict = re.search(r'<b><span class="(?:ok|bad)">(\w+)</span></b><span class="l">dataset drift', page)
    assert verdict.group(1) == ("yes" if drift.dataset_drift else "no")
    assert "schema violations" in text and "duplicate rows" in text
    rows = [attrs for tag, attrs in parser.tags if tag == "tr" and "data-i" in attrs]
    drift_names = [c.column for c in (*drift.features, *drift.predictions, *drift.labels)]
    assert sorted(a["data-name"] for a in rows) == sorted(drift_names)
    # Drifted columns are listed first.
    flags = [a["data-drifted"] for a in rows]
    assert flags == sorted(flags, reverse=True) and flags[0] == "1"


def test_report_carries_drift_scores_and_quality_rates(window: tuple) -> None:
    profile, report = window
    page = render_html(report, profile, title="t")
    x = report.drift.column("x")
    assert x.method == "wasserstein" and x.drifted
    row = re.search(r'<tr data-name="x" [^>]*>(.*?)</tr>', page).group(1)
    assert f"<td>{x.method}</td>" in row and f"{x.statistic:.4g}" in row and "0.1" in row
    c = report.drift.column("c")
    row = re.search(r'<tr data-name="c" [^>]*data-i[^>]*>(.*?)</tr>', page).group(1)
    assert c.method in row and f"{c.statistic:.4g}" in row
    quality = re.search(r"<h3>Data quality</h3>(.*?)</table>", page).group(1)
    assert quality.count("<tr data-name=") == len(profile.columns)


def test_histograms_are_embedded_once_as_compact_json(window: tuple) -> None:
    profile, report = window
    parser = parse(render_html(report, profile, title="t"))
    columns = data_of(parser)["columns"]
    rows = {a["data-name"]: int(a["data-i"]) for t, a in parser.tags if t == "tr" and "data-i" in a}
    for name, index in rows.items():
        entry = columns[index]
        bins = profile.columns[name].bins
        assert entry[0] == name and entry[2] == bins.kind
        assert entry[4] == bins.counts.tolist() and entry[5] == report.histograms[name]
    # No SVG is rendered up front: charts are drawn by the script when a row is expanded.
    assert "<svg" not in "".join(t for a, t in parser.scripts if a.get("type") == "application/json")
    assert not [t for t, _ in parser.tags if t in {"svg", "canvas"}]


def test_content_security_policy_allows_exactly_the_inline_script_and_style(window: tuple) -> None:
    profile, report = window
    page = render_html(report, profile, title="t")
    parser = parse(page)
    (policy,) = [a["content"] for t, a in parser.tags if t == "meta" and a.get("http-equiv")]
    (code,) = [t for a, t in parser.scripts if not a.get("type")]
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)

    def digest(text: str) -> str:
        return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert f"script-src '{digest(code)}'" in policy
    assert f"style-src '{digest(style)}'" in policy
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy


def test_hostile_column_names_and_categories_are_escaped() -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame(
        {
            EVIL: rng.normal(size=500),
            "cat": rng.choice(["a", EVIL_CATEGORY, "b"], 500),
        }
    )
    window = reference.assign(**{EVIL: reference[EVIL] + 3, "</td></tr><tr>new": 1})
    profile = build_profile([reference])
    report = analyze(profile, [window.drop(columns=["cat"])])
    page = render_html(report, profile, title=f"title {EVIL}")
    assert EVIL not in page and "<script>alert" not in page and "</td></tr><tr>new" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    parser = parse(page)
    assert {tag for tag, _ in parser.tags} <= ALLOWED
    assert not [a for _, attrs in parser.tags for a in attrs if a.startswith("on")]
    # The embedded data still gives the exact names back to the script.
    columns = data_of(parser)["columns"]
    assert {c[0] for c in columns} == {EVIL, "cat"}
    assert EVIL_CATEGORY in next(c for c in columns if c[0] == "cat")[3]
    text = " ".join(parser.text)
    assert f"title {EVIL}" in text and "</td></tr><tr>new" in text  # shown as text (schema section)


def test_performance_is_shown_when_given(window: tuple) -> None:
    profile, report = window
    y = np.array([0, 1, 1, 0, 1, 1])
    metrics = classification_metrics(
        y, np.array([0, 1, 0, 0, 1, 1]), proba=np.array([0.2, 0.9, 0.4, 0.1, 0.8, 0.7])
    )
    page = render_html(report, profile, title="t", performance=metrics)
    section = re.search(r"<h2>Performance</h2>(.*?)</table>", page).group(1)
    assert f'<td>accuracy</td><td class="n">{metrics.accuracy:.4g}</td>' in section
    assert "roc_auc" in section and "realized" in section
    assert "<h2>Performance</h2>" not in render_html(report, profile, title="t")


def test_empty_window_renders(frame: Frame) -> None:
    profile = build_profile([frame(500, seed=1)])
    report = analyze(profile, [])
    parser = parse(render_html(report, profile, title="empty"))
    assert "empty window" in " ".join(parser.text)


def test_a_report_of_1000_columns_stays_under_2_mb() -> None:
    rng = np.random.default_rng(0)
    rows = 2000
    columns = {f"numerical_feature_{i:04d}": rng.normal(size=rows) for i in range(500)}
    levels = np.array([f"category_{j:02d}" for j in range(30)])
    columns |= {f"categorical_feature_{i:04d}": levels[rng.integers(0, 30, rows)] for i in range(500)}
    reference = pd.DataFrame(columns)
    profile = build_profile([reference])
    shifted = reference.copy()
    for i in range(0, 500, 5):
        shifted[f"numerical_feature_{i:04d}"] += 1.0
    report = analyze(profile, [shifted])
    page = render_html(report, profile, title="1,000 columns")
    size = len(page.encode("utf-8"))
    print(f"report of 1,000 columns: {size:,} bytes")
    assert size < 2_000_000
    parser = parse(page)
    assert len(data_of(parser)["columns"]) == 1000
    assert sum(1 for t, a in parser.tags if t == "tr" and a.get("data-drifted") == "1") == 2 * 100
