"""Side-by-side SMTP throughput: mailroom and its peers under the same load, in one run.

    python bench/run.py [--messages 20000] [--connections 50] [--size 1024] [--rounds 3]

Starts each server on loopback in its own process, drives it with ``mailroom bench-client``
(the same load for every server), and prints msg/s per server (the median of the rounds,
which are interleaved so that drift on a noisy machine hits every server alike) and the ratio
to aiosmtpd. Peers: aiosmtpd with a discarding handler and with a ``mailbox.Maildir`` handler
(no fsync), on asyncio and on uvloop; Postfix's ``smtp-sink`` (C) when it is installed.

``--mailroom-python`` runs mailroom with another interpreter: ``make bench`` passes
.venv-fast's, where the protocol core is compiled with mypyc (setup.py). A row "pure Python"
then runs the same server from this interpreter's install, for comparison.

``--baseline-python`` adds each mailroom row again, run by another interpreter (an install of
another commit), in the same interleaved rounds: a before/after measure of a change, e.g.
``--only mailroom --mailroom-python after/bin/python --baseline-python before/bin/python``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.recv(1024)
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


@dataclass
class Target:
    name: str
    command: list[str]  # with {port} and {dir} placeholders
    load: list[str] = field(default_factory=list)  # extra bench-client flags
    rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # server CPU µs per accepted message
    details: list[dict[str, object]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    @property
    def cpu_per_message(self) -> float:
        return statistics.median(self.cpu) if self.cpu else 0.0


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (Linux /proc), None elsewhere: what
    each message costs the server, beside how fast it went (a server that waits on its disk or
    its client shows a low rate at a low cost)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mailroom(store: str, *extra: str, python: str = PYTHON) -> list[str]:
    return [
        python,
        "-m",
        "mailroom",
        "serve",
        "--smtp",
        "127.0.0.1:{port}",
        "--data",
        "{dir}",
        "--hostname",
        "bench.test",
        "--store",
        store,
        "--log-level",
        "warning",
        "--max-connections-per-ip",
        "0",
        "--web",
        "off",
        *extra,
    ]


def aiosmtpd(kind: str, *extra: str) -> list[str]:
    return [PYTHON, str(HERE / "aiosmtpd_server.py"), "{port}", kind, "{dir}/maildir", *extra]


def build_of(python: str) -> str:
    """Which build of mailroom ``python`` runs, as ``mailroom --version`` says it."""
    answer = subprocess.run(
        [python, "-m", "mailroom", "--version"], capture_output=True, text=True, check=True
    )
    return answer.stdout.strip()


def targets(selection: str, python: str = PYTHON, baseline: str | None = None) -> list[Target]:
    def rows(python: str, suffix: str = "") -> list[Target]:
        def served(store: str, *extra: str) -> list[str]:
            return mailroom(store, *extra, python=python)

        return [
            Target("mailroom --store none" + suffix, served("none")),
            Target(
                "mailroom --store none --transcripts 0" + suffix,
                served("none", "--transcripts", "0"),
            ),
            Target("mailroom --store none, PIPELINING" + suffix, served("none"), ["--pipelining"]),
            Target("mailroom --store none, CHUNKING" + suffix, served("none"), ["--chunking"]),
            Target("mailroom --store maildir (fsync)" + suffix, served("maildir")),
            Target(
                "mailroom --store maildir, PIPELINING" + suffix,
                served("maildir"),
                ["--pipelining"],
            ),
        ]

    found = rows(python)
    if baseline is not None:
        # Each row beside its baseline twin, so both meet the same moment of a noisy machine.
        twins = rows(baseline, " [baseline]")
        found = [row for pair in zip(found, twins, strict=True) for row in pair]
    if python != PYTHON:
        found.append(Target("mailroom --store none, pure Python", mailroom("none")))
    found += [
        Target("aiosmtpd discard", aiosmtpd("discard")),
        Target("aiosmtpd discard, PIPELINING", aiosmtpd("discard"), ["--pipelining"]),
        Target("aiosmtpd discard (uvloop)", aiosmtpd("discard", "--uvloop")),
        Target("aiosmtpd Maildir (no fsync)", aiosmtpd("maildir")),
    ]
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if Path(sink).exists():
        # As root, smtp-sink insists on dropping to another user.
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        found.append(
            Target("postfix smtp-sink (C)", [sink, *user, "-c", "127.0.0.1:{port}", "1000"])
        )
    if selection == "all":
        return found
    wanted = selection.split(",")
    return [t for t in found if any(w in t.name for w in wanted)]


def run_one(target: Target, args: argparse.Namespace, root: Path) -> dict[str, object]:
    port = free_port()
    # Data directories are removed only at the end of the whole run: deleting thousands of
    # files makes the next journal commits slow (discards), which would penalise the next run.
    workdir = tempfile.mkdtemp(prefix="run-", dir=root)
    command = [part.format(port=port, dir=workdir) for part in target.command]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    try:
        wait_for_port(port)
        cpu_before = cpu_seconds(server.pid)
        load = subprocess.run(
            [
                PYTHON,
                "-m",
                "mailroom",
                "bench-client",
                "--server",
                f"127.0.0.1:{port}",
                "--messages",
                str(args.messages),
                "--connections",
                str(args.connections),
                "--size",
                str(args.size),
                "--json",
                *target.load,
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        cpu_after = cpu_seconds(server.pid)
        if not load.stdout.strip():
            raise RuntimeError(f"{target.name}: load generator failed: {load.stderr}")
        result: dict[str, object] = json.loads(load.stdout)
        accepted = int(result["messages"])  # type: ignore[call-overload]
        if cpu_before is not None and cpu_after is not None and accepted:
            result["server_cpu_us"] = round((cpu_after - cpu_before) / accepted * 1e6, 1)
        return result
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="all", help="comma-separated name fragments")
    parser.add_argument("--tmp", default=None, help="where the servers keep their data")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--mailroom-python", default=PYTHON, help="the interpreter that runs mailroom's rows"
    )
    parser.add_argument(
        "--baseline-python",
        help="also run mailroom's rows with this interpreter (another commit's install)",
    )
    args = parser.parse_args()

    chosen = targets(args.only, args.mailroom_python, args.baseline_python)
    builds = build_of(args.mailroom_python)
    if args.baseline_python:
        builds += f"; baseline: {build_of(args.baseline_python)} ({args.baseline_python})"
    print(
        f"{args.messages} messages of {args.size} octets over {args.connections} connections, "
        f"{args.rounds} rounds, median msg/s; {os.cpu_count()} CPUs; {builds}",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="mailroom-bench-", dir=args.tmp))
    try:
        _run_rounds(chosen, args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    baseline = next((t for t in chosen if t.name == "aiosmtpd discard"), None)
    print()
    print(
        f"{'server':<54} {'msg/s':>9} {'rounds (min-max)':>17} {'× aiosmtpd discard':>20} "
        f"{'server CPU µs/msg':>18}"
    )
    for target in chosen:
        ratio = f"{target.rate / baseline.rate:.2f}" if baseline and baseline.rate else "-"
        spread = f"{min(target.rates):.0f}-{max(target.rates):.0f}" if target.rates else "-"
        print(
            f"{target.name:<54} {target.rate:>9.0f} {spread:>17} {ratio:>20} "
            f"{target.cpu_per_message or '-':>18}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    t.name: {"median": t.rate, "cpu_us": t.cpu_per_message, "rounds": t.details}
                    for t in chosen
                },
                indent=2,
            )
        )
    return 0


def _run_rounds(chosen: list[Target], args: argparse.Namespace, root: Path) -> None:
    for round_number in range(args.rounds):
        for target in chosen:
            result = run_one(target, args, root)
            target.rates.append(float(result["msg_per_s"]))  # type: ignore[arg-type]
            if "server_cpu_us" in result:
                target.cpu.append(float(result["server_cpu_us"]))  # type: ignore[arg-type]
            target.details.append(result)
            print(
                f"  round {round_number + 1}: {target.name:<40} {result['msg_per_s']:>9} msg/s"
                f"  p50 {result['p50_ms']} ms  failed {result['failed']}"
                f"  server CPU {result.get('server_cpu_us', '-')} µs/msg",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
