"""Defining pipelines: ``@step`` and ``@pipeline`` record a graph; executors run it later.

A pipeline is plain Python::

    from conveyor.pipelines import pipeline, step

    @step
    def load() -> pd.DataFrame: ...

    @step(retries=2, timeout="10m", resources={"cpu": 2, "memory": "4GiB"})
    def train(df: pd.DataFrame, C: float = 1.0) -> Model: ...

    @pipeline
    def churn(C: float = 1.0):
        df = load()
        model = train(df, C=C)
        evaluate(model, df)

    spec = churn.build(C=0.5)                      # or churn.build(**churn.parse_params({"C": "0.5"}))
    spec.topological_order()                       # ('load', 'train', 'evaluate')

The decorators only record: ``@step`` wraps the function in a :class:`Step` holding its
:class:`StepOptions`, ``@pipeline`` wraps one in a :class:`Pipeline`. Nothing runs until
an executor takes the :class:`PipelineSpec` that :meth:`Pipeline.build` returns, so the
same pipeline runs in-process, in worker processes or on Dask without edits.

How a build works. :meth:`Pipeline.build` calls the pipeline function once, with its
parameters as plain values: ``if C > 1:`` decides which steps exist. Calling a step
during the build runs nothing; it records a node and returns an :class:`Output`, a
placeholder for the value the step will return, to be passed to other steps. Rules:

* **Node ids** are the step name for its first call in a build and ``name-2``,
  ``name-3``… for later calls, so rebuilding with the same parameters gives an equal spec.
* **Tuple outputs.** A step annotated with a fixed-length tuple (``-> tuple[A, B]``) may
  be unpacked, ``a, b = split(df)``, or indexed, ``split(df)[0]``: each part is an output
  of its own, typed ``A`` and ``B``. Any other output cannot be iterated, indexed, tested
  for truth or used in arithmetic while building: that is work for a step.
* **Fan-out.** ``step.map(items, **fixed)`` makes one node whose tasks each take one item
  as the step's first parameter not named in ``fixed``; ``items`` is a list, tuple or
  range known at build time, or an :class:`Output` of a list made by another step. The
  result is one output, the list of results in item order; passing it to a normal step
  collects it. A list of outputs, ``pick([train(x) for x in grid])``, is collected too.
* **Checked before anything runs** (:class:`PipelineDefinitionError`, naming the steps):
  output and parameter types (rules in :mod:`conveyor.pipelines._types`), missing and
  unexpected arguments, literal values against annotations, outputs from another build,
  a step passed uncalled, two functions sharing a step name, pipelines that call
  themselves, and cycles in specs assembled by hand.
"""

from __future__ import annotations

import enum
import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from conveyor.pipelines._build import (
    Build,
    Declared,
    Output,
    activate,
    binding_problem,
    current_build,
    show,
)
from conveyor.pipelines._errors import PipelineDefinitionError, PipelineParameterError
from conveyor.pipelines._graph import (
    Const,
    Edge,
    FrozenMap,
    Gather,
    Input,
    MapOver,
    NodeSpec,
    PipelineSpec,
    Ref,
)
from conveyor.pipelines._options import Resources, StepOptions, check_name
from conveyor.pipelines._step import Step, check_function, step, type_hints
from conveyor.pipelines._types import (
    PARSEABLE,
    UnsupportedType,
    describe,
    is_compatible,
    normalize,
    parse_text,
    value_matches,
)

__all__ = [
    "Const",
    "Edge",
    "Gather",
    "Input",
    "MapOver",
    "NodeSpec",
    "Output",
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineParam",
    "PipelineParameterError",
    "PipelineSpec",
    "Ref",
    "Resources",
    "Step",
    "StepOptions",
    "pipeline",
    "step",
]

_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class PipelineParam:
    """One pipeline parameter, as the CLI lists it."""

    name: str
    #: The resolved annotation (``Any`` when missing).
    type: Any
    required: bool
    #: The default value; ``None`` when ``required``.
    default: Any = None


