"""Errors raised while a pipeline is defined or built, before any step runs."""

from __future__ import annotations

from conveyor.errors import InvalidInput


class PipelineDefinitionError(InvalidInput):
    """A step, a pipeline or the graph they build is wrong; nothing has run.

    Raised when a decorator gets a bad option, when a step is wired wrongly during
    :meth:`Pipeline.build` (a type mismatch, a missing or unexpected argument, an output
    from another build, a cycle), and when a step is called outside a build. The message
    names the steps, nodes and parameters involved.
    """

    headline = "Invalid pipeline"


class PipelineParameterError(PipelineDefinitionError):
    """A pipeline parameter is unknown, missing, or has a value of the wrong type.

    The CLI shows the pipeline's parameters after this error.
    """

    headline = "Invalid pipeline parameter"
