"""Versions: numbered once, frozen, verified when registered and again when loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from conveyor import models
from conveyor.errors import AlreadyExists, IntegrityError, InvalidInput, NotFound
from conveyor.registry import RegistryService, Stage, VersionStatus
from conveyor.tracking.client import Client
from conveyor.tracking.context import current_user
from tests.registry.conftest import save_model


def test_version_numbers_are_monotonic_and_never_reused(
    registry: RegistryService, name: str, model_dir: Path
) -> None:
    registry.create_model(name)
    assert [registry.create_version(name, str(model_dir)).version for _ in range(3)] == [1, 2, 3]
    registry.delete_version(name, 3)
    registry.delete_version(name, 2)
    assert registry.create_version(name, str(model_dir)).version == 4
    with pytest.raises(NotFound, match=rf"name={name}, version=3"):
        registry.get_version(name, 3)
    assert [v.version for v in registry.search_versions(f"name = '{name}'").items] == [4, 1]


def test_registration_records_the_manifest_digest(
    registry: RegistryService, name: str, model_dir: Path
) -> None:
    registry.create_model(name, description="churn", tags={"team": "ds"})
    version = registry.create_version(name, str(model_dir), description="first")
    assert version.model_digest == models.read_model_manifest(model_dir).digest
    assert (version.status, version.current_stage, version.created_by) == (
        VersionStatus.READY,
        Stage.NONE,
        current_user(),
    )
    updated = registry.update_version(name, 1, "retrained")
    assert (updated.description, updated.source, updated.model_digest) == (
        "retrained",
        version.source,
        version.model_digest,
    )


def test_a_tampered_source_is_refused_at_registration(
    registry: RegistryService, name: str, model_dir: Path
) -> None:
    registry.create_model(name)
    (model_dir / "model.skops").write_bytes(b"not the model")
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        registry.create_version(name, str(model_dir))
    assert registry.search_versions(f"name = '{name}'").items == []


def test_load_by_version_and_alias(registry: RegistryService, name: str, model_dir: Path) -> None:
    registry.create_model(name)
    registry.create_version(name, str(model_dir))
    registry.set_alias(name, "best", 1)
    by_version = models.load(f"models:/{name}/1")
    by_alias = models.load(f"models:/{name}@best")
    assert by_version.manifest.digest == by_alias.manifest.digest


def test_a_replaced_model_refuses_to_load(
    registry: RegistryService, name: str, model_dir: Path, tmp_path: Path
) -> None:
    """A whole other (self-consistent) model in the version's place is caught by the digest."""
    registry.create_model(name)
    registry.create_version(name, str(model_dir))
    shutil.rmtree(model_dir)
    save_model(model_dir, seed=1)
    with pytest.raises(IntegrityError, match="expected"):
        models.load(f"models:/{name}/1")


def test_a_tampered_file_refuses_to_load(registry: RegistryService, name: str, model_dir: Path) -> None:
    registry.create_model(name)
    registry.create_version(name, str(model_dir))
    registry.set_alias(name, "best", 1)
    with open(model_dir / "model.skops", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(IntegrityError, match="Refusing to load"):
        models.load(f"models:/{name}@best")


def test_register_from_a_run(registry: RegistryService, name: str, tmp_path: Path) -> None:
    """``runs:/`` sources are downloaded through the artifact index and verified."""
    client = Client()
    try:
        run = client.create_run(client.get_or_create_experiment(name))
        info = models.log_model(_fitted(), "model", run_id=run.info.run_id, client=client)
    finally:
        client.close()
    registry.create_model(name)
    version = registry.create_version(name, info.uri)
    assert (version.run_id, version.model_digest) == (run.info.run_id, info.digest)
    assert registry.download_uri(name, 1).endswith(f"{run.info.run_id}/artifacts/model")
    assert models.load(f"models:/{name}/1").manifest.digest == info.digest
    with pytest.raises(InvalidInput, match="differs from the run"):
        registry.create_version(name, info.uri, run_id="f" * 32)


def _fitted() -> LogisticRegression:
    features = np.arange(12.0).reshape(6, 2)
    return LogisticRegression().fit(features, [0, 1, 0, 1, 0, 1])


def test_model_names_and_errors(registry: RegistryService, name: str) -> None:
    registry.create_model(name)
    with pytest.raises(AlreadyExists, match=rf"Registered Model \(name={name}\) already exists"):
        registry.create_model(name)
    for bad in ("", "a/b", "a@b", " padded"):
        with pytest.raises(InvalidInput):
            registry.create_model(bad)
    with pytest.raises(NotFound, match="not found"):
        registry.create_version(f"{name}-missing", "/nowhere")
    with pytest.raises(InvalidInput, match="Unsupported model source"):
        registry.create_version(name, "s3://bucket/model")


def test_local_sources_can_be_refused(registry: RegistryService, name: str, model_dir: Path) -> None:
    server_side = RegistryService(registry.store, registry.artifacts, allow_local_sources=False)
    server_side.create_model(name)
    with pytest.raises(InvalidInput, match="local path"):
        server_side.create_version(name, str(model_dir))


def test_rename_tags_search_and_stages(registry: RegistryService, name: str, model_dir: Path) -> None:
    registry.create_model(name)
    registry.set_model_tag(name, "team", "risk")
    for _ in range(3):
        registry.create_version(name, str(model_dir))
    registry.set_alias(name, "best", 2)
    registry.rename_model(name, f"{name}-x")
    name = f"{name}-x"
    assert registry.get_version_by_alias(name, "best").version == 2
    assert [
        m.name for m in registry.search_models(f"name LIKE '{name[:10]}%' AND tags.team = 'risk'").items
    ] == [name]
    registry.set_version_tag(name, 1, "validated", "yes")
    found = registry.search_versions(f"name = '{name}' AND tags.validated = 'yes'").items
    assert [v.version for v in found] == [1]
    registry.transition_stage(name, 1, "production")
    registry.transition_stage(name, 3, "Production", archive_existing=True)
    assert registry.get_version(name, 1).current_stage is Stage.ARCHIVED
    assert [v.version for v in registry.latest_versions(name, ["Production"])] == [3]
    with pytest.raises(InvalidInput, match="Invalid Model Version stage"):
        registry.transition_stage(name, 1, "prod")
    page = registry.search_versions(f"name = '{name}'", max_results=2)
    rest = registry.search_versions(f"name = '{name}'", max_results=2, page_token=page.next_page_token)
    assert [v.version for v in page.items + rest.items] == [3, 2, 1]


def test_importing_the_registry_plugs_in_the_models_resolver() -> None:
    from conveyor.registry._resolver import resolve_models_uri

    assert models.resolvers["models"] is resolve_models_uri
