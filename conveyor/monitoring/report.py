"""A monitor run as one self-contained HTML file: summary, schema, performance, drift, quality.

Why it looks like this:

- **Small and fast for 1,000 columns.** Evidently's HTML reports embed raw data and grow
  with the rows (evidently#15, #47, #228). This one holds only aggregates: per column one
  table row, rendered here, and the reference's and the window's counts in the reference
  bins (a few dozen integers), embedded once as JSON. A column's histogram is drawn only
  when its row is expanded, so opening the page lays out two tables and no charts (about
  1 MB for 1,000 columns; the test bounds it at 2 MB).
- **Safe with hostile names.** Column names and categories come from user data. Every
  string is escaped here; the script reads the data with ``JSON.parse`` and writes it with
  ``textContent`` only; and the page's Content-Security-Policy allows no external resource
  and only its own inline style and script (by hash), so an injected handler would not run.
- **No external resources** (no CDN, no fonts): it opens offline and from an artifact store.

Example::

    accumulator = WindowAccumulator(profile)
    accumulator.update(batches)
    report = accumulator.finish()
    html = render_html(report, profile, title="churn v3 @champion, 2024-05-01 10:00-11:00")
    Path("report.html").write_text(html, encoding="utf-8")
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from html import escape

from conveyor.monitoring._report_assets import SCRIPT, STYLE
from conveyor.monitoring.drift import ColumnDrift, DriftReport
from conveyor.monitoring.performance import ClassificationMetrics, RegressionMetrics
from conveyor.monitoring.profile import ReferenceProfile
from conveyor.monitoring.quality import ColumnQuality, QualityReport
from conveyor.monitoring.window import WindowReport

Performance = ClassificationMetrics | RegressionMetrics
#: Names listed per schema problem; more are counted, not listed.
MAX_LISTED = 1000
_DASH = "\u2013"
_CLASSIFIER = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
_REGRESSOR = ("mae", "rmse", "r2")


def render_html(
    report: WindowReport,
    profile: ReferenceProfile,
    *,
    title: str,
    performance: Performance | Sequence[Performance] | None = None,
) -> str:
    """The report of one window as a self-contained HTML page (UTF-8 text).

    Args:
        report: the window's drift and quality (its ``histograms`` give the current bins).
        profile: the reference the window was compared with (its bins and counts).
        title: shown as the page's title and heading (escaped).
        performance: realized and/or estimated metrics of the window, if any.
    """
    data, index = _data(report, profile)
    body = "".join(
        [
            f"<h1>{escape(title)}</h1>",
            _subtitle(report),
            _summary(report),
            _schema(report.quality),
            _performance(_as_list(performance)),
            _tools(),
            _drift_table(report.drift, index),
            _quality_table(report.quality, report.drift),
            f'<script type="application/json" id="report-data">{data}</script>',
            f"<script>{SCRIPT}</script>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_policy()}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def _policy() -> str:
    """Nothing external; only this module's own inline style and script may apply."""

    def digest(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    return (
        f"default-src 'none'; style-src 'sha256-{digest(STYLE)}'; "
        f"script-src 'sha256-{digest(SCRIPT)}'; img-src data:"
    )


def _as_list(performance: Performance | Sequence[Performance] | None) -> list[Performance]:
    if performance is None:
        return []
    if isinstance(performance, ClassificationMetrics | RegressionMetrics):
        return [performance]
    return list(performance)


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return _DASH if value is None else format(value, spec)


def _pct(value: float | None) -> str:
    return _DASH if value is None else f"{100 * value:.2f}%"


def _yes_no(value: bool | None, bad: str = "yes", good: str = "no") -> str:
    if value is None:
        return _DASH
    return f'<span class="bad">{bad}</span>' if value else f'<span class="ok">{good}</span>'


def _card(value: str, label: str) -> str:
    return f'<div class="card"><b>{value}</b><span class="l">{escape(label)}</span></div>'


def _subtitle(report: WindowReport) -> str:
    notes = ["empty window: nothing to compare"] if report.empty else []
    notes += report.drift.notes
    text = "; ".join(notes) or f"{report.rows:,} rows compared with the reference profile"
    return f'<p class="sub">{escape(text)}</p>'


def _summary(report: WindowReport) -> str:
    drift, quality = report.drift, report.quality
    violations = len(quality.missing_columns) + len(quality.new_columns)
    violations += len(quality.partially_missing_columns)
    share = f"{_pct(drift.share_drifted)} ({drift.n_drifted} of {drift.n_tested})"
    schema = '<span class="ok">OK</span>' if quality.schema_ok else f'<span class="bad">{violations}</span>'
    duplicates = f"{_pct(quality.duplicate_rate)} (reference {_pct(quality.reference_duplicate_rate)})"
    cards = [
        _card(f"{report.rows:,}", "rows in the window"),
        _card(share, "features drifted" + (", weighted" if drift.weighted else "")),
        _card(_yes_no(drift.dataset_drift), f"dataset drift (share \u2265 {drift.drift_share:g})"),
        _card(schema, "schema violations"),
        _card(duplicates, "duplicate rows"),
        _card(escape(drift.correction or "none"), "p-value correction"),
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


def _names(label: str, names: Sequence[str]) -> str:
    listed = [f"<li>{escape(n)}</li>" for n in names[:MAX_LISTED]]
    more = f"<p>and {len(names) - len(listed)} more</p>" if len(names) > len(listed) else ""
    return f'<h3>{escape(label)} ({len(names)})</h3><ul class="names">{"".join(listed)}</ul>{more}'


def _schema(quality: QualityReport) -> str:
    if quality.schema_ok:
        return ""
    partial = quality.partially_missing_columns
    lists = [
        ("Reference columns missing from the window", quality.missing_columns),
        (
            "Columns missing from some chunks",
            [f"{n} ({rows:,} rows without it)" for n, rows in partial.items()],
        ),
        ("New columns", quality.new_columns),
    ]
    return "<h2>Schema</h2>" + "".join(_names(label, names) for label, names in lists if names)


def _performance(items: list[Performance]) -> str:
    if not items:
        return ""
    rows = "".join(_performance_row(item) for item in items)
    head = "<tr><th>kind</th><th>metric</th><th>value</th><th>rows</th><th>note</th></tr>"
    return f"<h2>Performance</h2><table><thead>{head}</thead><tbody>{rows}</tbody></table>"


def _performance_row(item: Performance) -> str:
    estimated = getattr(item, "estimated", False)
    kind = "estimated (CBPE)" if estimated else "realized"
    names = _CLASSIFIER if isinstance(item, ClassificationMetrics) else _REGRESSOR
    out = []
    for name in names:
        note = item.reasons.get(name, "")
        out.append(
            f'<tr><td>{kind}</td><td>{name}</td><td class="n">{_fmt(getattr(item, name))}</td>'
            f'<td class="n">{item.n:,}</td><td>{escape(note)}</td></tr>'
        )
    return "".join(out)


def _tools() -> str:
    return (
        '<h2>Columns</h2><div class="tools"><label>Filter <input id="filter" type="search" '
        'placeholder="column name"></label><label><input id="only-drifted" type="checkbox"> '
        "drifted only</label><span>\u25b8 shows a column's histogram</span></div>"
    )


def _drift_order(drift: DriftReport) -> list[ColumnDrift]:
    """Drifted columns first, then the rest, each in the reference's order."""
    items = [*drift.features, *drift.predictions, *drift.labels]
    return sorted(items, key=lambda c: not c.drifted)


def _drift_table(drift: DriftReport, index: dict[str, int]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("", "column", "role", "kind", "method", "statistic", "p-value", "adjusted p",
                  "threshold", "drifted", "reference n", "current n", "note")
    )  # fmt: skip
    rows = "".join(_drift_row(c, index.get(c.column)) for c in _drift_order(drift))
    return f'<h3>Drift</h3><table><thead><tr>{head}</tr></thead><tbody id="drift-body">{rows}</tbody></table>'


def _drift_row(c: ColumnDrift, chart: int | None) -> str:
    """One column's drift; ``chart`` is its index in the embedded histograms, if it has one."""
    name = escape(c.column)
    threshold = _fmt(c.threshold, ".3g") + (" (calibrated)" if c.calibrated else "")
    note = c.reason or ("" if c.exact else "approximate: sampled or sketched")
    button = (
        ""
        if chart is None
        else f'<button class="x" aria-expanded="false" aria-label="histogram of {name}">\u25b8</button>'
    )
    numbers = [
        _fmt(c.statistic),
        _fmt(c.p_value, ".3g"),
        _fmt(c.adjusted_p_value, ".3g"),
        threshold,
    ]
    cells = [
        f"<td>{button}</td><td>{name}</td><td>{c.role}</td><td>{c.kind}</td>",
        f"<td>{escape(c.method or _DASH)}</td>",
        *(f'<td class="n">{n}</td>' for n in numbers),
        f"<td>{_yes_no(c.drifted)}</td>",
        f'<td class="n">{c.n_reference:,}</td><td class="n">{c.n_current:,}</td>',
        f"<td>{escape(note)}</td>",
    ]
    attrs = f' data-name="{name}" data-drifted="{int(bool(c.drifted))}"'
    if chart is not None:
        attrs += f' data-i="{chart}"'
    if c.drifted:
        attrs += ' class="drifted"'
    return f"<tr{attrs}>{''.join(cells)}</tr>"


def _quality_table(quality: QualityReport, drift: DriftReport) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("column", "kind", "rows", "missing", "change vs reference", "type errors",
                  "out of range", "unseen", "flags")
    )  # fmt: skip
    drifted = {c.column for c in (*drift.features, *drift.predictions, *drift.labels) if c.drifted}
    rows = "".join(_quality_row(c, c.column in drifted) for c in quality.columns)
    return f"<h3>Data quality</h3><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _quality_row(c: ColumnQuality, drifted: bool) -> str:
    flags = [
        label
        for label, on in (
            ("all missing", c.all_missing),
            ("constant", c.constant),
            ("constant in reference", c.reference_constant),
        )
        if on
    ]
    change = _DASH if c.missing_rate_change is None else f"{100 * c.missing_rate_change:+.2f} pp"
    name = escape(c.column)
    cells = [
        f"<td>{name}</td><td>{c.kind}</td>",
        f'<td class="n">{c.rows:,}</td>',
        f'<td class="n">{_pct(c.missing_rate)}</td>',
        f'<td class="n">{change}</td>',
        f'<td class="n">{_pct(c.type_error_rate)}</td>',
        f'<td class="n">{_pct(c.out_of_range_rate)}</td>',
        f'<td class="n">{_pct(c.unseen_rate)}</td>',
        f"<td>{escape(', '.join(flags))}</td>",
    ]
    return f'<tr data-name="{name}" data-drifted="{int(drifted)}">{"".join(cells)}</tr>'


def _data(report: WindowReport, profile: ReferenceProfile) -> tuple[str, dict[str, int]]:
    """The histograms as JSON, and each charted column's index in them.

    Per column ``[name, kind, bin kind, bin values, reference counts, current counts]``.
    Embedded as ``application/json`` (never executed) with ``<``, ``>`` and ``&`` written
    as JSON escapes, so no column name can close the script element.
    """
    columns: list[list] = []
    index: dict[str, int] = {}
    for name, column in profile.columns.items():
        current = report.histograms.get(name)
        bins = column.bins
        if bins is None or current is None or len(current) != bins.size:
            continue
        values = [_round(v) for v in bins.values] if bins.kind != "categories" else list(bins.values)
        index[name] = len(columns)
        columns.append([name, column.kind, bins.kind, values, [int(x) for x in bins.counts], current])
    text = json.dumps({"columns": columns}, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"), index


def _round(value: float) -> float:
    """Bin edges to 6 significant digits: labels show 4, and the JSON stays short."""
    return float(f"{float(value):.6g}")
