"""Firing pipeline schedules: claim the due ones, start each run as its own process.

:class:`Scheduler` is what ``conveyor scheduler`` and ``conveyor server --scheduler`` run.
Every ``interval_s`` it asks the store for the due schedules (a claim that at most one
scheduler wins, and that turns any number of triggers missed during downtime into one) and
starts ``conveyor pipeline run <target> … --schedule-id <id>`` for each, with its output in
``<home>/scheduler-logs/<name>-<UTC time>.log``.

Runs are separate processes, in their own session, so that a pipeline never blocks the
loop, a crashing one cannot take the scheduler down, and stopping the scheduler (Ctrl-C, a
server restart) leaves the runs it started to finish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.store.actor import SYSTEM_ACTOR_ENV, acting_as, system_actor
from conveyor.store.base import now_ms

if TYPE_CHECKING:
    from conveyor.config import Settings
    from conveyor.store.sql.schedules import Schedule, ScheduleStore

logger = logging.getLogger(__name__)

#: Folder under ``CONVEYOR_HOME`` that holds one log file per launched run.
LOG_FOLDER = "scheduler-logs"
DEFAULT_INTERVAL_S = 30.0

#: Starts the run of a claimed schedule, its output going to the log file; returns the process.
Launcher = Callable[["Schedule", Path], "subprocess.Popen[bytes]"]


@dataclass(frozen=True, slots=True)
class Launch:
    """A run the scheduler started: which schedule, when it fired (ms), where its output goes."""

    schedule: Schedule
    fired_at: int
    log_path: Path
    process: subprocess.Popen[bytes]


def run_command(schedule: Schedule) -> list[str]:
    """The command line of one scheduled run: ``conveyor pipeline run`` with the schedule's options.

    The interpreter is the scheduler's own, so the run sees the same installed packages.
    """
    command = [sys.executable, "-m", "conveyor", "pipeline", "run", schedule.target]
    for key, value in sorted(schedule.params.items()):
        command += ["--param", f"{key}={value}"]
    command += ["--executor", schedule.executor]
    if schedule.executor_address:
        command += ["--address", schedule.executor_address]
    return [*command, "--schedule-id", schedule.schedule_id]


def run_environment(settings: Settings) -> dict[str, str]:
    """The scheduler's environment, with the stores it uses spelled out for the runs.

    Settings may come from flags or a config file the run would not see; writing the
    resolved locations into ``CONVEYOR_*`` makes the run use the scheduler's stores.
    """
    return {
        **os.environ,
        "CONVEYOR_HOME": str(settings.home.resolve()),
        "CONVEYOR_DATABASE_URL": settings.resolved_database_url(),
        "CONVEYOR_ARTIFACT_ROOT": settings.resolved_artifact_root(),
    }


class SubprocessLauncher:
    """The default :data:`Launcher`: runs ``command(schedule)`` with its output in the log file."""

    def __init__(
        self,
        command: Callable[[Schedule], list[str]] = run_command,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.command = command
        self.env = env

    def __call__(self, schedule: Schedule, log_path: Path) -> subprocess.Popen[bytes]:
        argv = self.command(schedule)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            log.write(f"$ {shlex.join(argv)}\n".encode())
            log.flush()
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**(os.environ if self.env is None else self.env), SYSTEM_ACTOR_ENV: _job(schedule)},
                start_new_session=True,
            )


class Scheduler:
    """Claims due schedules and launches their runs; one instance per thread.

    Any number of schedulers may share a database: the store's claim makes sure each
    trigger starts one run.
    """

    def __init__(self, schedules: ScheduleStore, log_dir: Path, launcher: Launcher) -> None:
        self.schedules = schedules
        self.log_dir = log_dir
        self.launcher = launcher
        #: Runs started and not yet seen to finish; polled each tick so none lingers as a zombie.
        self.running: list[Launch] = []

    @classmethod
    def from_settings(cls, settings: Settings, launcher: Launcher | None = None) -> Scheduler:
        """A scheduler on the settings' database, launching ``conveyor pipeline run`` by default."""
        from conveyor.store.sql.schedules import open_schedule_store

        schedules = open_schedule_store(settings.resolved_database_url(), upgrade=settings.auto_upgrade)
        default = SubprocessLauncher(env=run_environment(settings))
        return cls(schedules, settings.home.resolve() / LOG_FOLDER, launcher or default)

    def close(self) -> None:
        self.schedules.close()

    def tick(self, now: int | None = None) -> list[Launch]:
        """Claim what is due at ``now`` (ms, default the clock) and launch a run for each.

        A launch that fails is logged and skipped: its trigger is spent, the other
        schedules still run, and the schedule fires again at its next cron time.
        """
        self._reap()
        fired_at = now_ms() if now is None else now
        launched = []
        with acting_as(system_actor("scheduler")):
            due = self.schedules.claim_due(fired_at)
        for schedule in due:
            log_path = self.log_dir / f"{schedule.name}-{_stamp(fired_at)}.log"
            try:
                process = self.launcher(schedule, log_path)
            except Exception:  # any launch failure: the loop must outlive a bad schedule
                logger.exception("Could not start the run of schedule %r", schedule.name)
                continue
            logger.info("Started schedule %r (pid %s); output in %s", schedule.name, process.pid, log_path)
            launched.append(Launch(schedule, fired_at, log_path, process))
        self.running += launched
        return launched

    def run_forever(
        self,
        interval_s: float,
        stop_event: threading.Event,
        on_launch: Callable[[Launch], None] | None = None,
    ) -> None:
        """Tick every ``interval_s`` seconds until ``stop_event`` is set, the first tick at once.

        A failing tick (the database unreachable, say) is logged and retried at the next one.
        """
        while not stop_event.is_set():
            try:
                launched = self.tick()
            except Exception:  # any failure: the next tick may well succeed
                logger.exception("Scheduler tick failed; retrying in %s s", interval_s)
                launched = []
            if on_launch is not None:
                for launch in launched:
                    on_launch(launch)
            stop_event.wait(interval_s)

    def _reap(self) -> None:
        """Collect the exit status of finished runs, logging the failed ones."""
        still_running = []
        for launch in self.running:
            status = launch.process.poll()
            if status is None:
                still_running.append(launch)
            elif status != 0:
                logger.warning(
                    "The run of schedule %r exited with status %s; see %s",
                    launch.schedule.name,
                    status,
                    launch.log_path,
                )
        self.running = still_running


def _job(schedule: Schedule) -> str:
    """How the audit log names a scheduled run's actor."""
    return f"schedule:{schedule.name}"


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")


@contextlib.contextmanager
def background_scheduler(
    settings: Settings,
    interval_s: float = DEFAULT_INTERVAL_S,
    launcher: Launcher | None = None,
) -> Iterator[threading.Thread]:
    """Run a :class:`Scheduler` in a daemon thread for the duration of the ``with`` block.

    What ``conveyor server --scheduler`` wraps around the server: leaving the block (server
    shutdown) sets the stop event and waits for the thread, so no tick is cut in half.
    """
    scheduler = Scheduler.from_settings(settings, launcher)
    stop = threading.Event()
    thread = threading.Thread(
        target=scheduler.run_forever, args=(interval_s, stop), name="conveyor-scheduler", daemon=True
    )
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join()
        scheduler.close()
