"""Model monitoring, the statistical core: reference profiles, drift, data quality, performance.

A pure library (numpy, pandas, pyarrow, scipy): no store, no server. The object model::

    reference data ──build_profile──▶ ReferenceProfile      (per column: kind, counts, moments,
        (chunks)                          │  JSON, KB          quantiles, bins, categories, sample)
                                          │ calibrate(profile, same-distribution chunks)
    production window ──WindowAccumulator(profile).update(chunk)…──▶ .finish()
        (chunks, mergeable across partitions)                           │
                                                    WindowReport: DriftReport + QualityReport
    predictions + labels ──join_labels──▶ classification_metrics / regression_metrics
    reference proba + labels ──fit_cbpe──▶ CBPE.estimate(window proba)  (no labels needed)

- :mod:`~conveyor.monitoring.sketch`: the mergeable, bounded summaries everything rests on.
- :mod:`~conveyor.monitoring.stats`: the statistics, equal to scipy's on the same data.
- ``docs/monitoring.md``: methods, defaults, thresholds and error bounds.
- Monitor jobs, on the store (not imported here, so this package stays store-free):
  :mod:`~conveyor.monitoring.profiles` (profiles stored with versions),
  :mod:`~conveyor.monitoring.jobs` (``run_monitor``), :mod:`~conveyor.monitoring.alerts`,
  :mod:`~conveyor.monitoring.results` (``latest_points``, ``points``) and
  :mod:`~conveyor.monitoring.pipeline` (scheduled monitors).

Example::

    from conveyor.monitoring import WindowAccumulator, build_profile

    profile = build_profile(validation_frames, predictions="output.prediction")
    acc = WindowAccumulator(profile)
    for batch in parquet_file.iter_batches(100_000):
        acc.update(batch)
    report = acc.finish()
    report.drift.drifted_columns(), report.quality.new_columns, report.to_dict()
"""

from conveyor.monitoring.builder import ProfileBuilder, build_profile
from conveyor.monitoring.calibration import calibrate
from conveyor.monitoring.drift import ColumnDrift, DriftReport, compute_drift, default_method
from conveyor.monitoring.estimation import CBPE, fit_cbpe
from conveyor.monitoring.performance import (
    ClassificationMetrics,
    LabelJoin,
    RegressionMetrics,
    classification_metrics,
    join_labels,
    regression_metrics,
)
from conveyor.monitoring.profile import Bins, ColumnProfile, ReferenceProfile, Threshold
from conveyor.monitoring.quality import ColumnQuality, QualityReport
from conveyor.monitoring.window import WindowAccumulator, WindowReport, analyze

__all__ = [
    "CBPE",
    "Bins",
    "ClassificationMetrics",
    "ColumnDrift",
    "ColumnProfile",
    "ColumnQuality",
    "DriftReport",
    "LabelJoin",
    "ProfileBuilder",
    "QualityReport",
    "ReferenceProfile",
    "RegressionMetrics",
    "Threshold",
    "WindowAccumulator",
    "WindowReport",
    "analyze",
    "build_profile",
    "calibrate",
    "classification_metrics",
    "compute_drift",
    "default_method",
    "fit_cbpe",
    "join_labels",
    "regression_metrics",
]
