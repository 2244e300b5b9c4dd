"""Pipeline schedules: the store's claims on SQLite and PostgreSQL, cron arithmetic, the scheduler.

Time is injected (``now`` in milliseconds), so nothing here waits for a cron minute.
Launches are real processes: a short Python command stands in for ``conveyor pipeline
run`` and writes a file, so the log file, the environment and the process start are real.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from conveyor.config import Settings
from conveyor.errors import AlreadyExists, InvalidInput, NotFound
from conveyor.pipelines.schedules import (
    LOG_FOLDER,
    Launch,
    Scheduler,
    SubprocessLauncher,
    background_scheduler,
    run_command,
    run_environment,
)
from conveyor.store.sql.audit import AuditLog
from conveyor.store.sql.schedules import Schedule, ScheduleStore, next_fire_time, open_schedule_store

MINUTE = 60_000
HOUR = 60 * MINUTE
#: 2024-01-01 00:00:00 UTC, a Monday.
T0 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000)


def ms(year: int, month: int, day: int, hour: int, minute: int = 0, zone: str = "UTC") -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).timestamp() * 1000)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One migrated database per back end for the module: migrating costs more than a test."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path_factory.mktemp('schedules') / 'conveyor.db'}"


@pytest.fixture
def database(migrated: str) -> str:
    """The back end's database, with no schedules in it."""
    schedules = open_schedule_store(migrated)
    for stale in schedules.list_all():
        schedules.delete(stale.schedule_id)
    schedules.close()
    return migrated


@pytest.fixture
def schedules(database: str) -> Iterator[ScheduleStore]:
    store = open_schedule_store(database)
    yield store
    store.close()


@pytest.fixture(scope="module")
def sqlite_schedules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScheduleStore]:
    """For checks that fail before any SQL runs, so one back end is enough."""
    store = open_schedule_store(f"sqlite:///{tmp_path_factory.mktemp('validation') / 'conveyor.db'}")
    yield store
    store.close()


def every_minute(schedules: ScheduleStore, name: str = "churn", now: int = T0) -> Schedule:
    return schedules.create(name, "churn.py", "* * * * *", now=now)


# -- the store ------------------------------------------------------------------------------


def test_create_stores_everything_and_computes_the_first_trigger(schedules: ScheduleStore) -> None:
    created = schedules.create(
        "churn",
        "pipelines/churn.py:churn",
        " 0  3 * * * ",
        params={"lr": "0.1", "region": "eu"},
        executor="dask",
        executor_address="tcp://scheduler:8786",
        now=T0,
    )
    assert created.cron == "0 3 * * *"
    assert created.next_fire_time == T0 + 3 * HOUR
    assert (created.enabled, created.last_fire_time, created.last_run_id, created.created) == (
        True,
        None,
        None,
        T0,
    )
    assert created.params == {"lr": "0.1", "region": "eu"}
    assert schedules.get("churn") == created == schedules.get(created.schedule_id)
    assert schedules.list_all() == [created]


def test_the_first_trigger_is_read_in_the_schedules_time_zone(schedules: ScheduleStore) -> None:
    created = schedules.create("paris", "churn.py", "0 3 * * *", timezone="Europe/Paris", now=T0)
    assert created.next_fire_time == ms(2024, 1, 1, 3, zone="Europe/Paris") == T0 + 2 * HOUR


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 3 * *", "five fields"),
        ("0 3 * * * *", "five fields"),
        ("61 * * * *", "not valid cron syntax"),
        ("every day", "five fields"),
        ("@reboot", "not valid cron syntax"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_a_bad_cron_expression_is_quoted_with_an_example(
    sqlite_schedules: ScheduleStore, cron: str, reason: str
) -> None:
    with pytest.raises(InvalidInput, match=reason) as raised:
        sqlite_schedules.create("bad", "churn.py", cron)
    assert repr(cron) in raised.value.message
    assert "'0 3 * * *'" in raised.value.message
    assert sqlite_schedules.list_all() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "Unknown time zone 'Mars/Olympus'"),
        ({"executor": "spark"}, "Unknown executor 'spark': use one of local, process, dask"),
        ({"name": "my churn"}, "Invalid schedule name 'my churn'"),
        ({"name": "0123456789abcdef0123456789abcdef"}, "looks like a schedule id"),
        ({"target": " "}, "Invalid pipeline target"),
        ({"params": {"a=b": "1"}}, "Invalid pipeline param"),
    ],
)
def test_bad_input_is_refused(
    sqlite_schedules: ScheduleStore, change: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"name": "churn", "target": "churn.py", "cron": "0 3 * * *", **change}
    with pytest.raises(InvalidInput, match=message):
        sqlite_schedules.create(**arguments)  # type: ignore[arg-type]


