"""Prometheus metrics of a serving app, in their own registry, under one naming scheme.

Every name starts with ``conveyor_serving_``; durations are in seconds; the labels
``model``, ``version``, ``alias`` and ``variant`` say which served model version a
series is about (``alias`` is empty for a URI without one). ``docs/serving.md`` lists
them all. Each app has its own :class:`~prometheus_client.CollectorRegistry`, so two
apps in one process (tests, or serving beside tracking) never share counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from conveyor.serving.batching import BatchStats
from conveyor.serving.errors import FieldProblem

__all__ = ["CONTENT_TYPE_LATEST", "ServingMetrics"]

VERSION_LABELS = ("model", "version", "alias", "variant")
#: Latency buckets from 0.5 ms to 10 s: the interesting range for tabular models.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
QUEUE_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class InFlight:
    """A plain count for a gauge read at scrape time: no lock on every request (the event
    loop is the only writer)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1

    def get(self) -> float:
        return float(self.value)


class ServingMetrics:
    """The serving metrics; see ``docs/serving.md`` for what each one counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "conveyor_serving_requests",
            "Inference requests answered, by status code.",
            [*VERSION_LABELS, "protocol", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "conveyor_serving_request_duration_seconds",
            "Time from the request's arrival to its answer.",
            [*VERSION_LABELS, "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_duration = Histogram(
            "conveyor_serving_queue_duration_seconds",
            "Time a request waited for its batch to start.",
            VERSION_LABELS,
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "conveyor_serving_batch_size",
            "Rows in each predict call.",
            VERSION_LABELS,
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "conveyor_serving_in_flight", "Inference requests being handled now.", ["model"], registry=r
        )
        self.model_load = Gauge(
            "conveyor_serving_model_load_seconds",
            "Seconds it took to load and warm up the version.",
            VERSION_LABELS,
            registry=r,
        )
        self.model_ready = Gauge(
            "conveyor_serving_model_ready", "1 while the version serves traffic.", VERSION_LABELS, registry=r
        )
        self.validation_failures = Counter(
            "conveyor_serving_validation_failures",
            "Request fields refused by validation, by field and problem.",
            [*VERSION_LABELS, "feature", "problem"],
            registry=r,
        )
        self.prediction_log_rows = Counter(
            "conveyor_serving_prediction_log_rows",
            "Rows the prediction log wrote or dropped.",
            ["model", "version", "outcome"],
            registry=r,
        )
        self.shadow_agreement = Counter(
            "conveyor_serving_shadow_agreement",
            "Rows on which a shadow's prediction agreed (or not) with the answer returned.",
            [*VERSION_LABELS, "agree"],
            registry=r,
        )

        # Children by label values: ``labels(...)`` costs more than the update itself.
        self._in_flight: dict[str, InFlight] = {}
        self._answered: dict[tuple[Any, ...], tuple[Any, Any]] = {}

    def in_flight_of(self, model: str) -> InFlight:
        """The count behind one model's ``in_flight`` gauge (read when scraped)."""
        count = self._in_flight.get(model)
        if count is None:
            count = self._in_flight[model] = InFlight()
            self.in_flight.labels(model).set_function(count.get)
        return count

    def answered(self, labels: tuple[str, ...] | None, protocol: str, status: int, started: float) -> None:
        """Count an inference request and time it (``labels``: None for an unknown model)."""
        key = (labels, protocol, status)
        children = self._answered.get(key)
        if children is None:
            values = labels if labels is not None else ("", "", "", "")
            children = self._answered[key] = (
                self.requests.labels(*values, protocol, str(status)),
                self.request_duration.labels(*values, protocol),
            )
        count, duration = children
        count.inc()
        duration.observe(time.perf_counter() - started)

    def batch_observer(self, labels: Sequence[str]) -> Callable[[BatchStats], None]:
        """A :class:`Batcher` ``observe`` callback for one served version."""
        size = self.batch_size.labels(*labels)
        queue = self.queue_duration.labels(*labels)

        def observe(stats: BatchStats) -> None:
            size.observe(stats.rows)
            for seconds in stats.queue_seconds:
                queue.observe(seconds)

        return observe

    def rejected(self, labels: Sequence[str], problems: Sequence[FieldProblem]) -> None:
        for p in problems:
            # Names a client made up are not signature fields: one series for all of them.
            feature = "(unknown)" if p.problem == "unknown" else p.field
            self.validation_failures.labels(*labels, feature, p.problem).inc()

    def log_written(self, model: str, version: str, rows: int) -> None:
        """``PredictionLogger``'s ``on_written`` callback."""
        self.prediction_log_rows.labels(model, version, "written").inc(rows)

    def log_dropped(self, model: str, version: str, rows: int, _reason: str = "") -> None:
        """``PredictionLogger``'s ``on_dropped`` callback."""
        self.prediction_log_rows.labels(model, version, "dropped").inc(rows)

    def exposition(self) -> bytes:
        """The text format ``GET /metrics`` answers with."""
        return generate_latest(self.registry)
