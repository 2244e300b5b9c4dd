"""Pipeline definition: wiring checks, cycles, tuple outputs, fan-out, cost of a build.

Nothing here runs a step: building is all there is.
"""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Optional

import pytest

from conveyor.pipelines import (
    Const,
    Edge,
    Gather,
    MapOver,
    Output,
    PipelineDefinitionError,
    PipelineParameterError,
    PipelineSpec,
    Ref,
    pipeline,
    step,
)
from conveyor.pipelines._build import current_build
from conveyor.pipelines._types import describe, element_type, is_compatible, value_matches
from tests.pipelines import definition_fixtures
from tests.pipelines.definition_fixtures import (
    Color,
    Frame,
    Late,
    Model,
    Pair,
    WideFrame,
    _another_load_step,
    _node,
    _star,
    anything,
    best,
    build,
    by_key,
    count,
    counts,
    evaluate,
    fit,
    grid,
    hidden,
    ids,
    inc,
    ints,
    load,
    load_wide,
    make_late,
    maybe_frame,
    numbers_,
    optional_frame,
    pick_color,
    split,
    square,
    strings,
    takes_anything,
    total,
    train,
    tunable,
    word,
)

#: The module the steps and classes are defined in, as messages name it.
FIXTURES = definition_fixtures.__name__


def test_type_mismatch_between_output_and_parameter_names_both_steps() -> None:
    def body() -> None:
        model = train(load())
        train(model)  # a Model where a Frame is expected

    with pytest.raises(PipelineDefinitionError) as caught:
        build(body)
    assert str(caught.value) == (
        f"type mismatch: step 'train' argument 'df' expects {FIXTURES}.Frame, but the output of "
        f"step 'train' (node 'train') is declared as {FIXTURES}.Model"
    )


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (lambda: train(load_wide()), True),  # subclass
        (lambda: train(anything()), True),  # unannotated producer
        (lambda: takes_anything(load(), y=train(load())), True),  # unannotated / Any consumer
        (lambda: train(hidden()), True),  # unresolvable annotation counts as Any
        (lambda: optional_frame(load()), True),  # Optional consumer takes the plain type
        (lambda: optional_frame(maybe_frame()), True),
        (lambda: train(maybe_frame()), False),  # may be None, consumer does not take None
        (lambda: total(ints()), True),  # list[int] -> Sequence[int]
        (lambda: total(strings()), False),  # list[str] -> Sequence[int]
        (lambda: total(numbers_()), True),  # tuple[int, ...] -> Sequence[int]
        (lambda: by_key(counts()), True),  # dict[str, int] -> Mapping[str, int]
        (lambda: total(counts()), False),  # dict is not a Sequence
        (lambda: fit(count(1), load()), True),  # int -> float
        (lambda: count(evaluate(train(load()), load())), False),  # float -> int
        (lambda: word(count(1)), False),
    ],
)
def test_type_rules_at_build_time(body: Any, ok: bool) -> None:
    if ok:
        build(body)
    else:
        with pytest.raises(PipelineDefinitionError, match="type mismatch"):
            build(body)


@pytest.mark.parametrize(
    ("produced", "expected", "ok"),
    [
        (int, float, True),
        (bool, int, True),
        (float, int, False),
        (int, complex, True),
        (WideFrame, Frame, True),
        (Frame, WideFrame, False),
        (Any, Model, True),
        (Model, Any, True),
        (Model, object, True),
        (object, Model, False),
        (int | None, int, False),
        (int | None, Optional[int], True),  # noqa: UP045
        (int, int | str, True),
        (bytes, int | str, False),
        (None, None, True),
        (None, int, False),
        (list[int], list[str], False),
        (list[int], list, True),
        (list, list[str], True),
        (list[Any], list[str], True),
        (list[bool], list[int], True),
        (list[int], Sequence[int], True),
        (list[int], tuple[int, ...], False),
        (tuple[int, str], tuple[int, str], True),
        (tuple[int, str], tuple[int, int], False),
        (tuple[int, str], tuple[int, str, str], False),
        (tuple[int, int], tuple[int, ...], True),
        (tuple[int, str], Sequence[int], False),
        (tuple[int, ...], tuple[int, int], True),
        (Pair, tuple[int, str], True),
        (dict[str, int], dict[str, int], True),
        (dict[str, int], dict[str, str], False),
        (dict[str, int], Mapping[str, float], True),
        (dict[str, int], Sequence[str], False),
        (type[WideFrame], type[Frame], True),
        (type[Frame], type[Model], False),
        (Literal["a", "b"], str, True),
        (Literal["a", 1], str, False),
        (str, Literal["a", "b"], True),
        (Model, Literal["a", "b"], False),
        ("Frame", Model, True),  # unresolved text: unknown, accepted
    ],
)
def test_is_compatible_rules(produced: Any, expected: Any, ok: bool) -> None:
    assert is_compatible(produced, expected) is ok