def test_names_are_unique(schedules: ScheduleStore) -> None:
    every_minute(schedules)
    with pytest.raises(AlreadyExists, match="A schedule named 'churn' already exists"):
        every_minute(schedules)


def test_an_unknown_schedule_points_at_the_listing(schedules: ScheduleStore) -> None:
    with pytest.raises(NotFound, match="`conveyor pipeline schedules list`"):
        schedules.get("nope")
    with pytest.raises(NotFound):
        schedules.delete("nope")
    with pytest.raises(NotFound):
        schedules.set_enabled("nope", False)


def test_a_trigger_is_claimed_once(schedules: ScheduleStore) -> None:
    created = every_minute(schedules)
    assert schedules.claim_due(T0 + MINUTE - 1) == []
    [claimed] = schedules.claim_due(T0 + MINUTE)
    assert (claimed.last_fire_time, claimed.next_fire_time) == (T0 + MINUTE, T0 + 2 * MINUTE)
    assert schedules.get(created.schedule_id) == claimed
    assert schedules.claim_due(T0 + MINUTE) == []


def test_triggers_missed_during_downtime_coalesce_into_one(schedules: ScheduleStore) -> None:
    every_minute(schedules)
    back = T0 + 10 * MINUTE + 30_000
    [claimed] = schedules.claim_due(back)
    assert claimed.next_fire_time == T0 + 11 * MINUTE > back
    assert claimed.last_fire_time == back
    assert schedules.claim_due(back + 29_999) == []


def test_a_paused_schedule_is_not_claimed_and_resumes_without_catching_up(schedules: ScheduleStore) -> None:
    every_minute(schedules)
    assert schedules.set_enabled("churn", False).enabled is False
    assert schedules.claim_due(T0 + HOUR) == []
    resumed = schedules.set_enabled("churn", True, now=T0 + HOUR + 1)
    assert (resumed.enabled, resumed.next_fire_time) == (True, T0 + HOUR + MINUTE)
    again = schedules.set_enabled("churn", True, now=T0 + 2 * HOUR)
    assert again.next_fire_time == resumed.next_fire_time  # resuming an active schedule changes nothing


def test_delete_and_record_run(schedules: ScheduleStore) -> None:
    created = every_minute(schedules)
    schedules.record_run(created.schedule_id, "f" * 32)
    assert schedules.get("churn").last_run_id == "f" * 32
    assert schedules.delete("churn").schedule_id == created.schedule_id
    assert schedules.list_all() == []
    with pytest.raises(NotFound, match="deleted"):
        schedules.record_run(created.schedule_id, "f" * 32)


def test_concurrent_claimers_split_the_triggers_between_them(database: str) -> None:
    """Each claimer has its own engine, as separate scheduler processes would."""
    setup = open_schedule_store(database)
    names = {f"s{i}" for i in range(12)}
    for name in names:
        every_minute(setup, name)
    setup.close()
    claimed = run_together(4, lambda store: [s.name for s in store.claim_due(T0 + 5 * MINUTE)], database)
    assert sorted(itertools.chain.from_iterable(claimed)) == sorted(names)


def run_together(count: int, work: Callable[[ScheduleStore], list[str]], database: str) -> list[list[str]]:
    """Run ``work`` in ``count`` threads released at the same moment, each on its own store."""
    stores = [open_schedule_store(database) for _ in range(count)]
    barrier = threading.Barrier(count)
    results: list[list[str]] = [[] for _ in range(count)]

    def worker(index: int) -> None:
        barrier.wait()
        results[index] = work(stores[index])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    return results


# -- cron arithmetic ------------------------------------------------------------------------


def test_a_time_skipped_by_daylight_saving_fires_once_just_after_the_gap() -> None:
    # New York, 2024-03-10: clocks jump from 02:00 to 03:00, so 02:30 does not exist.
    after = ms(2024, 3, 9, 12, zone="America/New_York")
    fire = next_fire_time("30 2 * * *", "America/New_York", after)
    assert fire == ms(2024, 3, 10, 3, zone="America/New_York")
    assert next_fire_time("30 2 * * *", "America/New_York", fire) == ms(
        2024, 3, 11, 2, 30, zone="America/New_York"
    )


