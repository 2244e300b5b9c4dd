"""Model cards over REST, in process with auth on: formats, edits, history, escaping, workspaces."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conveyor.artifacts import ArtifactStore
from conveyor.config import Settings
from conveyor.identity import IdentityService, RequestContext, Role
from conveyor.registry import RegistryService
from conveyor.server.app import create_app
from conveyor.server.cards_api import CONTENT_SECURITY_POLICY
from conveyor.store.actor import AuditActor, acting_as
from conveyor.store.sql.store import SqlStore
from conveyor.tracking.service import TrackingService
from tests.registry.conftest import save_model

MODELS = "/api/conveyor/v1/registry/models"
ATTACK = "<script>alert('x')</script>"


@dataclass(frozen=True)
class Setup:
    client: TestClient
    registry: RegistryService
    headers: dict[str, dict[str, str]]
    folder: Path

    def register(self, name: str, workspace: str = "default") -> str:
        """A version 1 of a fresh model ``name`` in ``workspace``; its card URL."""
        with acting_as(AuditActor("setup", "user", None, workspace)):
            self.registry.create_model(name)
            self.registry.create_version(name, str(save_model(self.folder / name, seed=0)))
        return f"{MODELS}/{name}/versions/1/card"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    home: Path = tmp_path_factory.mktemp("cards-api")
    store = SqlStore(f"sqlite:///{home / 'conveyor.db'}").open()
    identity, local = IdentityService.for_store(store), RequestContext.local()
    headers = {}
    for name, role, workspace in [
        ("vic", Role.VIEWER, "default"),
        ("cora", Role.CONTRIBUTOR, "default"),
        ("alice", Role.CONTRIBUTOR, "team-a"),
        ("bob", Role.CONTRIBUTOR, "team-b"),
    ]:
        if workspace not in identity.list_workspaces():
            identity.create_workspace(workspace, local)
        identity.create_user(name, local)
        identity.grant(name, role, local, workspace)
        token = identity.issue_token(name, local).secret
        headers[name] = {"Authorization": f"Bearer {token}", "X-Conveyor-Workspace": workspace}
    artifacts = ArtifactStore(str(home / "artifacts"))
    registry = RegistryService(store, artifacts)
    app = create_app(Settings(auth=True), service=TrackingService(store, artifacts))
    with TestClient(app) as client:
        yield Setup(client, registry, headers, home / "models")
    store.close()


@pytest.fixture(scope="module")
def bad_input(setup: Setup) -> str:
    """The card URL of one model's version 1, shared by the refusal tests (none changes it)."""
    return setup.register("bad-input")


def test_get_renders_json_markdown_and_safe_html(setup: Setup) -> None:
    url = setup.register("render")
    viewer = setup.headers["vic"]
    card = setup.client.get(url, headers=viewer).json()
    assert (card["uri"], card["completed"], card["fields"]) == ("models:/render/1", False, {})
    assert card["manifest"]["flavor"] == "sklearn"

    markdown = setup.client.get(url, params={"format": "markdown"}, headers=viewer)
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith("# Model card: render version 1")
    page = setup.client.get(url, params={"format": "html"}, headers=viewer)
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src" not in CONTENT_SECURITY_POLICY and "sandbox" in CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.text.startswith("<!DOCTYPE html>")
    assert "conveyor.card.path" not in setup.registry.get_version("render", 1).tags  # GET stores nothing


def test_patch_stores_new_cards_and_history_returns_their_bytes(setup: Setup) -> None:
    url = setup.register("edited")
    refused = setup.client.patch(url, json={"owner": "vic"}, headers=setup.headers["vic"])
    assert refused.status_code == 403 and "'write' permission" in refused.json()["message"]

    fields = {"owner": "risk-team", "intended_use": ATTACK, "limitations": "Not for minors."}
    first = setup.client.patch(url, json=fields, headers=setup.headers["cora"])
    assert first.status_code == 200, first.text
    assert (first.json()["number"], first.json()["completed"]) == (1, True)
    second = setup.client.patch(url, json={"limitations": ""}, headers=setup.headers["cora"]).json()
    assert (second["number"], second["completed"]) == (2, False)
    assert setup.registry.get_version("edited", 1).tags["conveyor.card.owner"] == "risk-team"

    cards = setup.client.get(f"{url}/history", headers=setup.headers["vic"]).json()["cards"]
    assert [(c["number"], c["latest"]) for c in cards] == [(1, False), (2, True)]
    assert cards[1]["markdown"]["path"] == second["path"]
    stored = setup.client.get(f"{url}/history/1", headers=setup.headers["vic"])
    digest = hashlib.sha256(stored.content).hexdigest()
    assert digest == cards[0]["markdown"]["sha256"] == first.json()["sha256"]
    assert "Not for minors." in stored.text and ATTACK not in stored.text
    page = setup.client.get(f"{url}/history/1", params={"format": "html"}, headers=setup.headers["vic"])
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert ATTACK not in page.text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page.text


@pytest.mark.parametrize(
    ("method", "suffix", "body", "status", "message"),
    [
        ("PATCH", "", {"colour": "blue"}, 400, "Unknown model card field(s) colour"),
        ("PATCH", "", {"owner": 7}, 400, "Invalid value 7 for model card field 'owner'"),
        ("GET", "?format=pdf", None, 400, "Unknown model card format 'pdf': use json, markdown or html"),
        ("GET", "/history/1?format=json", None, 400, "use markdown or html"),
        ("GET", "/history/9", None, 404, "has no stored card 9"),
    ],
)
def test_bad_requests_name_the_problem(
    setup: Setup,
    bad_input: str,
    method: str,
    suffix: str,
    body: dict[str, object] | None,
    status: int,
    message: str,
) -> None:
    response = setup.client.request(method, bad_input + suffix, json=body, headers=setup.headers["cora"])
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert "conveyor.card.owner" not in setup.registry.get_version("bad-input", 1).tags


@pytest.mark.parametrize("url", [f"{MODELS}/nowhere/versions/1/card", f"{MODELS}/bad-input/versions/2/card"])
def test_unknown_model_or_version_is_404(setup: Setup, bad_input: str, url: str) -> None:
    for suffix in ("", "/history"):
        response = setup.client.get(url + suffix, headers=setup.headers["vic"])
        assert response.status_code == 404
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert setup.client.patch(url, json={}, headers=setup.headers["cora"]).status_code == 404


def test_another_workspaces_card_is_not_found(setup: Setup) -> None:
    url = setup.register("team-a-model", workspace="team-a")
    assert setup.client.get(url, headers=setup.headers["alice"]).status_code == 200
    for method, body in (("GET", None), ("PATCH", {"owner": "bob"})):
        response = setup.client.request(method, url, json=body, headers=setup.headers["bob"])
        assert response.status_code == 404, response.text
    assert setup.client.get(f"{url}/history", headers=setup.headers["bob"]).status_code == 404
    assert "conveyor.card.owner" not in setup.registry.get_version("team-a-model", 1).tags
