"""Data quality of a window, compared with the reference.

Per column: missing rate and its change, type errors (values that do not cast to the
reference's type), values outside the reference's range, categories the reference never
had, and whether the column is all missing or constant. Per window: schema violations
(reference columns absent, unexpected columns present) and the duplicate-row rate.

The duplicate rate is estimated from 64-bit row hashes with a linear-counting bitmap
(:class:`~conveyor.monitoring.sketch.DistinctCounter`): its standard error is about
0.04 % (absolute) up to 1 M rows per window, 0.06 % at 10 M, 0.6 % at 40 M. Unseen
categories are reported only when the reference kept all of its categories (at most
``top_k``); otherwise None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.monitoring._json import json_safe
from conveyor.monitoring._summary import ColumnSummary
from conveyor.monitoring.profile import ColumnProfile, ReferenceProfile


@dataclass(frozen=True)
class ColumnQuality:
    """Quality of one column in a window; rates are over the rows that had the column.

    ``missing`` excludes type errors, which are counted on their own. Range counts are
    None for categorical and boolean columns, unseen counts None for the others.
    """

    column: str
    kind: str
    role: str
    rows: int
    absent_rows: int
    missing: int
    missing_rate: float | None
    reference_missing_rate: float | None
    missing_rate_change: float | None
    type_errors: int
    type_error_rate: float | None
    below_range: int | None
    above_range: int | None
    out_of_range_rate: float | None
    unseen: int | None
    unseen_rate: float | None
    unseen_top: list[tuple[str, int]]
    all_missing: bool
    constant: bool
    reference_constant: bool


@dataclass(frozen=True)
class QualityReport:
    """Quality of one window: per column, schema violations, duplicates."""

    rows: int
    empty: bool
    columns: list[ColumnQuality]
    missing_columns: list[str]
    partially_missing_columns: dict[str, int]
    new_columns: list[str]
    duplicate_rate: float | None
    reference_duplicate_rate: float | None
    all_missing_columns: list[str]
    constant_columns: list[str]

    @property
    def schema_ok(self) -> bool:
        """No reference column absent and no unexpected column."""
        return not (self.missing_columns or self.partially_missing_columns or self.new_columns)

    def column(self, name: str) -> ColumnQuality:
        """The quality of one column."""
        for item in self.columns:
            if item.column == name:
                return item
        raise InvalidInput(f"no column {name!r} in this quality report")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (no NaN); ``schema_ok`` included."""
        return {**json_safe(self), "schema_ok": self.schema_ok}


def _rate(count: int | None, rows: int) -> float | None:
    return None if count is None or rows == 0 else count / rows


def _column_quality(reference: ColumnProfile, window: ColumnSummary, rows: int) -> ColumnQuality:
    present = window.present_rows
    missing = window.missing - window.type_errors
    reference_missing = (
        (reference.missing - reference.type_errors) / reference.rows if reference.rows else None
    )
    missing_rate = _rate(missing, present)
    in_range = reference.numeric
    out_of_range = window.below_range + window.above_range if in_range else None
    constant = window.values > 0 and window.min == window.max if in_range else window.distinct == 1
    return ColumnQuality(
        column=reference.name,
        kind=reference.kind,
        role=reference.role,
        rows=present,
        absent_rows=rows - present,
        missing=missing,
        missing_rate=missing_rate,
        reference_missing_rate=reference_missing,
        missing_rate_change=None
        if missing_rate is None or reference_missing is None
        else missing_rate - reference_missing,
        type_errors=window.type_errors,
        type_error_rate=_rate(window.type_errors, present),
        below_range=window.below_range if in_range else None,
        above_range=window.above_range if in_range else None,
        out_of_range_rate=_rate(out_of_range, window.values),
        unseen=None if in_range else window.unseen,
        unseen_rate=None if in_range else _rate(window.unseen, window.values),
        unseen_top=[] if in_range else window.unseen_top,
        all_missing=present > 0 and window.values == 0,
        constant=bool(constant),
        reference_constant=reference.count > 0 and reference.constant,
    )


def compute_quality(
    profile: ReferenceProfile,
    summaries: Mapping[str, ColumnSummary],
    *,
    rows: int,
    duplicate_rate: float | None,
    new_columns: Mapping[str, int],
) -> QualityReport:
    """Quality report of a window summarized by ``summaries`` (see :class:`WindowAccumulator`)."""
    columns = [_column_quality(ref, summaries[name], rows) for name, ref in profile.columns.items()]
    return QualityReport(
        rows=rows,
        empty=rows == 0,
        columns=columns,
        missing_columns=[c.column for c in columns if rows and c.rows == 0],
        partially_missing_columns={c.column: c.absent_rows for c in columns if c.rows and c.absent_rows},
        new_columns=sorted(new_columns),
        duplicate_rate=duplicate_rate,
        reference_duplicate_rate=profile.duplicate_rate,
        all_missing_columns=[c.column for c in columns if c.all_missing],
        constant_columns=[c.column for c in columns if c.constant],
    )
