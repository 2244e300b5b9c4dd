"""A built pipeline as JSON, for the run record: the graph a run executed, readable later.

Written once per run and read by people and by tools (``conveyor pipeline show``, lineage
export); it is a description, not a way to rebuild the spec (``resume`` rebuilds from the
pipeline's code and recorded parameters).
"""

from __future__ import annotations

from typing import Any

from conveyor.pipelines._graph import Const, Gather, Input, NodeSpec, PipelineSpec, Ref
from conveyor.pipelines._types import describe


def spec_to_json(spec: PipelineSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "nodes": [_node(node) for node in spec.nodes],
        "edges": [
            {"source": e.source, "target": e.target, "arg": e.arg, "index": e.index} for e in spec.edges
        ],
    }


def _node(node: NodeSpec) -> dict[str, Any]:
    options = node.options
    data: dict[str, Any] = {
        "id": node.id,
        "step": node.step_name,
        "function": node.qualname,
        "inputs": {name: _input(source) for name, source in node.inputs.items()},
        "outputs": [describe(t) for t in node.output_types],
        "options": {
            "retries": options.retries,
            "retry_on": [f"{t.__module__}.{t.__qualname__}" for t in options.retry_on],
            "backoff": options.backoff,
            "timeout": options.timeout,
            "resources": {
                k: v
                for k, v in (
                    ("cpu", options.resources.cpu),
                    ("memory", options.resources.memory),
                    ("gpu", options.resources.gpu),
                )
                if v is not None
            },
            "cache": options.cache,
            "spark": options.spark,
            "allow_pickle": options.allow_pickle,
        },
    }
    if node.map_over is not None:
        data["map_over"] = {
            "arg": node.map_over.arg,
            "source": _input(node.map_over.source),
            "count": node.map_over.count,
        }
    return data


def _input(source: Input) -> dict[str, Any]:
    if isinstance(source, Ref):
        return {"ref": source.node, "index": source.index}
    if isinstance(source, Const):
        return {"const": short_value(source.value)}
    assert isinstance(source, Gather)
    return {"gather": [_input(item) for item in source.items], "kind": source.kind.__name__}


def short_value(value: Any) -> Any:
    """A plain value as is; anything else as its ``repr``, cut to 200 characters."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"
