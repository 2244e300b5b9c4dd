"""What the audit log and authentication cost on writes, through the ``mlflow`` client.

    .venv/bin/python benchmarks/registry/governance.py            # full run
    .venv/bin/python benchmarks/registry/governance.py --quick    # smoke run

Three Conveyor servers start side by side, each on SQLite in a fresh folder:

* **bare**: audit appends switched off (``_unaudited_server.py``), no authentication;
* **audited**: Conveyor as shipped, authentication off (the embedded default);
* **governed**: as shipped with ``--auth``: every request carries a bearer token that is
  checked, and the principal's roles are looked up, before the write.

The same writes go to each, alternating which server goes first every round so machine
load weighs on all alike: tracking writes (``log_metric``, a 100-metric ``log_batch``,
``set_tag``, ``create_run``) and registry writes (``create_model_version``, moving an
alias). Each figure is a median in milliseconds; the issue's target is that audit and
auth together add under 10 % to write latency.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tracking"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers
from run import MODEL, Side, alternate, create_one, log, prepare, timed

TARGET = 0.10


@dataclass(frozen=True)
class Sizes:
    rounds: int
    per_round: int


FULL = Sizes(rounds=20, per_round=25)
QUICK = Sizes(rounds=4, per_round=10)


def start_bare(home: Path) -> servers.Server:
    port = servers.free_port()
    command = [sys.executable, str(Path(__file__).with_name("_unaudited_server.py")), str(port)]
    server = servers._launch("bare", home, command, {"CONVEYOR_HOME": str(home)}, port)
    servers._wait_for_health(server, 60.0)
    return server


def start_governed(home: Path) -> tuple[servers.Server, str]:
    """A server with ``--auth`` and a contributor's token, created on its database first."""
    from conveyor.identity import IdentityService, RequestContext, Role
    from conveyor.store.sql.store import SqlStore

    store = SqlStore(f"sqlite:///{home / 'conveyor.db'}").open()
    identity, local = IdentityService.for_store(store), RequestContext.local()
    identity.create_user("bench", local)
    identity.grant("bench", Role.CONTRIBUTOR, local)
    token = identity.issue_token("bench", local).secret
    store.close()
    port = servers.free_port()
    command = [str(servers.VENV_BIN / "conveyor"), "server", "--port", str(port), "--home", str(home)]
    env = {"CONVEYOR_HOME": str(home), "CONVEYOR_AUTH": "true"}
    server = servers._launch("governed", home, command, env, port)
    servers._wait_for_health(server, 60.0)
    return server, token


def start_all(root: Path, stack: contextlib.ExitStack) -> list[Side]:
    bare = start_bare(servers.fresh_dir(root, "bare"))
    stack.callback(servers.stop, bare)
    audited = servers.start_conveyor(servers.fresh_dir(root, "audited"))
    stack.callback(servers.stop, audited)
    governed, token = start_governed(servers.fresh_dir(root, "governed"))
    stack.callback(servers.stop, governed)
    # Servers without --auth ignore the header, so one token in the environment serves all.
    os.environ["MLFLOW_TRACKING_TOKEN"] = token
    return [
        Side(name, s.url, mlflow.MlflowClient(s.url))
        for name, s in (("bare", bare), ("audited", audited), ("governed", governed))
    ]


def workloads(per_round: int, open_runs: dict[str, str]) -> list[tuple[str, Callable[[Side], list[float]]]]:
    """The timed writes; tracking writes go to a run left open (``open_runs``, by side)."""

    def log_metric(side: Side) -> list[float]:
        return [
            timed(lambda i=i: side.client.log_metric(open_runs[side.name], "loss", 1.0 / (i + 1), step=i))
            for i in range(per_round)
        ]

    def log_batch(side: Side) -> list[float]:
        metrics = [mlflow.entities.Metric(f"m{k}", float(k), 0, 0) for k in range(100)]
        return [
            timed(lambda: side.client.log_batch(open_runs[side.name], metrics=metrics))
            for _ in range(per_round)
        ]

    def set_tag(side: Side) -> list[float]:
        return [
            timed(lambda i=i: side.client.set_tag(open_runs[side.name], f"t{i % 5}", str(i)))
            for i in range(per_round)
        ]

    def create_run(side: Side) -> list[float]:
        experiment = side.client.get_experiment_by_name("registry-bench").experiment_id
        return [timed(lambda: side.client.create_run(experiment)) for _ in range(per_round)]

    def create_version(side: Side) -> list[float]:
        return [create_one(side) for _ in range(per_round)]

    def move_alias(side: Side) -> list[float]:
        return [
            timed(lambda i=i: side.client.set_registered_model_alias(MODEL, "challenger", 1 + i % 2))
            for i in range(per_round)
        ]

    return [
        ("log_metric", log_metric),
        ("log_batch (100 metrics)", log_batch),
        ("set_tag", set_tag),
        ("create_run", create_run),
        ("create_model_version", create_version),
        ("set alias", move_alias),
    ]


def measure(sides: list[Side], sizes: Sizes) -> list[tuple[str, dict[str, float]]]:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 4))
    labels = (features[:, 0] > 0).astype(int)
    open_runs = {}
    for side in sides:
        prepare(side, features, labels)
        create_one(side)
        create_one(side)
        experiment = side.client.get_experiment_by_name("registry-bench").experiment_id
        open_runs[side.name] = side.client.create_run(experiment).info.run_id
    rows = []
    for label, step in workloads(sizes.per_round, open_runs):
        log(label)
        samples = alternate(sides, sizes.rounds, step)
        rows.append((label, {name: statistics.median(values) for name, values in samples.items()}))
    return rows


def print_table(rows: list[tuple[str, dict[str, float]]], sizes: Sizes) -> bool:
    print(
        f"\nWrite latency through mlflow {mlflow.__version__}'s client, {os.cpu_count()} CPUs, "
        f"median ms of {sizes.rounds * sizes.per_round} calls per server"
    )
    print(
        "\n| Write | bare (ms) | audited (ms) | governed: audit + auth (ms) | audit adds | audit + auth add |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    met = True
    for label, ms in rows:
        audit_cost = ms["audited"] / ms["bare"] - 1
        total_cost = ms["governed"] / ms["bare"] - 1
        met = met and total_cost < TARGET
        print(
            f"| {label} | {ms['bare']:.2f} | {ms['audited']:.2f} | {ms['governed']:.2f} "
            f"| {audit_cost:+.1%} | {total_cost:+.1%} |"
        )
    print(f"\nAudit and auth add under {TARGET:.0%} to every write: {'yes' if met else 'NO'}")
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--keep", action="store_true", help="keep the servers' folders")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_ENABLE_ASYNC_LOGGING": "false"})
    root = Path(tempfile.mkdtemp(prefix="conveyor-governance-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            rows = measure(start_all(root, stack), sizes)
    finally:
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print_table(rows, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
