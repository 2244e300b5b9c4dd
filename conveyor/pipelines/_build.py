"""What happens while a pipeline builds: each step call becomes a node, each result an Output.

:class:`Build` is the state of one :meth:`~conveyor.pipelines.definition.Pipeline.build`
(nodes so far, how often each step was called, which pipelines are being run); it lives
in a context variable for the duration of the build, so steps called anywhere else find
none and refuse. Every check on arguments happens here, when the call is recorded.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar

from conveyor.pipelines._errors import PipelineDefinitionError
from conveyor.pipelines._graph import Const, FrozenMap, Gather, Input, MapOver, NodeSpec, Ref
from conveyor.pipelines._types import describe, element_type, is_compatible, value_matches

if TYPE_CHECKING:
    from conveyor.pipelines._step import Step
    from conveyor.pipelines.definition import Pipeline

_EMPTY = inspect.Parameter.empty


class Declared:
    """Base of :class:`Step` and :class:`Pipeline`, so a build recognises them as values."""

    #: "step" or "pipeline", for messages.
    kind: ClassVar[str]
    name: str


#: The build in progress in this thread or task, if any.
_CURRENT: ContextVar[Build | None] = ContextVar("conveyor_pipeline_build", default=None)


def current_build() -> Build | None:
    """The build in progress, or ``None``."""
    return _CURRENT.get()


@contextlib.contextmanager
def activate(build: Build) -> Iterator[Build]:
    """Make ``build`` the build in progress for the ``with`` block."""
    token = _CURRENT.set(build)
    try:
        yield build
    finally:
        _CURRENT.reset(token)


def build_for(step: Step[..., Any], action: str) -> Build:
    build = _CURRENT.get()
    if build is None:
        raise PipelineDefinitionError(
            f"step {step.name!r} was {action} outside a pipeline build, so nothing ran. To run the "
            f"function itself (in a unit test), call {step.name}.fn(...); to run the pipeline, "
            "use `conveyor pipeline run` or an executor"
        )
    return build


class Output:
    """A placeholder for a value a step will produce, handed out while a pipeline builds.

    Pass it to other steps. It cannot be inspected (no attributes, truth value, length,
    arithmetic), because no value exists yet; only outputs of steps annotated with a
    fixed-length tuple can be unpacked or indexed.
    """

    __slots__ = ("_build", "index", "node", "type")

    _build: Build
    #: The node that produces the value.
    node: NodeSpec
    #: ``None`` for the whole return value, ``i`` for element ``i`` of a tuple return.
    index: int | None
    #: The declared type of this value.
    type: Any

    def __init__(self, build: Build, node: NodeSpec, index: int | None, type_: Any) -> None:
        object.__setattr__(self, "_build", build)
        object.__setattr__(self, "node", node)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "type", type_)

    @property
    def node_id(self) -> str:
        return self.node.id

    @property
    def ref(self) -> Ref:
        """How a consumer node refers to this value."""
        return Ref(self.node.id, self.index)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Output is read-only")

    def __repr__(self) -> str:
        part = "" if self.index is None else f"[{self.index}]"
        return f"<Output of {self.node.id}{part}: {describe(self.type)}>"

    def _label(self) -> str:
        part = "" if self.index is None else f" (element {self.index})"
        return f"the output of step {self.node.step_name!r}{part} (node {self.node.id!r})"

    def _parts(self, action: str) -> tuple[Output, ...]:
        if self.index is None and len(self.node.output_types) > 1:
            return tuple(Output(self._build, self.node, i, t) for i, t in enumerate(self.node.output_types))
        raise self._lazy(
            f"cannot be {action}: only outputs of steps annotated with a fixed-length tuple "
            "(-> tuple[A, B]) can be unpacked or indexed; to run a step on each item of a "
            "list a step returns, use other_step.map(output)"
        )

    def _lazy(self, what: str) -> PipelineDefinitionError:
        return PipelineDefinitionError(self._lazy_message(what))

    def _lazy_message(self, what: str) -> str:
        return (
            f"{self._label()} {what}. While a pipeline is built, step outputs are placeholders "
            "for values that do not exist yet; move this code into a @step"
        )

    def __iter__(self) -> Iterator[Output]:
        return iter(self._parts("iterated or unpacked"))

    def __len__(self) -> int:
        return len(self._parts("measured with len()"))

    def __getitem__(self, key: int) -> Output:
        return self._parts("indexed")[key]

    def __bool__(self) -> bool:
        raise self._lazy(
            "has no truth value during the build; branch on pipeline parameters, or decide inside a step"
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in Output.__slots__:  # protocols; half-built objects
            raise AttributeError(name)
        raise _LazyAttributeError(self._lazy_message(f"has no attribute {name!r} during the build"))

    def __copy__(self) -> Output:
        return self  # immutable: a copy (of a list holding outputs, say) is the same handle

    def __deepcopy__(self, memo: Any) -> Output:
        return self

    def __reduce__(self) -> Any:
        raise self._lazy("cannot be pickled: outputs exist only while the pipeline is built")

    def _operator(self, *_: Any) -> Any:
        raise self._lazy("cannot be used with operators during the build")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _operator
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __pow__ = _operator
    __lt__ = __le__ = __gt__ = __ge__ = __neg__ = __abs__ = _operator
    __int__ = __float__ = __index__ = _operator


class _LazyAttributeError(PipelineDefinitionError, AttributeError):
    """Reading an attribute of an :class:`Output`; an ``AttributeError`` so ``hasattr`` works."""


class Build:
    """State of one :meth:`Pipeline.build`: nodes so far, call counts, pipelines entered."""

    def __init__(self, root: Pipeline, parent: Build | None) -> None:
        self.parent = parent
        #: Pipelines being run, outermost first (more than one when pipelines compose).
        self.stack: list[Pipeline] = [root]
        self.nodes: dict[str, NodeSpec] = {}
        self.counts: dict[str, int] = {}
        #: Step name → the first step that used it, to catch two functions sharing a name.
        self.steps: dict[str, Step[..., Any]] = {}

    def chain(self) -> list[Pipeline]:
        outer = self.parent.chain() if self.parent else []
        return [*outer, *self.stack]

    def describe_chain(self, again: Pipeline) -> str:
        return " → ".join(p.name for p in [*self.chain(), again])

    def call(self, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Output:
        signature = step.signature
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            raise PipelineDefinitionError(
                binding_problem(f"step {step.name!r}", signature, args, kwargs)
            ) from None
        hints = step.hints()
        inputs = {
            arg: self.input_for(step, arg, value, hints.get(arg, Any))
            for arg, value in bound.arguments.items()
        }
        node = self.add(step, inputs, step.output_types(), None)
        return Output(self, node, None, node.output_type)

    def map(self, step: Step[..., Any], items: Any, fixed: dict[str, Any]) -> Output:
        signature = step.signature
        free = [name for name in signature.parameters if name not in fixed]
        if not free:
            raise PipelineDefinitionError(
                f"step {step.name!r}.map(): every parameter is fixed, so there is none left for the items"
            )
        arg = free[0]
        try:
            signature.bind(**{**fixed, arg: None})
        except TypeError:
            raise PipelineDefinitionError(
                binding_problem(f"step {step.name!r}", signature, (), {**fixed, arg: None})
            ) from None
        hints = step.hints()
        inputs = {
            name: self.input_for(step, name, value, hints.get(name, Any)) for name, value in fixed.items()
        }
        source, count = self.map_source(step, arg, items, hints.get(arg, Any))
        returns = step.output_types()
        result = list[returns[0] if len(returns) == 1 else tuple[returns]]  # type: ignore[valid-type]
        node = self.add(step, inputs, (result,), MapOver(arg, source, count))
        return Output(self, node, None, result)

    def map_source(self, step: Step[..., Any], arg: str, items: Any, hint: Any) -> tuple[Input, int | None]:
        where = f"step {step.name!r}.map() argument {arg!r}"
        if isinstance(items, Output):
            ref = self.ref_for(step, arg, items)
            item_type = element_type(items.type)
            if item_type is None:
                raise PipelineDefinitionError(
                    f"{where}: {items._label()} is typed {describe(items.type)}, "
                    "which is not a collection to map over"
                )
            if not is_compatible(item_type, hint):
                raise PipelineDefinitionError(
                    f"{where} expects {describe(hint)}, but the items of {items._label()} are "
                    f"{describe(item_type)}"
                )
            return ref, None
        if isinstance(items, str | bytes) or not isinstance(items, Sequence):
            raise PipelineDefinitionError(
                f"{where}: map() takes a list, tuple or range, or a step output holding a list; "
                f"got {type(items).__name__}"
            )
        values = tuple(items)
        if any(isinstance(v, Output) for v in values):
            gathered = self.input_for(step, arg, list(values), list[hint])  # type: ignore[valid-type]
            return gathered, len(values)
        for position, value in enumerate(values):
            self.check_literal(step, f"{arg}[{position}]", value, hint)
        return Const(values), len(values)

    def input_for(self, step: Step[..., Any], arg: str, value: Any, hint: Any) -> Input:
        if isinstance(value, Output):
            ref = self.ref_for(step, arg, value)
            if not is_compatible(value.type, hint):
                raise PipelineDefinitionError(
                    f"type mismatch: step {step.name!r} argument {arg!r} expects {describe(hint)}, "
                    f"but {value._label()} is declared as {describe(value.type)}"
                )
            return ref
        if type(value) in (list, tuple) and any(isinstance(item, Output) for item in value):
            return self.gather(step, arg, value, hint)
        self.check_literal(step, arg, value, hint)
        return Const(value)

    def gather(self, step: Step[..., Any], arg: str, value: list[Any] | tuple[Any, ...], hint: Any) -> Gather:
        kind = type(value)
        items: list[Ref | Const] = []
        types_: list[Any] = []
        for position, item in enumerate(value):
            if isinstance(item, Output):
                items.append(self.ref_for(step, f"{arg}[{position}]", item))
                types_.append(item.type)
            else:
                self.check_literal(step, f"{arg}[{position}]", item, Any)
                items.append(Const(item))
                types_.append(type(item))
        if kind is tuple:
            fits = is_compatible(tuple[tuple(types_)], hint)  # type: ignore[misc]
        else:
            elements = element_type(hint)
            fits = elements is not None and is_compatible(list, hint)
            fits = fits and all(is_compatible(t, elements) for t in types_)
        if not fits:
            shown = ", ".join(describe(t) for t in types_)
            raise PipelineDefinitionError(
                f"type mismatch: step {step.name!r} argument {arg!r} expects {describe(hint)}, "
                f"but gets a {kind.__name__} of [{shown}]"
            )
        return Gather(tuple(items), kind)

    def ref_for(self, step: Step[..., Any], arg: str, output: Output) -> Ref:
        if output._build is not self:
            raise PipelineDefinitionError(
                f"step {step.name!r} argument {arg!r} is {output._label()} from another build "
                f"(of pipeline {output._build.stack[0].name!r}); outputs can only be passed to steps "
                "of the build that made them: do not keep them in globals or share them between pipelines"
            )
        if self.nodes.get(output.node.id) is not output.node:
            raise PipelineDefinitionError(
                f"step {step.name!r} argument {arg!r} refers to node {output.node.id!r}, "
                "which this build has not recorded; outputs must come from steps called earlier"
            )
        return output.ref

    def check_literal(self, step: Step[..., Any], arg: str, value: Any, hint: Any) -> None:
        where = f"step {step.name!r} argument {arg!r}"
        found = find_lazy(value)
        if isinstance(found, Declared):
            raise PipelineDefinitionError(
                f"{where} is the {found.kind} {found.name!r} itself, not its output: "
                f"call it, {found.name}(...)"
            )
        if found is not None:
            raise PipelineDefinitionError(
                f"{where} holds a step output inside a {type(value).__name__}; only a flat list or "
                "tuple of outputs is assembled at run time: pass outputs directly, as a list, or "
                "build the structure inside a step"
            )
        if inspect.isgenerator(value) or inspect.iscoroutine(value) or inspect.isasyncgen(value):
            raise PipelineDefinitionError(
                f"{where} is a {type(value).__name__} made while the pipeline was built, not a step "
                "output; was a plain function called instead of a @step? Decorate it with @step"
            )
        if not value_matches(value, hint):
            raise PipelineDefinitionError(f"{where} expects {describe(hint)}, got {show(value)}")

    def add(
        self,
        step: Step[..., Any],
        inputs: dict[str, Input],
        output_types: tuple[Any, ...],
        map_over: MapOver | None,
    ) -> NodeSpec:
        name = step.name
        first = self.steps.setdefault(name, step)
        if first.fn is not step.fn:
            raise PipelineDefinitionError(
                f"two different functions use the step name {name!r}: {first.qualname} and "
                f"{step.qualname}; rename one with @step(name=...)"
            )
        count = self.counts.get(name, 0) + 1
        self.counts[name] = count
        node_id = name if count == 1 else f"{name}-{count}"
        node = NodeSpec(
            node_id, name, step.qualname, step.options, FrozenMap(inputs), output_types, map_over, step
        )
        self.nodes[node_id] = node
        return node


def binding_problem(
    label: str, signature: inspect.Signature, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> str:
    params = signature.parameters
    names = ", ".join(params) or "none"
    positional = [p for p in params.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    if len(args) > len(positional):
        return (
            f"{label} takes {len(positional)} positional argument(s) but got {len(args)}; "
            f"its parameters: {names}"
        )
    by_position = {p.name for p in positional[: len(args)]}
    unexpected = sorted(set(kwargs) - set(params))
    if unexpected:
        return (
            f"{label} got unexpected argument(s) {', '.join(map(repr, unexpected))}; its parameters: {names}"
        )
    twice = sorted(by_position & set(kwargs))
    if twice:
        return f"{label} got more than one value for argument(s) {', '.join(map(repr, twice))}"
    missing = [
        p.name
        for p in params.values()
        if p.default is _EMPTY and p.name not in by_position and p.name not in kwargs
    ]
    return f"{label} is missing required argument(s) {', '.join(map(repr, missing))}"


def find_lazy(value: Any) -> Any:
    """The first step output, step or pipeline in ``value`` or its plain containers.

    Only built-in containers are searched (a DataFrame is not iterated), each once.
    """
    seen: set[int] = set()
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, Output | Declared):
            return current
        kind = type(current)
        if kind in (list, tuple, set, frozenset, dict) and id(current) not in seen:
            seen.add(id(current))
            pending.extend(current.values() if kind is dict else ())
            pending.extend(current)
    return None


def show(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"
