"""Pipeline definition: decorators record, options are checked, parameters are typed.

Nothing here runs a step: building is all there is.
"""

from __future__ import annotations

import datetime
import pickle
from pathlib import Path
from typing import Any, Literal

import pytest

from conveyor.errors import InvalidInput, NotFound
from conveyor.pipelines import (
    Const,
    Edge,
    NodeSpec,
    Output,
    PipelineDefinitionError,
    PipelineParameterError,
    Ref,
    Resources,
    Step,
    StepOptions,
    pipeline,
    step,
)
from tests.pipelines import definition_fixtures
from tests.pipelines.definition_fixtures import (
    Frame,
    Mode,
    Model,
    _coro,
    _gen,
    _kw,
    _pos,
    _star,
    best,
    build,
    configurable,
    count,
    evaluate,
    fit,
    grid,
    ids,
    inc,
    load,
    split,
    square,
    train,
    tunable,
)

#: The module the steps and classes are defined in, as messages name it.
FIXTURES = definition_fixtures.__name__


def test_step_records_options_and_stays_callable_as_a_function() -> None:
    assert isinstance(train, Step)
    assert train.name == "train"
    assert train.options == StepOptions(
        name="train",
        retries=2,
        timeout=600.0,
        resources=Resources(cpu=2.0, memory=4 * 1024**3),
    )
    assert isinstance(train.fn(Frame()), Model)
    assert train.__doc__ == train.fn.__doc__ and train.__name__ == "train"
    assert load.options == StepOptions(name="load")  # defaults: cache on, no retries
    assert load.options.cache is True


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [
        ("10m", 600.0),
        ("30s", 30.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("1d", 86400.0),
        ("90", 90.0),
        (45, 45.0),
        (2.5, 2.5),
        (datetime.timedelta(minutes=2), 120.0),
    ],
)
def test_timeouts_become_seconds(timeout: object, seconds: float) -> None:
    assert step(timeout=timeout)(inc.fn).options.timeout == seconds


@pytest.mark.parametrize(
    ("memory", "size"),
    [("4GiB", 4 * 1024**3), ("512MiB", 512 * 1024**2), ("2GB", 2 * 10**9), ("1Gi", 1024**3), (1024, 1024)],
)
def test_memory_becomes_bytes(memory: object, size: int) -> None:
    assert step(resources={"memory": memory})(inc.fn).options.resources.memory == size


