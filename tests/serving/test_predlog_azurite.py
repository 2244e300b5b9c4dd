"""The prediction log and feedback store on Azure Blob storage (Azurite), through ``az://``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import numpy as np
import pyarrow as pa
import pytest

from conveyor.serving.feedback import FeedbackStore, read_labels
from conveyor.serving.predlog import PredictionLogger, PredictionRecord, read_predictions
from conveyor.testing.azurite import AzuriteHandle, start_azurite

pytestmark = [pytest.mark.azurite, pytest.mark.slow]

TOOLS_DIR = Path(__file__).resolve().parents[2] / ".test-tools"


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteHandle]:
    handle = start_azurite(tmp_path_factory.mktemp("azurite"), tools_dir=TOOLS_DIR)
    try:
        yield handle
    finally:
        handle.stop()


def prediction(request_id: str) -> PredictionRecord:
    return PredictionRecord(
        request_id, datetime.now(UTC), "churn", "3", "champion", "primary",
        {"age": np.array([31.0, 45.0])}, {"prediction": np.array([0, 1])}, 2.5,
    )  # fmt: skip


def test_round_trip_on_blob_storage_with_a_missing_container_then_recovery(azurite: AzuriteHandle) -> None:
    container = f"predlog-{uuid4().hex[:8]}"
    root = f"az://{container}/logs"
    options = {"connection_string": azurite.connection_string}
    log = PredictionLogger(root, flush_interval_s=0.02, storage_options=options)
    with log:
        assert log.submit(prediction("lost"))  # the container does not exist yet
        assert log.flush()
        assert log.dropped_by_reason["write_failed"] == 2
        azurite.create_container(container)
        assert log.submit(prediction("kept"))
        assert log.flush()
    assert log.written_rows == 2

    table = pa.Table.from_batches(read_predictions(root, "churn", storage_options=options))
    assert table.column("request_id").to_pylist() == ["kept", "kept"]
    assert table.column("version").to_pylist() == ["3", "3"]
    assert table.column("input.age").to_pylist() == [31.0, 45.0]

    store = FeedbackStore(root, options)
    assert store.record("churn", [{"request_id": "kept", "row": 1, "label": 1}]).accepted == 1
    labels = read_labels(root, "churn", storage_options=options)
    assert labels.select(["request_id", "row", "label"]).to_pylist() == [
        {"request_id": "kept", "row": 1, "label": 1}
    ]
