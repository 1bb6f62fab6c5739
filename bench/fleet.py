"""The PostgreSQL store measured: one node on PostgreSQL beside one node on Maildir, a fleet of
three nodes on this machine, and what the PostgreSQL primary itself carries (pgbench).

    python bench/fleet.py [--messages 20000] [--connections 50] [--size 1024] [--rounds 3]

Starts a PostgreSQL 15 of its own (tests/pgserver.py: initdb + pg_ctl in a temporary
directory, durable as in production: fsync and synchronous_commit on), and for each row
``mailroom serve`` processes driven by ``mailroom bench-client`` (the fleet: one client process
per node, each node on its own loopback address, the load split evenly). Per row it prints
msg/s (median of the rounds, interleaved), the nodes' CPU and PostgreSQL's CPU per message,
and, for the PostgreSQL rows, the transactions the database committed per message
(``pg_stat_database.xact_commit``, everything the nodes did) and the store's round trips per
message (its ``/metrics``). Last, ``pgbench`` on the same server: commits/s of a one-row
insert transaction at 8 and 32 clients, the ceiling a batch-per-transaction store works under.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.run import free_port  # noqa: E402
from bench.run import tree_cpu_seconds as cpu_seconds  # noqa: E402
from tests.pgserver import PostgresServer, postgres_bin  # noqa: E402

PYTHON = sys.executable
WEB_LINE = re.compile(r"web UI and API on (http://\S+)")


@dataclass
class Row:
    name: str
    store: str  # "maildir" or "postgresql"
    nodes: int
    rates: list[float] = field(default_factory=list)
    node_cpu: list[float] = field(default_factory=list)  # µs per message, all nodes
    db_cpu: list[float] = field(default_factory=list)  # µs per message, PostgreSQL
    commits: list[float] = field(default_factory=list)  # transactions per message
    trips: list[float] = field(default_factory=list)  # store round trips per message

    @staticmethod
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.2f}" if values else "-"


def postgres_pids(pg: PostgresServer) -> list[int]:
    """The postmaster and its backends (their CPU is the database's share of the work)."""
    pidfile = pg.data / "postmaster.pid"
    main = int(pidfile.read_text().split()[0])
    found = [main]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == main:
                found.append(int(entry.name))
    return found


def cpu_of(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) or 0.0 for pid in pids)


