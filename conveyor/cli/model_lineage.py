"""``conveyor lineage models:/…`` and ``conveyor lineage dataset:<sha256> --downstream``.

The registry's end of lineage (:mod:`conveyor.registry.lineage`), reached through the
``conveyor lineage`` command, which hands these references over; the pipeline part of
the tree is drawn as ``conveyor lineage run:<id>`` draws it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conveyor.cli import _output as out
from conveyor.cli.cards import open_registry

if TYPE_CHECKING:
    from rich.tree import Tree

    from conveyor.registry.lineage import ModelLineage, RunNode

#: References this module answers, by prefix.
PREFIXES = ("models:/", "dataset:")


def show(ref: str, downstream: bool, as_json: bool, tracking_uri: str | None) -> None:
    """Print the lineage of a model version (upstream) or of a dataset digest (downstream)."""
    from conveyor.registry import lineage as api

    with open_registry(tracking_uri, "lineage") as registry:
        if downstream or ref.startswith("dataset:"):
            graph = api.models_trained_on(registry, registry.store, ref)
        else:
            graph = api.upstream_of_model(registry, registry.store, ref)
    if as_json:
        out.emit_json(graph.to_dict())
        return
    out.console().print(_tree(graph))


def _tree(graph: ModelLineage) -> Tree:
    from rich.tree import Tree

    if graph.direction == "downstream":
        tree = Tree(f"[bold cyan]{graph.root}[/]")
        if graph.pipeline is not None:
            from conveyor.cli.lineage import _tree as pipeline_tree

            tree.add(pipeline_tree(graph.pipeline))
        for run in graph.runs:
            _run_branch(tree, run)
        versions = tree.add("model versions trained on it" if graph.versions else "[dim]no model versions[/]")
        for v in graph.versions:
            versions.add(_version_label(v.name, v.version, v.model_digest, v.aliases))
        return tree
    [version] = graph.versions
    tree = Tree(_version_label(version.name, version.version, version.model_digest, version.aliases))
    if not graph.runs:
        tree.add("[dim]no source run recorded (registered from a folder, or the run was purged)[/]")
    for run in graph.runs:
        branch = _run_branch(tree, run)
        if graph.pipeline is not None:
            from conveyor.cli.lineage import _tree as pipeline_tree

            branch.add(pipeline_tree(graph.pipeline))
    return tree


def _run_branch(parent: Tree, run: RunNode) -> Tree:
    """The run, then its datasets; names and sources are escaped (they may hold ``[``)."""
    from rich.markup import escape

    git = f"  git {run.git_commit[:12]}{' (dirty)' if run.git_dirty else ''}" if run.git_commit else ""
    step = f"  step {escape(run.pipeline_step)}" if run.pipeline_step else ""
    label = f"run [bold]{run.run_id}[/] ({escape(run.run_name)}){step}[dim]{git}[/]"
    branch = parent.add(label, highlight=False)
    for d in run.datasets:
        context = f" ({escape(d.context)})" if d.context else ""
        branch.add(
            f"dataset {escape(d.name)}{context}  [yellow]{d.digest}[/]  {escape(d.source)}", highlight=False
        )
    return branch


def _version_label(name: str, version: int, digest: str | None, aliases: tuple[str, ...]) -> str:
    from rich.markup import escape

    tags = "".join(f" @{a}" for a in aliases)
    return (
        f"[bold cyan]{escape(f'models:/{name}/{version}')}[/]{tags}  digest [yellow]{(digest or '')[:12]}[/]"
    )