def test_all_options_are_recorded() -> None:
    options = step(
        name="renamed",
        retries=3,
        retry_on=(ConnectionError, TimeoutError),
        backoff="2s",
        resources={"cpu": 0.5, "gpu": 1},
        cache=False,
        spark=True,
        allow_pickle=True,
    )(inc.fn).options
    assert options == StepOptions(
        name="renamed",
        retries=3,
        retry_on=(ConnectionError, TimeoutError),
        backoff=2.0,
        resources=Resources(cpu=0.5, gpu=1),
        cache=False,
        spark=True,
        allow_pickle=True,
    )
    assert step(retries=1, retry_on=KeyError)(inc.fn).options.retry_on == (KeyError,)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"retries": -1}, "retries must be an int >= 0, got -1"),
        ({"retries": True}, "retries must be an int >= 0"),
        ({"retries": 1.5}, "retries must be an int >= 0"),
        ({"retry_on": ValueError}, "retry_on has no effect with retries=0"),
        ({"retries": 1, "retry_on": "ValueError"}, "retry_on must be an exception class"),
        ({"retries": 1, "retry_on": (ValueError, int)}, "retry_on must be an exception class"),
        ({"timeout": "10x"}, "invalid timeout '10x'"),
        ({"timeout": "m10"}, "invalid timeout 'm10'"),
        ({"timeout": 0}, "timeout must be greater than 0"),
        ({"timeout": -5}, "invalid timeout -5"),
        ({"timeout": float("inf")}, "invalid timeout inf"),
        ({"timeout": True}, "invalid timeout True"),
        ({"backoff": "soon"}, "invalid backoff 'soon'"),
        ({"resources": {"cpu": 0}}, "resources['cpu'] must be a number > 0, got 0"),
        ({"resources": {"cpu": "2"}}, "resources['cpu'] must be a number > 0"),
        ({"resources": {"memory": "4 potatoes"}}, "invalid resources['memory'] '4 potatoes'"),
        ({"resources": {"memory": 0}}, "invalid resources['memory'] 0"),
        ({"resources": {"gpu": 1.5}}, "resources['gpu'] must be an int >= 0"),
        ({"resources": {"gpu": -1}}, "resources['gpu'] must be an int >= 0"),
        ({"resources": {"disk": "1GB"}}, "unknown resource 'disk'; known: cpu, memory, gpu"),
        ({"resources": ["cpu"]}, "resources must be a dict"),
        ({"cache": "yes"}, "cache must be True or False"),
        ({"spark": 1}, "spark must be True or False"),
        ({"allow_pickle": None}, "allow_pickle must be True or False"),
        ({"retires": 2}, "unknown option(s) retires; options: name, retries"),
    ],
)
def test_invalid_options_fail_at_decoration_naming_step_and_option(
    options: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(PipelineDefinitionError) as caught:

        @step(**options)
        def prepare(x: int) -> int:
            return x

    assert "step 'prepare'" in str(caught.value)
    assert fragment in str(caught.value)
    assert isinstance(caught.value, InvalidInput) and isinstance(caught.value, ValueError)


def test_invalid_step_names() -> None:
    with pytest.raises(PipelineDefinitionError, match=r"invalid step name 'train-2'"):
        step(name="train-2")(inc.fn)
    with pytest.raises(PipelineDefinitionError, match=r"invalid step name '<lambda>'"):
        step(lambda: 1)
    assert step(name="one")(lambda: 1).name == "one"
    with pytest.raises(PipelineDefinitionError, match=r"@step\(name='train'\)"):
        step("train")  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        (Frame, "@step decorates functions, got type"),
        (print, "@step decorates functions, got builtin_function_or_method"),
        (_gen, "async functions and generators are not supported"),
        (_coro, "async functions and generators are not supported"),
        (_star, "*args parameter 'rows' is not supported"),
        (_kw, "**kwargs parameter 'extra' is not supported"),
        (_pos, "positional-only parameter 'x' is not supported"),
        (train, "'train' is already a step; use train.with_options(...)"),
    ],
)
def test_unsupported_functions_are_refused(target: Any, fragment: str) -> None:
    with pytest.raises(PipelineDefinitionError) as caught:
        step(target)
    assert fragment in str(caught.value)


def test_with_options_copies_the_step() -> None:
    patient = train.with_options(retries=5, timeout="1h")
    assert patient.fn is train.fn and patient.name == "train"
    assert (patient.options.retries, patient.options.timeout) == (5, 3600.0)
    assert patient.options.resources == train.options.resources
    with pytest.raises(PipelineDefinitionError, match=r"unknown option\(s\) retires"):
        train.with_options(retires=1)
    with pytest.raises(PipelineDefinitionError, match=r"retries must be an int >= 0"):
        train.with_options(retries=-2)
    picky = train.with_options(retries=1, retry_on=KeyError)
    assert picky.with_options(retries=0).options.retry_on == (Exception,)


def test_calling_a_step_outside_a_build_runs_nothing_and_says_what_to_do() -> None:
    with pytest.raises(PipelineDefinitionError) as caught:
        train(Frame())
    message = str(caught.value)
    assert "step 'train' was called outside a pipeline build" in message
    assert "train.fn(...)" in message and "conveyor pipeline run" in message
    with pytest.raises(PipelineDefinitionError, match="step 'square' was mapped outside a pipeline build"):
        square.map([1, 2])


