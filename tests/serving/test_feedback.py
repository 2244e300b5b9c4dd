"""Ground-truth feedback: parsing with field-level errors, storage, de-duplication and the join."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from conveyor.errors import ConveyorError, InvalidInput, NotFound
from conveyor.serving.errors import error_body
from conveyor.serving.feedback import (
    MAX_ITEMS,
    FeedbackItem,
    FeedbackStore,
    InvalidFeedback,
    attach_labels,
    handle_feedback,
    parse_feedback,
    read_labels,
)

T0 = datetime(2026, 3, 1, 10, tzinfo=UTC)


def body(**fields: object) -> bytes:
    return orjson.dumps(fields)


def test_parse_a_valid_body() -> None:
    batch = parse_feedback(
        body(
            model="churn",
            labels=[{"request_id": "a", "label": 1}, {"request_id": "b", "row": 3, "label": 0.5}],
        )
    )
    assert batch.model == "churn"
    assert batch.items == (FeedbackItem("a", 1, 0), FeedbackItem("b", 0.5, 3))


@pytest.mark.parametrize(
    ("payload", "field", "problem"),
    [
        (b"{not json", "", "format"),
        (b"[1, 2]", "", "format"),
        (body(labels=[{"request_id": "a", "label": 1}]), "model", "missing"),
        (body(model="churn", labels={"request_id": "a"}), "labels", "type"),
        (body(model="churn", labels=[]), "labels", "empty"),
        (body(model="churn", labels=[{"label": 1}]), "labels[0].request_id", "missing"),
        (body(model="churn", labels=[{"request_id": 7, "label": 1}]), "labels[0].request_id", "type"),
        (body(model="churn", labels=[{"request_id": "a"}]), "labels[0].label", "missing"),
        (body(model="churn", labels=[{"request_id": "a", "label": [1]}]), "labels[0].label", "type"),
        (body(model="churn", labels=[{"request_id": "a", "label": 1, "row": -1}]), "labels[0].row", "type"),
        (body(model="churn", labels=[{"request_id": "a", "label": 1, "row": True}]), "labels[0].row", "type"),
        (body(model="churn", labels=[{"request_id": "a", "lable": 1}]), "labels[0].lable", "unknown"),
        (body(model="churn", labels=[{"request_id": "a", "label": 1}], extra=1), "extra", "unknown"),
        (
            body(
                model="churn", labels=[{"request_id": "a", "label": 1}, {"request_id": "b", "label": "yes"}]
            ),
            "labels[1].label",
            "type",
        ),
    ],
)
def test_each_problem_names_its_field(payload: bytes, field: str, problem: str) -> None:
    with pytest.raises(InvalidFeedback) as caught:
        parse_feedback(payload)
    assert (field, problem) in [(p.field, p.problem) for p in caught.value.problems]
    assert isinstance(caught.value, InvalidInput) and caught.value.http_status == 400


def test_every_problem_is_reported_at_once_in_the_error_body() -> None:
    labels = [
        {"request_id": "", "label": 1},
        {"request_id": "b", "label": None},
        {"request_id": "c", "label": 2},
    ]
    with pytest.raises(InvalidFeedback) as caught:
        parse_feedback(body(model="churn", labels=labels))
    details = error_body(caught.value, "req-1")["details"]
    assert [d["field"] for d in details] == ["labels[0].request_id", "labels[1].label"]


def test_too_many_labels() -> None:
    labels = [{"request_id": str(i), "label": 1} for i in range(MAX_ITEMS + 1)]
    with pytest.raises(InvalidFeedback, match=f"at most {MAX_ITEMS}"):
        parse_feedback(body(model="churn", labels=labels))


def test_record_and_read_back_keep_the_latest_label(tmp_path: Path) -> None:
    store = FeedbackStore(str(tmp_path))
    first = store.record(
        "churn",
        [{"request_id": "a", "label": 1}, {"request_id": "b", "label": 0}, {"request_id": "a", "label": 0}],
        received_at=T0,
    )
    assert (first.accepted, first.duplicates) == (2, 1)  # "a" twice: the later item wins
    assert first.path.startswith("feedback/model=churn/date=2026-03-01/part-")
    store.record("churn", [FeedbackItem("b", 1)], received_at=T0 + timedelta(days=1))  # a correction
    store.record("churn", [FeedbackItem("a", 1)], received_at=T0 - timedelta(days=1))  # older: loses
    store.record("churn", [FeedbackItem("c", 1, row=2)], received_at=T0)
    store.record("churn", [FeedbackItem("c", 0, row=2)], received_at=T0)  # same time: later file wins
    store.record("fraud", [FeedbackItem("a", 1)], received_at=T0)

    labels = read_labels(str(tmp_path), "churn")
    assert labels.column_names == ["request_id", "row", "label", "received_at"]
    assert [(r["request_id"], r["row"], r["label"]) for r in labels.to_pylist()] == [
        ("a", 0, 0),
        ("b", 0, 1),
        ("c", 2, 0),
    ]
    assert labels.column("received_at").to_pylist()[1] == T0 + timedelta(days=1)
    one_day = read_labels(str(tmp_path), "churn", start=date(2026, 2, 28), end=date(2026, 2, 28))
    assert one_day.to_pylist()[0]["label"] == 1 and one_day.num_rows == 1
    assert read_labels(str(tmp_path), "absent").num_rows == 0


def test_labels_of_different_kinds_over_time_read_as_text(tmp_path: Path) -> None:
    store = FeedbackStore(str(tmp_path))
    store.record("churn", [FeedbackItem("a", 1)], received_at=T0)
    store.record("churn", [FeedbackItem("b", "churned")], received_at=T0)
    labels = read_labels(str(tmp_path), "churn")
    assert labels.schema.field("label").type == pa.string()
    assert labels.column("label").to_pylist() == ["1", "churned"]


def test_record_validates_python_callers_too(tmp_path: Path) -> None:
    store = FeedbackStore(str(tmp_path))
    with pytest.raises(InvalidFeedback) as caught:
        store.record("a/b", [{"request_id": "x", "label": float("nan")}])
    assert {p.field for p in caught.value.problems} == {"model", "labels[0].label"}
    assert not list(tmp_path.iterdir())


def test_unknown_request_ids_are_accepted_then_counted_at_the_join(tmp_path: Path) -> None:
    store = FeedbackStore(str(tmp_path))
    store.record("churn", [FeedbackItem("r2", 1), FeedbackItem("r1", 0, row=1), FeedbackItem("ghost", 1)])
    predictions = pa.table(
        {
            "request_id": ["r1", "r1", "r2", "r3"],
            "row": pa.array([0, 1, 0, 0], pa.int32()),
            "output.prediction": [1, 1, 0, 0],
        }
    )
    joined = attach_labels(predictions, read_labels(str(tmp_path), "churn"))
    assert joined.unmatched_labels == 1  # "ghost"
    assert joined.table.column("request_id").to_pylist() == ["r1", "r1", "r2", "r3"]  # order kept
    assert joined.table.column("label").to_pylist() == [None, 0, 1, None]


def test_handle_feedback_is_what_the_route_calls(tmp_path: Path) -> None:
    store = FeedbackStore(str(tmp_path))
    payload = body(model="churn", labels=[{"request_id": "a", "label": True}])
    answer = handle_feedback(store, payload, known_models={"churn"})
    assert answer["model"] == "churn" and answer["accepted"] == 1 and answer["duplicates"] == 0
    assert read_labels(str(tmp_path), "churn").column("label").to_pylist() == [True]
    with pytest.raises(NotFound, match="No served model named 'fraud'"):
        handle_feedback(store, body(model="fraud", labels=[{"request_id": "a", "label": 1}]), {"churn"})


def test_storage_failure_is_raised_not_dropped(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(ConveyorError):
        FeedbackStore(str(blocker / "root")).record("churn", [FeedbackItem("a", 1)])
