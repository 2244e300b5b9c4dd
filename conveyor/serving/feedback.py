"""Ground truth for served predictions: labels keyed by request id, stored beside the prediction log.

Labels arrive late (a churned customer is known a month later), through ``POST
/feedback`` or Python, and monitoring joins them to the logged predictions on
``(request_id, row)``. Decisions, each for a reason:

- **``row`` defaults to 0**: most requests score one row, so a label without ``row``
  is that row's.
- **Unknown request ids are accepted, not checked.** Predictions are logged
  asynchronously and may land after their label; looking each id up would also mean
  scanning the log on every request. :func:`attach_labels` counts labels that match no
  prediction at join time, which is when "unknown" is known.
- **A label sent twice keeps the latest**: :func:`read_labels` keeps, per
  ``(request_id, row)``, the label received last (ties: the later file, then the later
  item in the request). A correction is just a second send.
- **Storage errors are raised**, not dropped: unlike the prediction log, feedback is
  sent by a client that can retry a 503, and losing ground truth silently is worse.

Layout: ``<root>/feedback/model=<name>/date=YYYY-MM-DD/part-<UTC time>-<uuid>.parquet``
(date of receipt) with columns ``request_id`` (string), ``row`` (int32), ``label``
(bool, int64, float64 or string) and ``received_at`` (timestamp[us, UTC]).

Example (what the server's ``POST /feedback`` route does)::

    summary = handle_feedback(store, await request.body())   # -> {"model": ..., "accepted": 2, ...}
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.errors import InvalidInput, NotFound
from conveyor.serving._parquet import ParquetFolders
from conveyor.serving.errors import FieldProblem

__all__ = [
    "MAX_ITEMS",
    "FeedbackBatch",
    "FeedbackItem",
    "FeedbackStore",
    "FeedbackSummary",
    "InvalidFeedback",
    "LabelJoin",
    "attach_labels",
    "handle_feedback",
    "parse_feedback",
    "read_labels",
]

#: Labels per request at most: bigger batches are split by the client.
MAX_ITEMS = 10_000
MAX_ID_LENGTH = 256
MAX_TEXT_LABEL = 1_024
_MAX_ROW = 2**31 - 1
#: Problems listed in one error at most; the message says how many more there were.
_MAX_PROBLEMS = 20
Label = bool | int | float | str


class InvalidFeedback(InvalidInput):
    """A feedback body or item list that cannot be stored, with every field-level problem (400).

    ``problems`` is what the server's error body lists under ``details``.
    """

    headline = "Invalid feedback"

    def __init__(self, problems: Sequence[FieldProblem], more: int = 0) -> None:
        self.problems = tuple(problems)
        listed = "; ".join(f"{p.field}: {p.message}" for p in self.problems[:3])
        extra = len(self.problems) - 3 + more
        super().__init__(f"Invalid feedback: {listed}" + (f" (and {extra} more)" if extra > 0 else ""))


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """One label: for row ``row`` of request ``request_id``."""

    request_id: str
    label: Label
    row: int = 0


@dataclass(frozen=True, slots=True)
class FeedbackBatch:
    """A parsed ``POST /feedback`` body."""

    model: str
    items: tuple[FeedbackItem, ...]


@dataclass(frozen=True, slots=True)
class FeedbackSummary:
    """What :meth:`FeedbackStore.record` stored."""

    model: str
    #: Labels stored (duplicates within the request counted once).
    accepted: int
    #: Items that repeated an earlier ``(request_id, row)`` of the same request; the later won.
    duplicates: int
    received_at: datetime
    #: File written, relative to the store's root.
    path: str

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "received_at": self.received_at.isoformat(),
        }


# -- validation ----------------------------------------------------------------------


class _Problems:
    """Collects field problems, keeping the first :data:`_MAX_PROBLEMS`."""

    def __init__(self) -> None:
        self.found: list[FieldProblem] = []
        self.more = 0

    def add(self, field: str, problem: str, message: str) -> None:
        if len(self.found) < _MAX_PROBLEMS:
            self.found.append(FieldProblem(field, problem, message))
        else:
            self.more += 1

    def raise_if_any(self) -> None:
        if self.found:
            raise InvalidFeedback(self.found, self.more)


def parse_feedback(body: bytes) -> FeedbackBatch:
    """Parse and validate ``{"model": "churn", "labels": [{"request_id", "row"?, "label"}, ...]}``.

    Pure: no I/O. Every problem is reported at once, with its field
    (``labels[3].label``), so a client fixes a batch in one round trip.

    Raises:
        InvalidFeedback: malformed JSON, a missing or unknown field, a wrong type, an
            empty or oversized label list, labels of mixed kinds.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidFeedback([FieldProblem("", "format", f"the body is not valid JSON: {exc}")]) from None
    problems = _Problems()
    if not isinstance(data, dict):
        problems.add("", "format", 'expected a JSON object {"model": ..., "labels": [...]}')
        problems.raise_if_any()
    for key in sorted(set(data) - {"model", "labels"}):
        problems.add(key, "unknown", f"unknown field {key!r}; expected 'model' and 'labels'")
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        problems.add("model", "missing" if model is None else "type", "'model' must be a non-empty string")
    raw = data.get("labels")
    if not isinstance(raw, list):
        problems.add("labels", "missing" if raw is None else "type", "'labels' must be a list of objects")
        problems.raise_if_any()
    items = _items(raw, problems, "labels")
    problems.raise_if_any()
    return FeedbackBatch(str(model), tuple(items))


