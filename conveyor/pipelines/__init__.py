"""Pipelines: plain-Python steps, their graph, content-addressed caching and lineage.

A step's cache key combines what decides its output: a fingerprint of its code and of the
project code it reaches (``conveyor.pipelines.fingerprint``), its parameters, the content
hashes of its inputs and the serializer versions. Each part of the key is kept apart from
the others so that ``conveyor pipeline why-rerun`` can say which one changed.

Pipelines are declared with ``@step`` and ``@pipeline`` and built into a frozen
:class:`PipelineSpec` (``conveyor.pipelines.definition``); executors run the spec.
"""

from conveyor.pipelines.definition import (
    Const,
    Edge,
    Gather,
    MapOver,
    NodeSpec,
    Output,
    Pipeline,
    PipelineDefinitionError,
    PipelineParam,
    PipelineParameterError,
    PipelineSpec,
    Ref,
    Resources,
    Step,
    StepOptions,
    pipeline,
    step,
)

__all__ = [
    "Const",
    "Edge",
    "Gather",
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
