"""The background metric buffer: nothing lost on passing failures, no poison on refusals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from conveyor.errors import BackendUnavailable, InvalidInput, InvalidState
from conveyor.store.entities import Metric
from conveyor.tracking.buffer import MetricBuffer
from conveyor.tracking.client import Client


class Recorder:
    """A sender that stores what it gets and fails on demand, like a store would."""

    def __init__(self) -> None:
        self.stored: dict[str, list[Metric]] = {}
        self.down = False
        self.refused: set[str] = set()

    def __call__(self, run_id: str, points: Sequence[Metric]) -> None:
        if self.down:
            raise BackendUnavailable("server unreachable")
        if run_id in self.refused:
            raise InvalidState(f"run {run_id} is deleted")
        self.stored.setdefault(run_id, []).extend(points)


def points(key: str, count: int) -> list[Metric]:
    return [Metric(key, float(i), 1000 + i, i) for i in range(count)]


def test_transient_failure_keeps_every_point_for_the_next_flush() -> None:
    sender = Recorder()
    buffer = MetricBuffer(sender, interval=60)
    for metric in points("loss", 50):
        buffer.add("run-a", metric)
    sender.down = True
    with pytest.raises(BackendUnavailable):
        buffer.flush()
    sender.down = False
    buffer.flush()
    assert [m.step for m in sender.stored["run-a"]] == list(range(50))
    buffer.close()


def test_a_refused_run_does_not_block_the_others() -> None:
    sender = Recorder()
    sender.refused.add("deleted-run")
    buffer = MetricBuffer(sender, interval=60)
    for metric in points("loss", 10):
        buffer.add("deleted-run", metric)
        buffer.add("live-run", metric)
    with pytest.raises(InvalidState):
        buffer.flush()
    assert len(sender.stored["live-run"]) == 10
    buffer.flush()  # the refused points were dropped with the error, not queued forever
    buffer.close()


def test_bad_metric_is_refused_at_the_call_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    client = Client(f"sqlite:///{tmp_path / 'c.db'}")
    run_id = client.create_run("0").info.run_id
    with pytest.raises(InvalidInput, match="key"):
        client.log_metric(run_id, "../escape", 1.0)
    with pytest.raises(InvalidInput, match="number"):
        client.log_metric(run_id, "loss", "high")  # type: ignore[arg-type]
    client.log_metric(run_id, "loss", 1)
    client.flush()
    assert client.get_run(run_id).metrics["loss"].value == 1.0
    client.close()