def _items(raw: Sequence[Any], problems: _Problems, where: str) -> list[FeedbackItem]:
    if not raw:
        problems.add(where, "empty", "at least one label is needed")
    if len(raw) > MAX_ITEMS:
        problems.add(where, "format", f"{len(raw)} labels: at most {MAX_ITEMS} per request, send several")
        return []
    items = [_item(entry, problems, f"{where}[{index}]") for index, entry in enumerate(raw)]
    valid = [item for item in items if item is not None]
    _check_one_kind(valid, problems, where)
    return valid


def _item(entry: Any, problems: _Problems, where: str) -> FeedbackItem | None:
    if isinstance(entry, FeedbackItem):
        entry = {"request_id": entry.request_id, "row": entry.row, "label": entry.label}
    if not isinstance(entry, Mapping):
        problems.add(where, "type", 'each label must be an object {"request_id", "row"?, "label"}')
        return None
    before = len(problems.found) + problems.more
    for key in sorted(set(entry) - {"request_id", "row", "label"}):
        problems.add(f"{where}.{key}", "unknown", f"unknown field {key!r}")
    request_id, row, label = entry.get("request_id"), entry.get("row", 0), entry.get("label")
    if not isinstance(request_id, str) or not request_id or len(request_id) > MAX_ID_LENGTH:
        kind = "missing" if request_id is None else "type"
        problems.add(f"{where}.request_id", kind, f"must be a string of 1 to {MAX_ID_LENGTH} characters")
    if row is None:
        row = 0
    if type(row) is not int or not 0 <= row <= _MAX_ROW:
        problems.add(f"{where}.row", "type", f"must be an integer from 0 to {_MAX_ROW}, got {row!r}")
    problem = _label_problem(label)
    if problem:
        problems.add(f"{where}.label", "missing" if label is None else "type", problem)
    if len(problems.found) + problems.more > before:
        return None
    return FeedbackItem(request_id, label, row)


def _label_problem(label: Any) -> str | None:
    if label is None:
        return "a label is required (a number, a boolean or a string)"
    if isinstance(label, float) and not math.isfinite(label):
        return "must be a finite number"
    if isinstance(label, str) and len(label) > MAX_TEXT_LABEL:
        return f"text labels are at most {MAX_TEXT_LABEL} characters"
    if not isinstance(label, bool | int | float | str):
        return f"must be a number, a boolean or a string, got {type(label).__name__}"
    return None


def _kind(label: Label) -> str:
    if isinstance(label, bool):
        return "bool"
    return "number" if isinstance(label, int | float) else "text"


def _check_one_kind(items: Sequence[FeedbackItem], problems: _Problems, where: str) -> None:
    """One column type per file: integers and floats mix, booleans, numbers and text do not."""
    if not items:
        return
    first = _kind(items[0].label)
    for index, item in enumerate(items):
        if _kind(item.label) != first:
            problems.add(
                f"{where}[{index}].label",
                "type",
                f"is a {_kind(item.label)} label but the first one is a {first}: send one kind per request",
            )
            return


# -- storage -------------------------------------------------------------------------


