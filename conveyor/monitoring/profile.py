"""Reference profiles: what a model's training or validation data looked like, in a few KB.

A profile is built in one streaming pass (:func:`~conveyor.monitoring.build_profile`, or
:class:`~conveyor.monitoring.ProfileBuilder` for partitions merged later) and holds, per
column: its kind and role, row, missing and type-error counts, moments, a quantile grid,
histogram bins with the reference's counts, the frequent categories and a bounded
uniform sample. Later windows are compared against
it without the reference data: binned statistics (PSI, Jensen-Shannon, chi-square) count
the window into the profile's bins, and sample statistics (Kolmogorov-Smirnov,
Wasserstein) use the profile's sample.

Bins are chosen once, from the reference: numerical columns with at most ``bins`` distinct
values get one bin per value (plus "other"), the rest ``bins`` right-closed bins between
reference quantiles (the outer two are open-ended); categorical columns one bin per kept
category plus "other". Fixing bins on the reference is what lets a window of any size be
counted chunk by chunk in constant memory.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from conveyor.errors import InvalidInput
from conveyor.monitoring import _columns as cols
from conveyor.monitoring._json import json_safe

FORMAT = "conveyor.monitoring.profile"
VERSION = 1
#: Probability levels of the stored quantile grid: every percentile, plus four in the tails,
#: where the quantile function of skewed data moves fastest (the grid stands in for the
#: reference when its sample is not stored).
QUANTILE_LEVELS = np.unique(np.concatenate([np.linspace(0.0, 1.0, 101), [0.001, 0.005, 0.995, 0.999]]))
ROLES = ("feature", "prediction", "label")


@dataclass(frozen=True)
class Bins:
    """The reference's histogram of one column, and how a window is counted into it.

    ``kind`` is ``"edges"`` (right-closed bins between the interior ``edges``, outer bins
    open-ended), ``"levels"`` (one bin per numeric value in ``values``, then "other") or
    ``"categories"`` (one bin per string in ``values``, then "other"). ``counts`` holds the
    reference's count per bin. ``complete`` is False when those counts are estimates: the
    reference had more categories than were kept (so "other" holds some of them), or the
    edge counts come from the quantile sketch rather than from every value.
    """

    kind: str
    values: tuple
    counts: np.ndarray
    complete: bool = True

    @property
    def size(self) -> int:
        return len(self.counts)

    def count_sorted(self, values: np.ndarray) -> np.ndarray:
        """Counts per bin of finite numbers given in ascending order (binary searches only)."""
        points = np.asarray(self.values, dtype=float)
        if self.kind == "edges":
            at_most = np.searchsorted(values, points, side="right")
            return np.diff(np.concatenate([[0], at_most, [values.size]]))
        equal = np.searchsorted(values, points, side="right") - np.searchsorted(values, points, side="left")
        return np.append(equal, values.size - equal.sum())


@dataclass(frozen=True)
class ColumnProfile:
    """Everything the reference says about one column.

    Numerical fields describe numbers for ``numerical`` columns, seconds since the epoch
    for ``datetime`` ones and lengths in characters for ``text`` ones; they are None for
    ``categorical`` and ``boolean`` columns. ``std`` is the population standard deviation.
    ``sample`` is a uniform sample of the values (None after a JSON round trip without
    samples); ``sample_complete`` says it held every value.
    """

    name: str
    kind: str
    role: str
    rows: int
    missing: int
    type_errors: int = 0
    n_unique: int | None = None
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: np.ndarray | None = None
    bins: Bins | None = None
    sample: np.ndarray | None = None
    sample_complete: bool = False

    @property
    def count(self) -> int:
        """Non-missing values."""
        return self.rows - self.missing

    @property
    def missing_rate(self) -> float | None:
        return self.missing / self.rows if self.rows else None

    @property
    def numeric(self) -> bool:
        return self.kind in cols.NUMERIC_KINDS

    @property
    def constant(self) -> bool:
        """True when every present value is the same (or there is none)."""
        if self.numeric:
            return self.std is None or self.std == 0.0
        return self.n_unique is not None and self.n_unique <= 1


@dataclass(frozen=True)
class Threshold:
    """A per-column drift threshold set by :func:`conveyor.monitoring.calibrate`."""

    method: str
    threshold: float
    chunks: int
    rule: str


@dataclass(frozen=True)
class ReferenceProfile:
    """The reference of a model version: per-column profiles plus how they were built."""

    columns: dict[str, ColumnProfile]
    rows: int
    duplicate_rate: float | None
    sample_size: int
    bins: int
    top_k: int
    seed: int
    calibration: dict[str, Threshold] = field(default_factory=dict)

    def role(self, role: str) -> list[ColumnProfile]:
        """The columns of one role (``feature``, ``prediction`` or ``label``), in order."""
        return [c for c in self.columns.values() if c.role == role]

    def with_calibration(self, calibration: Mapping[str, Threshold]) -> ReferenceProfile:
        """A copy with these calibrated thresholds (added to or replacing existing ones)."""
        return replace(self, calibration={**self.calibration, **calibration})

    def to_json(self, *, include_samples: bool = False) -> str:
        """Stable, versioned JSON (sorted keys, no NaN).

        Float arrays are base64 little-endian (quantiles as float32, ~7 significant digits,
        far below the sketch's rank error; samples as float64), which keeps a profile of
        1,000 columns under a megabyte. Samples are left out unless asked for: without
        them, Kolmogorov-Smirnov and Wasserstein fall back to the quantile grid.
        """
        document = {
            "format": FORMAT,
            "version": VERSION,
            "rows": self.rows,
            "duplicate_rate": self.duplicate_rate,
            "settings": {
                "sample_size": self.sample_size,
                "bins": self.bins,
                "top_k": self.top_k,
                "seed": self.seed,
            },
            "columns": [_column_to_json(c, include_samples) for c in self.columns.values()],
            "calibration": {name: json_safe(t) for name, t in self.calibration.items()},
        }
        return json.dumps(json_safe(document), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        """Read :meth:`to_json`'s output; a newer or foreign document is refused.

        Raises:
            InvalidInput: not a Conveyor profile, or a version this code does not read.
        """
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"profile is not valid JSON: {exc}") from exc
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise InvalidInput(f"not a Conveyor reference profile (expected format {FORMAT!r})")
        if document.get("version") != VERSION:
            raise InvalidInput(
                f"profile version {document.get('version')!r} is not supported; "
                f"this Conveyor reads version {VERSION}"
            )
        settings = document["settings"]
        return cls(
            columns={c["name"]: _column_from_json(c) for c in document["columns"]},
            rows=document["rows"],
            duplicate_rate=document["duplicate_rate"],
            sample_size=settings["sample_size"],
            bins=settings["bins"],
            top_k=settings["top_k"],
            seed=settings["seed"],
            calibration={n: Threshold(**t) for n, t in document.get("calibration", {}).items()},
        )


def _pack(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.asarray(array, dtype=dtype).tobytes()).decode("ascii")


def _unpack(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).astype(float)


def _column_to_json(column: ColumnProfile, include_samples: bool) -> dict:
    out = {
        "name": column.name,
        "kind": column.kind,
        "role": column.role,
        "rows": column.rows,
        "missing": column.missing,
        "type_errors": column.type_errors,
        "n_unique": column.n_unique,
    }
    if column.numeric:
        out |= {"mean": column.mean, "std": column.std, "min": column.min, "max": column.max}
        if column.quantiles is not None:
            out["quantiles"] = _pack(column.quantiles, "<f4")
    if column.bins is not None:
        bins = column.bins
        values = [float(v) for v in bins.values] if bins.kind != "categories" else list(bins.values)
        out["bins"] = {"kind": bins.kind, "values": values, "counts": bins.counts, "complete": bins.complete}
    if include_samples and column.sample is not None:
        out["sample"] = _pack(column.sample, "<f8")
        out["sample_complete"] = column.sample_complete
    return out


def _column_from_json(data: dict) -> ColumnProfile:
    bins = data.get("bins")
    return ColumnProfile(
        name=data["name"],
        kind=data["kind"],
        role=data["role"],
        rows=data["rows"],
        missing=data["missing"],
        type_errors=data["type_errors"],
        n_unique=data["n_unique"],
        mean=data.get("mean"),
        std=data.get("std"),
        min=data.get("min"),
        max=data.get("max"),
        quantiles=_unpack(data["quantiles"], "<f4") if "quantiles" in data else None,
        bins=None
        if bins is None
        else Bins(
            bins["kind"], tuple(bins["values"]), np.asarray(bins["counts"], dtype=np.int64), bins["complete"]
        ),
        sample=_unpack(data["sample"], "<f8") if "sample" in data else None,
        sample_complete=data.get("sample_complete", False),
    )