@pytest.mark.parametrize(
    ("value", "hint", "ok"),
    [
        (1, float, True),
        (True, int, True),
        ("1", float, False),
        (None, Optional[int], True),  # noqa: UP045
        (None, int, False),
        ([1], list[str], True),  # one level deep only
        ((1,), list[int], False),
        ("fast", Literal["fast", "slow"], True),
        ("medium", Literal["fast", "slow"], False),
        (1, Literal[True], False),
        (Color.RED, Color, True),
        ("red", Color, False),
        (WideFrame, type[Frame], True),
        (Model, type[Frame], False),
    ],
)
def test_value_matches_rules(value: Any, hint: Any, ok: bool) -> None:
    assert value_matches(value, hint) is ok


def test_numpy_numbers_fit_python_number_annotations() -> None:
    numpy = pytest.importorskip("numpy")
    assert value_matches(numpy.int64(3), int)
    assert value_matches(numpy.float32(3), float)
    assert is_compatible(numpy.int64, int)
    assert not value_matches(numpy.float64(3), int)


def test_element_type_and_describe() -> None:
    assert element_type(list[int]) is int
    assert element_type(tuple[int, ...]) is int
    assert element_type(tuple[int, str]) == int | str
    assert element_type(dict[str, int]) is str
    assert element_type(list) is Any
    assert element_type(int) is None
    assert describe(int) == "int" and describe(None) == "None" and describe(Any) == "Any"
    assert describe(Optional[int]) == "Optional[int]"  # noqa: UP045


def test_literal_arguments_are_checked() -> None:
    with pytest.raises(PipelineDefinitionError) as caught:
        build(lambda: train(load(), C="high"))
    assert str(caught.value) == "step 'train' argument 'C' expects float, got str 'high'"
    with pytest.raises(PipelineDefinitionError, match="step 'pick_color' argument 'mode' expects"):
        build(lambda: pick_color(Color.RED, mode="medium"))
    with pytest.raises(PipelineDefinitionError, match="step 'pick_color' argument 'color' expects"):
        build(lambda: pick_color("red"))
    build(lambda: train(load(), C=2))
    build(lambda: pick_color(Color.BLUE, mode="slow"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (lambda: train(), "step 'train' is missing required argument(s) 'df'"),  # noqa: PLW0108
        (
            lambda: train(load(), gamma=1),
            "step 'train' got unexpected argument(s) 'gamma'; its parameters: df, C",
        ),
        (
            lambda: train(load(), 1.0, 2.0),
            "step 'train' takes 2 positional argument(s) but got 3; its parameters: df, C",
        ),
        (lambda: train(load(), df=load()), "step 'train' got more than one value for argument(s) 'df'"),
    ],
)
def test_argument_errors_name_the_step(body: Any, message: str) -> None:
    with pytest.raises(PipelineDefinitionError) as caught:
        build(body)
    assert str(caught.value) == message


def test_output_from_another_build_is_refused() -> None:
    kept: list[Output] = []

    @pipeline
    def first() -> None:
        kept.append(load())

    @pipeline
    def second() -> None:
        train(kept[0])

    @pipeline
    def again() -> None:
        kept.append(load())
        if len(kept) > 1:
            train(kept[0])  # the output of the previous build of this very pipeline

    first.build()
    with pytest.raises(PipelineDefinitionError) as caught:
        second.build()
    message = str(caught.value)
    assert "step 'train' argument 'df' is the output of step 'load' (node 'load')" in message
    assert "from another build (of pipeline 'first')" in message
    kept.clear()
    again.build()
    with pytest.raises(PipelineDefinitionError, match="from another build"):
        again.build()


def test_a_step_passed_uncalled_is_refused() -> None:
    with pytest.raises(PipelineDefinitionError) as caught:
        build(lambda: train(load))
    assert str(caught.value) == (
        "step 'train' argument 'df' is the step 'load' itself, not its output: call it, load(...)"
    )
    with pytest.raises(PipelineDefinitionError, match="is the pipeline 'tunable' itself"):
        build(lambda: takes_anything(tunable))