class Pipeline(Declared):
    """A function declared as a pipeline: call :meth:`build` to get its graph.

    Inside another pipeline's build, calling a pipeline inlines its steps (its return
    value, outputs included, is returned to the caller).
    """

    kind: ClassVar[str] = "pipeline"

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name
        self._hints: dict[str, Any] | None = None

    @property
    def parameters(self) -> tuple[PipelineParam, ...]:
        """The pipeline's parameters, in signature order."""
        hints = self._param_hints()
        return tuple(
            PipelineParam(
                p.name,
                hints.get(p.name, Any),
                p.default is _EMPTY,
                None if p.default is _EMPTY else p.default,
            )
            for p in inspect.signature(self.fn).parameters.values()
        )

    def build(self, **params: Any) -> PipelineSpec:
        """Run the pipeline function once, recording steps, and return the checked graph.

        Args:
            params: Parameter values; missing ones take their defaults. Values must fit
                the annotations already (convert command-line text with
                :meth:`parse_params` first).

        Returns:
            The frozen graph; equal parameters give an equal spec.

        Raises:
            PipelineParameterError: an unknown, missing or mistyped parameter.
            PipelineDefinitionError: a step was wired wrongly (see the module docstring),
                or the pipeline built no step.
        """
        values = self._values(params)
        outer = current_build()
        if outer is not None and self in outer.chain():
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} builds itself: {outer.describe_chain(self)}"
            )
        with activate(Build(self, outer)) as build:
            self.fn(**values)
        if not build.nodes:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} called no step with parameters {values!r}; "
                "call @step functions inside the pipeline function"
            )
        return PipelineSpec(self.name, FrozenMap(values), tuple(build.nodes.values()))

    def parse_params(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Convert command-line text (``{"C": "0.5"}``) to typed values by the annotations.

        Reads ``str``, ``int``, ``float``, ``bool`` (true/false, yes/no, on/off, 1/0),
        ``Path``, an ``Enum`` (member name or value), a ``Literal``, ``Optional`` and
        unions of those ("none"/"null" for ``None``), and lists, tuples and dicts as JSON.
        An unannotated parameter takes the type of its default, else stays text.
        Non-text values pass through unchanged for :meth:`build` to check.

        Raises:
            PipelineParameterError: an unknown name, or text that is not a valid value
                (the message names the parameter and the expected type).
        """
        self._reject_unknown(raw)
        defaults = {p.name: p for p in self.parameters}
        parsed: dict[str, Any] = {}
        for name, text in raw.items():
            param = defaults[name]
            hint = param.type
            if normalize(hint) is Any and param.default is not None and not param.required:
                hint = type(param.default)
            if not isinstance(text, str):
                parsed[name] = text
                continue
            try:
                parsed[name] = parse_text(text, hint)
            except UnsupportedType:
                raise PipelineParameterError(
                    f"parameter {name!r} of pipeline {self.name!r} has type {describe(hint)}, which "
                    f"cannot be given as text; text works for: {PARSEABLE}"
                ) from None
            except ValueError:
                raise PipelineParameterError(
                    f"parameter {name!r} of pipeline {self.name!r}: cannot read {text!r} as "
                    f"{describe(hint)}{_choices(hint)}"
                ) from None
        return parsed

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Inline this pipeline into the build in progress (pipelines compose).

        Raises:
            PipelineDefinitionError: no build is in progress (use :meth:`build`), or the
                pipeline would call itself.
        """
        build = current_build()
        if build is None:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} was called outside a pipeline build; use "
                f"{self.name}.build(...) to get its graph, or run it with `conveyor pipeline run`"
            )
        if self in build.chain():
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} calls itself: {build.describe_chain(self)}"
            )
        signature = inspect.signature(self.fn)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            raise PipelineParameterError(
                binding_problem(f"pipeline {self.name!r}", signature, args, kwargs)
            ) from None
        hints = self._param_hints()
        for arg, value in bound.arguments.items():
            hint = hints.get(arg, Any)
            fits = (
                is_compatible(value.type, hint) if isinstance(value, Output) else value_matches(value, hint)
            )
            if not fits:
                raise PipelineParameterError(
                    f"parameter {arg!r} of pipeline {self.name!r} expects {describe(hint)}, got {show(value)}"
                )
        build.stack.append(self)
        try:
            return self.fn(*bound.args, **bound.kwargs)
        finally:
            build.stack.pop()

    def __repr__(self) -> str:
        return f"<Pipeline {self.name} ({self.fn.__module__}:{self.fn.__qualname__})>"

    def _param_hints(self) -> dict[str, Any]:
        if self._hints is None:
            self._hints = type_hints(self.fn)
            self._hints.pop("return", None)
        return self._hints

    def _reject_unknown(self, given: Mapping[str, Any]) -> None:
        known = [p.name for p in self.parameters]
        unknown = sorted(set(given) - set(known))
        if unknown:
            listing = ", ".join(_describe_param(p) for p in self.parameters) or "none"
            raise PipelineParameterError(
                f"pipeline {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"its parameters: {listing}"
            )

    def _values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self._reject_unknown(params)
        values: dict[str, Any] = {}
        for param in self.parameters:
            if param.name in params:
                value = params[param.name]
                if isinstance(value, Output):
                    raise PipelineParameterError(
                        f"parameter {param.name!r} of pipeline {self.name!r} got a step output; "
                        "build() takes plain values"
                    )
                if not value_matches(value, param.type):
                    hint = "; convert command-line text with parse_params()" if isinstance(value, str) else ""
                    raise PipelineParameterError(
                        f"parameter {param.name!r} of pipeline {self.name!r} expects "
                        f"{describe(param.type)}, got {show(value)}{hint}"
                    )
                values[param.name] = value
            elif param.required:
                raise PipelineParameterError(
                    f"pipeline {self.name!r} needs a value for parameter {param.name!r} "
                    f"({describe(param.type)}); pass {param.name}=... to build() or "
                    f"--param {param.name}=... on the command line"
                )
            else:
                values[param.name] = param.default
        return values


def pipeline(fn: Any = None, /, *, name: str | None = None) -> Any:
    """Declare a function as a pipeline: ``@pipeline`` or ``@pipeline(name="churn")``.

    Its parameters are the pipeline parameters (defaults allowed, overridable from the
    CLI and :meth:`Pipeline.build`); its body calls steps.

    Raises:
        PipelineDefinitionError: the function cannot be a pipeline (a step, a coroutine,
            ``*args``), or the name is not an identifier.
    """
    if fn is None:
        return lambda f: pipeline(f, name=name)
    if isinstance(fn, Step | Pipeline):
        raise PipelineDefinitionError(f"{fn!r} is already a step or pipeline and cannot be made a pipeline")
    label = name or getattr(fn, "__name__", repr(fn))
    check_function(fn, f"pipeline {label!r}", "@pipeline")
    check_name(label, f"pipeline name {label!r}", "@pipeline(name='churn')")
    return Pipeline(fn, label)


def _describe_param(param: PipelineParam) -> str:
    kind = describe(param.type)
    return (
        f"{param.name} ({kind}, required)"
        if param.required
        else f"{param.name} ({kind}, default {param.default!r})"
    )


def _choices(hint: Any) -> str:
    hint = normalize(hint)
    if typing.get_origin(hint) is typing.Literal:
        return "; choices: " + ", ".join(repr(v) for v in typing.get_args(hint))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "; choices: " + ", ".join(hint.__members__)
    if hint is bool:
        return "; use true/false, yes/no, on/off or 1/0"
    return ""
