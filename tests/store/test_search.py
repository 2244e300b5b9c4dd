"""The search language: parser unit tests, then compiled queries on SQLite and PostgreSQL.

The SQL half loads one small data set into both databases and asserts which runs (or
experiments) come back in which order, so any difference between the back ends shows
up as a failing parameter. The PostgreSQL database is created with an ICU ``en-US``
collation where the server allows it, so the test also proves that string ordering is
code-point ordering on both back ends, not the database's locale.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from conveyor.errors import InvalidInput
from conveyor.store.search import (
    MAX_COMPARISONS,
    MAX_DEPTH,
    And,
    Comparison,
    Entity,
    Op,
    Or,
    OrderKey,
    parse_experiment_filter,
    parse_experiment_order_by,
    parse_run_filter,
    parse_run_order_by,
)
from conveyor.store.sql import schema as s
from conveyor.store.sql.search import build_experiment_query, build_run_count, build_run_query

PG_ADMIN_URL = os.environ.get("CONVEYOR_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

M, P, T, A, D = Entity.METRIC, Entity.PARAM, Entity.TAG, Entity.ATTRIBUTE, Entity.DATASET


# == parser ================================================================================


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t"])
def test_blank_filter_is_no_filter(text: str | None) -> None:
    assert parse_run_filter(text) is None
    assert parse_experiment_filter(text) is None


@pytest.mark.parametrize(
    ("prefix", "entity"),
    [
        ("metric", M),
        ("metrics", M),
        ("param", P),
        ("params", P),
        ("parameter", P),
        ("parameters", P),
        ("tag", T),
        ("tags", T),
    ],
)
def test_entity_prefixes(prefix: str, entity: Entity) -> None:
    value = "1" if entity is M else "'1'"
    assert parse_run_filter(f"{prefix}.k = {value}") == Comparison(
        entity, "k", Op.EQ, 1 if entity is M else "1"
    )


@pytest.mark.parametrize("prefix", ["attribute.", "attributes.", "attr.", "run.", ""])
def test_attribute_prefixes(prefix: str) -> None:
    assert parse_run_filter(f"{prefix}status = 'FINISHED'") == Comparison(A, "status", Op.EQ, "FINISHED")


@pytest.mark.parametrize("prefix", ["dataset", "datasets"])
@pytest.mark.parametrize("field", ["name", "digest", "context"])
def test_dataset_fields(prefix: str, field: str) -> None:
    assert parse_run_filter(f"{prefix}.{field} = 'x'") == Comparison(D, field, Op.EQ, "x")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("run_id = 'a'", "run_id"),
        ("run_name = 'a'", "run_name"),
        ("\"run name\" = 'a'", "run_name"),
        ("`Run name` = 'a'", "run_name"),
        ("attributes.\"Run Name\" = 'a'", "run_name"),
        ("user_id = 'a'", "user_id"),
        ("artifact_uri = 'a'", "artifact_uri"),
        ("lifecycle_stage = 'a'", "lifecycle_stage"),
    ],
)
def test_string_attributes_and_aliases(text: str, key: str) -> None:
    assert parse_run_filter(text) == Comparison(A, key, Op.EQ, "a")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("start_time > 5", "start_time"),
        ("created > 5", "start_time"),
        ("Created > 5", "start_time"),
        ("end_time > 5", "end_time"),
    ],
)
def test_time_attributes_and_aliases(text: str, key: str) -> None:
    assert parse_run_filter(text) == Comparison(A, key, Op.GT, 5)


def test_experiment_id_takes_numbers_or_quoted_digits() -> None:
    assert parse_run_filter("experiment_id = 3") == Comparison(A, "experiment_id", Op.EQ, 3)
    assert parse_run_filter("experiment_id IN ('1', \"2\", 3)") == Comparison(
        A, "experiment_id", Op.IN, (1, 2, 3)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.`model class` > 1", Comparison(M, "model class", Op.GT, 1)),
        ('metrics."model class" > 1', Comparison(M, "model class", Op.GT, 1)),
        ("tags.\"user-name\" = 'a'", Comparison(T, "user-name", Op.EQ, "a")),
        ("tags.`a.b` = 'a'", Comparison(T, "a.b", Op.EQ, "a")),
        ("tags.mlflow.parentRunId = 'a'", Comparison(T, "mlflow.parentRunId", Op.EQ, "a")),
        ("metrics.val/loss < 1", Comparison(M, "val/loss", Op.LT, 1)),
        ('params.p = "double"', Comparison(P, "p", Op.EQ, "double")),
        ("params.p = 'it''s'", Comparison(P, "p", Op.EQ, "it's")),
        ('params.p = "say ""hi"""', Comparison(P, "p", Op.EQ, 'say "hi"')),
        ("params.p = ''", Comparison(P, "p", Op.EQ, "")),
        ("params.p='x'", Comparison(P, "p", Op.EQ, "x")),
        ("metrics.m>=-1.5e3", Comparison(M, "m", Op.GE, -1500.0)),
        ("metrics.m < .5", Comparison(M, "m", Op.LT, 0.5)),
        ("metrics.m != +2", Comparison(M, "m", Op.NE, 2)),
    ],
)
def test_quoting_and_values(text: str, expected: Comparison) -> None:
    assert parse_run_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "op", "value"),
    [
        ("tags.t like 'a%'", Op.LIKE, "a%"),
        ("tags.t ILike 'a%'", Op.ILIKE, "a%"),
        ("tags.t in ('a')", Op.IN, ("a",)),
        ("tags.t Not In ('a', 'b',\"c\")", Op.NOT_IN, ("a", "b", "c")),
        ("tags.t is null", Op.IS_NULL, None),
        ("tags.t IS NOT NULL", Op.IS_NOT_NULL, None),
        ("tags.t != 'a'", Op.NE, "a"),
    ],
)
def test_comparators_and_keyword_case(text: str, op: Op, value: object) -> None:
    assert parse_run_filter(text) == Comparison(T, "t", op, value)


