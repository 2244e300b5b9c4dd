"""Lineage of pipeline artifacts and runs: the walks, references, OpenLineage export and CLI.

The tables are filled directly, the way the engine records a run, with two runs of one
pipeline: run A computes everything; run B reuses load, split and train from A's cache
and runs a changed evaluate. The walks are checked against the exact nodes and edges.

The OpenLineage schemas in ``data/`` are the published ones, copied from
OpenLineage/OpenLineage (Apache-2.0; see ``data/README.md``).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from sqlalchemy import delete, event, insert
from typer.testing import CliRunner, Result

from conveyor.cli import _ConveyorGroup
from conveyor.cli.lineage import lineage
from conveyor.errors import InvalidInput, NotFound
from conveyor.pipelines.lineage import (
    LineageGraph,
    downstream,
    openlineage_events,
    step_key,
    upstream,
)
from conveyor.store import open_store
from conveyor.store.rest import RestStore
from conveyor.store.sql import schema as s
from conveyor.store.sql.store import SqlStore

DATA = Path(__file__).parent / "data"
RUN_A = "a1" * 16
RUN_B = "b2" * 16
RUN_C = "c3" * 16
RUN_FAN_OUT = "f0" * 16
RUN_IDS = (RUN_A, RUN_B, RUN_C, RUN_FAN_OUT)
T0 = 1_700_000_000_000
ROOT = "file:///srv/artifacts"


def sha(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


RAW, TRAIN_SET, TEST_SET = sha("raw"), sha("train_set"), sha("test_set")
MODELS = [sha(f"model{i}") for i in range(3)]
METRICS_A, METRICS_B = sha("metrics A"), sha("metrics B")
#: Short names for the assertions.
NAMES = {
    RAW: "raw",
    TRAIN_SET: "train_set",
    TEST_SET: "test_set",
    **{m: f"model{i}" for i, m in enumerate(MODELS)},
    METRICS_A: "metrics_a",
    METRICS_B: "metrics_b",
}
PATHS = {digest: f"pipelines/objects/{digest[:2]}/{digest}" for digest in NAMES}
CODE = {node: sha(f"code of {node}") for node in ("load", "split", "train", "evaluate")}
NEW_EVALUATE_CODE = sha("code of evaluate, v2")


# -- recording runs the way the engine does ------------------------------------------------------


class Recorder:
    """Inserts pipeline rows, filling the columns lineage does not read with plausible values."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def run(self, run_id: str, start: int, status: str = "SUCCEEDED", **values: Any) -> None:
        row = {
            "id": run_id,
            "pipeline": "churn",
            "target": "flows/churn.py:churn",
            "status": status,
            "params": "{}",
            "spec": "{}",
            "executor": "local",
            "mode": "run",
            "host": "laptop",
            "user": "ada",
            "git_commit": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
            "git_dirty": False,
            "python_version": "3.12.3",
            "packages_hash": sha("packages"),
            "start_time": start,
            "end_time": None if status == "RUNNING" else start + 60_000,
            **values,
        }
        self._insert(s.pipeline_runs, [row])

    def step(self, run_id: str, node_id: str, position: int, status: str, **values: Any) -> None:
        code = values.pop("code", CODE.get(node_id))
        parts = {"code": {"digest": code, "parts": {}}, "params": {}, "inputs": {}, "serializers": {}}
        start = T0 + position * 1000 if status != "SKIPPED" else None
        row = {
            "run_id": run_id,
            "node_id": node_id,
            "step_name": node_id,
            "position": position,
            "status": status,
            "attempts": 1,
            "tasks": 1,
            "start_time": start,
            "end_time": None if start is None or status == "RUNNING" else start + 500,
            "cache_key": sha(f"{node_id} {code}"),
            "cache_parts": json.dumps(parts),
            **values,
        }
        self._insert(s.pipeline_steps, [row])

    def uses(self, run_id: str, node_id: str, role: str, items: dict[str, tuple[str, str]]) -> None:
        """``items``: name → (sha256, producer run)."""
        rows = [
            {
                "run_id": run_id,
                "node_id": node_id,
                "role": role,
                "name": name,
                "path": PATHS.get(digest, f"pipelines/objects/{digest[:2]}/{digest}"),
                "sha256": digest,
                "serializer": "pickle",
                "size": 1024,
                "producer_run_id": producer,
            }
            for name, (digest, producer) in items.items()
        ]
        self._insert(s.pipeline_artifacts, rows)

    def _insert(self, table: Any, rows: list[dict[str, Any]]) -> None:
        with self.store._write() as conn:
            conn.execute(insert(table), rows)