def test_a_build_records_nodes_inputs_edges_and_order() -> None:
    @pipeline
    def churn(C: float = 1.0) -> None:
        df = load()
        model = train(df, C=C)
        evaluate(model, df)

    spec = churn.build(C=0.5)
    assert spec.name == "churn"
    assert dict(spec.params) == {"C": 0.5}
    assert ids(spec) == ["load", "train", "evaluate"]
    node = spec.node("train")
    assert node == NodeSpec(
        id="train",
        step_name="train",
        qualname=f"{FIXTURES}:train",
        options=train.options,
        inputs={"df": Ref("load"), "C": Const(0.5)},
        output_types=(Model,),
    )
    assert node.step is train and node.map_over is None and node.output_type is Model
    assert spec.edges == (
        Edge("load", "train", "df"),
        Edge("train", "evaluate", "model"),
        Edge("load", "evaluate", "df"),
    )
    assert spec.topological_order() == ("load", "train", "evaluate")
    assert spec.upstream("evaluate") == ("train", "load")
    assert spec.downstream("load") == ("train", "evaluate")
    assert spec.upstream("train", transitive=True) == ("load",)
    assert spec.downstream("load", transitive=True) == ("train", "evaluate")
    assert spec.upstream("load") == ()
    with pytest.raises(NotFound, match="pipeline 'churn' has no node 'score'; nodes: load, train, evaluate"):
        spec.upstream("score")


def test_outputs_carry_their_node_and_declared_type() -> None:
    seen: list[Output] = []

    def body() -> None:
        out = load()
        seen.append(out)
        train(out)

    spec = build(body)
    (out,) = seen
    assert out.node is spec.node("load") and out.node_id == "load"
    assert out.type is Frame and out.index is None and out.ref == Ref("load")
    assert repr(out) == f"<Output of load: {FIXTURES}.Frame>"
    with pytest.raises(AttributeError):
        out.type = Model  # type: ignore[misc]


def test_node_ids_are_deterministic_and_rebuilds_are_equal() -> None:
    @pipeline
    def chain(n: int = 3) -> None:
        x = inc()
        for _ in range(n - 1):
            x = inc(x)
        count(x)

    spec = chain.build()
    assert ids(spec) == ["inc", "inc-2", "inc-3", "count"]
    assert spec.node("inc-3").inputs == {"x": Ref("inc-2")}
    assert chain.build() == spec
    assert chain.build(n=3) == spec
    assert chain.build(n=4) != spec
    assert pickle.loads(pickle.dumps(spec)) == spec


def test_plain_conditionals_on_parameters_choose_the_steps() -> None:
    @pipeline
    def flexible(tune: bool = False, model: Literal["linear", "tree"] = "linear") -> None:
        df = load()
        if tune:
            best(fit.map([0.1, 1.0], df=df))
        elif model == "tree":
            train(df, C=2.0)
        else:
            train(df)

    assert ids(flexible.build()) == ["load", "train"]
    assert flexible.build().node("train").inputs == {"df": Ref("load")}
    assert flexible.build(model="tree").node("train").inputs["C"] == Const(2.0)
    assert ids(flexible.build(tune=True)) == ["load", "fit", "best"]


def test_spec_pickles_for_executors_in_other_processes() -> None:
    def body() -> None:
        a, _ = split(load())
        best(fit.map(grid(), df=a))

    spec = build(body)
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec
    assert again.node("fit").step is fit  # steps travel by reference
    assert pickle.loads(pickle.dumps(train.with_options(retries=7))).options.retries == 7


def test_parameters_take_defaults_and_overrides() -> None:
    spec = tunable.build(C=0.5, verbose=True)
    assert dict(spec.params) == {"C": 0.5, "epochs": 10, "label": "run", "verbose": True}
    assert [(p.name, p.type, p.required, p.default) for p in tunable.parameters] == [
        ("C", float, True, None),
        ("epochs", int, False, 10),
        ("label", str, False, "run"),
        ("verbose", bool, False, False),
    ]


def test_unknown_parameter_lists_the_known_ones() -> None:
    with pytest.raises(PipelineParameterError) as caught:
        tunable.build(C=1.0, lr=0.1)
    assert str(caught.value) == (
        "pipeline 'tunable' has no parameter 'lr'; its parameters: C (float, required), "
        "epochs (int, default 10), label (str, default 'run'), verbose (bool, default False)"
    )
    with pytest.raises(PipelineParameterError, match="has no parameter 'lr'"):
        tunable.parse_params({"lr": "0.1"})


