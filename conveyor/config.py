"""One typed settings object, read once at the edge (CLI, server start) and passed down.

Precedence: command-line flag > ``CONVEYOR_*`` environment variable > config file >
default. The config file is ``./conveyor.toml`` when present, or the file
``CONVEYOR_CONFIG`` names (which must then exist); its keys are the setting names
(``database_url = "postgresql+psycopg://…"``, an ``[artifact_storage_options]`` table).
Nothing in the package reads the environment anywhere else.

``CONVEYOR_HOME`` defaults to ``./.conveyor`` — a folder in the project you run from,
like a virtual environment, so two projects on one laptop never share a store by
accident. Set it to ``~/.conveyor`` to share one store across projects.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from conveyor.errors import InvalidInput

CONFIG_FILE_VARIABLE = "CONVEYOR_CONFIG"
DEFAULT_CONFIG_FILE = Path("conveyor.toml")


class Settings(BaseSettings):
    """Where the metadata and the artifacts live, and how the server listens."""

    model_config = SettingsConfigDict(env_prefix="CONVEYOR_", extra="ignore")

    #: Data directory for the embedded defaults (SQLite file, artifact folder).
    home: Path = Path(".conveyor")
    #: SQLAlchemy URL of the metadata store; default ``sqlite:///<home>/conveyor.db``.
    database_url: SecretStr | None = None
    #: fsspec URI of the artifact root (``az://container/prefix``, ``s3://…``); default ``<home>/artifacts``.
    artifact_root: str | None = None
    #: Extra fsspec options for the artifact root, as JSON (e.g. ``{"connection_string": "…"}``).
    artifact_storage_options: dict[str, str] = Field(default_factory=dict)
    #: Client side: a server URL (``http://host:port``) or a database URL; default: the local store.
    tracking_uri: str | None = None
    #: Apply pending schema migrations when the store opens (off: ``conveyor db upgrade`` is required).
    auto_upgrade: bool = True
    #: Spark master URL for steps declared spark=True (spark://host:7077, yarn, local[N]).
    spark_master: str = "local[*]"
    #: Extra ``spark.*`` options for those steps' session, as JSON (e.g. ``{"spark.executor.memory": "4g"}``).
    spark_conf: dict[str, str] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    #: Server side: require an API token or password on every request but /health and /version.
    auth: bool = False
    #: Client side: API token sent as ``Authorization: Bearer`` to a server; see
    #: :meth:`resolved_tracking_token` for the MLflow fallback.
    tracking_token: SecretStr | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (constructor arguments) beat the environment, which beats the config file."""
        named = os.environ.get(CONFIG_FILE_VARIABLE)
        if named and not Path(named).is_file():
            raise InvalidInput(f"{CONFIG_FILE_VARIABLE}={named!r} names no file")
        path = Path(named) if named else DEFAULT_CONFIG_FILE
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=path)

    def resolved_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.home / 'conveyor.db').resolve()}"

    def resolved_tracking_token(self) -> str | None:
        """``CONVEYOR_TRACKING_TOKEN``, else ``MLFLOW_TRACKING_TOKEN``: one token for both clients."""
        if self.tracking_token is not None:
            return self.tracking_token.get_secret_value()
        return os.environ.get("MLFLOW_TRACKING_TOKEN") or None

    def resolved_artifact_root(self) -> str:
        return self.artifact_root or str((self.home / "artifacts").resolve())

    def describe(self) -> dict[str, str]:
        """Settings fit to print: the database password masked."""
        from conveyor.store.sql.engine import mask_url

        return {
            "home": str(self.home.resolve()),
            "database_url": mask_url(self.resolved_database_url()),
            "artifact_root": self.resolved_artifact_root(),
            "tracking_uri": self.tracking_uri or "(local store)",
        }