def record_churn_runs(store: SqlStore) -> None:
    """Run A computes everything; run B takes load, split and train from A's cache."""
    rec = Recorder(store)
    rec.run(RUN_A, T0)
    rec.run(RUN_B, T0 + 3_600_000)
    for run in (RUN_A, RUN_B):
        cached = {"status": "CACHED", "cached_from": RUN_A} if run == RUN_B else {"status": "SUCCEEDED"}
        rec.step(run, "load", 0, **cached)
        rec.uses(run, "load", "output", {"return": (RAW, RUN_A)})
        rec.step(run, "split", 1, **cached)
        rec.uses(run, "split", "input", {"df": (RAW, RUN_A)})
        rec.uses(run, "split", "output", {"0": (TRAIN_SET, RUN_A), "1": (TEST_SET, RUN_A)})
        rec.step(run, "train", 2, **cached)
        rec.uses(run, "train", "input", {"data": (TRAIN_SET, RUN_A)})
        rec.uses(run, "train", "output", {f"[{i}]": (m, RUN_A) for i, m in enumerate(MODELS)})
    rec.step(RUN_A, "evaluate", 3, "SUCCEEDED")
    rec.step(RUN_B, "evaluate", 3, "SUCCEEDED", code=NEW_EVALUATE_CODE)
    for run, metrics in ((RUN_A, METRICS_A), (RUN_B, METRICS_B)):
        inputs = {f"models[{i}]": (m, RUN_A) for i, m in enumerate(MODELS)}
        rec.uses(
            run, "evaluate", "input", {**inputs, "data": (TEST_SET, RUN_A), "holdout": (TEST_SET, RUN_A)}
        )
        rec.uses(run, "evaluate", "output", {"return": (metrics, run)})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    """The churn runs in a fresh SQLite file, or in the session's PostgreSQL database.

    The PostgreSQL database is shared by the session, so this module's runs are deleted
    after each test (steps and artifacts go with them: the foreign keys cascade).
    """
    sqlite = request.param == "sqlite"
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if sqlite else request.getfixturevalue("postgres_url")
    opened = open_store(url)
    assert isinstance(opened, SqlStore)
    record_churn_runs(opened)
    yield opened
    if not sqlite:
        with opened._write() as conn:
            conn.execute(delete(s.pipeline_runs).where(s.pipeline_runs.c.id.in_(RUN_IDS)))
    opened.close()


# -- reading graphs in short names ---------------------------------------------------------------


def short(key: str) -> str:
    kind, _, rest = key.partition(":")
    if kind == "artifact":
        return NAMES.get(rest, rest[:8])
    run_id, _, node_id = rest.partition("/")
    return f"{'A' if run_id == RUN_A else 'B' if run_id == RUN_B else run_id[:4]}/{node_id}"


def steps_of(graph: LineageGraph) -> set[str]:
    return {short(key) for key in graph.steps}


def artifacts_of(graph: LineageGraph) -> set[str]:
    return {short(key) for key in graph.artifacts}


def edges_of(graph: LineageGraph) -> set[tuple[str, str, str]]:
    return {(short(e.source), short(e.target), e.name) for e in graph.edges}


MODEL_NAMES = {"model0", "model1", "model2"}

