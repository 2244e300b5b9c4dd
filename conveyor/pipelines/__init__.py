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

#: Imported on first use: they load the SQL store, which ``import conveyor.pipelines`` must not.
_RUNNER_EXPORTS = ("RunResult", "resume", "run_pipeline", "why_rerun")

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
    "RunResult",
    "Step",
    "StepOptions",
    "pipeline",
    "resume",
    "run_pipeline",
    "step",
    "why_rerun",
]


def __getattr__(name: str) -> object:
    if name in _RUNNER_EXPORTS:
        from conveyor.pipelines import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'conveyor.pipelines' has no attribute {name!r}")
