"""``conveyor lineage``: where a pipeline artifact or run came from, and what it fed.

A thin layer over :mod:`conveyor.pipelines.lineage`: the graph as a tree for people,
``--json`` for scripts, ``--openlineage`` for lineage tools. Lineage is read from the
metadata database, so a server URL is refused with a hint to use the database URL.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli import _output as out
from conveyor.cli import model_lineage
from conveyor.cli._common import JsonFlag, TrackingUri, database_url
from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    from rich.text import Text
    from rich.tree import Tree

    from conveyor.config import Settings
    from conveyor.pipelines.lineage import LineageGraph
    from conveyor.store.base import TrackingStore

#: Children shown under one node of the tree; --json has them all.
_MAX_CHILDREN = 25
#: Edge names shown on one line of the tree (a mapped step reads one artifact per item).
_MAX_NAMES = 3


def lineage(
    ref: Annotated[
        str,
        typer.Argument(
            metavar="ARTIFACT|RUN|MODEL|DATASET",
            help="An artifact's path or SHA-256 (a unique prefix of 8+ hex characters), "
            "a pipeline run id (run:<id>), a model version (models:/<name>/<version> or "
            "models:/<name>@<alias>), or a dataset digest (dataset:<sha256>, --downstream).",
        ),
    ],
    upstream: Annotated[
        bool, typer.Option("--upstream", help="Where it came from: producing steps, their inputs… (default).")
    ] = False,
    downstream: Annotated[
        bool, typer.Option("--downstream", help="What it fed: consuming steps, their outputs…")
    ] = False,
    depth: Annotated[
        int | None, typer.Option("--depth", min=0, help="Follow at most this many levels of steps.")
    ] = None,
    as_json: JsonFlag = False,
    openlineage: Annotated[
        bool,
        typer.Option(
            "--openlineage", help="Print the pipeline run's OpenLineage events as JSON lines (RUN only)."
        ),
    ] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Trace a pipeline artifact or run upstream (where it came from) or downstream (what it fed)."""
    from conveyor.pipelines import lineage as api

    if upstream and downstream:
        raise InvalidInput("Choose one of --upstream and --downstream.")
    if ref.startswith(model_lineage.PREFIXES):
        model_lineage.show(ref, downstream, as_json, tracking_uri)
        return
    with _open_store(tracking_uri) as (settings, store):
        if openlineage:
            root = _root_uri(settings.resolved_artifact_root())
            for event in api.openlineage_events(store, ref, artifact_root=root):
                typer.echo(json.dumps(event))
            return
        trace = api.downstream if downstream else api.upstream
        graph = trace(store, ref, max_depth=depth)
    if as_json:
        out.emit_json(graph.to_dict())
        return
    out.console().print(_tree(graph))


@contextlib.contextmanager
def _open_store(tracking_uri: str | None) -> Iterator[tuple[Settings, TrackingStore]]:
    """The settings and the SQL store of the database the URI names, closed after."""
    from conveyor.store import open_store

    settings, url = database_url(tracking_uri, "lineage")
    store = open_store(url, upgrade=settings.auto_upgrade)
    try:
        yield settings, store
    finally:
        store.close()


def _root_uri(root: str) -> str:
    """The artifact root as a URI: fsspec URIs as they are, local folders as ``file://``."""
    return root if "://" in root else Path(root).resolve().as_uri()


# -- the tree ----------------------------------------------------------------------------------


def _tree(graph: LineageGraph) -> Tree:
    """The graph as a tree from its root; a node met again is shown without its subtree."""
    from rich.tree import Tree

    nexts = graph.next_nodes()
    shown: set[str] = set()
    kind, _, root_id = graph.root.partition(":")
    if kind == "artifact":
        tree = Tree(_label(graph, graph.root, []))
        _grow(tree, graph, nexts, graph.root, shown)
        return tree
    tree = Tree(_run_label(graph, root_id))
    # Upstream, the last step's subtree holds most of the run; downstream, the first step's.
    own = sorted(
        (s for s in graph.steps.values() if s.run_id == root_id),
        key=lambda s: s.position,
        reverse=graph.direction == "upstream",
    )
    for step in own:
        _add(tree, graph, nexts, step.key, [], shown)
    return tree


def _add(
    parent: Tree,
    graph: LineageGraph,
    nexts: dict[str, dict[str, list[str]]],
    key: str,
    names: list[str],
    shown: set[str],
) -> None:
    label = _label(graph, key, names)
    if key in shown and nexts.get(key):
        label.append("  (shown above)", style="dim")
    branch = parent.add(label)
    if key not in shown:
        _grow(branch, graph, nexts, key, shown)


def _grow(
    branch: Tree, graph: LineageGraph, nexts: dict[str, dict[str, list[str]]], key: str, shown: set[str]
) -> None:
    shown.add(key)
    children = list(nexts.get(key, {}).items())
    for child, names in children[:_MAX_CHILDREN]:
        _add(branch, graph, nexts, child, names, shown)
    if len(children) > _MAX_CHILDREN:
        branch.add(f"… {len(children) - _MAX_CHILDREN} more (--json lists them all)", style="dim")


def _label(graph: LineageGraph, key: str, names: list[str]) -> Text:
    """``names: path  sha  serializer`` for an artifact, ``names: run/node (status)`` for a step."""
    from rich.text import Text

    label = Text()
    if names:
        more = f", … (+{len(names) - _MAX_NAMES})" if len(names) > _MAX_NAMES else ""
        label.append(f"{', '.join(names[:_MAX_NAMES])}{more}: ", style="dim")
    if key in graph.artifacts:
        artifact = graph.artifacts[key]
        label.append(artifact.path, style="bold cyan")
        label.append(f"  {artifact.sha256[:12]}", style="yellow")
        label.append(f"  {artifact.serializer}, {artifact.size:,} bytes")
        return label
    step = graph.steps[key]
    label.append(f"{step.run_id[:8]}/{step.node_id}", style="bold")
    label.append(f" ({step.status})")
    if step.cached_from:
        label.append(f" cached from {step.cached_from[:8]}", style="dim")
    if step.code_digest:
        label.append(f"  code {step.code_digest[:12]}", style="dim")
    return label


def _run_label(graph: LineageGraph, run_id: str) -> Text:
    from rich.text import Text

    run = graph.runs[run_id]
    label = Text.assemble("pipeline run ", (run.run_id, "bold"), f"  {run.pipeline} ({run.status})")
    if run.git_commit:
        label.append(f"  git {run.git_commit[:12]}{' (dirty)' if run.git_dirty else ''}", style="dim")
    return label