#: What B's metrics came from: its evaluate, and the steps of A that computed the rest.
UPSTREAM_OF_METRICS_B = {
    ("A/load", "raw", "return"),
    ("raw", "A/split", "df"),
    ("A/split", "train_set", "0"),
    ("A/split", "test_set", "1"),
    ("train_set", "A/train", "data"),
    *{("A/train", f"model{i}", f"[{i}]") for i in range(3)},
    *{(f"model{i}", "B/evaluate", f"models[{i}]") for i in range(3)},
    ("test_set", "B/evaluate", "data"),
    ("test_set", "B/evaluate", "holdout"),
    ("B/evaluate", "metrics_b", "return"),
}


# -- upstream and downstream ---------------------------------------------------------------------


def test_upstream_of_an_artifact_follows_cache_hits_to_the_run_that_computed_them(store: SqlStore) -> None:
    graph = upstream(store, METRICS_B)

    assert graph.root == f"artifact:{METRICS_B}"
    assert steps_of(graph) == {"B/evaluate", "A/train", "A/split", "A/load"}
    assert artifacts_of(graph) == {"metrics_b", "test_set", "train_set", "raw", *MODEL_NAMES}
    assert edges_of(graph) == UPSTREAM_OF_METRICS_B
    assert graph.runs.keys() == {RUN_A, RUN_B}
    evaluate = graph.steps[step_key(RUN_B, "evaluate")]
    assert (evaluate.code_digest, evaluate.status) == (NEW_EVALUATE_CODE, "SUCCEEDED")
    assert graph.steps[step_key(RUN_A, "train")].code_digest == CODE["train"]


def test_downstream_of_an_artifact_includes_every_run_that_read_it(store: SqlStore) -> None:
    graph = downstream(store, RAW)

    assert steps_of(graph) == {"A/split", "B/split", "A/train", "B/train", "A/evaluate", "B/evaluate"}
    assert artifacts_of(graph) == {"raw", "train_set", "test_set", "metrics_a", "metrics_b", *MODEL_NAMES}
    assert ("raw", "B/split", "df") in edges_of(graph)
    assert ("B/train", "model1", "[1]") in edges_of(graph)
    assert not {e for e in edges_of(graph) if e[1] in {"A/load", "B/load"}}


def test_upstream_of_a_run_adds_the_earlier_runs_its_cache_hits_came_from(store: SqlStore) -> None:
    graph = upstream(store, f"run:{RUN_B}")

    assert graph.root == f"run:{RUN_B}"
    assert steps_of(graph) == {"B/load", "B/split", "B/train", "B/evaluate", "A/load", "A/split", "A/train"}
    assert artifacts_of(graph) == {"raw", "train_set", "test_set", "metrics_b", *MODEL_NAMES}
    assert ("A/train", "model0", "[0]") in edges_of(graph)
    assert graph.steps[step_key(RUN_B, "train")].cached_from == RUN_A


def test_downstream_of_a_run_follows_only_the_outputs_it_computed(store: SqlStore) -> None:
    of_a = downstream(store, f"run:{RUN_A}")
    of_b = downstream(store, RUN_B)  # a bare run id works when a run has it

    assert steps_of(of_a) == {
        "A/load",
        "A/split",
        "A/train",
        "A/evaluate",
        "B/split",
        "B/train",
        "B/evaluate",
    }
    assert "metrics_b" in artifacts_of(of_a)
    assert steps_of(of_b) == {"B/load", "B/split", "B/train", "B/evaluate"}


def test_depth_limits_the_levels_of_steps(store: SqlStore) -> None:
    one = upstream(store, METRICS_B, max_depth=1)
    none = upstream(store, METRICS_B, max_depth=0)

    assert steps_of(one) == {"B/evaluate"}
    assert artifacts_of(one) == {"metrics_b", "test_set", *MODEL_NAMES}
    assert (steps_of(none), artifacts_of(none), none.edges) == (set(), {"metrics_b"}, set())
    with pytest.raises(InvalidInput, match="depth"):
        upstream(store, METRICS_B, max_depth=-1)


