"""The built graph: a :class:`PipelineSpec` of :class:`NodeSpec` nodes, frozen, nothing run.

This is what :meth:`Pipeline.build` returns and what executors, the cache and the run
record read. It holds no behaviour beyond graph queries; constructing one validates it
(unique node ids, inputs that point at existing nodes and outputs, no cycle), so a spec
assembled by hand or loaded back for ``resume`` obeys the same rules as a built one.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from conveyor.errors import NotFound
from conveyor.pipelines._errors import PipelineDefinitionError
from conveyor.pipelines._options import StepOptions

K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(Mapping[K, V]):
    """A read-only mapping that, unlike ``MappingProxyType``, pickles (executors ship specs)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[K, V] | None = None) -> None:
        self._data: dict[K, V] = dict(data or {})

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[type[FrozenMap[K, V]], tuple[dict[K, V]]]:
        return (type(self), (self._data,))


@dataclass(frozen=True)
class Ref:
    """An input read from another node's output."""

    #: Id of the producing node.
    node: str
    #: ``None``: the producer's whole return value; ``i``: element ``i`` of the tuple it
    #: returns (only for steps annotated ``-> tuple[A, B, ...]``).
    index: int | None = None


@dataclass(frozen=True)
class Const:
    """An input given as a plain value while the pipeline was built.

    The value is kept by reference, not copied: the pipeline function should not mutate
    it after passing it.
    """

    value: Any


@dataclass(frozen=True)
class Gather:
    """A list or tuple assembled from several outputs (and plain values) at run time.

    Built when a step is called with ``[a, b, c]`` where some items are step outputs:
    the fan-in of steps called in a Python loop.
    """

    items: tuple[Ref | Const, ...]
    #: ``list`` or ``tuple``: what the executor hands to the step.
    kind: type = list


#: What a node's argument (or the collection a mapped node iterates) is bound to.
Input = Ref | Const | Gather


@dataclass(frozen=True)
class MapOver:
    """How a mapped node fans out: one task per item of ``source``, bound to ``arg``.

    The node's output is the list of the tasks' results, in item order. Executors may
    batch several items into one task; the definition only records the mapping.
    """

    #: The step parameter each item is passed as.
    arg: str
    #: The collection: a build-time list (``Const``), another node's output (``Ref``),
    #: or a list assembled from outputs (``Gather``).
    source: Input
    #: Number of items when known at build time; ``None`` when they come from a step.
    count: int | None


@dataclass(frozen=True)
class Edge:
    """Data flows from node ``source`` to node ``target``, into parameter ``arg``."""

    source: str
    target: str
    arg: str
    #: Which output of ``source``; see :attr:`Ref.index`.
    index: int | None = None


@dataclass(frozen=True)
class NodeSpec:
    """One call of a step in a built pipeline.

    Equal builds give equal nodes: the step object itself is attached for executors but
    left out of comparisons and ``repr``.
    """

    #: Unique in the pipeline and stable across builds: the step name for its first call,
    #: ``name-2``, ``name-3``… for later ones, in call order.
    id: str
    step_name: str
    #: ``module:qualname`` of the step function, for importing it in another process.
    qualname: str
    options: StepOptions
    #: Parameter name → what it receives, for the arguments the pipeline passed (defaults
    #: are left to the function). For a mapped node, the fixed arguments only.
    inputs: Mapping[str, Input]
    #: Declared output types: one entry (the return annotation, ``Any`` when missing), or
    #: one per element when the step is annotated with a fixed-length tuple. A mapped
    #: node has one output, ``list[R]``.
    output_types: tuple[Any, ...]
    #: Set for nodes made by ``step.map(...)``.
    map_over: MapOver | None = None
    #: The :class:`~conveyor.pipelines.definition.Step` this node calls.
    step: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.inputs, FrozenMap):
            object.__setattr__(self, "inputs", FrozenMap(self.inputs))
        object.__setattr__(self, "output_types", tuple(self.output_types))

    @property
    def output_type(self) -> Any:
        """The type of the whole return value (``tuple[A, B]`` for a multi-output node)."""
        if len(self.output_types) == 1:
            return self.output_types[0]
        return tuple[self.output_types]  # type: ignore[valid-type]

    def refs(self) -> Iterator[tuple[str, Ref]]:
        """Every ``(parameter, Ref)`` this node reads, the mapped collection included."""
        bound: list[tuple[str, Input]] = list(self.inputs.items())
        if self.map_over is not None:
            bound.append((self.map_over.arg, self.map_over.source))
        for arg, source in bound:
            if isinstance(source, Ref):
                yield arg, source
            elif isinstance(source, Gather):
                for item in source.items:
                    if isinstance(item, Ref):
                        yield arg, item