def test_and_binds_tighter_than_or() -> None:
    a, b, c = (Comparison(T, k, Op.EQ, "1") for k in "abc")
    assert parse_run_filter("tags.a = '1' OR tags.b = '1' and tags.c = '1'") == Or((a, And((b, c))))
    assert parse_run_filter("tags.a = '1' AND tags.b = '1' or tags.c = '1'") == Or((And((a, b)), c))
    assert parse_run_filter("(tags.a = '1' OR tags.b = '1') AND tags.c = '1'") == And((Or((a, b)), c))


def test_nested_groups_of_the_same_kind_flatten() -> None:
    a, b, c = (Comparison(T, k, Op.EQ, "1") for k in "abc")
    assert parse_run_filter("tags.a = '1' AND (tags.b = '1' AND (tags.c = '1'))") == And((a, b, c))
    assert parse_run_filter("((tags.a = '1'))") == a


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "metrics.loss",
            "expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, "
            "IS NOT NULL) after 'metrics.loss', got the end of the input at position 12",
        ),
        ("metrics.loss < 'a'", "expected a number for 'metrics.loss', got \"'a'\" at position 15"),
        ("metrics.loss < abc", "expected a number for 'metrics.loss', got 'abc' at position 15"),
        ("params.p = 1", "expected a quoted string for 'params.p', got '1' at position 11; put string"),
        ("params.p = abc", "expected a quoted string for 'params.p', got 'abc' at position 11"),
        ("params.p > '1'", "comparator > is not supported for 'params.p' at position 9; use one of"),
        ("metrics.m LIKE '1'", "comparator LIKE is not supported for 'metrics.m' at position 10"),
        ("metrics.m IN (1)", "comparator IN is not supported for 'metrics.m' at position 10"),
        ("start_time ILIKE '1'", "comparator ILIKE is not supported for 'start_time' at position 11"),
        ("experiment_id > 1", "comparator > is not supported for 'experiment_id' at position 14"),
        (
            "experiment_id = 'abc'",
            "expected an experiment id (digits) for 'experiment_id', got \"'abc'\" at position 16",
        ),
        ("foo.bar = 'x'", "unknown entity 'foo' in 'foo.bar' at position 0"),
        ("attributes.nope = 'x'", "unknown run attribute 'attributes.nope' at position 0; valid attributes"),
        ("nope = 'x'", "unknown run attribute 'nope' at position 0"),
        ("run name = 'x'", "unknown run attribute 'run' at position 0"),
        ("datasets.size = 'x'", "unknown dataset field 'datasets.size' at position 0"),
        ("tags.x = 'a' AND", "expected a key to compare, got the end of the input at position 16"),
        ("tags.x = 'a' OR OR tags.y = 'b'", "expected a key to compare, got 'OR' at position 16"),
        (
            "(tags.x = 'a'",
            "expected ')' to close the '(' at position 0, got the end of the input at position 13",
        ),
        ("tags.x = 'a')", "unbalanced ')' at position 12"),
        ("tags.x = 'a' tags.y = 'b'", "unexpected 'tags.y' at position 13"),
        ("NOT tags.x = 'a'", "unsupported NOT at position 0; NOT only appears in 'NOT IN'"),
        ("tags.x NOT LIKE 'a'", "expected IN after NOT, got 'LIKE' at position 11"),
        ("tags.x IS 'a'", "expected NULL after IS, got \"'a'\" at position 10"),
        ("tags.x IS NOT 'a'", "expected NULL after IS NOT, got \"'a'\" at position 14"),
        ("tags.x IN 'a'", "expected '(' to start the value list for 'tags.x', got \"'a'\" at position 10"),
        (
            "tags.x IN ('a' 'b')",
            "expected ',' or ')' in the value list for 'tags.x', got \"'b'\" at position 15",
        ),
        ("tags.x IN ()", "expected a quoted string for 'tags.x', got ')' at position 11"),
        ("tags.x = 'abc", "unterminated '-quoted text at position 9"),
        ("tags.`x = 'a'", "unterminated `-quoted text at position 5"),
        ("tags.x = 'a'; DROP TABLE runs", "unexpected character ';' at position 12"),
        ("tags. = 'x'", "expected a key name right after '.', got '=' at position 6"),
        ("tags.`` = 'x'", "empty key in 'tags.``' at position 0"),
        ("= 'x'", "expected a key to compare, got '=' at position 0"),
        ("tags.x == 'a'", "expected a quoted string for 'tags.x', got '=' at position 8"),
    ],
)
def test_filter_errors_name_token_and_position(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_run_filter(text)
    assert info.value.message.startswith(f"Invalid filter {text!r}: ")
    assert message in info.value.message


def test_invalid_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown entity"):
        parse_run_filter("x.y = 'z'")


def test_nesting_and_size_are_bounded() -> None:
    deep = "(" * (MAX_DEPTH + 1) + "tags.x = 'a'" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(InvalidInput, match=f"nested deeper than {MAX_DEPTH} levels at position {MAX_DEPTH}"):
        parse_run_filter(deep)
    ok = "(" * MAX_DEPTH + "tags.x = 'a'" + ")" * MAX_DEPTH
    assert parse_run_filter(ok) == Comparison(T, "x", Op.EQ, "a")
    with pytest.raises(InvalidInput, match=f"more than {MAX_COMPARISONS} comparisons"):
        parse_run_filter(" OR ".join(["tags.x = 'a'"] * (MAX_COMPARISONS + 1)))


def test_experiment_filter_grammar() -> None:
    assert parse_experiment_filter("name LIKE 'a%' AND tags.`team.name` = 'x'") == And(
        (Comparison(A, "name", Op.LIKE, "a%"), Comparison(T, "team.name", Op.EQ, "x"))
    )
    assert parse_experiment_filter("attributes.creation_time >= 1 OR last_update_time < 2") == Or(
        (Comparison(A, "creation_time", Op.GE, 1), Comparison(A, "last_update_time", Op.LT, 2))
    )
    assert parse_experiment_filter("experiment_id IN ('1')") == Comparison(A, "experiment_id", Op.IN, (1,))
    assert parse_experiment_filter("lifecycle_stage = 'deleted'") == Comparison(
        A, "lifecycle_stage", Op.EQ, "deleted"
    )
    with pytest.raises(InvalidInput, match="cannot filter on metrics in experiment searches"):
        parse_experiment_filter("metrics.x > 1")
    with pytest.raises(InvalidInput, match="cannot filter on params in experiment searches"):
        parse_experiment_filter("params.x = '1'")
    with pytest.raises(InvalidInput, match="unknown experiment attribute 'run_name'"):
        parse_experiment_filter("run_name = 'x'")
    with pytest.raises(InvalidInput, match="expected a number for 'creation_time'"):
        parse_experiment_filter("creation_time > '1'")


def test_run_order_by() -> None:
    assert parse_run_order_by(None) == []
    assert parse_run_order_by(
        ["metrics.`model class` DESC", "params.lr asc", "tags.mlflow.user", "created desc", '"Run name"']
    ) == [
        OrderKey(M, "model class", ascending=False),
        OrderKey(P, "lr"),
        OrderKey(T, "mlflow.user"),
        OrderKey(A, "start_time", ascending=False),
        OrderKey(A, "run_name"),
    ]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("", "Invalid order_by clause '': expected '<key> [ASC|DESC]'"),
        ("metrics.x sideways", "expected ASC or DESC after 'metrics.x', got 'sideways' at position 10"),
        ("metrics.x ASC DESC", "unexpected 'DESC' at position 14"),
        ("dataset.name", "cannot order by datasets in run searches"),
        ("attributes.nope", "unknown run attribute 'attributes.nope' at position 0"),
        ("DESC", "expected an order_by key, got 'DESC' at position 0"),
    ],
)
def test_run_order_by_errors(item: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_run_order_by([item])
    assert message in info.value.message


def test_experiment_order_by() -> None:
    assert parse_experiment_order_by(["name", "experiment_id DESC", "creation_time", "last_update_time"]) == [
        OrderKey(A, "name"),
        OrderKey(A, "experiment_id", ascending=False),
        OrderKey(A, "creation_time"),
        OrderKey(A, "last_update_time"),
    ]
    with pytest.raises(InvalidInput, match="cannot order by tags in experiment searches"):
        parse_experiment_order_by(["tags.x"])
    with pytest.raises(InvalidInput, match="unknown experiment attribute 'lifecycle_stage'"):
        parse_experiment_order_by(["lifecycle_stage"])


# == compiled queries on SQLite and PostgreSQL =============================================

NAN = float("nan")

EXPERIMENTS = [
    # id, name, lifecycle_stage, creation_time, last_update_time, tags
    (1, "exp-alpha", "active", 10, 50, {"team": "core", "owner.name": "ann"}),
    (2, "exp-beta", "active", 20, 40, {"team": "ml"}),
    (3, "Exp-gamma", "active", 20, 60, {}),
    (4, "old", "deleted", 5, 5, {"team": "core"}),
]

RUNS = [
    # run_uuid, experiment, name, user, status, start, end, stage
    ("r1", 1, "alpha", "ann", "FINISHED", 100, 200, "active"),
    ("r2", 1, "Beta", "bob", "FAILED", 200, None, "active"),
    ("r3", 1, "gamma", "ann", "RUNNING", 300, None, "active"),
    ("r4", 1, "delta", "cat", "FINISHED", 300, 400, "active"),
    ("r5", 1, "deleted-run", "ann", "FINISHED", 50, 60, "deleted"),
    ("r6", 2, "other", "ann", "FINISHED", 500, 600, "active"),
]

METRICS = {
    "r1": {"loss": 0.5, "acc": 0.9, "model class": 1.0},
    "r2": {"loss": 0.2, "acc": NAN},
    "r3": {"loss": NAN},
    "r4": {"acc": 0.95, "val/loss": float("inf")},
    "r5": {"loss": 0.1},
    "r6": {"loss": 0.3},
}

PARAMS = {
    "r1": {"lr": "0.1", "model": "LogisticRegression"},
    "r2": {"lr": "0.01", "model": "logisticregression"},
    "r3": {"model": "Tree%", "city": "École"},
    "r4": {"model": "a[b]*?", "q": "it's"},
    "r5": {"lr": "0.1"},
    "r6": {"lr": "0.1"},
}

TAGS = {
    "r1": {"mlflow.parentRunId": "r0", "team": "Core", "user-name": "ann"},
    "r2": {"team": "core"},
    "r3": {"team": "ml_ops"},
    "r6": {"team": "core"},
}

DATASETS = [(1, 1, "train_ds", "abc123"), (2, 1, "eval_ds", "def456")]
INPUTS = [
    ("r1", 1, {"mlflow.data.context": "training"}),
    ("r1", 2, {"mlflow.data.context": "eval"}),
    ("r2", 1, {}),
]


def _load(engine: Engine) -> None:
    s.metadata.create_all(engine)
    pk = {uuid: index for index, (uuid, *_rest) in enumerate(RUNS, start=1)}
    with engine.begin() as conn:
        conn.execute(
            sa.insert(s.experiments),
            [
                {
                    "id": i,
                    "name": n,
                    "artifact_location": f"file:///a/{i}",
                    "lifecycle_stage": st,
                    "creation_time": c,
                    "last_update_time": u,
                }
                for i, n, st, c, u, _tags in EXPERIMENTS
            ],
        )
        conn.execute(
            sa.insert(s.experiment_tags),
            [{"experiment_id": e[0], "key": k, "value": v} for e in EXPERIMENTS for k, v in e[5].items()],
        )
        conn.execute(
            sa.insert(s.runs),
            [
                {
                    "id": pk[u],
                    "run_uuid": u,
                    "experiment_id": e,
                    "name": n,
                    "user_id": usr,
                    "status": st,
                    "start_time": start,
                    "end_time": end,
                    "artifact_uri": f"file:///a/{e}/{u}/artifacts",
                    "lifecycle_stage": stage,
                }
                for u, e, n, usr, st, start, end, stage in RUNS
            ],
        )
        conn.execute(
            sa.insert(s.latest_metrics),
            [
                {
                    "run_id": pk[u],
                    "key": k,
                    "step": 0,
                    "timestamp": 0,
                    "value": 0.0 if math.isnan(v) else v,
                    "is_nan": math.isnan(v),
                }
                for u, values in METRICS.items()
                for k, v in values.items()
            ],
        )
        for table, data in ((s.params, PARAMS), (s.tags, TAGS)):
            rows = [{"run_id": pk[u], "key": k, "value": v} for u, kv in data.items() for k, v in kv.items()]
            conn.execute(sa.insert(table), rows)
        conn.execute(
            sa.insert(s.datasets),
            [
                {"id": i, "experiment_id": e, "name": n, "digest": d, "source_type": "local", "source": "x"}
                for i, e, n, d in DATASETS
            ],
        )
        conn.execute(
            sa.insert(s.inputs),
            [{"run_id": pk[u], "dataset_id": d, "tags": json.dumps(t)} for u, d, t in INPUTS],
        )


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('search') / 'search.db'}")
    _load(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def postgres_engine() -> Iterator[Engine]:
    admin_url = sa.make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"conveyor_search_{secrets.token_hex(6)}"
    try:
        conn = admin.connect()
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required on {PG_ADMIN_URL} for the search tests: {exc}")
    try:
        # A linguistic collation makes plain ORDER BY differ from code-point order.
        conn.execute(
            sa.text(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'")
        )
    except sa.exc.DBAPIError:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine = sa.create_engine(admin_url.set(database=name))
    try:
        _load(engine)
        yield engine
    finally:
        engine.dispose()
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.close()
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue(f"{request.param}_engine")


def _runs(
    engine: Engine,
    filter_string: str = "",
    order_by: list[str] | None = None,
    experiments: tuple[int, ...] = (1,),
    stages: tuple[str, ...] = ("active",),
) -> list[str]:
    query = build_run_query(list(experiments), stages, filter_string, order_by or [])
    with engine.connect() as conn:
        found = [row.run_uuid for row in conn.execute(query)]
        count = conn.execute(build_run_count(list(experiments), stages, filter_string)).scalar_one()
    assert count == len(found)
    return found


RUN_FILTERS = [
    ("", {"r1", "r2", "r3", "r4"}),
    # metrics: NaN never matches a number, and its stored 0 must not leak through
    ("metrics.loss < 0.4", {"r2"}),
    ("metrics.loss != 0.5", {"r2"}),
    ("metrics.loss = 0", set()),
    ("metrics.loss >= 0.2 and metrics.loss <= 0.5", {"r1", "r2"}),
    ("metrics.loss IS NULL", {"r4"}),
    ("metrics.loss IS NOT NULL", {"r1", "r2", "r3"}),
    ("metrics.acc > 0.9", {"r4"}),
    ("metrics.acc >= 0.9", {"r1", "r4"}),
    ("metrics.`model class` = 1", {"r1"}),
    ("metrics.val/loss > 1e300", {"r4"}),
    # params and tags: exact, case-sensitive LIKE, ILIKE, escapes, lists, absence
    ("params.model = 'LogisticRegression'", {"r1"}),
    ("params.model LIKE 'Logistic%'", {"r1"}),
    ("params.model LIKE 'logistic%'", {"r2"}),
    ("params.model ILIKE 'LOGISTIC%'", {"r1", "r2"}),
    ("params.model ILIKE '%REGRESSION'", {"r1", "r2"}),
    ("params.model LIKE 'Tree\\%'", {"r3"}),
    ("params.model LIKE 'Tree_'", {"r3"}),
    ("params.model LIKE 'Tre\\_%'", set()),
    ("params.model LIKE 'a[b]*?'", {"r4"}),
    ("params.model LIKE '_[b]%'", {"r4"}),
    ("params.model LIKE '%*?'", {"r4"}),
    ("params.model LIKE 'a*'", set()),
    ("params.lr != '0.1'", {"r2"}),
    ("params.lr IS NULL", {"r3", "r4"}),
    ("params.lr IN ('0.1', '0.01')", {"r1", "r2"}),
    ("params.lr NOT IN ('0.1')", {"r2"}),
    ("params.q = 'it''s'", {"r4"}),
    ("params.city = 'École'", {"r3"}),
    ("params.city LIKE 'É%'", {"r3"}),
    ("params.city ILIKE 'ÉCOLE'", {"r3"}),
    ("params.city LIKE 'école'", set()),
    ('params.q = "it\'s"', {"r4"}),
    ("tags.mlflow.parentRunId = 'r0'", {"r1"}),
    ("tags.\"user-name\" = 'ann'", {"r1"}),
    ("tags.`user-name` = 'ann'", {"r1"}),
    ("tags.team = 'core' OR tags.team = 'Core'", {"r1", "r2"}),
    ("tags.team LIKE 'ml\\_%'", {"r3"}),
    ("tags.team ILIKE 'CORE'", {"r1", "r2"}),
    ("tags.team IS NOT NULL AND tags.team NOT IN ('core', 'Core')", {"r3"}),
    # precedence: AND binds tighter than OR
    ("tags.team = 'ml_ops' OR metrics.loss < 0.4 AND params.lr = '0.1'", {"r3"}),
    ("(tags.team = 'ml_ops' OR metrics.loss < 0.4) AND params.lr = '0.01'", {"r2"}),
    ("(tags.team = 'ml_ops' OR metrics.loss < 0.4) AND params.lr = '0.1'", set()),
    # attributes
    ("run_name = 'alpha'", {"r1"}),
    ("\"Run name\" = 'Beta'", {"r2"}),
    ("`run name` ILIKE 'b%'", {"r2"}),
    ("attributes.run_name LIKE 'b%'", set()),
    ("status IN ('FINISHED', 'FAILED')", {"r1", "r2", "r4"}),
    ("status NOT IN ('RUNNING')", {"r1", "r2", "r4"}),
    ("attr.user_id = 'ann'", {"r1", "r3"}),
    ("run.start_time >= 300", {"r3", "r4"}),
    ("created < 200", {"r1"}),
    ("end_time IS NULL", {"r2", "r3"}),
    ("end_time > 0", {"r1", "r4"}),
    ("run_id = 'r1'", {"r1"}),
    ("attributes.run_id IN ('r1', 'r3', 'r5')", {"r1", "r3"}),
    ("artifact_uri LIKE '%/r4/%'", {"r4"}),
    ("experiment_id = 1", {"r1", "r2", "r3", "r4"}),
    ("experiment_id != '1'", set()),
    ("lifecycle_stage = 'active'", {"r1", "r2", "r3", "r4"}),
    # datasets, context read from the input's JSON tags
    ("datasets.name = 'train_ds'", {"r1", "r2"}),
    ("dataset.digest = 'def456'", {"r1"}),
    ("datasets.name LIKE '%_ds' AND datasets.digest IN ('def456')", {"r1"}),
    ("datasets.context = 'training'", {"r1"}),
    ("datasets.context IN ('eval', 'test')", {"r1"}),
    ("datasets.context IS NULL", {"r2", "r3", "r4"}),
    ("datasets.context IS NOT NULL", {"r1"}),
    ("dataset.name IS NULL", {"r3", "r4"}),
]


@pytest.mark.parametrize(("filter_string", "expected"), RUN_FILTERS, ids=[f for f, _ in RUN_FILTERS])
def test_run_filter(engine: Engine, filter_string: str, expected: set[str]) -> None:
    assert set(_runs(engine, filter_string)) == expected


def test_runs_across_experiments_and_stages(engine: Engine) -> None:
    assert set(_runs(engine, "metrics.loss < 0.4", experiments=(1, 2))) == {"r2", "r6"}
    assert _runs(engine, "experiment_id = 2", experiments=(1, 2)) == ["r6"]
    assert _runs(engine, "", stages=("deleted",)) == ["r5"]
    both = ("active", "deleted")
    assert _runs(engine, "lifecycle_stage = 'deleted'", stages=both) == ["r5"]
    assert set(_runs(engine, "metrics.loss < 0.4", stages=both)) == {"r2", "r5"}
    assert _runs(engine, "", experiments=(3,)) == []
    assert _runs(engine, "", experiments=()) == []


def test_injection_attempt_matches_nothing_and_breaks_nothing(engine: Engine) -> None:
    assert _runs(engine, "params.p = 'x'' OR 1=1 --'") == []
    assert _runs(engine, "params.model = 'x'' OR ''1''=''1'") == []
    assert _runs(engine, "tags.`team' OR 1=1 --` = 'core'") == []
    assert _runs(engine, "params.model LIKE '%'') OR 1=1 --'") == []
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(s.runs)).scalar_one() == len(RUNS)


RUN_ORDERS = [
    ([], ["r3", "r4", "r2", "r1"]),  # start_time DESC, then run_uuid ASC
    (["metrics.loss"], ["r2", "r1", "r3", "r4"]),  # numbers, NaN, missing
    (["metrics.loss DESC"], ["r1", "r2", "r3", "r4"]),
    (["metrics.acc desc"], ["r4", "r1", "r2", "r3"]),
    (["metrics.acc ASC"], ["r1", "r4", "r2", "r3"]),
    (["params.lr"], ["r2", "r1", "r3", "r4"]),  # missing last, ties by start_time DESC, run_id
    (["params.lr DESC"], ["r1", "r2", "r3", "r4"]),
    (["tags.team", "metrics.loss DESC"], ["r1", "r2", "r3", "r4"]),
    (["run_name"], ["r2", "r1", "r4", "r3"]),  # code points: "Beta" < "alpha"
    (["attributes.run_name DESC"], ["r3", "r4", "r1", "r2"]),
    (["end_time DESC"], ["r4", "r1", "r3", "r2"]),  # NULL last in both directions
    (["end_time"], ["r1", "r4", "r3", "r2"]),
    (["created"], ["r1", "r2", "r3", "r4"]),
    (["start_time ASC", "run_id DESC"], ["r1", "r2", "r4", "r3"]),
    (["status", "user_id DESC"], ["r2", "r4", "r1", "r3"]),
]


@pytest.mark.parametrize(
    ("order_by", "expected"), RUN_ORDERS, ids=[" ".join(o) or "default" for o, _ in RUN_ORDERS]
)
def test_run_order(engine: Engine, order_by: list[str], expected: list[str]) -> None:
    assert _runs(engine, "", order_by) == expected


def test_filter_and_order_together(engine: Engine) -> None:
    assert _runs(engine, "metrics.loss IS NOT NULL OR params.model LIKE 'a%'", ["metrics.acc DESC"]) == [
        "r4",
        "r1",
        "r2",
        "r3",
    ]
    assert _runs(engine, "params.model ILIKE '%regression'", ["params.model"]) == ["r1", "r2"]


def test_bad_order_by_raises_before_any_sql() -> None:
    with pytest.raises(InvalidInput, match="expected ASC or DESC"):
        build_run_query([1], ("active",), "", ["metrics.loss upward"])
    with pytest.raises(InvalidInput, match="unknown entity"):
        build_run_count([1], ("active",), "nope.x = 'y'")
    with pytest.raises(InvalidInput, match="cannot filter on metrics in experiment searches"):
        build_experiment_query(("active",), "metrics.x > 1", [])


def _experiments(
    engine: Engine,
    filter_string: str = "",
    order_by: list[str] | None = None,
    stages: tuple[str, ...] = ("active",),
) -> list[int]:
    with engine.connect() as conn:
        return [row.id for row in conn.execute(build_experiment_query(stages, filter_string, order_by or []))]


EXPERIMENT_SEARCHES = [
    ("", [], [2, 3, 1]),  # creation_time DESC, experiment_id ASC
    ("", ["creation_time"], [1, 3, 2]),  # tie-break experiment_id DESC
    ("", ["name"], [3, 1, 2]),  # code points: "Exp-gamma" < "exp-alpha"
    ("", ["last_update_time DESC"], [3, 1, 2]),
    ("", ["experiment_id DESC"], [3, 2, 1]),
    ("name LIKE 'exp-%'", [], [2, 1]),
    ("name ILIKE 'EXP-%'", ["name DESC"], [2, 1, 3]),
    ("name = 'exp-beta'", [], [2]),
    ("name != 'exp-beta'", ["experiment_id"], [1, 3]),
    ("tags.team = 'core'", [], [1]),
    ("tags.`owner.name` = 'ann'", [], [1]),
    ("tags.team IS NULL", [], [3]),
    ("tags.team != 'core'", [], [2]),
    ("tags.team = 'ml' OR creation_time < 15", ["experiment_id"], [1, 2]),
    ("creation_time >= 20", ["experiment_id"], [2, 3]),
    ("last_update_time < 50", [], [2]),
    ("experiment_id IN ('1', '3')", ["experiment_id"], [1, 3]),
    ("name = 'x'' OR 1=1 --'", [], []),
]


@pytest.mark.parametrize(
    ("filter_string", "order_by", "expected"),
    EXPERIMENT_SEARCHES,
    ids=[f"{f} | {' '.join(o)}" for f, o, _ in EXPERIMENT_SEARCHES],
)
def test_experiment_search(
    engine: Engine, filter_string: str, order_by: list[str], expected: list[int]
) -> None:
    assert _experiments(engine, filter_string, order_by) == expected


def test_experiment_stages(engine: Engine) -> None:
    assert _experiments(engine, "", [], ("deleted",)) == [4]
    assert _experiments(engine, "tags.team = 'core'", ["experiment_id"], ("active", "deleted")) == [1, 4]
    assert _experiments(engine, "lifecycle_stage = 'deleted'", [], ("active", "deleted")) == [4]


# == performance ===========================================================================

PERF_RUNS = 100_000


@pytest.fixture(scope="module")
def big_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path: Path = tmp_path_factory.mktemp("search-perf") / "big.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    s.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(s.experiments),
            [
                {
                    "id": 1,
                    "name": "big",
                    "artifact_location": "x",
                    "lifecycle_stage": "active",
                    "creation_time": 0,
                    "last_update_time": 0,
                }
            ],
        )
        conn.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO runs (id, run_uuid, experiment_id, name, user_id, status, start_time, "
            "artifact_uri, lifecycle_stage) SELECT i, printf('%032x', i), 1, 'run' || i, 'u', "
            "'FINISHED', i, 'x', 'active' FROM n",
            (PERF_RUNS,),
        )
        for key in ("loss", "acc", "f1"):
            conn.exec_driver_sql(
                "INSERT INTO latest_metrics (run_id, key, step, timestamp, value, is_nan) "
                "SELECT id, ?, 0, 0, (abs(random()) % 1000000) / 1000000.0, 0 FROM runs",
                (key,),
            )
    yield engine
    engine.dispose()