def test_a_time_repeated_by_daylight_saving_fires_once() -> None:
    # New York, 2024-11-03: clocks fall back from 02:00 to 01:00, so 01:30 happens twice.
    first = next_fire_time("30 1 * * *", "America/New_York", ms(2024, 11, 2, 12, zone="America/New_York"))
    assert first == int(datetime(2024, 11, 3, 5, 30, tzinfo=UTC).timestamp() * 1000)  # 01:30 EDT
    following = next_fire_time("30 1 * * *", "America/New_York", first)
    assert following == int(datetime(2024, 11, 4, 6, 30, tzinfo=UTC).timestamp() * 1000)  # next day, EST


def test_an_interval_schedule_fires_in_both_copies_of_a_repeated_hour() -> None:
    start = int(datetime(2024, 11, 3, 5, 0, tzinfo=UTC).timestamp() * 1000)  # 01:00 EDT
    fires = [start]
    for _ in range(3):
        fires.append(next_fire_time("*/30 * * * *", "America/New_York", fires[-1]))
    assert [b - a for a, b in itertools.pairwise(fires)] == [30 * MINUTE] * 3


# -- the scheduler --------------------------------------------------------------------------


def test_run_command_is_pipeline_run_with_the_schedules_options(schedules: ScheduleStore) -> None:
    created = schedules.create(
        "churn",
        "/srv/churn.py:churn",
        "0 3 * * *",
        params={"region": "eu", "lr": "0.1"},
        executor="dask",
        executor_address="tcp://dask:8786",
    )
    assert run_command(created) == [
        sys.executable,
        "-m",
        "conveyor",
        "pipeline",
        "run",
        "/srv/churn.py:churn",
        "--param",
        "lr=0.1",
        "--param",
        "region=eu",
        "--executor",
        "dask",
        "--address",
        "tcp://dask:8786",
        "--schedule-id",
        created.schedule_id,
    ]
    local = schedules.create("local", "pkg.flows:churn", "0 3 * * *")
    assert run_command(local)[5:] == [
        "pkg.flows:churn",
        "--executor",
        "local",
        "--schedule-id",
        local.schedule_id,
    ]


def writer(out_dir: Path) -> Callable[[Schedule], list[str]]:
    """A stand-in for ``conveyor pipeline run``: writes ``<out_dir>/<schedule name>`` and prints."""

    def command(schedule: Schedule) -> list[str]:
        code = "import sys; open(sys.argv[1], 'w').write(sys.argv[2]); print('ran', sys.argv[2])"
        return [sys.executable, "-c", code, str(out_dir / schedule.name), schedule.schedule_id]

    return command


def finished(launches: list[Launch]) -> list[Launch]:
    for launch in launches:
        assert launch.process.wait(timeout=30) == 0, launch.log_path.read_text()
    return launches


def test_tick_starts_a_real_process_with_its_output_in_the_log(
    schedules: ScheduleStore, tmp_path: Path
) -> None:
    created = every_minute(schedules)
    scheduler = Scheduler(schedules, tmp_path / "logs", SubprocessLauncher(writer(tmp_path)))
    [launch] = finished(scheduler.tick(now=T0 + MINUTE))
    assert (launch.schedule.name, launch.fired_at) == ("churn", T0 + MINUTE)
    assert (tmp_path / "churn").read_text() == created.schedule_id
    assert launch.log_path == tmp_path / "logs" / "churn-20240101T000100Z.log"
    log = launch.log_path.read_text()
    assert log.startswith(f"$ {sys.executable} -c ")
    assert f"ran {created.schedule_id}" in log


def test_scheduled_work_is_audited_as_the_system_jobs_that_did_it(
    schedules: ScheduleStore, tmp_path: Path
) -> None:
    """The claim is the scheduler's; the run it launches acts as ``schedule:<name>``."""
    created = every_minute(schedules)

    def command(schedule: Schedule) -> list[str]:
        code = "import os, sys; open(sys.argv[1], 'w').write(os.environ['CONVEYOR_SYSTEM_ACTOR'])"
        return [sys.executable, "-c", code, str(tmp_path / "actor")]

    scheduler = Scheduler(schedules, tmp_path / "logs", SubprocessLauncher(command))
    finished(scheduler.tick(now=T0 + MINUTE))
    assert (tmp_path / "actor").read_text() == "schedule:churn"
    [claim] = AuditLog(schedules.store).read(resource_id=created.schedule_id, action="schedule.fire")
    assert claim.actor_kind == "system"
    assert claim.actor.startswith("scheduler (as ")