def test_graph_serializes_to_json_in_a_stable_order(store: SqlStore) -> None:
    data = upstream(store, METRICS_B).to_dict()

    assert json.loads(json.dumps(data)) == data
    assert [r["run_id"] for r in data["runs"]] == [RUN_A, RUN_B]
    assert [st["key"] for st in data["steps"]] == [
        step_key(RUN_A, "load"),
        step_key(RUN_A, "split"),
        step_key(RUN_A, "train"),
        step_key(RUN_B, "evaluate"),
    ]
    assert data["artifacts"][0].keys() == {"key", "sha256", "path", "serializer", "size", "producer_run_id"}
    assert len(data["edges"]) == len(UPSTREAM_OF_METRICS_B)
    assert data == upstream(store, METRICS_B).to_dict()


# -- references ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [METRICS_B, METRICS_B[:8], METRICS_B[:12].upper(), PATHS[METRICS_B]],
    ids=["sha", "prefix", "uppercase", "path"],
)
def test_an_artifact_is_found_by_hash_prefix_or_path(store: SqlStore, ref: str) -> None:
    assert upstream(store, ref, max_depth=0).root == f"artifact:{METRICS_B}"


def test_a_run_is_found_by_prefixed_bare_or_dashed_id(store: SqlStore) -> None:
    dashed = str(uuid.UUID(RUN_B))
    for ref in (f"run:{RUN_B}", f"run:{dashed}", dashed, RUN_B.upper()):
        assert downstream(store, ref, max_depth=0).root == f"run:{RUN_B}"