def test_metric_filter_and_order_on_100k_runs_is_fast(big_sqlite: Engine) -> None:
    """Half of 100,000 runs match and all of them are sorted by another metric (MLflow #627).

    The plan is checked exactly, because it is deterministic: runs come from
    ``ix_runs_experiment_stage_start``, each metric is a primary-key lookup on
    ``(run_id, key)`` and nothing is scanned. The clock is checked loosely: about 95 ms
    on an idle two-core development machine (about 65 ms with ``latest_metrics`` as a
    WITHOUT ROWID table), so the bound only catches a plan gone badly wrong on a busy CI
    machine, not a few milliseconds.
    """
    query = build_run_query([1], ("active",), "metrics.loss < 0.5", ["metrics.acc DESC"]).limit(1001)
    with big_sqlite.connect() as conn:
        sql = str(query.compile(dialect=big_sqlite.dialect, compile_kwargs={"literal_binds": True}))
        plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
        timings = []
        for _ in range(5):
            start = time.perf_counter()
            rows = conn.execute(query).all()
            timings.append(time.perf_counter() - start)
    assert len(rows) == 1001
    assert not [step for step in plan if step.startswith("SCAN")], plan
    assert any("runs USING INDEX ix_runs_experiment_stage_start" in step for step in plan), plan
    # One lookup for the filter, one for the order; either an index or a WITHOUT ROWID key.
    assert len([step for step in plan if "(run_id=? AND key=?)" in step]) == 2, plan
    median = statistics.median(timings)
    assert median < 0.5, f"median {median * 1000:.0f} ms over 5 runs; plan: {plan}"