def test_outputs_of_plain_functions_are_refused() -> None:
    def helper(df: Any) -> Any:  # forgot @step
        return df.dropna()

    def rows(df: Any) -> Any:  # a generator made at build time
        yield from ()

    with pytest.raises(PipelineDefinitionError) as caught:
        build(lambda: train(helper(load())))
    message = str(caught.value)
    assert "the output of step 'load' (node 'load') has no attribute 'dropna' during the build" in message
    assert "move this code into a @step" in message
    assert isinstance(caught.value, AttributeError)
    with pytest.raises(PipelineDefinitionError, match="is a generator made while the pipeline was built"):
        build(lambda: takes_anything(rows(load())))
    with pytest.raises(PipelineDefinitionError, match="holds a step output inside a dict"):
        build(lambda: takes_anything({"df": load()}))
    with pytest.raises(PipelineDefinitionError, match="holds a step output inside a list"):
        build(lambda: takes_anything([[load()]]))


@pytest.mark.parametrize(
    ("use", "fragment"),
    [
        (bool, "has no truth value during the build; branch on pipeline parameters"),
        (lambda out: out + 1, "cannot be used with operators"),
        (lambda out: out > 1, "cannot be used with operators"),
        (list, "cannot be iterated or unpacked"),
        (lambda out: out[0], "cannot be indexed"),
        (len, "cannot be measured with len()"),
    ],
)
def test_outputs_cannot_be_inspected_while_building(use: Any, fragment: str) -> None:
    def body() -> None:
        use(load())

    with pytest.raises(PipelineDefinitionError) as caught:
        build(body)
    assert fragment in str(caught.value)
    assert "the output of step 'load'" in str(caught.value)


def test_hasattr_on_an_output_is_false_not_an_error() -> None:
    def body() -> None:
        out = load()
        assert not hasattr(out, "columns")
        assert not hasattr(out, "__array__")
        train(out)

    build(body)


def test_outputs_copy_as_themselves_and_do_not_pickle() -> None:
    def body() -> None:
        out = load()
        assert copy.deepcopy([out])[0] is out and copy.copy(out) is out
        with pytest.raises(PipelineDefinitionError, match="cannot be pickled"):
            pickle.dumps(out)
        looped: list[Any] = [1]
        looped.append(looped)  # a literal that contains itself is scanned once, not forever
        takes_anything(out, y=looped)

    build(body)


def test_duplicate_step_names_from_different_functions_are_refused() -> None:
    other_load = _another_load_step()

    def body() -> None:
        train(load())
        train(other_load())

    with pytest.raises(PipelineDefinitionError) as caught:
        build(body)
    assert str(caught.value) == (
        f"two different functions use the step name 'load': {FIXTURES}:load and "
        f"{FIXTURES}:_another_load_step.<locals>.load; rename one with @step(name=...)"
    )
    renamed = step(name="load_other")(other_load.fn)
    spec = build(lambda: (train(load()), train(renamed())))
    assert ids(spec) == ["load", "train", "load_other", "train-2"]
    # The same function with other options shares the name: one step, two nodes.
    spec = build(lambda: (train(load()), train.with_options(retries=9)(load())))
    assert [n.options.retries for n in spec.nodes if n.step_name == "train"] == [2, 9]


def test_empty_pipeline_is_refused() -> None:
    with pytest.raises(PipelineDefinitionError, match="pipeline 'nothing' called no step"):

        @pipeline
        def nothing(x: int = 1) -> None:
            pass

        nothing.build()


def test_pipeline_decorator_checks_its_function() -> None:
    with pytest.raises(PipelineDefinitionError, match="already a step or pipeline"):
        pipeline(train)
    with pytest.raises(PipelineDefinitionError, match=r"pipeline '_star': \*args parameter 'rows'"):
        pipeline(_star)
    with pytest.raises(PipelineDefinitionError, match="invalid pipeline name 'my-pipe'"):
        pipeline(name="my-pipe")(lambda: None)
    with pytest.raises(PipelineDefinitionError, match=r"called outside a pipeline build; use tunable\.build"):
        tunable(C=1.0)


def test_a_pipeline_that_calls_itself_is_refused() -> None:
    @pipeline
    def loop(n: int = 1) -> None:
        load()
        loop(n)

    with pytest.raises(PipelineDefinitionError, match=r"pipeline 'loop' calls itself: loop → loop"):
        loop.build()


def test_pipelines_calling_each_other_in_a_circle_are_refused() -> None:
    @pipeline
    def ping() -> None:
        load()
        pong()

    @pipeline
    def pong() -> None:
        ping()

    with pytest.raises(PipelineDefinitionError, match="pipeline 'ping' calls itself: ping → pong → ping"):
        ping.build()