def test_missing_required_parameter_is_named() -> None:
    with pytest.raises(PipelineParameterError) as caught:
        tunable.build()
    assert "pipeline 'tunable' needs a value for parameter 'C' (float)" in str(caught.value)
    assert "--param C=..." in str(caught.value)


def test_parameter_values_are_checked_against_annotations() -> None:
    with pytest.raises(PipelineParameterError) as caught:
        tunable.build(C="0.5")
    assert "parameter 'C' of pipeline 'tunable' expects float, got str '0.5'" in str(caught.value)
    assert "parse_params()" in str(caught.value)
    tunable.build(C=1)  # an int is a fine float


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("n", "42", 42),
        ("n", " -3 ", -3),
        ("rate", "0.5", 0.5),
        ("rate", "1e-3", 0.001),
        ("flag", "true", True),
        ("flag", "No", False),
        ("flag", "1", True),
        ("flag", "off", False),
        ("name", "churn", "churn"),
        ("out", "models/a", Path("models/a")),
        ("kind", "b", "b"),
        ("kind", "3", 3),
        ("mode", "SLOW", Mode.SLOW),
        ("mode", "fast", Mode.FAST),
        ("mode", "2", Mode.SLOW),
        ("limit", "7", 7),
        ("limit", "none", None),
        ("grid", "[0.1, 1, 10]", [0.1, 1, 10]),
        ("untyped", "3.5", 3.5),
        ("untyped_text", "y", "y"),
    ],
)
def test_parse_params_reads_command_line_text(name: str, text: str, value: object) -> None:
    parsed = configurable.parse_params({name: text})
    assert parsed == {name: value}
    assert type(parsed[name]) is type(value)
    configurable.build(**parsed)


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("n", "4.5", "cannot read '4.5' as int"),
        ("n", "ten", "cannot read 'ten' as int"),
        ("rate", "fast", "cannot read 'fast' as float"),
        ("flag", "maybe", "cannot read 'maybe' as bool; use true/false"),
        ("kind", "c", "cannot read 'c' as Literal['a', 'b', 3]; choices: 'a', 'b', 3"),
        ("mode", "medium", "choices: FAST, SLOW"),
        ("limit", "lots", "cannot read 'lots' as int | None"),
        ("grid", "[0.1,", "cannot read '[0.1,' as list[float]"),
        ("grid", '["a"]', "cannot read '[\"a\"]' as list[float]"),
        ("grid", '{"a": 1}', "as list[float]"),
    ],
)
def test_parse_params_errors_name_parameter_and_type(name: str, text: str, fragment: str) -> None:
    with pytest.raises(PipelineParameterError) as caught:
        configurable.parse_params({name: text})
    assert f"parameter {name!r} of pipeline 'configurable'" in str(caught.value)
    assert fragment in str(caught.value)


def test_parse_params_refuses_types_it_cannot_read() -> None:
    @pipeline
    def odd(frame: Frame | None = None) -> None:
        load()

    with pytest.raises(PipelineParameterError) as caught:
        odd.parse_params({"frame": "x"})
    assert f"parameter 'frame' of pipeline 'odd' has type {FIXTURES}.Frame | None" in str(caught.value)
    assert "cannot be given as text" in str(caught.value)
    assert odd.parse_params({"frame": "null"}) == {"frame": None}
    assert odd.parse_params({"frame": None}) == {"frame": None}  # non-text passes through


def test_parse_params_names_unsupported_type() -> None:
    @pipeline
    def odd(frame: Frame) -> None:
        load()

    with pytest.raises(PipelineParameterError) as caught:
        odd.parse_params({"frame": "x"})
    assert f"parameter 'frame' of pipeline 'odd' has type {FIXTURES}.Frame" in str(caught.value)
    assert "cannot be given as text" in str(caught.value)