def test_order_by_a_bounded_metric_reads_the_metric_index(big_sqlite: Engine) -> None:
    """Filtering and ordering by the same metric walks ``ix_latest_metrics_key_value`` and
    stops at the page size, instead of ranking every run of the experiment."""
    query = build_run_query([1], ("active",), "metrics.acc > 0.5", ["metrics.acc DESC"]).limit(101)
    with big_sqlite.connect() as conn:
        sql = str(query.compile(dialect=big_sqlite.dialect, compile_kwargs={"literal_binds": True}))
        plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
        rows = conn.execute(query).all()
        expected = conn.exec_driver_sql(
            "SELECT r.id FROM runs r JOIN latest_metrics m ON m.run_id = r.id AND m.key = 'acc' "
            "WHERE m.is_nan = 0 AND m.value > 0.5 ORDER BY m.value DESC, r.start_time DESC, r.run_uuid "
            "LIMIT 101"
        ).all()
    assert any("USING INDEX ix_latest_metrics_key_value (key=? AND value>?)" in step for step in plan), plan
    assert [r[0] for r in rows] == [r[0] for r in expected]


def test_bounded_metric_order_keeps_nan_and_missing_out(engine: Engine) -> None:
    assert _runs(engine, "metrics.acc > -1", ["metrics.acc DESC"]) == _runs(
        engine, "metrics.acc > -1 AND params.lr IS NULL OR metrics.acc > -1", ["metrics.acc DESC"]
    )