def test_a_pipeline_that_builds_itself_is_refused() -> None:
    @pipeline
    def recursive() -> None:
        load()
        recursive.build()

    with pytest.raises(PipelineDefinitionError, match="pipeline 'recursive' builds itself"):
        recursive.build()


def test_pipelines_compose_by_inlining() -> None:
    @pipeline
    def features(df: Frame, scale: float = 1.0) -> Model:
        return train(df, C=scale)

    @pipeline
    def main(scale: float = 2.0) -> None:
        df = load()
        evaluate(features(df, scale=scale), df)
        evaluate(features(df), df)

    spec = main.build()
    assert ids(spec) == ["load", "train", "evaluate", "train-2", "evaluate-2"]
    assert spec.node("train").inputs == {"df": Ref("load"), "C": Const(2.0)}
    assert dict(spec.params) == {"scale": 2.0}

    @pipeline
    def wrong() -> None:
        features(train(load()))

    with pytest.raises(PipelineParameterError, match="parameter 'df' of pipeline 'features' expects"):
        wrong.build()


def test_an_output_for_a_node_the_build_never_recorded_is_refused() -> None:
    def body() -> None:
        later = _node("inc-9")  # as if an output could point at a node made later
        takes_anything(Output(current_build(), later, None, int))  # type: ignore[arg-type]

    with pytest.raises(PipelineDefinitionError) as caught:
        build(body)
    assert str(caught.value) == (
        "step 'takes_anything' argument 'x' refers to node 'inc-9', which this build has not "
        "recorded; outputs must come from steps called earlier"
    )


def test_forward_references_resolve_when_the_pipeline_is_built() -> None:
    spec = build(lambda: takes_anything(make_late()))
    assert spec.node("make_late").output_types == (Late,)


def test_hand_made_spec_with_a_cycle_is_refused_naming_the_nodes() -> None:
    nodes = (
        _node("start"),
        _node("a", x=Ref("c")),
        _node("b", x=Ref("a")),
        _node("c", x=Ref("b"), y=Ref("start")),
    )
    with pytest.raises(PipelineDefinitionError) as caught:
        PipelineSpec("handmade", {}, nodes)
    assert str(caught.value) == "pipeline 'handmade' has a cycle: a → b → c → a (steps 'inc')"
    with pytest.raises(PipelineDefinitionError, match="has a cycle: a → a"):
        PipelineSpec("handmade", {}, (_node("a", x=Ref("a")),))


def test_hand_made_spec_is_validated_and_sorted() -> None:
    with pytest.raises(PipelineDefinitionError, match=r"node 'a' .* reads argument 'x' from node 'later'"):
        PipelineSpec("p", {}, (_node("a", x=Ref("later")),))
    with pytest.raises(PipelineDefinitionError, match="reads output 1 of node 'a', which has 1 output"):
        PipelineSpec("p", {}, (_node("a"), _node("b", x=Ref("a", 1))))
    with pytest.raises(PipelineDefinitionError, match="two nodes have the id 'a'"):
        PipelineSpec("p", {}, (_node("a"), _node("a")))
    # A node may be listed before the node it reads from; the order puts it after.
    spec = PipelineSpec(
        "p", {}, (_node("late", x=Ref("early")), _node("early"), _node("other", x=Gather((Ref("late"),))))
    )
    assert spec.topological_order() == ("early", "late", "other")
    assert spec.downstream("early", transitive=True) == ("late", "other")


def test_tuple_outputs_unpack_into_typed_handles() -> None:
    seen: list[Output] = []

    def body() -> None:
        train_df, test_df = split(load())
        seen.extend([train_df, test_df])
        evaluate(train(train_df), test_df)
        takes_anything(split(load())[1], y=split(load()))

    spec = build(body)
    assert spec.node("split").output_types == (Frame, Frame)
    assert spec.node("split").output_type == tuple[Frame, Frame]
    assert [(o.index, o.type) for o in seen] == [(0, Frame), (1, Frame)]
    assert spec.node("train").inputs == {"df": Ref("split", 0)}
    assert spec.node("evaluate").inputs["df"] == Ref("split", 1)
    assert spec.node("takes_anything").inputs == {"x": Ref("split-2", 1), "y": Ref("split-3")}
    assert Edge("split", "evaluate", "df", 1) in spec.edges


def test_unpacking_rules() -> None:
    with pytest.raises(ValueError, match="not enough values to unpack"):
        build(lambda: [a for a, b, c in [split(load())]])
    with pytest.raises(PipelineDefinitionError, match=r"only outputs of steps annotated with a fixed-length"):
        build(lambda: [a for a, b in [numbers_()]])  # tuple[int, ...] has no fixed length
    with pytest.raises(PipelineDefinitionError, match=r"use other_step\.map"):
        build(lambda: [x for x in ints()])

    def element_of_element() -> None:
        first, _ = split(load())
        first[0]

    with pytest.raises(PipelineDefinitionError, match="element 0"):
        build(element_of_element)