def test_a_scheduler_back_from_downtime_launches_once(schedules: ScheduleStore, tmp_path: Path) -> None:
    every_minute(schedules)
    scheduler = Scheduler(schedules, tmp_path / "logs", SubprocessLauncher(writer(tmp_path)))
    assert len(finished(scheduler.tick(now=T0 + 10 * MINUTE))) == 1
    assert schedules.get("churn").next_fire_time == T0 + 11 * MINUTE
    assert scheduler.tick(now=T0 + 10 * MINUTE + 59_999) == []


def test_two_schedulers_ticking_together_launch_once(database: str, tmp_path: Path) -> None:
    setup = open_schedule_store(database)
    every_minute(setup)
    setup.close()
    launcher = SubprocessLauncher(writer(tmp_path))

    def tick(store: ScheduleStore) -> list[str]:
        launched = finished(Scheduler(store, tmp_path / "logs", launcher).tick(T0 + HOUR))
        return [launch.schedule.name for launch in launched]

    assert list(itertools.chain.from_iterable(run_together(2, tick, database))) == ["churn"]


def test_a_failed_launch_is_logged_and_the_other_schedules_still_run(
    schedules: ScheduleStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    every_minute(schedules, "broken")
    every_minute(schedules, "fine")
    command = writer(tmp_path)

    def broken_or_fine(schedule: Schedule) -> list[str]:
        return [str(tmp_path / "no-such-program")] if schedule.name == "broken" else command(schedule)

    scheduler = Scheduler(schedules, tmp_path / "logs", SubprocessLauncher(broken_or_fine))
    with caplog.at_level(logging.ERROR, logger="conveyor.pipelines.schedules"):
        launched = finished(scheduler.tick(now=T0 + MINUTE))
    assert [launch.schedule.name for launch in launched] == ["fine"]
    assert "Could not start the run of schedule 'broken'" in caplog.text
    assert schedules.get("broken").next_fire_time == T0 + 2 * MINUTE  # fires again next time


def test_a_run_that_fails_is_reported_at_the_next_tick(
    schedules: ScheduleStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    every_minute(schedules)
    failing = SubprocessLauncher(lambda _: [sys.executable, "-c", "raise SystemExit(3)"])
    scheduler = Scheduler(schedules, tmp_path / "logs", failing)
    [launch] = scheduler.tick(now=T0 + MINUTE)
    launch.process.wait(timeout=30)
    with caplog.at_level(logging.WARNING, logger="conveyor.pipelines.schedules"):
        scheduler.tick(now=T0 + MINUTE + 1)
    assert "exited with status 3" in caplog.text
    assert scheduler.running == []


def test_run_forever_survives_a_failed_launch_until_stopped(schedules: ScheduleStore, tmp_path: Path) -> None:
    every_minute(schedules, "broken", now=T0)
    every_minute(schedules, "fine", now=T0)
    command = writer(tmp_path)
    launcher = SubprocessLauncher(lambda s: ["/no/such/program"] if s.name == "broken" else command(s))
    scheduler = Scheduler(schedules, tmp_path / "logs", launcher)
    stop = threading.Event()
    seen: list[Launch] = []

    def on_launch(launch: Launch) -> None:
        seen.append(launch)
        stop.set()

    scheduler.run_forever(0.01, stop, on_launch)
    assert [launch.schedule.name for launch in finished(seen)] == ["fine"]


def test_the_runs_get_the_schedulers_stores(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=SecretStr("sqlite:////srv/db.sqlite"))
    env = run_environment(settings)
    assert env["CONVEYOR_DATABASE_URL"] == "sqlite:////srv/db.sqlite"
    assert env["CONVEYOR_HOME"] == str((tmp_path / "home").resolve())
    assert env["CONVEYOR_ARTIFACT_ROOT"] == str((tmp_path / "home" / "artifacts").resolve())
    assert env["PATH"]


def test_the_scheduler_refuses_a_server_url(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=SecretStr("http://tracking:5000"))
    with pytest.raises(InvalidInput, match="not behind a server"):
        Scheduler.from_settings(settings)


def test_background_scheduler_fires_due_schedules_and_stops_with_the_block(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    setup = open_schedule_store(settings.resolved_database_url())
    every_minute(setup, now=T0)  # due for ages
    setup.close()
    launcher = SubprocessLauncher(writer(tmp_path))
    with background_scheduler(settings, interval_s=0.05, launcher=launcher) as thread:
        wait_for((tmp_path / "churn").exists)
        assert thread.is_alive()
    assert not thread.is_alive()
    [log] = (tmp_path / "home" / LOG_FOLDER).iterdir()
    assert log.name.startswith("churn-")


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