def test_an_ambiguous_prefix_lists_the_candidates(store: SqlStore) -> None:
    twins = ["deadbeef" + sha("x")[8:], "deadbeef" + sha("y")[8:]]
    rec = Recorder(store)
    rec.run(RUN_C, T0)
    rec.step(RUN_C, "make", 0, "SUCCEEDED")
    rec.uses(RUN_C, "make", "output", {"0": (twins[0], RUN_C), "1": (twins[1], RUN_C)})

    with pytest.raises(InvalidInput, match="matches several artifacts") as caught:
        upstream(store, "deadbeef")
    assert all(t in str(caught.value) for t in twins)
    assert upstream(store, twins[1][:9]).root == f"artifact:{twins[1]}"


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        ("0123456789abcdef", NotFound, "No pipeline step read or wrote"),
        ("pipelines/objects/nowhere", NotFound, "No pipeline step read or wrote"),
        ("abc", InvalidInput, "at least 8 hex characters"),
        ("run:" + RUN_C, NotFound, "No pipeline run"),
        ("run:latest", InvalidInput, "Invalid pipeline run id"),
    ],
)
def test_unknown_references_say_what_was_looked_for(
    store: SqlStore, ref: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        upstream(store, ref)


def test_a_server_store_is_refused() -> None:
    with pytest.raises(InvalidInput, match="database URL"):
        upstream(RestStore("http://127.0.0.1:5000"), RAW)


def record_fan_out(store: SqlStore) -> str:
    """``explode`` → ``process`` mapped over 1000 items → ``gather``; returns gather's output hash."""
    run, items = RUN_FAN_OUT, [sha(f"item {i}") for i in range(1000)]
    processed, total = [sha(f"processed {i}") for i in range(1000)], sha("total")
    rec = Recorder(store)
    rec.run(run, T0)
    rec.step(run, "explode", 0, "SUCCEEDED")
    rec.uses(run, "explode", "output", {f"[{i}]": (d, run) for i, d in enumerate(items)})
    rec.step(run, "process", 1, "SUCCEEDED")
    rec.uses(run, "process", "input", {f"item[{i}]": (d, run) for i, d in enumerate(items)})
    rec.uses(run, "process", "output", {f"[{i}]": (d, run) for i, d in enumerate(processed)})
    rec.step(run, "gather", 2, "SUCCEEDED")
    rec.uses(run, "gather", "input", {f"parts[{i}]": (d, run) for i, d in enumerate(processed)})
    rec.uses(run, "gather", "output", {"return": (total, run)})
    return total


def test_a_thousand_item_fan_out_takes_a_few_queries(store: SqlStore) -> None:
    total = record_fan_out(store)
    statements: list[str] = []
    assert store._reader is not None
    # Arguments are (conn, cursor, statement, …); counting SELECTs counts round trips.
    event.listen(store._reader, "before_cursor_execute", lambda *args: statements.append(args[2]))

    started = time.perf_counter()
    up = upstream(store, total)
    down = downstream(store, f"run:{RUN_FAN_OUT}")
    elapsed = time.perf_counter() - started

    assert (len(up.steps), len(up.artifacts), len(up.edges)) == (3, 2001, 4001)
    assert (len(down.steps), len(down.artifacts)) == (3, 2001)
    assert len([q for q in statements if q.startswith("SELECT")]) <= 20
    assert elapsed < 2.0


# -- OpenLineage ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The published OpenLineage schemas, by their ``$id``, so references between them resolve."""
    resources = [Resource.from_contents(json.loads(p.read_text())) for p in sorted(DATA.glob("*.json"))]
    return Registry().with_resources((r.contents["$id"], r) for r in resources)


def assert_valid(events: list[dict[str, Any]], registry: Registry) -> None:
    """Each event against the spec, and each standard facet against its own schema."""
    checker = Draft202012Validator.FORMAT_CHECKER
    spec = Draft202012Validator(
        registry.contents("https://openlineage.io/spec/2-0-2/OpenLineage.json"),
        registry=registry,
        format_checker=checker,
    )
    for item in events:
        spec.validate(item)
        datasets = [*item["inputs"], *item["outputs"]]
        facets = [*item["run"]["facets"].values(), *(f for d in datasets for f in d["facets"].values())]
        for facet in facets:
            if facet["_schemaURL"].startswith("https://openlineage.io/"):
                Draft202012Validator(
                    {"$ref": facet["_schemaURL"]}, registry=registry, format_checker=checker
                ).validate(facet)


def test_openlineage_events_of_a_run_follow_the_spec(store: SqlStore, registry: Registry) -> None:
    events = openlineage_events(store, f"run:{RUN_A}", artifact_root=ROOT)

    assert_valid(events, registry)
    assert [(e["eventType"], e["job"]["name"]) for e in events] == [
        ("START", "churn"),
        *[(kind, f"churn.{node}") for node in CODE for kind in ("START", "COMPLETE")],
        ("COMPLETE", "churn"),
    ]
    pipeline_run = str(uuid.UUID(RUN_A))
    assert {e["run"]["runId"] for e in (events[0], events[-1])} == {pipeline_run}
    steps = events[1:-1]
    assert {e["run"]["facets"]["parent"]["run"]["runId"] for e in steps} == {pipeline_run}
    assert len({e["run"]["runId"] for e in steps}) == 4
    assert openlineage_events(store, RUN_A, artifact_root=ROOT) == events
    assert datetime.fromisoformat(events[0]["eventTime"]) == datetime.fromtimestamp(T0 / 1000, UTC)


def test_openlineage_datasets_are_artifacts_with_their_hashes(store: SqlStore) -> None:
    events = openlineage_events(store, RUN_B, artifact_root=ROOT)
    by_job = {(e["job"]["name"], e["eventType"]): e for e in events}

    train = by_job["churn.train", "COMPLETE"]
    assert [d["name"] for d in train["inputs"]] == [PATHS[TRAIN_SET]]
    assert [d["name"] for d in train["outputs"]] == [PATHS[m] for m in MODELS]
    assert train["run"]["facets"]["conveyor_step"]["cachedFrom"] == RUN_A
    evaluate = by_job["churn.evaluate", "COMPLETE"]
    # Read as data and as holdout, the test set is one dataset.
    assert [d["name"] for d in evaluate["inputs"]] == [*(PATHS[m] for m in MODELS), PATHS[TEST_SET]]
    facet = evaluate["outputs"][0]["facets"]["conveyor_artifact"]
    assert (facet["sha256"], facet["serializer"], facet["size"]) == (METRICS_B, "pickle", 1024)
    assert evaluate["run"]["facets"]["conveyor_step"]["codeDigest"] == NEW_EVALUATE_CODE
    assert {d["namespace"] for d in evaluate["inputs"]} == {ROOT}
    pipeline = by_job["churn", "COMPLETE"]
    assert (pipeline["inputs"], [d["name"] for d in pipeline["outputs"]]) == ([], [PATHS[METRICS_B]])


def test_openlineage_events_of_a_failed_run(store: SqlStore, registry: Registry) -> None:
    run = RUN_C
    rec = Recorder(store)
    rec.run(run, T0, status="FAILED", error="load failed")
    rec.step(run, "load", 0, "FAILED", error="ValueError: no rows", traceback="Traceback …")
    rec.uses(run, "load", "input", {"source": (RAW, RUN_A)})
    rec.step(run, "split", 1, "SKIPPED")

    events = openlineage_events(store, run, artifact_root=ROOT)

    assert_valid(events, registry)
    assert [(e["eventType"], e["job"]["name"]) for e in events] == [
        ("START", "churn"),
        ("START", "churn.load"),
        ("FAIL", "churn.load"),
        ("FAIL", "churn"),
    ]
    assert events[2]["run"]["facets"]["errorMessage"]["stackTrace"] == "Traceback …"
    assert [d["name"] for d in events[0]["inputs"]] == [PATHS[RAW]]


def test_openlineage_needs_a_run(store: SqlStore) -> None:
    with pytest.raises(InvalidInput, match="Invalid pipeline run id"):
        openlineage_events(store, METRICS_B, artifact_root=ROOT)


# -- the command ---------------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A Conveyor home holding the two churn runs, and a wide terminal for the tree."""
    for name in ("CONVEYOR_TRACKING_URI", "CONVEYOR_DATABASE_URL", "CONVEYOR_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    opened = open_store(f"sqlite:///{tmp_path / 'conveyor.db'}")
    assert isinstance(opened, SqlStore)
    record_churn_runs(opened)
    opened.close()
    yield tmp_path


def invoke(*args: str) -> Result:
    app = typer.Typer(cls=_ConveyorGroup)

    @app.callback()
    def _root() -> None:
        """A root group, as in ``conveyor``, so the command keeps its name."""

    app.command("lineage")(lineage)
    return CliRunner().invoke(app, ["lineage", *args])


def test_cli_prints_the_upstream_tree(home: Path) -> None:
    result = invoke(PATHS[METRICS_B])

    assert result.exit_code == 0, result.output
    for text in (PATHS[METRICS_B], "b2b2b2b2/evaluate (SUCCEEDED)", "a1a1a1a1/load", "df: ", METRICS_B[:12]):
        assert text in result.stdout


def test_cli_tree_elides_long_lists(home: Path) -> None:
    store = open_store(f"sqlite:///{home / 'conveyor.db'}")
    assert isinstance(store, SqlStore)
    total = record_fan_out(store)
    store.close()

    result = invoke(total[:12], "--depth", "1")

    assert result.exit_code == 0, result.output
    assert "parts[0]: " in result.stdout
    assert "… 975 more (--json lists them all)" in result.stdout


def test_cli_json_is_the_graph(home: Path) -> None:
    result = invoke(f"run:{RUN_A}", "--downstream", "--depth", "1", "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["direction"], data["root"], data["max_depth"]) == ("downstream", f"run:{RUN_A}", 1)
    assert {short(st["key"]) for st in data["steps"]} >= {"B/split", "B/train", "B/evaluate"}


def test_cli_openlineage_prints_json_lines(home: Path) -> None:
    result = invoke(RUN_B, "--openlineage")

    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 10
    assert {d["namespace"] for e in events for d in e["inputs"]} == {(home / "artifacts").resolve().as_uri()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([METRICS_B, "--openlineage"], "Invalid pipeline run id"),
        ([METRICS_B, "--upstream", "--downstream"], "Choose one"),
        ([METRICS_B, "--tracking-uri", "http://127.0.0.1:5000"], "works on the database itself"),
        (["deadbeef00"], "No pipeline step read or wrote"),
    ],
)
def test_cli_errors_exit_1_with_a_message(home: Path, args: list[str], message: str) -> None:
    result = invoke(*args)

    assert result.exit_code == 1, result.output
    assert message in result.stderr.replace("\n", " ")
