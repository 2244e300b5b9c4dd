"""Conformance checks every tracking store must pass, importable by back-end authors.

Subclass :class:`TrackingStoreChecks` in a test module and provide a ``store`` fixture
that yields an opened store; each ``test_*`` method below then runs against it. The same
checks run over SQLite, PostgreSQL and the REST client against a live server, so a
behaviour cannot differ between back ends without a red build.
"""

from __future__ import annotations

import math
import threading
import uuid

import pytest

from conveyor.errors import (
    AlreadyExists,
    ExperimentNotFound,
    InvalidInput,
    InvalidState,
    NotFound,
    RunNotFound,
)
from conveyor.store.base import TrackingStore
from conveyor.store.entities import (
    ArtifactRecord,
    Dataset,
    DatasetInput,
    LifecycleStage,
    Metric,
    Param,
    RunStatus,
    Tag,
    ViewType,
)


def unique(prefix: str = "exp") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class TrackingStoreChecks:
    """Behaviour promised by :class:`conveyor.store.base.TrackingStore`'s docstrings."""

    # -- experiments -----------------------------------------------------------------------

    def test_create_and_get_experiment(self, store: TrackingStore) -> None:
        name = unique()
        experiment_id = store.create_experiment(name, tags={"team": "fraud"})
        got = store.get_experiment(experiment_id)
        assert (got.name, got.lifecycle_stage, got.tags) == (name, LifecycleStage.ACTIVE, {"team": "fraud"})
        assert store.get_experiment_by_name(name) == got
        assert store.get_experiment_by_name(unique()) is None

    def test_default_experiment_exists(self, store: TrackingStore) -> None:
        assert store.get_experiment("0").name == "Default"

    def test_duplicate_experiment_name_rejected(self, store: TrackingStore) -> None:
        name = unique()
        store.create_experiment(name)
        with pytest.raises(AlreadyExists, match=name):
            store.create_experiment(name)

    def test_unknown_experiment(self, store: TrackingStore) -> None:
        with pytest.raises(ExperimentNotFound):
            store.get_experiment("987654321")

    def test_bad_experiment_input(self, store: TrackingStore) -> None:
        with pytest.raises(InvalidInput):
            store.create_experiment("")
        with pytest.raises(InvalidInput):
            store.create_experiment("x" * 501)
        with pytest.raises(InvalidInput, match="experiment_id"):
            store.get_experiment("not-a-number")

    def test_rename_delete_restore_experiment(self, store: TrackingStore) -> None:
        experiment_id = store.create_experiment(unique())
        new_name = unique("renamed")
        store.rename_experiment(experiment_id, new_name)
        assert store.get_experiment(experiment_id).name == new_name
        run = store.create_run(experiment_id)
        store.delete_experiment(experiment_id)
        assert store.get_experiment(experiment_id).lifecycle_stage == LifecycleStage.DELETED
        assert store.get_run(run.info.run_id).info.lifecycle_stage == LifecycleStage.DELETED
        with pytest.raises(InvalidState):
            store.create_run(experiment_id)
        store.restore_experiment(experiment_id)
        assert store.get_run(run.info.run_id).info.lifecycle_stage == LifecycleStage.ACTIVE

    def test_experiment_tags(self, store: TrackingStore) -> None:
        experiment_id = store.create_experiment(unique())
        store.set_experiment_tag(experiment_id, "note", "line one\nline two")
        store.set_experiment_tag(experiment_id, "note", "replaced")
        assert store.get_experiment(experiment_id).tags == {"note": "replaced"}
        store.delete_experiment_tag(experiment_id, "note")
        assert store.get_experiment(experiment_id).tags == {}
        with pytest.raises(NotFound):
            store.delete_experiment_tag(experiment_id, "note")

    def test_search_experiments_filter_and_pages(self, store: TrackingStore) -> None:
        marker = unique("search")
        ids = [store.create_experiment(f"{marker}-{i}", tags={"k": str(i % 2)}) for i in range(5)]
        page = store.search_experiments(filter_string=f"name LIKE '{marker}-%'", max_results=2)
        seen = [e.experiment_id for e in page.items]
        while page.next_page_token:
            page = store.search_experiments(
                filter_string=f"name LIKE '{marker}-%'", max_results=2, page_token=page.next_page_token
            )
            seen += [e.experiment_id for e in page.items]
        assert sorted(seen) == sorted(ids)
        odd = store.search_experiments(filter_string=f"name LIKE '{marker}-%' AND tags.k = '1'")
        assert len(odd.items) == 2
        store.delete_experiment(ids[0])
        deleted = store.search_experiments(ViewType.DELETED_ONLY, f"name = '{marker}-0'")
        assert [e.experiment_id for e in deleted.items] == [ids[0]]

    # -- runs ------------------------------------------------------------------------------

    def test_create_and_get_run(self, store: TrackingStore) -> None:
        experiment_id = store.create_experiment(unique())
        run = store.create_run(
            experiment_id, user_id="ana", start_time=1234, tags={"k": "v"}, run_name="first"
        )
        got = store.get_run(run.info.run_id)
        assert got.info.run_name == "first"
        assert got.info.status == RunStatus.RUNNING
        assert got.info.start_time == 1234
        assert got.info.user_id == "ana"
        assert got.tags["k"] == "v"
        assert got.tags["mlflow.runName"] == "first"
        assert got.info.artifact_uri.endswith(f"/{run.info.run_id}/artifacts")

    def test_unknown_run(self, store: TrackingStore) -> None:
        with pytest.raises(RunNotFound):
            store.get_run(uuid.uuid4().hex)
        with pytest.raises(RunNotFound):
            store.log_metric(uuid.uuid4().hex, Metric("m", 1.0, 1, 0))

    def test_log_batch_round_trip(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        metrics = [Metric("loss", 1.0 / (i + 1), 1000 + i, i) for i in range(50)]
        store.log_batch(run_id, metrics=metrics, params=[Param("lr", "0.1")], tags=[Tag("t", "x")])
        run = store.get_run(run_id)
        assert run.params == {"lr": "0.1"}
        assert run.tags["t"] == "x"
        assert run.metrics["loss"].step == 49
        history = store.get_metric_history(run_id, "loss").items
        assert [m.step for m in history] == list(range(50))

    def test_non_finite_metrics(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        store.log_batch(
            run_id,
            metrics=[Metric("a", math.nan, 1, 0), Metric("b", math.inf, 1, 0), Metric("c", -math.inf, 1, 0)],
        )
        latest = store.get_run(run_id).metrics
        assert math.isnan(latest["a"].value)
        assert latest["b"].value == math.inf
        assert latest["c"].value == -math.inf

    def test_latest_metric_is_highest_step(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        store.log_batch(run_id, metrics=[Metric("m", 5.0, 10, 3), Metric("m", 9.0, 20, 1)])
        store.log_batch(run_id, metrics=[Metric("m", 1.0, 5, 2)])
        assert store.get_run(run_id).metrics["m"].value == 5.0

    def test_retried_batch_is_not_duplicated(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        batch = [Metric("m", float(i), 100 + i, i) for i in range(10)]
        store.log_batch(run_id, metrics=batch)
        store.log_batch(run_id, metrics=batch)
        assert len(store.get_metric_history(run_id, "m").items) == 10

    def test_param_change_rejected_and_batch_atomic(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        store.log_param(run_id, Param("p", "a"))
        store.log_param(run_id, Param("p", "a"))
        with pytest.raises(InvalidInput, match="Changing param values is not allowed"):
            store.log_batch(run_id, metrics=[Metric("m", 1.0, 1, 0)], params=[Param("p", "b")])
        run = store.get_run(run_id)
        assert run.params == {"p": "a"}
        assert "m" not in run.metrics

    def test_batch_limits(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        with pytest.raises(InvalidInput, match="at most 1000 metrics"):
            store.log_batch(run_id, metrics=[Metric("m", 1.0, 1, i) for i in range(1001)])
        with pytest.raises(InvalidInput, match="at most 100 params"):
            store.log_batch(run_id, params=[Param(f"p{i}", "v") for i in range(101)])
        with pytest.raises(InvalidInput, match="key"):
            store.log_param(run_id, Param("../escape", "v"))
        with pytest.raises(InvalidInput):
            store.log_param(run_id, Param("k" * 251, "v"))
        with pytest.raises(InvalidInput):
            store.log_param(run_id, Param("p", "v" * 6001))
        assert store.get_run(run_id).params == {}

    def test_finished_run_refuses_metrics_but_takes_tags(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        store.update_run_info(run_id, status=RunStatus.FINISHED, end_time=99)
        with pytest.raises(InvalidState, match="FINISHED"):
            store.log_metric(run_id, Metric("m", 1.0, 1, 0))
        with pytest.raises(InvalidState):
            store.log_param(run_id, Param("p", "v"))
        store.set_tag(run_id, Tag("reviewed", "yes"))
        run = store.get_run(run_id)
        assert run.tags["reviewed"] == "yes"
        assert (run.info.status, run.info.end_time) == (RunStatus.FINISHED, 99)
        store.update_run_info(run_id, status=RunStatus.RUNNING)
        store.log_metric(run_id, Metric("m", 1.0, 1, 0))

    def test_deleted_run_refuses_writes(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        store.delete_run(run_id)
        with pytest.raises(InvalidState, match="active"):
            store.set_tag(run_id, Tag("k", "v"))
        store.restore_run(run_id)
        store.set_tag(run_id, Tag("k", "v"))

    def test_delete_tag(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        store.set_tag(run_id, Tag("k", "v"))
        store.delete_tag(run_id, "k")
        assert "k" not in store.get_run(run_id).tags
        with pytest.raises(NotFound):
            store.delete_tag(run_id, "k")

    def test_update_run_name_and_bad_status(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        info = store.update_run_info(run_id, run_name="renamed")
        assert info.run_name == "renamed"
        assert store.get_run(run_id).tags["mlflow.runName"] == "renamed"
        with pytest.raises(InvalidInput, match="status"):
            store.update_run_info(run_id, status="DONE")

    def test_log_inputs(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        dataset = Dataset("train", "a" * 64, "local", "/data/train.parquet", '{"cols": []}', None)
        item = DatasetInput(dataset, {"mlflow.data.context": "training"})
        store.log_inputs(run_id, [item])
        store.log_inputs(run_id, [item])
        assert store.get_run(run_id).inputs == [item]

    def test_metric_history_paging(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        store.log_metrics(run_id, [Metric("m", float(i), i, i) for i in range(2500)])
        page = store.get_metric_history(run_id, "m", max_results=1000)
        steps = [m.step for m in page.items]
        while page.next_page_token:
            page = store.get_metric_history(run_id, "m", max_results=1000, page_token=page.next_page_token)
            steps += [m.step for m in page.items]
        assert steps == list(range(2500))

    def test_search_runs(self, store: TrackingStore) -> None:
        experiment_id = store.create_experiment(unique())
        runs = []
        for i in range(6):
            run_id = store.create_run(experiment_id, start_time=1000 + i).info.run_id
            store.log_batch(
                run_id,
                metrics=[Metric("acc", i / 10, 1, 0)],
                params=[Param("model", "rf" if i % 2 else "lr")],
            )
            runs.append(run_id)
        found = store.search_runs([experiment_id], "metrics.acc > 0.25", order_by=["metrics.acc DESC"])
        assert [r.info.run_id for r in found.items] == runs[:2:-1]
        either = store.search_runs([experiment_id], "params.model = 'rf' OR metrics.acc < 0.1")
        assert {r.info.run_id for r in either.items} == {runs[0], runs[1], runs[3], runs[5]}
        assert store.count_runs([experiment_id], "params.model = 'lr'") == 3
        with pytest.raises(InvalidInput):
            store.search_runs([experiment_id], "metrics.acc >>> 1")
        with pytest.raises(InvalidInput, match="max_results"):
            store.search_runs([experiment_id], max_results=50_001)

    def test_search_runs_pages_and_view(self, store: TrackingStore) -> None:
        experiment_id = store.create_experiment(unique())
        ids = [store.create_run(experiment_id, start_time=i).info.run_id for i in range(7)]
        store.delete_run(ids[0])
        page = store.search_runs([experiment_id], max_results=3)
        seen = [r.info.run_id for r in page.items]
        while page.next_page_token:
            page = store.search_runs([experiment_id], max_results=3, page_token=page.next_page_token)
            seen += [r.info.run_id for r in page.items]
        assert seen == ids[:0:-1]
        deleted = store.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
        assert [r.info.run_id for r in deleted.items] == [ids[0]]

    def test_concurrent_writers_lose_nothing(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id

        def write(worker: int) -> None:
            for batch in range(10):
                points = [
                    Metric(f"w{worker}", float(i), batch * 100 + i, batch * 100 + i) for i in range(100)
                ]
                store.log_batch(run_id, metrics=points)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for worker in range(4):
            assert len(store.get_metric_history(run_id, f"w{worker}").items) == 1000

    # -- artifact index and garbage collection ---------------------------------------------

    def test_artifact_index(self, store: TrackingStore) -> None:
        run = store.create_run(store.create_experiment(unique()))
        root = f"{run.info.experiment_id}/{run.info.run_id}/artifacts"
        for name in ("a.txt", "dir/b.txt", "dir/c.txt"):
            store.record_artifact(ArtifactRecord(f"{root}/{name}", 3, "0" * 64, run.info.run_id, 1))
        listed = [r.path for r in store.list_artifact_records(f"{root}/dir/")]
        assert listed == [f"{root}/dir/b.txt", f"{root}/dir/c.txt"]
        got = store.get_artifact_record(f"{root}/a.txt")
        assert got is not None
        assert got.run_id == run.info.run_id
        assert store.delete_artifact_records(f"{root}/dir") == 2
        assert store.get_artifact_record(f"{root}/dir/b.txt") is None
        with pytest.raises(InvalidInput):
            store.record_artifact(ArtifactRecord(f"{root}/bad", -1, "short", None, 1))

    def test_hard_delete_only_after_soft_delete(self, store: TrackingStore) -> None:
        run_id = store.create_run(store.create_experiment(unique())).info.run_id
        store.log_metric(run_id, Metric("m", 1.0, 1, 0))
        with pytest.raises(InvalidState):
            store.hard_delete_run(run_id)
        store.delete_run(run_id)
        assert run_id in store.deleted_run_ids()
        store.hard_delete_run(run_id)
        with pytest.raises(RunNotFound):
            store.get_run(run_id)
