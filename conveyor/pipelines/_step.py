"""``@step``: a function declared as a pipeline step, with validated options.

The decorator only records (the function and a frozen :class:`StepOptions`); calling the
resulting :class:`Step` inside a build records a node, and executors run it later.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, ClassVar, Generic, ParamSpec, TypeVar, overload

from conveyor.pipelines._build import Declared, build_for
from conveyor.pipelines._errors import PipelineDefinitionError
from conveyor.pipelines._options import StepOptions, make_options
from conveyor.pipelines._types import fixed_tuple

P = ParamSpec("P")
R = TypeVar("R")

_BAD_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "positional-only parameter",
    inspect.Parameter.VAR_POSITIONAL: "*args parameter",
    inspect.Parameter.VAR_KEYWORD: "**kwargs parameter",
}


class Step(Declared, Generic[P, R]):
    """A function declared as a pipeline step, with its options.

    Called inside a pipeline build it records a node and returns an :class:`Output`;
    called anywhere else it raises, because running a step is an executor's job. Unit
    tests call the plain function, :attr:`fn`.
    """

    kind: ClassVar[str] = "step"

    def __init__(self, fn: Callable[P, R], options: StepOptions) -> None:
        functools.update_wrapper(self, fn)
        #: The undecorated function.
        self.fn = fn
        self.options = options
        self._hints: tuple[dict[str, Any], tuple[Any, ...]] | None = None

    @property
    def name(self) -> str:
        return self.options.name

    @functools.cached_property
    def signature(self) -> inspect.Signature:
        """The parameters a pipeline passes: a ``spark=True`` step's ``spark`` parameter is
        left out, because the engine supplies the session."""
        full = inspect.signature(self.fn)
        if self.options.spark and "spark" in full.parameters:
            return full.replace(parameters=[p for name, p in full.parameters.items() if name != "spark"])
        return full

    @property
    def qualname(self) -> str:
        """``module:qualname`` of the function."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Record a call of this step in the current build and return its :class:`Output`.

        Raises:
            PipelineDefinitionError: no build is in progress, or the arguments are wrong.
        """
        return build_for(self, "called").call(self, args, kwargs)

    def map(self, items: Any, /, **fixed: Any) -> Any:
        """Record one task per item of ``items``; return the :class:`Output` of their results.

        Each item is passed as the step's first parameter that ``fixed`` does not name;
        ``fixed`` arguments (plain values or outputs) are the same for every task.

        Args:
            items: A list, tuple or range known now, a list of outputs, or the
                :class:`Output` of a step that returns a list.
            fixed: Arguments shared by all tasks.

        Returns:
            An :class:`Output` typed ``list[R]``.

        Raises:
            PipelineDefinitionError: no build is in progress, ``items`` is not a
                collection, or an item or argument does not fit the step.
        """
        return build_for(self, "mapped").map(self, items, fixed)

    def with_options(self, **changes: Any) -> Step[P, R]:
        """A copy of this step with some options changed (same function, same checks)."""
        current = {f.name: getattr(self.options, f.name) for f in fields(StepOptions)}
        unknown = sorted(set(changes) - set(current))
        if unknown:
            raise PipelineDefinitionError(
                f"step {self.name!r}: unknown option(s) {', '.join(unknown)}; options: {', '.join(current)}"
            )
        if changes.get("retries") == 0 and "retry_on" not in changes:
            current["retry_on"] = (Exception,)  # switching retries off drops the filter too
        return Step(self.fn, make_options(**{**current, **changes}))

    def hints(self) -> dict[str, Any]:
        """Resolved parameter annotations (``Any`` where missing or unresolvable)."""
        return self._resolved()[0]

    def output_types(self) -> tuple[Any, ...]:
        """One type per output: the tuple's elements for ``-> tuple[A, B]``, else the return type."""
        return self._resolved()[1]

    def _resolved(self) -> tuple[dict[str, Any], tuple[Any, ...]]:
        # Resolved on first use, not at decoration: a return type may name a class that
        # the module defines below the step.
        if self._hints is None:
            hints = type_hints(self.fn)
            returns = hints.pop("return", Any)
            self._hints = (hints, fixed_tuple(returns) or (returns,))
        return self._hints

    def __repr__(self) -> str:
        return f"<Step {self.name} ({self.qualname})>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        # The module attribute named like the function is this Step, not the function, so
        # pickle cannot find the function by reference: ship module, qualname and options.
        qualname = self.fn.__qualname__
        if self.fn.__module__ != "__main__" and "<locals>" not in qualname:
            return (_load_step, (self.fn.__module__, qualname, self.options))
        return super().__reduce_ex__(protocol)


