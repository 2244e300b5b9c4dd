"""Artifact storage: files of runs and models, moved and checked above fsspec.

- :mod:`~conveyor.artifacts.paths`: ``safe_relpath`` rejects paths that could leave the root.
- :mod:`~conveyor.artifacts.registry`: URI scheme -> fsspec file system, imported lazily.
- :mod:`~conveyor.artifacts.store`: ``ArtifactStore`` streams bytes with SHA-256, writes
  atomically and verifies reads against the hash the metadata store recorded.
"""

from conveyor.artifacts.paths import safe_relpath
from conveyor.artifacts.store import ArtifactStore

__all__ = ["ArtifactStore", "safe_relpath"]
