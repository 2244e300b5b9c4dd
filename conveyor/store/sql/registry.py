"""The model registry on the SQL store: registered models, versions, tags and MLflow stages.

Every mutation runs in one write transaction together with its audit record
(:class:`~conveyor.store.sql.audit.AuditLog`), so a change is never committed without
its trace. Operations that must not interleave (numbering a version, moving an alias)
first lock the model's row: SQLite writers are serialized by ``BEGIN IMMEDIATE`` already,
PostgreSQL by ``SELECT … FOR UPDATE``.

Aliases and their history live in :mod:`conveyor.store.sql.registry_aliases`; this class
exposes them too, so callers hold one object.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, RowMapping, delete, false, func, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from conveyor.errors import AlreadyExists, InvalidInput, NotFound
from conveyor.store import validation as v
from conveyor.store.actor import workspace_for_new_objects
from conveyor.store.base import now_ms
from conveyor.store.entities import Page
from conveyor.store.sql import registry_aliases as aliases
from conveyor.store.sql import registry_search, scope
from conveyor.store.sql import schema_registry as r
from conveyor.store.sql.audit import ActorKind, AuditEvent, AuditLog
from conveyor.store.sql.registry_entities import (
    DEFAULT_MODEL_RESULTS,
    DEFAULT_VERSION_RESULTS,
    MAX_MODEL_RESULTS,
    MAX_REASON_LENGTH,
    MAX_VERSION_RESULTS,
    AliasEvent,
    AliasMove,
    ModelVersion,
    RegisteredModel,
    Stage,
    VersionStatus,
    check_alias,
    check_model_name,
    check_stage,
    check_tag,
    check_text,
    check_version,
)
from conveyor.store.sql.store import SqlStore, decode_page_token, encode_page_token
from conveyor.store.sql.webhooks import EventHook, publish

#: Runs inside an alias move's transaction, after the lock: raise to refuse the move.
AliasGuard = Callable[[Connection, AliasMove], None]


class SqlRegistryStore:
    """Registered models and versions in the metadata database; input is validated here."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    # -- registered models -------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        *,
        actor: str,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        owner: str | None = None,
    ) -> RegisteredModel:
        """Create an empty registered model; its first version will be 1.

        Raises:
            AlreadyExists: the name is taken (MLflow's ``RESOURCE_ALREADY_EXISTS``).
            InvalidInput: a bad name, description or tag.
        """
        name = check_model_name(name)
        description = check_text(description, "description")
        checked = dict(check_tag(k, val) for k, val in (tags or {}).items())
        now = now_ms()
        try:
            with self.store._write() as conn:
                if _model_row(conn, name, missing_ok=True) is not None:
                    raise _exists(name)
                model_id = conn.execute(
                    insert(r.registered_models).values(
                        name=name,
                        description=description,
                        owner=owner or actor,
                        workspace=workspace_for_new_objects(),
                        creation_time=now,
                        last_updated_time=now,
                    )
                ).inserted_primary_key[0]
                if checked:
                    conn.execute(
                        insert(r.registered_model_tags),
                        [{"model_id": model_id, "key": k, "value": val} for k, val in checked.items()],
                    )
                model = _load_models(conn, [_model_row(conn, name)])[0]
                _audit(conn, self.store, actor, "registry.model.create", name, None, _state(model))
        except sa_exc.IntegrityError as exc:
            raise _exists(name) from exc
        return model

    def get_model(self, name: str) -> RegisteredModel:
        """Raises: NotFound (``RESOURCE_DOES_NOT_EXIST``) naming the model."""
        with self.store._read() as conn:
            return _load_models(conn, [_model_row(conn, check_model_name(name))])[0]

    def rename_model(self, name: str, new_name: str, *, actor: str) -> RegisteredModel:
        """Rename; versions, aliases and alias history follow (they refer to the model's id)."""
        name, new_name = check_model_name(name), check_model_name(new_name, "new_name")
        try:
            with self.store._write() as conn:
                row = _model_row(conn, name, lock=True)
                if new_name != name and _model_row(conn, new_name, missing_ok=True) is not None:
                    raise _exists(new_name)
                conn.execute(
                    update(r.registered_models)
                    .where(r.registered_models.c.id == row["id"])
                    .values(name=new_name, last_updated_time=now_ms())
                )
                _audit(
                    conn, self.store, actor, "registry.model.rename", name, {"name": name}, {"name": new_name}
                )
                return _load_models(conn, [_model_row(conn, new_name)])[0]
        except sa_exc.IntegrityError as exc:
            raise _exists(new_name) from exc

    def update_model(self, name: str, *, actor: str, description: str | None) -> RegisteredModel:
        description = check_text(description, "description")
        with self.store._write() as conn:
            row = _model_row(conn, check_model_name(name), lock=True)
            conn.execute(
                update(r.registered_models)
                .where(r.registered_models.c.id == row["id"])
                .values(description=description, last_updated_time=now_ms())
            )
            _audit(
                conn,
                self.store,
                actor,
                "registry.model.update",
                name,
                {"description": row["description"]},
                {"description": description},
            )
            return _load_models(conn, [_model_row(conn, name)])[0]

    def delete_model(self, name: str, *, actor: str) -> None:
        """Remove the model, its versions, tags and aliases; the alias history is kept."""
        with self.store._write() as conn:
            row = _model_row(conn, check_model_name(name), lock=True)
            before = _state(_load_models(conn, [row])[0])
            conn.execute(delete(r.registered_models).where(r.registered_models.c.id == row["id"]))
            _audit(conn, self.store, actor, "registry.model.delete", name, before, None)

    def set_model_tag(self, name: str, key: str, value: str, *, actor: str) -> None:
        key, value = check_tag(key, value)
        with self.store._write() as conn:
            row = _model_row(conn, check_model_name(name), lock=True)
            _upsert_tag(conn, r.registered_model_tags, "model_id", row["id"], key, value)
            _touch_model(conn, row["id"])
            _audit(conn, self.store, actor, "registry.model.tag.set", name, None, {key: value})

    def delete_model_tag(self, name: str, key: str, *, actor: str) -> None:
        key = v.check_key(key, "tag")
        with self.store._write() as conn:
            row = _model_row(conn, check_model_name(name), lock=True)
            table = r.registered_model_tags
            if not conn.execute(
                delete(table).where(table.c.model_id == row["id"], table.c.key == key)
            ).rowcount:
                raise NotFound(f"Registered model {name!r} has no tag {key!r}")
            _touch_model(conn, row["id"])
            _audit(conn, self.store, actor, "registry.model.tag.delete", name, {"key": key}, None)

    def search_models(
        self,
        filter_string: str | None = None,
        *,
        max_results: int = DEFAULT_MODEL_RESULTS,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[RegisteredModel]:
        """Registered models matching the filter (``name LIKE 'churn%'``, ``tags.team = 'x'``)."""
        v.check_max_results(max_results, MAX_MODEL_RESULTS)
        query = registry_search.build_model_query(filter_string, order_by)
        with self.store._read() as conn:
            ids, next_token = _page_ids(conn, query, page_token, max_results)
            found = {
                row["id"]: row
                for row in conn.execute(
                    select(r.registered_models).where(r.registered_models.c.id.in_(ids))
                ).mappings()
            }
            items = _load_models(conn, [found[i] for i in ids])
        return Page(items, next_token)

    # -- versions ----------------------------------------------------------------------------

    def create_version(
        self,
        name: str,
        source: str,
        *,
        actor: str,
        model_digest: str | None,
        run_id: str | None = None,
        run_link: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        status: VersionStatus = VersionStatus.READY,
        status_message: str | None = None,
        events: Iterable[EventHook] = (),
    ) -> ModelVersion:
        """Record a new version with the next number of the model's counter.

        The caller (:class:`conveyor.registry.RegistryService`) has verified the source
        and computed ``model_digest``; no method changes these afterwards. ``events``
        hooks see ``model_version.created`` inside the transaction (webhooks' outbox).

        Raises:
            NotFound: no such registered model.
            InvalidInput: an empty source, a bad run id, description or tag.
        """
        source = check_text(source, "source") or ""
        if not source:
            raise InvalidInput("Missing value for required parameter 'source'.")
        if run_id is not None:
            run_id = v.check_run_id(run_id)
        checked = dict(check_tag(k, val) for k, val in (tags or {}).items())
        values = {
            "source": source,
            "run_id": run_id,
            "run_link": check_text(run_link, "run_link"),
            "model_digest": model_digest,
            "status": VersionStatus(status),
            "status_message": status_message,
            "current_stage": Stage.NONE,
            "description": check_text(description, "description"),
            "created_by": actor,
        }
        with self.store._write() as conn:
            row = _model_row(conn, check_model_name(name), lock=True)
            number = row["next_version"]
            now = now_ms()
            conn.execute(
                update(r.registered_models)
                .where(r.registered_models.c.id == row["id"])
                .values(next_version=number + 1, last_updated_time=now)
            )
            version_id = conn.execute(
                insert(r.model_versions).values(
                    model_id=row["id"], version=number, creation_time=now, last_updated_time=now, **values
                )
            ).inserted_primary_key[0]
            if checked:
                conn.execute(
                    insert(r.model_version_tags),
                    [{"version_id": version_id, "key": k, "value": val} for k, val in checked.items()],
                )
            created = _load_versions(conn, [_version_row(conn, row, number)])[0]
            _audit(
                conn, self.store, actor, "registry.version.create", f"{name}/{number}", None, _state(created)
            )
            publish(conn, events, "model_version.created", _version_event(created))
        return created

    def get_version(self, name: str, version: int | str) -> ModelVersion:
        """Raises: NotFound naming the model and version (deleted versions are not found)."""
        with self.store._read() as conn:
            model = _model_row(conn, check_model_name(name))
            return _load_versions(conn, [_version_row(conn, model, check_version(version))])[0]

    def update_version(
        self, name: str, version: int | str, *, actor: str, description: str | None
    ) -> ModelVersion:
        """Change the description: the only editable field besides tags and stage."""
        description = check_text(description, "description")
        with self.store._write() as conn:
            model = _model_row(conn, check_model_name(name), lock=True)
            row = _version_row(conn, model, check_version(version))
            _touch_version(conn, row["id"], description=description)
            resource = f"{name}/{row['version']}"
            _audit(
                conn,
                self.store,
                actor,
                "registry.version.update",
                resource,
                {"description": row["description"]},
                {"description": description},
            )
            return _load_versions(conn, [_version_row(conn, model, row["version"])])[0]

    def delete_version(self, name: str, version: int | str, *, actor: str) -> None:
        """Flag the version deleted (its number is never reused) and drop aliases to it.

        Each dropped alias is recorded in the alias history like any other removal.
        """
        with self.store._write() as conn:
            model = _model_row(conn, check_model_name(name), lock=True)
            row = _version_row(conn, model, check_version(version))
            for alias in aliases.aliases_of(conn, model["id"], row["version"]):
                move = AliasMove(
                    name, alias, row["version"], None, actor, reason=f"version {row['version']} deleted"
                )
                aliases.record_move(conn, self.store, model, move)
            _touch_version(conn, row["id"], deleted=True)
            _audit(conn, self.store, actor, "registry.version.delete", f"{name}/{row['version']}", None, None)

    def set_version_tag(self, name: str, version: int | str, key: str, value: str, *, actor: str) -> None:
        key, value = check_tag(key, value)
        with self.store._write() as conn:
            row = _version_row(
                conn, _model_row(conn, check_model_name(name), lock=True), check_version(version)
            )
            _upsert_tag(conn, r.model_version_tags, "version_id", row["id"], key, value)
            _touch_version(conn, row["id"])
            _audit(
                conn,
                self.store,
                actor,
                "registry.version.tag.set",
                f"{name}/{row['version']}",
                None,
                {key: value},
            )

    def delete_version_tag(self, name: str, version: int | str, key: str, *, actor: str) -> None:
        key = v.check_key(key, "tag")
        with self.store._write() as conn:
            row = _version_row(
                conn, _model_row(conn, check_model_name(name), lock=True), check_version(version)
            )
            table = r.model_version_tags
            if not conn.execute(
                delete(table).where(table.c.version_id == row["id"], table.c.key == key)
            ).rowcount:
                raise NotFound(f"Model version {name}/{row['version']} has no tag {key!r}")
            _touch_version(conn, row["id"])
            resource = f"{name}/{row['version']}"
            _audit(conn, self.store, actor, "registry.version.tag.delete", resource, {"key": key}, None)

    def transition_stage(
        self, name: str, version: int | str, stage: str, *, actor: str, archive_existing: bool = False
    ) -> ModelVersion:
        """MLflow's deprecated stage move; with ``archive_existing`` other versions in that
        stage (Staging or Production) go to Archived. Aliases are the recommended way."""
        target = check_stage(stage)
        with self.store._write() as conn:
            model = _model_row(conn, check_model_name(name), lock=True)
            row = _version_row(conn, model, check_version(version))
            if archive_existing and target in (Stage.STAGING, Stage.PRODUCTION):
                table = r.model_versions
                conn.execute(
                    update(table)
                    .where(
                        table.c.model_id == model["id"],
                        table.c.current_stage == target,
                        table.c.version != row["version"],
                        table.c.deleted == false(),
                    )
                    .values(current_stage=Stage.ARCHIVED, last_updated_time=now_ms())
                )
            _touch_version(conn, row["id"], current_stage=target)
            resource = f"{name}/{row['version']}"
            before, after = {"stage": row["current_stage"]}, {"stage": target.value}
            _audit(conn, self.store, actor, "registry.version.stage", resource, before, after)
            return _load_versions(conn, [_version_row(conn, model, row["version"])])[0]

    def latest_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        """The newest version per stage (all stages when ``stages`` is empty), as MLflow."""
        wanted = {check_stage(s) for s in stages or ()}
        with self.store._read() as conn:
            model = _model_row(conn, check_model_name(name))
            latest = _latest_per_stage(conn, [model["id"]]).get(model["id"], [])
        return [mv for mv in latest if not wanted or mv.current_stage in wanted]

    def search_versions(
        self,
        filter_string: str | None = None,
        *,
        max_results: int = DEFAULT_VERSION_RESULTS,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> Page[ModelVersion]:
        """Live versions matching the filter (``name = 'churn' AND version_number > 2``)."""
        v.check_max_results(max_results, MAX_VERSION_RESULTS)
        query = registry_search.build_version_query(filter_string, order_by)
        with self.store._read() as conn:
            ids, next_token = _page_ids(conn, query, page_token, max_results)
            items = _versions_by_id(conn, ids)
        return Page(items, next_token)

    # -- aliases -----------------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int | str,
        *,
        actor: str,
        reason: str | None = None,
        approval_id: str | None = None,
        guards: Iterable[AliasGuard] = (),
        events: Iterable[EventHook] = (),
    ) -> AliasEvent:
        """Point ``alias`` at ``version``, recording the move and its audit record atomically.

        Moves of one model's aliases serialize on the model's row, so each event's
        ``old_version`` is the version the alias really had: no move is lost.

        Raises:
            InvalidInput: a reserved or malformed alias (MLflow's messages).
            NotFound: no such model or live version.
            ConveyorError: whatever a guard raises (e.g. ``PermissionDenied`` for a
                protected alias without approval); nothing is written then.
        """
        alias, number = check_alias(alias), check_version(version)
        with self.store._write() as conn:
            model = _model_row(conn, check_model_name(name), lock=True)
            _version_row(conn, model, number)
            move = AliasMove(
                model["name"],
                alias,
                aliases.current(conn, model["id"], alias),
                number,
                actor,
                check_text(reason, "reason", MAX_REASON_LENGTH),
                approval_id,
            )
            for guard in guards:
                guard(conn, move)
            return _record_move(conn, self.store, model, move, events)

    def delete_alias(
        self,
        name: str,
        alias: str,
        *,
        actor: str,
        reason: str | None = None,
        approval_id: str | None = None,
        guards: Iterable[AliasGuard] = (),
        events: Iterable[EventHook] = (),
    ) -> AliasEvent:
        """Remove ``alias``; recorded in the history as a move to no version.

        Raises:
            NotFound: the model has no such alias.
        """
        alias = check_alias(alias)
        with self.store._write() as conn:
            model = _model_row(conn, check_model_name(name), lock=True)
            old = aliases.current(conn, model["id"], alias)
            if old is None:
                raise NotFound(f"Registered model alias {alias} not found.")
            move = AliasMove(
                model["name"],
                alias,
                old,
                None,
                actor,
                check_text(reason, "reason", MAX_REASON_LENGTH),
                approval_id,
            )
            for guard in guards:
                guard(conn, move)
            return _record_move(conn, self.store, model, move, events)

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """Raises: NotFound when the alias is not set (MLflow's message)."""
        alias = check_alias(alias)
        with self.store._read() as conn:
            model = _model_row(conn, check_model_name(name))
            number = aliases.current(conn, model["id"], alias)
            if number is None:
                raise NotFound(f"Registered model alias {alias} not found.")
            return _load_versions(conn, [_version_row(conn, model, number)])[0]

    def alias_history(
        self, name: str, alias: str | None = None, *, at: int | None = None
    ) -> list[AliasEvent]:
        """Moves of the model's aliases (one alias, or all), oldest first, up to time ``at`` (ms)."""
        alias = None if alias is None else check_alias(alias)
        with self.store._read() as conn:
            model = _model_row(conn, check_model_name(name))
            return aliases.history(conn, model["id"], alias, at)


# -- rows ------------------------------------------------------------------------------------


def _record_move(
    conn: Connection, store: SqlStore, model: RowMapping, move: AliasMove, events: Iterable[EventHook]
) -> AliasEvent:
    """Record the move, then offer it to the event hooks in the same transaction."""
    event = aliases.record_move(conn, store, model, move)
    data = asdict(event)
    data["model"] = data.pop("model_name")
    publish(conn, events, "alias.moved" if event.new_version is not None else "alias.deleted", data)
    return event


def _version_event(version: ModelVersion) -> dict[str, Any]:
    """What a ``model_version.created`` webhook receives: enough to fetch and deploy it."""
    keys = ("version", "source", "run_id", "model_digest", "created_by", "creation_time", "tags")
    data = asdict(version)
    return {"model": version.name, **{key: data[key] for key in keys}}


def _exists(name: str) -> AlreadyExists:
    return AlreadyExists(f"Registered Model (name={name}) already exists.")


def _model_row(conn: Connection, name: str, *, lock: bool = False, missing_ok: bool = False) -> Any:
    table = r.registered_models
    query = select(table).where(table.c.name == name, *scope.workspace_is(table.c.workspace))
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    if row is None and not missing_ok:
        raise NotFound(f"Registered Model with name={name} not found")
    return row


def _version_row(conn: Connection, model: RowMapping, version: int) -> RowMapping:
    table = r.model_versions
    row = (
        conn.execute(
            select(table).where(
                table.c.model_id == model["id"], table.c.version == version, table.c.deleted == false()
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"Model Version (name={model['name']}, version={version}) not found")
    return row


def _touch_model(conn: Connection, model_id: int) -> None:
    table = r.registered_models
    conn.execute(update(table).where(table.c.id == model_id).values(last_updated_time=now_ms()))


def _touch_version(conn: Connection, version_id: int, **values: Any) -> None:
    table = r.model_versions
    conn.execute(update(table).where(table.c.id == version_id).values(last_updated_time=now_ms(), **values))


def _upsert_tag(conn: Connection, table: Any, owner: str, owner_id: int, key: str, value: str) -> None:
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(table).values({owner: owner_id, "key": key, "value": value})
    conn.execute(stmt.on_conflict_do_update(index_elements=[owner, "key"], set_={"value": value}))


def _tags(conn: Connection, table: Any, owner: str, ids: Sequence[int]) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = defaultdict(dict)
    if ids:
        for row in conn.execute(select(table).where(table.c[owner].in_(list(ids)))).mappings():
            found[row[owner]][row["key"]] = row["value"]
    return found


def _load_models(conn: Connection, rows: Sequence[RowMapping]) -> list[RegisteredModel]:
    ids = [row["id"] for row in rows]
    tags = _tags(conn, r.registered_model_tags, "model_id", ids)
    pointers = aliases.aliases_by_model(conn, ids)
    latest = _latest_per_stage(conn, ids)
    return [
        RegisteredModel(
            name=row["name"],
            creation_time=row["creation_time"],
            last_updated_time=row["last_updated_time"],
            description=row["description"],
            owner=row["owner"],
            workspace=row["workspace"],
            tags=tags.get(row["id"], {}),
            aliases=pointers.get(row["id"], {}),
            latest_versions=tuple(latest.get(row["id"], ())),
        )
        for row in rows
    ]


def _latest_per_stage(conn: Connection, model_ids: Sequence[int]) -> dict[int, list[ModelVersion]]:
    if not model_ids:
        return {}
    table = r.model_versions
    newest = (
        select(func.max(table.c.id))
        .where(table.c.model_id.in_(list(model_ids)), table.c.deleted == false())
        .group_by(table.c.model_id, table.c.current_stage)
    )
    found: dict[int, list[ModelVersion]] = defaultdict(list)
    ids = [row[0] for row in conn.execute(newest)]
    model_of = dict(conn.execute(select(table.c.id, table.c.model_id).where(table.c.id.in_(ids))).all())
    for version_id, mv in zip(sorted(ids), _versions_by_id(conn, sorted(ids)), strict=True):
        found[model_of[version_id]].append(mv)
    return found


def _versions_by_id(conn: Connection, ids: Sequence[int]) -> list[ModelVersion]:
    if not ids:
        return []
    table = r.model_versions
    query = (
        select(table, r.registered_models.c.name.label("model_name"))
        .join(r.registered_models, r.registered_models.c.id == table.c.model_id)
        .where(table.c.id.in_(list(ids)))
    )
    found = {row["id"]: row for row in conn.execute(query).mappings()}
    return _load_versions(conn, [found[i] for i in ids])


def _load_versions(conn: Connection, rows: Sequence[RowMapping]) -> list[ModelVersion]:
    tags = _tags(conn, r.model_version_tags, "version_id", [row["id"] for row in rows])
    names = _model_names(conn, {row["model_id"] for row in rows})
    pointers = aliases.aliases_by_model(conn, list({row["model_id"] for row in rows}))
    versions = []
    for row in rows:
        on_this = tuple(
            sorted(a for a, n in pointers.get(row["model_id"], {}).items() if n == row["version"])
        )
        versions.append(
            ModelVersion(
                name=names[row["model_id"]],
                version=row["version"],
                source=row["source"],
                status=VersionStatus(row["status"]),
                current_stage=Stage(row["current_stage"]),
                creation_time=row["creation_time"],
                last_updated_time=row["last_updated_time"],
                run_id=row["run_id"],
                run_link=row["run_link"],
                model_digest=row["model_digest"],
                status_message=row["status_message"],
                description=row["description"],
                created_by=row["created_by"],
                tags=tags.get(row["id"], {}),
                aliases=on_this,
            )
        )
    return versions


def _model_names(conn: Connection, ids: set[int]) -> dict[int, str]:
    table = r.registered_models
    return dict(conn.execute(select(table.c.id, table.c.name).where(table.c.id.in_(list(ids)))).all())


def _state(entity: Any) -> dict[str, Any]:
    """An entity as JSON-able data, for the audit record's before/after digests."""
    data = asdict(entity)
    data.pop("latest_versions", None)
    return data


def _audit(
    conn: Connection, store: SqlStore, actor: str, action: str, resource: str, before: Any, after: Any
) -> None:
    AuditLog(store).append(
        AuditEvent(
            actor=actor,
            actor_kind=ActorKind.USER,
            action=action,
            resource_type="registered_model" if action.startswith("registry.model") else "model_version",
            resource_id=resource,
            before=before,
            after=after,
        ),
        conn,
    )


def _page_ids(
    conn: Connection, query: Any, page_token: str | None, max_results: int
) -> tuple[list[int], str | None]:
    """One page of ids from an id query, and the token of the next page (None on the last).

    One row more than asked tells whether a next page exists without counting.
    """
    offset = decode_page_token(page_token)
    ids = [row[0] for row in conn.execute(query.offset(offset).limit(max_results + 1))]
    more = len(ids) > max_results
    return ids[:max_results], encode_page_token(offset + max_results) if more else None
