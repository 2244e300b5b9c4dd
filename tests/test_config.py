"""Settings precedence: constructor (flags) > CONVEYOR_* variables > config file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.config import Settings
from conveyor.errors import InvalidInput

CONFIG = """
database_url = "postgresql+psycopg://ana:s3cret@db.internal:5432/conveyor"
artifact_root = "az://models/prod"
port = 7000

[artifact_storage_options]
account_name = "acme"
"""


@pytest.fixture
def in_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("CONVEYOR_CONFIG", "CONVEYOR_PORT", "CONVEYOR_DATABASE_URL", "CONVEYOR_ARTIFACT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_defaults_without_a_file(in_project: Path) -> None:
    settings = Settings()
    assert settings.port == 5000
    assert settings.resolved_database_url() == f"sqlite:///{in_project / '.conveyor' / 'conveyor.db'}"


def test_project_file_is_read(in_project: Path) -> None:
    (in_project / "conveyor.toml").write_text(CONFIG)
    settings = Settings()
    assert settings.port == 7000
    assert settings.artifact_root == "az://models/prod"
    assert settings.artifact_storage_options == {"account_name": "acme"}
    assert "s3cret" not in settings.describe()["database_url"]


def test_environment_beats_file_and_flags_beat_environment(
    in_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_project / "conveyor.toml").write_text(CONFIG)
    monkeypatch.setenv("CONVEYOR_PORT", "7100")
    assert Settings().port == 7100
    assert Settings(port=7200).port == 7200


def test_named_file_must_exist(in_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = in_project / "elsewhere.toml"
    other.write_text("port = 7300\n")
    monkeypatch.setenv("CONVEYOR_CONFIG", str(other))
    assert Settings().port == 7300
    monkeypatch.setenv("CONVEYOR_CONFIG", str(in_project / "missing.toml"))
    with pytest.raises(InvalidInput, match=r"missing\.toml"):
        Settings()


def test_spark_settings_default_to_a_local_master(in_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_SPARK_MASTER", raising=False)
    monkeypatch.delenv("CONVEYOR_SPARK_CONF", raising=False)
    settings = Settings()
    assert settings.spark_master == "local[*]"
    assert settings.spark_conf == {}


def test_spark_settings_come_from_file_and_environment(
    in_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_project / "conveyor.toml").write_text(
        'spark_master = "yarn"\n[spark_conf]\n"spark.executor.memory" = "4g"\n'
    )
    monkeypatch.delenv("CONVEYOR_SPARK_CONF", raising=False)
    monkeypatch.setenv("CONVEYOR_SPARK_MASTER", "spark://spark-master:7077")
    settings = Settings()
    assert settings.spark_master == "spark://spark-master:7077"
    assert settings.spark_conf == {"spark.executor.memory": "4g"}
    # pydantic-settings merges tables: the environment's keys join the file's.
    monkeypatch.setenv("CONVEYOR_SPARK_CONF", '{"spark.executor.cores": "2"}')
    assert Settings().spark_conf == {"spark.executor.memory": "4g", "spark.executor.cores": "2"}