def xact_commit(url: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return int(
            conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()[0]
        )


def metric(web: str, name: str) -> float:
    with urllib.request.urlopen(web + "/metrics", timeout=30) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def start_node(
    store: str, address: str, name: str, workdir: Path
) -> tuple[subprocess.Popen[bytes], int, str]:
    port = free_port()
    log = workdir / f"{name}.log"
    command = [
        PYTHON, "-m", "mailroom", "serve",
        "--smtp", f"{address}:{port}",
        "--data", str(workdir / name),
        "--hostname", "bench.test",
        "--store", store,
        "--node", name,
        "--workers", "1",  # one process per node, Maildir or PostgreSQL (the CPU measured)
        "--log-level", "warning",
        "--max-connections-per-ip", "0",
        "--web", f"{address}:0",
    ]  # fmt: skip
    server = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    web = None
    while web is None:
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start: {log.read_text()}")
        match = WEB_LINE.search(log.read_text(errors="replace"))
        web = match[1].rstrip("/") if match else None
        time.sleep(0.05)
    wait_for_port_at(address, port)
    return server, port, web


def wait_for_port_at(address: str, port: int) -> None:
    import socket

    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection((address, port), timeout=1) as sock:
                sock.recv(1024)
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def load_command(server: str, messages: int, connections: str, size: int) -> list[str]:
    return [
        PYTHON, "-m", "mailroom", "bench-client",
        "--server", server,
        "--messages", str(messages),
        "--connections", connections,
        "--size", str(size),
        "--json",
    ]  # fmt: skip


def run_row(row: Row, args: argparse.Namespace, pg: PostgresServer, root: Path) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="row-", dir=root))
    url = None
    if row.store == "postgresql":
        from mailroom.postgres.migrate import migrate

        url = pg.create_database()
        migrate(url)
    addresses = ["127.0.0.1"] if row.nodes == 1 else [f"127.0.0.{2 + i}" for i in range(row.nodes)]
    nodes = [
        start_node(url or "maildir", address, f"n{i}", workdir)
        for i, address in enumerate(addresses)
    ]
    try:
        db_pids = postgres_pids(pg)
        node_before = cpu_of([p.pid for p, _, _ in nodes])
        db_before = cpu_of(db_pids)
        commits_before = xact_commit(url) if url else 0
        trips_before = sum(metric(w, "mailroom_store_round_trips_total") for _, _, w in nodes)
        share = args.messages // row.nodes
        started = time.perf_counter()
        per_node = str(max(1, args.connections // row.nodes))
        loads = [
            subprocess.Popen(
                load_command(f"{address}:{port}", share, per_node, args.size),
                stdout=subprocess.PIPE,
                text=True,
            )
            for address, (_, port, _) in zip(addresses, nodes, strict=True)
        ]
        results = [json.loads(load.communicate(timeout=900)[0]) for load in loads]
        elapsed = time.perf_counter() - started
        accepted = sum(int(r["messages"]) for r in results)
        failed = sum(int(r["failed"]) for r in results)
        row.rates.append(accepted / elapsed)
        row.node_cpu.append((cpu_of([p.pid for p, _, _ in nodes]) - node_before) / accepted * 1e6)
        if url:
            row.db_cpu.append((cpu_of(db_pids) - db_before) / accepted * 1e6)
            row.commits.append((xact_commit(url) - commits_before) / accepted)
            trips = sum(metric(w, "mailroom_store_round_trips_total") for _, _, w in nodes)
            row.trips.append((trips - trips_before) / accepted)
        print(
            f"  {row.name:<40} {accepted / elapsed:>8.0f} msg/s  failed {failed}"
            f"  node CPU {row.node_cpu[-1]:.0f} µs/msg"
            + (
                f"  db CPU {row.db_cpu[-1]:.0f} µs/msg  commits/msg {row.commits[-1]:.3f}"
                f"  round trips/msg {row.trips[-1]:.3f}"
                if url
                else ""
            ),
            flush=True,
        )
    finally:
        for server, _, _ in nodes:
            os.killpg(server.pid, signal.SIGTERM)
        for server, _, _ in nodes:
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)


def pgbench(pg: PostgresServer, clients: int, seconds: int) -> float:
    """Commits/s of a one-row INSERT transaction (what one group commit is, at its smallest)."""
    url = pg.create_database()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench (id bigserial PRIMARY KEY, body bytea NOT NULL)")
    script = pg.root / "insert.sql"
    script.write_text("INSERT INTO bench (body) VALUES (decode(repeat('ab', 512), 'hex'));\n")
    os.chmod(script, 0o644)
    command = [
        postgres_bin("pgbench"), "-n", "-f", str(script),
        "-c", str(clients), "-j", "2", "-T", str(seconds), "-M", "prepared",
        "-h", pg.host, "-p", str(pg.port), "-U", "mailroom", url.rsplit("/", 1)[1],
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    match = re.search(r"tps = ([\d.]+)", done.stdout)
    return float(match[1]) if match else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    args = parser.parse_args()
    rows = [
        Row("one node, Maildir", "maildir", 1),
        Row("one node, PostgreSQL", "postgresql", 1),
        Row("three nodes (127.0.0.2-4), PostgreSQL", "postgresql", 3),
    ]
    print(
        f"{args.messages} messages of {args.size} octets over {args.connections} connections, "
        f"{args.rounds} rounds, {os.cpu_count()} CPUs",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="mailroom-fleet-bench-"))
    try:
        with PostgresServer() as pg:
            for _ in range(args.rounds):
                for row in rows:
                    run_row(row, args, pg, root)
            bench = {c: pgbench(pg, c, args.pgbench_seconds) for c in (8, 32)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(
        f"{'row':<40} {'msg/s':>8} {'node CPU µs/msg':>16} {'db CPU µs/msg':>14} "
        f"{'commits/msg':>12} {'round trips/msg':>16}"
    )
    for row in rows:
        print(
            f"{row.name:<40} {statistics.median(row.rates):>8.0f} "
            f"{statistics.median(row.node_cpu):>16.0f} "
            f"{Row.median(row.db_cpu):>14} {Row.median(row.commits):>12} "
            f"{Row.median(row.trips):>16}"
        )
    for clients, tps in bench.items():
        print(f"pgbench, one-row INSERT transactions, {clients} clients: {tps:.0f} commits/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