def test_map_over_a_build_time_list() -> None:
    seen: list[Output] = []

    def body() -> None:
        squares = square.map([1, 2, 3])
        seen.append(squares)
        total(squares)

    spec = build(body)
    node = spec.node("square")
    assert node.map_over == MapOver("x", Const((1, 2, 3)), 3)
    assert node.inputs == {}
    assert node.output_types == (list[int],)
    assert seen[0].type == list[int]
    assert spec.node("total").inputs == {"values": Ref("square")}
    assert spec.edges == (Edge("square", "total", "values"),)
    ranged = build(lambda: total(square.map(range(10_000)))).node("square").map_over
    assert ranged is not None and ranged.count == 10_000


def test_map_over_an_upstream_output_with_fixed_arguments() -> None:
    def body() -> None:
        df = load()
        models = fit.map(grid(), df=df)
        best(models)

    spec = build(body)
    node = spec.node("fit")
    assert node.map_over == MapOver("C", Ref("grid"), None)
    assert node.inputs == {"df": Ref("load")}
    assert node.output_types == (list[Model],)
    assert set(spec.upstream("fit")) == {"load", "grid"}
    assert Edge("grid", "fit", "C") in spec.edges
    assert spec.topological_order() == ("load", "grid", "fit", "best")


def test_map_of_a_map_and_mixed_collections() -> None:
    def body() -> None:
        squared = square.map(ints())
        again = square.map(squared)
        total(again)
        total([square(1), 2, count(3)])  # fan-in of steps called in a loop, plain values mixed in
        total(square.map([count(1), count(2)]))

    spec = build(body)
    assert spec.node("square-2").map_over == MapOver("x", Ref("square"), None)
    assert spec.node("total-2").inputs == {"values": Gather((Ref("square-3"), Const(2), Ref("count")), list)}
    assert spec.node("square-4").map_over == MapOver("x", Gather((Ref("count-2"), Ref("count-3"))), 2)
    assert {e.source for e in spec.edges if e.target == "total-2"} == {"square-3", "count"}


def test_collect_and_gather_are_type_checked() -> None:
    with pytest.raises(PipelineDefinitionError, match="type mismatch: step 'count' argument 'n' expects int"):
        build(lambda: count(square.map([1, 2])))
    with pytest.raises(PipelineDefinitionError, match=r"gets a list of \[.*Model, int\]"):
        build(lambda: total([train(load()), count(1)]))
    build(lambda: best([train(load()), fit(0.1, load())]))


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (lambda: square.map(["a", "b"]), "step 'square' argument 'x[0]' expects int, got str 'a'"),
        (lambda: square.map(strings()), "step 'square'.map() argument 'x' expects int, but the items of"),
        (lambda: square.map(load()), "is typed MODULE.Frame, which is not a collection"),
        (lambda: square.map("abc"), "map() takes a list, tuple or range"),
        (lambda: square.map({1, 2}), "or a step output holding a list; got set"),
        (lambda: square.map([1], x=2), "every parameter is fixed"),
        (lambda: fit.map([0.1]), "step 'fit' is missing required argument(s) 'df'"),
        (lambda: fit.map([0.1], df=load(), gamma=1), "got unexpected argument(s) 'gamma'"),
        (lambda: fit.map([0.1], df=Model()), "step 'fit' argument 'df' expects"),
    ],
)
def test_map_errors(body: Any, fragment: str) -> None:
    with pytest.raises(PipelineDefinitionError) as caught:
        build(body)
    assert fragment.replace("MODULE", FIXTURES) in str(caught.value)


def test_building_a_200_step_chain_takes_under_50_ms() -> None:
    @pipeline
    def chain(n: int = 200) -> None:
        x = inc()
        for _ in range(n - 1):
            x = inc(x)

    timings = []
    for _ in range(3):
        started = time.perf_counter()
        spec = chain.build()
        timings.append(time.perf_counter() - started)
    assert len(spec.nodes) == 200 and spec.nodes[-1].id == "inc-200"
    assert min(timings) < 0.050, f"200-step build took {min(timings) * 1000:.1f} ms"


def test_definition_imports_no_heavy_library() -> None:
    code = (
        "import sys, conveyor.pipelines.definition; "
        "print(sorted(m for m in ('pandas', 'numpy', 'pyarrow', 'sqlalchemy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