@dataclass(frozen=True)
class PipelineSpec:
    """A built pipeline: its parameter values and the nodes they produced.

    Constructing one checks it; every method below is a pure graph query.

    Raises:
        PipelineDefinitionError: duplicate node ids, an input that names a missing node
            or output, or a cycle (the message lists the nodes on it).
    """

    name: str
    #: Every pipeline parameter, defaults applied, with the value used for this build.
    params: Mapping[str, Any]
    #: In build order, which is a topological order for built specs.
    nodes: tuple[NodeSpec, ...]
    #: One per (producer, consumer, parameter, output) connection, derived from the nodes.
    edges: tuple[Edge, ...] = field(init=False)
    _by_id: dict[str, NodeSpec] = field(init=False, repr=False, compare=False)
    _order: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _up: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _down: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nodes = tuple(self.nodes)
        by_id: dict[str, NodeSpec] = {}
        for node in nodes:
            if node.id in by_id:
                raise PipelineDefinitionError(f"pipeline {self.name!r}: two nodes have the id {node.id!r}")
            by_id[node.id] = node
        edges = []
        for node in nodes:
            for arg, ref in node.refs():
                producer = by_id.get(ref.node)
                if producer is None:
                    raise PipelineDefinitionError(
                        f"pipeline {self.name!r}: node {node.id!r} (step {node.step_name!r}) reads "
                        f"argument {arg!r} from node {ref.node!r}, which is not in the pipeline"
                    )
                outputs = len(producer.output_types)
                if ref.index is not None and not (outputs > 1 and 0 <= ref.index < outputs):
                    raise PipelineDefinitionError(
                        f"pipeline {self.name!r}: node {node.id!r} reads output {ref.index} of node "
                        f"{ref.node!r}, which has {outputs} output(s)"
                    )
                edges.append(Edge(ref.node, node.id, arg, ref.index))
        up: dict[str, list[str]] = {node.id: [] for node in nodes}
        down: dict[str, list[str]] = {node.id: [] for node in nodes}
        for edge in edges:
            if edge.source not in up[edge.target]:
                up[edge.target].append(edge.source)
                down[edge.source].append(edge.target)
        set_ = object.__setattr__
        set_(self, "nodes", nodes)
        set_(self, "params", self.params if isinstance(self.params, FrozenMap) else FrozenMap(self.params))
        set_(self, "edges", tuple(edges))
        set_(self, "_by_id", by_id)
        set_(self, "_up", {k: tuple(v) for k, v in up.items()})
        set_(self, "_down", {k: tuple(v) for k, v in down.items()})
        set_(self, "_order", self._sort())

    def node(self, node_id: str) -> NodeSpec:
        """The node with id ``node_id``.

        Raises:
            NotFound: no such node; the message lists the known ids.
        """
        try:
            return self._by_id[node_id]
        except KeyError:
            known = ", ".join(self._order[:20]) + (", …" if len(self._order) > 20 else "")
            raise NotFound(f"pipeline {self.name!r} has no node {node_id!r}; nodes: {known}") from None

    def topological_order(self) -> tuple[str, ...]:
        """Node ids, each after every node it reads from; ties keep build order."""
        return self._order

    def upstream(self, node_id: str, *, transitive: bool = False) -> tuple[str, ...]:
        """Ids of the nodes ``node_id`` reads from (all its ancestors if ``transitive``).

        Raises:
            NotFound: no such node.
        """
        return self._walk(node_id, self._up, transitive)

    def downstream(self, node_id: str, *, transitive: bool = False) -> tuple[str, ...]:
        """Ids of the nodes that read ``node_id`` (all its descendants if ``transitive``).

        Raises:
            NotFound: no such node.
        """
        return self._walk(node_id, self._down, transitive)

    def _walk(self, node_id: str, links: dict[str, tuple[str, ...]], transitive: bool) -> tuple[str, ...]:
        self.node(node_id)
        if not transitive:
            return links[node_id]
        seen: set[str] = set()
        stack = list(links[node_id])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(links[current])
        return tuple(n for n in self._order if n in seen)

    def _sort(self) -> tuple[str, ...]:
        """Kahn's algorithm, always taking the earliest-built ready node."""
        position = {node.id: i for i, node in enumerate(self.nodes)}
        waiting = {node_id: len(ups) for node_id, ups in self._up.items()}
        ready = [position[n] for n, count in waiting.items() if count == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            node_id = self.nodes[heapq.heappop(ready)].id
            order.append(node_id)
            for after in self._down[node_id]:
                waiting[after] -= 1
                if waiting[after] == 0:
                    heapq.heappush(ready, position[after])
        if len(order) < len(self.nodes):
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} has a cycle: {self._describe_cycle(set(position) - set(order))}"
            )
        return tuple(order)

    def _describe_cycle(self, stuck: set[str]) -> str:
        # Every node left over by Kahn's algorithm reads from another left-over node, so
        # walking upstream inside that set must come back to a node already seen.
        position = {node.id: i for i, node in enumerate(self.nodes)}
        path: list[str] = []
        current = min(stuck, key=position.__getitem__)
        while current not in path:
            path.append(current)
            current = next(up for up in self._up[current] if up in stuck)
        cycle = path[path.index(current) :][::-1]  # in the direction data flows
        first = cycle.index(min(cycle, key=position.__getitem__))
        cycle = [*cycle[first:], *cycle[:first], cycle[first]]
        names = sorted({self._by_id[n].step_name for n in cycle})
        return f"{' → '.join(cycle)} (steps {', '.join(map(repr, names))})"