def _load_step(module: str, qualname: str, options: StepOptions) -> Step[..., Any]:
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    if isinstance(target, Step):
        return target if target.options == options else Step(target.fn, options)
    return Step(target, options)


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(
    *,
    name: str | None = None,
    retries: int = 0,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
    backoff: float | str = 1.0,
    timeout: float | str | None = None,
    resources: Mapping[str, Any] | None = None,
    cache: bool = True,
    spark: bool = False,
    allow_pickle: bool = False,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...
def step(fn: Any = None, /, *, name: str | None = None, **options: Any) -> Any:
    """Declare a function as a pipeline step: ``@step`` or ``@step(retries=2, ...)``.

    Only records; see :class:`StepOptions` for what each option asks of the engine.

    Args:
        fn: The function (when used without parentheses).
        name: The step name, an identifier; defaults to the function's name.
        retries, retry_on, backoff, timeout, resources, cache, spark, allow_pickle:
            see :class:`StepOptions`; ``timeout`` and ``backoff`` take seconds or text
            such as ``"10m"``, ``resources["memory"]`` bytes or text such as ``"4GiB"``.

    Raises:
        PipelineDefinitionError: a bad option or an unsupported function; the message
            names the step and the option.
    """
    if fn is None:
        return lambda f: step(f, name=name, **options)
    if isinstance(fn, str):
        raise PipelineDefinitionError(f"give the step name as a keyword: @step(name={fn!r})")
    label = name or getattr(fn, "__name__", repr(fn))
    if isinstance(fn, Step):
        raise PipelineDefinitionError(
            f"{fn.name!r} is already a step; use {fn.name}.with_options(...) to change its options"
        )
    check_function(fn, f"step {label!r}", "@step")
    try:
        opts = make_options(name or fn.__name__, **options)
    except TypeError:
        known = ", ".join(f.name for f in fields(StepOptions))
        unknown = ", ".join(sorted(set(options) - {f.name for f in fields(StepOptions)}))
        raise PipelineDefinitionError(
            f"step {label!r}: unknown option(s) {unknown}; options: {known}"
        ) from None
    return Step(fn, opts)


def check_function(fn: Any, label: str, decorator: str) -> None:
    if not inspect.isfunction(fn):
        raise PipelineDefinitionError(f"{label}: {decorator} decorates functions, got {type(fn).__name__}")
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise PipelineDefinitionError(
            f"{label}: async functions and generators are not supported; write a plain function "
            "that returns its result"
        )
    for param in inspect.signature(fn).parameters.values():
        if param.kind in _BAD_KINDS:
            raise PipelineDefinitionError(
                f"{label}: {_BAD_KINDS[param.kind]} {param.name!r} is not supported; every parameter "
                "must be passable by name"
            )


def type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations of ``fn``; one that cannot be resolved counts as ``Any``."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        hints: dict[str, Any] = {}
        for name, annotation in getattr(fn, "__annotations__", {}).items():
            holder = types.SimpleNamespace(__annotations__={name: annotation})
            try:
                hints[name] = typing.get_type_hints(holder, globalns=getattr(fn, "__globals__", {}))[name]
            except Exception:
                hints[name] = Any
        return hints