class FeedbackStore:
    """Labels of served models under ``<root>/feedback/``; see the module docstring.

    Args:
        root_url: The artifact root (usually the prediction log's): folder, ``az://``, ``s3://``.
        storage_options: fsspec options, e.g. ``{"connection_string": ...}``.
    """

    def __init__(self, root_url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.root_url = root_url
        self.storage_options = storage_options
        self._folders = ParquetFolders(root_url, storage_options)

    def record(
        self,
        model: str,
        items: Sequence[FeedbackItem | Mapping[str, Any]],
        received_at: datetime | None = None,
    ) -> FeedbackSummary:
        """Validate ``items`` and store them as one file; duplicates in ``items`` keep the last.

        Raises:
            InvalidFeedback: a bad model name or item (every problem listed).
            PermissionDenied, BackendUnavailable: the storage refused or is unreachable.
        """
        problems = _Problems()
        if not isinstance(model, str) or not model.strip() or "/" in model:
            problems.add("model", "type", "must be a non-empty model name without '/'")
        valid = _items(items, problems, "labels")
        problems.raise_if_any()
        moment = _utc(received_at or datetime.now(UTC))
        latest = {(item.request_id, item.row): item for item in valid}
        table = pa.table(
            {
                "request_id": pa.array([key[0] for key in latest], pa.string()),
                "row": pa.array([key[1] for key in latest], pa.int32()),
                "label": _label_array([item.label for item in latest.values()]),
                "received_at": pa.array([moment] * len(latest), pa.timestamp("us", tz="UTC")),
            }
        )
        path = self._folders.write(f"feedback/model={model}/date={moment:%Y-%m-%d}", table)
        return FeedbackSummary(model, len(latest), len(valid) - len(latest), moment, path)


def _utc(moment: datetime) -> datetime:
    """A naive time is taken as UTC, like the prediction log's."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _label_array(labels: list[Label]) -> pa.Array:
    kind = _kind(labels[0])
    if kind == "number":
        return pa.array(labels, pa.int64() if all(type(v) is int for v in labels) else pa.float64())
    return pa.array(labels, pa.bool_() if kind == "bool" else pa.string())


def handle_feedback(
    store: FeedbackStore, body: bytes, known_models: Collection[str] | None = None
) -> dict[str, Any]:
    """What ``POST /feedback`` does: parse, check the model is served, store, answer the summary.

    Blocking (it writes a file): the route runs it in a worker thread.

    Raises:
        InvalidFeedback: the body (400, every problem listed).
        NotFound: ``known_models`` is given and does not have the model (404).
    """
    batch = parse_feedback(body)
    if known_models is not None and batch.model not in known_models:
        served = ", ".join(sorted(known_models)) or "none"
        raise NotFound(f"No served model named {batch.model!r} (served: {served})")
    return store.record(batch.model, batch.items).to_json()


# -- reading -------------------------------------------------------------------------


def read_labels(
    root_url: str,
    model: str,
    start: date | None = None,
    end: date | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> pa.Table:
    """The model's labels, one per ``(request_id, row)``: the latest received (see the module docstring).

    Args:
        start, end: Dates of receipt (UTC), both included; default all.

    Returns:
        Columns ``request_id``, ``row``, ``label``, ``received_at``, sorted by
        ``(request_id, row)``. Labels stored as numbers in one file and text in another
        come back as text.
    """
    folders = ParquetFolders(root_url, storage_options)
    base = f"feedback/model={model}"
    days = [d for d in folders.subfolders(base, "date") if _in_range(d, start, end)]
    files = [path for day in days for path in folders.files(f"{base}/date={day}")]
    if not files:
        return _empty_labels()
    dataset = folders.dataset(files, ("model", "date"))
    columns = ["request_id", "row", "label", "received_at"]
    # Fragment by fragment, in file-name (= time) order, so "item" orders ties by arrival.
    table = pa.concat_tables(
        fragment.to_table(schema=dataset.schema, columns=columns) for fragment in dataset.get_fragments()
    )
    table = table.append_column("item", pa.array(range(table.num_rows), pa.int64()))
    ordered = table.sort_by([("received_at", "ascending"), ("item", "ascending")])
    latest = ordered.group_by(["request_id", "row"], use_threads=False).aggregate(
        [("label", "last"), ("received_at", "last")]
    )
    result = latest.rename_columns(["request_id", "row", "label", "received_at"])
    return result.sort_by([("request_id", "ascending"), ("row", "ascending")])


def _in_range(day: str, start: date | None, end: date | None) -> bool:
    try:
        value = date.fromisoformat(day)
    except ValueError:
        return False
    return (start is None or value >= start) and (end is None or value <= end)


def _empty_labels() -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array([], pa.string()),
            "row": pa.array([], pa.int32()),
            "label": pa.array([], pa.null()),
            "received_at": pa.array([], pa.timestamp("us", tz="UTC")),
        }
    )


@dataclass(frozen=True, slots=True)
class LabelJoin:
    """Predictions with their labels, and how many labels matched no prediction."""

    #: The predictions, plus ``label`` (null where none arrived).
    table: pa.Table
    unmatched_labels: int


def attach_labels(predictions: pa.Table, labels: pa.Table) -> LabelJoin:
    """Join :func:`read_labels` output onto logged predictions by ``(request_id, row)``.

    ``unmatched_labels`` counts labels for requests not among ``predictions``: an
    unknown id, or a prediction outside the window read (or not written yet).
    """
    keys = ["request_id", "row"]
    label_type = labels.schema.field("label").type
    right = labels.select([*keys, "label"]).cast(
        pa.schema([("request_id", pa.string()), ("row", pa.int32()), ("label", label_type)])
    )
    left = predictions.set_column(
        predictions.schema.get_field_index("row"), "row", pc.cast(predictions["row"], pa.int32())
    ).append_column("__order", pa.array(range(predictions.num_rows), pa.int64()))
    joined = left.join(right, keys=keys, join_type="left outer", use_threads=False)
    joined = joined.sort_by("__order").drop_columns("__order")
    unmatched = right.join(left.select(keys), keys=keys, join_type="left anti").num_rows
    return LabelJoin(joined, unmatched)
