"""Side-by-side SMTP throughput: mailroom as users run it, tuned, and its peers, in one run.

    python bench/run.py [--suite main|workers|all] [--messages 20000] [--rounds 3]

Each server runs on loopback in a process of its own and gets the same load; the rounds are
interleaved (every server once, then again), so that drift on a noisy machine hits every
server alike; the table shows the median of the rounds, their spread, the ratio to aiosmtpd
on uvloop and the server's CPU time per message (user + system of the server and every process
it started, from /proc, over the load).

Suites:

- ``main``: ``mailroom bench-client`` (c50, 1 KiB, 100 messages a connection). First the rows
  of what ``make run`` installs and starts, flags as they default (the Maildir store with an
  fsync before each 250, INFO log, transcripts, the web UI on, one worker per CPU); then tuned
  rows; then the peers: aiosmtpd (asyncio and uvloop, discarding and into a Maildir without
  fsync), Node's smtp-server (npm ``smtp-server``, installed by this script into
  ``bench/node/node_modules``) and Postfix's ``smtp-sink`` (C).
- ``workers``: Postfix's ``smtp-source`` (C, so the load generator does not take the second
  core from the server: ``-c -l 1024 -m 20000 -s 50``, one message a connection) against
  mailroom with 1 and 2 workers, and the peers.

``--mailroom-python`` is the interpreter of the install measured as users run it (``make
bench`` passes ``.venv-fast``'s, built by ``pip install .``); a pure-Python row runs the same
server from this interpreter's install. ``--baseline-python`` adds each mailroom row again,
run by another interpreter (an install of another commit), beside its twin in every round.
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
NODE_PEER = HERE / "node"  # package.json and package-lock.json pin smtp-server's version


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(1024).startswith(b"220"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


@dataclass
class Target:
    name: str
    command: list[str]  # with {port}, {web} and {dir} placeholders
    load: list[str] = field(default_factory=list)  # extra bench-client flags
    rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # server CPU µs per accepted message
    details: list[dict[str, object]] = field(default_factory=list)
    group: str = ""  # the heading it is printed under

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    @property
    def cpu_per_message(self) -> float:
        return statistics.median(self.cpu) if self.cpu else 0.0


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def status_kib(pid: int, field: str) -> int:
    """``field`` of /proc/PID/status (VmRSS, VmHWM) summed over ``pid`` and the processes below
    it: mailroom serve starts a worker a CPU, and the supervisor alone holds none of the
    sessions (for VmHWM, the sum of each one's peak: at most that at once)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) + sum(status_kib(int(child), field) for child in children)
    raise KeyError(field)


def tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time ``pid`` and every process below it have used so far (Linux
    /proc), None elsewhere: what the messages cost the server, supervisor and workers
    together, beside how fast they went."""
    fields = _proc_stat(pid)
    if fields is None:
        return None
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            found = _proc_stat(int(entry.name))
            if found is not None:
                parents[int(entry.name)] = int(found[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for member in tree:
        found = _proc_stat(member)
        if found is not None:
            total += int(found[11]) + int(found[12])
    return total / os.sysconf("SC_CLK_TCK")


def mailroom(python: str, *flags: str) -> list[str]:
    """``mailroom serve`` as ``make run`` starts it, on free ports and a data directory of its
    own, with ``flags`` on top. Logs go to a file, as a terminal or journald would take them."""
    return [
        python,
        "-m",
        "mailroom",
        "serve",
        "--smtp",
        "127.0.0.1:{port}",
        "--web",
        "127.0.0.1:{web}",
        "--data",
        "{dir}",
        "--hostname",
        "bench.test",
        *flags,
    ]


# The flags that turn off what the rows as users run it have on: the log line per message,
# transcripts, the web UI.
QUIET = ("--log-level", "warning", "--transcripts", "0", "--web", "off")


def aiosmtpd(kind: str, *extra: str) -> list[str]:
    return [PYTHON, str(HERE / "aiosmtpd_server.py"), "{port}", kind, "{dir}/maildir", *extra]


def node_peer() -> list[str] | None:
    """Node's smtp-server, installed on first use (npm ci, from the lock file)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        print("(node or npm missing: no row for Node's smtp-server)", file=sys.stderr)
        return None
    if not (NODE_PEER / "node_modules" / "smtp-server").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"], cwd=NODE_PEER, check=True
        )
    return [node, str(NODE_PEER / "smtp_server.js"), "{port}"]


def smtp_sink() -> list[str] | None:
    sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(sink).exists():
        return None
    # As root, smtp-sink insists on dropping to another user.
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    return [sink, *user, "-c", "127.0.0.1:{port}", "1000"]


def peers(suite: str) -> list[Target]:
    found = [
        Target("aiosmtpd discard (uvloop)", aiosmtpd("discard", "--uvloop"), group="peers"),
        Target("aiosmtpd discard (asyncio)", aiosmtpd("discard"), group="peers"),
    ]
    if suite == "main":
        found.append(
            Target("aiosmtpd + mailbox.Maildir (no fsync)", aiosmtpd("maildir"), group="peers")
        )
    node = node_peer()
    if node is not None:
        found.append(Target("Node smtp-server (discards)", node, group="peers"))
    sink = smtp_sink()
    if sink is not None:
        found.append(Target("Postfix smtp-sink (C, discards)", sink, group="peers"))
    return found


def main_rows(python: str, pure: str | None, suffix: str = "") -> list[Target]:
    """bench-client's rows: as users run it first, then tuned."""
    as_run = "as make run starts it"
    rows = [
        Target(f"mailroom, defaults (Maildir, fsync){suffix}", mailroom(python), group=as_run),
        Target(f"mailroom --store none{suffix}", mailroom(python, "--store", "none"), group=as_run),
        Target(
            f"mailroom --store none --workers 1{suffix}",
            mailroom(python, "--store", "none", "--workers", "1"),
            group="tuned",
        ),
        Target(
            f"mailroom --workers 1 (Maildir, fsync){suffix}",
            mailroom(python, "--workers", "1"),
            group="tuned",
        ),
        Target(
            f"mailroom --store none --workers 1, quiet{suffix}",
            mailroom(python, "--store", "none", "--workers", "1", *QUIET),
            group="tuned",
        ),
        Target(
            f"mailroom --store none, client PIPELINING{suffix}",
            mailroom(python, "--store", "none"),
            ["--pipelining"],
            group="tuned",
        ),
        Target(
            f"mailroom --store none, client CHUNKING{suffix}",
            mailroom(python, "--store", "none"),
            ["--chunking"],
            group="tuned",
        ),
        Target(
            f"mailroom defaults, client PIPELINING{suffix}",
            mailroom(python),
            ["--pipelining"],
            group="tuned",
        ),
    ]
    if pure is not None:
        rows.append(
            Target(
                f"mailroom --store none --workers 1, pure Python{suffix}",
                mailroom(pure, "--store", "none", "--workers", "1"),
                group="tuned",
            )
        )
    return rows


def workers_rows(python: str, suffix: str = "") -> list[Target]:
    """smtp-source's rows: mailroom with one worker and with two."""
    return [
        Target(
            f"mailroom --store none --workers {n}{suffix}",
            mailroom(python, "--store", "none", "--workers", str(n)),
            group="mailroom, defaults otherwise",
        )
        for n in (1, 2)
    ] + [
        Target(
            f"mailroom --workers {n} (Maildir, fsync){suffix}",
            mailroom(python, "--workers", str(n)),
            group="mailroom, defaults otherwise",
        )
        for n in (1, 2)
    ]


def targets(args: argparse.Namespace) -> list[Target]:
    python, baseline = args.mailroom_python, args.baseline_python
    pure = PYTHON if python != PYTHON else None
    if args.suite == "main":
        found = main_rows(python, pure)
        twins = main_rows(baseline, None, " [baseline]") if baseline else []
    else:
        found = workers_rows(python)
        twins = workers_rows(baseline, " [baseline]") if baseline else []
    if twins:
        # Each row beside its baseline twin, so both meet the same moment of a noisy machine.
        by_name = {t.name: t for t in twins}
        found = [
            row
            for target in found
            for row in (target, by_name.get(target.name + " [baseline]"))
            if row is not None
        ]
    found += peers(args.suite)
    if args.only == "all":
        return found
    wanted = args.only.split(",")
    return [t for t in found if any(w in t.name for w in wanted)]


# -- one measurement -------------------------------------------------------------------------


def load_bench_client(port: int, target: Target, args: argparse.Namespace) -> dict[str, object]:
    answer = subprocess.run(
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
    if not answer.stdout.strip():
        raise RuntimeError(f"{target.name}: load generator failed: {answer.stderr}")
    result: dict[str, object] = json.loads(answer.stdout)
    return result


def load_smtp_source(port: int, target: Target, args: argparse.Namespace) -> dict[str, object]:
    source = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    command = [
        source,
        "-c",
        "-l",
        str(args.size),
        "-m",
        str(args.messages),
        "-s",
        str(args.connections),
        "-f",
        "bench@example.test",
        "-t",
        "sink@example.test",
        f"127.0.0.1:{port}",
    ]
    started = time.perf_counter()
    answer = subprocess.run(command, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - started
    if answer.returncode != 0:
        raise RuntimeError(f"{target.name}: smtp-source failed: {answer.stderr[-2000:]}")
    # smtp-source stops at the first error it meets: a run that ends is one where every
    # message was accepted.
    return {
        "messages": args.messages,
        "failed": 0,
        "seconds": round(seconds, 3),
        "msg_per_s": round(args.messages / seconds, 1),
        "p50_ms": "-",
    }


def run_one(target: Target, args: argparse.Namespace, root: Path) -> dict[str, object]:
    port, web = free_port(), free_port()
    # Data directories are removed only at the end of the whole run: deleting thousands of
    # files makes the next file creations slow (ext4 skips recently freed inodes), which would
    # penalise the next row.
    workdir = tempfile.mkdtemp(prefix="run-", dir=root)
    command = [part.format(port=port, web=web, dir=workdir) for part in target.command]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log_path = Path(workdir).with_suffix(".log")
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=log, env=env, start_new_session=True
        )
    try:
        wait_for_port(port)
        cpu_before = tree_cpu_seconds(server.pid)
        load = load_smtp_source if args.suite == "workers" else load_bench_client
        result = load(port, target, args)
        cpu_after = tree_cpu_seconds(server.pid)
        accepted = int(result["messages"])  # type: ignore[call-overload]
        if cpu_before is not None and cpu_after is not None and accepted:
            result["server_cpu_us"] = round((cpu_after - cpu_before) / accepted * 1e6, 1)
        return result
    except Exception:
        errors = [line for line in log_path.read_text(errors="replace").splitlines()]
        errors = [line for line in errors if " INFO " not in line][-20:]
        print(f"{target.name}: the server said:\n" + "\n".join(errors), file=sys.stderr)
        raise
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", choices=("main", "workers", "all"), default="main")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="all", help="comma-separated name fragments")
    parser.add_argument("--tmp", default=None, help="where the servers keep their data")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--mailroom-python", default=PYTHON, help="the interpreter of the install users run"
    )
    parser.add_argument(
        "--baseline-python",
        help="also run mailroom's rows with this interpreter (another commit's install)",
    )
    args = parser.parse_args()
    suites = ["main", "workers"] if args.suite == "all" else [args.suite]
    results: dict[str, object] = {}
    for suite in suites:
        args.suite = suite
        results[suite] = run_suite(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def run_suite(args: argparse.Namespace) -> dict[str, object]:
    chosen = targets(args)
    builds = build_of(args.mailroom_python)
    if args.baseline_python:
        builds += f"; baseline: {build_of(args.baseline_python)} ({args.baseline_python})"
    generator = (
        f"smtp-source -c -l {args.size} -m {args.messages} -s {args.connections} "
        "(one message a connection)"
        if args.suite == "workers"
        else f"mailroom bench-client: {args.messages} messages of {args.size} octets over "
        f"{args.connections} connections"
    )
    load_average = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n== suite {args.suite}: {generator}; {args.rounds} interleaved rounds, medians; "
        f"{os.cpu_count()} CPUs, load average {load_average} at start; {builds}",
        flush=True,
    )
    root = Path(tempfile.mkdtemp(prefix="mailroom-bench-", dir=args.tmp))
    try:
        _run_rounds(chosen, args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    reference = next((t for t in chosen if t.name == "aiosmtpd discard (uvloop)"), None)
    print()
    print(
        f"{'server':<52} {'msg/s':>8} {'rounds (min-max)':>17} {'× aiosmtpd uvloop':>18} "
        f"{'server CPU µs/msg':>18}"
    )
    group = None
    for target in chosen:
        if target.group != group:
            group = target.group
            print(f"-- {group}")
        ratio = f"{target.rate / reference.rate:.2f}" if reference and reference.rate else "-"
        spread = f"{min(target.rates):.0f}-{max(target.rates):.0f}" if target.rates else "-"
        print(
            f"{target.name:<52} {target.rate:>8.0f} {spread:>17} {ratio:>18} "
            f"{target.cpu_per_message or '-':>18}"
        )
    return {
        t.name: {"median": t.rate, "cpu_us": t.cpu_per_message, "rounds": t.details} for t in chosen
    }


def build_of(python: str) -> str:
    """Which build of mailroom ``python`` runs, as ``mailroom --version`` says it."""
    answer = subprocess.run(
        [python, "-m", "mailroom", "--version"], capture_output=True, text=True, check=True
    )
    return answer.stdout.strip()


def _run_rounds(chosen: list[Target], args: argparse.Namespace, root: Path) -> None:
    for round_number in range(args.rounds):
        for target in chosen:
            result = run_one(target, args, root)
            target.rates.append(float(result["msg_per_s"]))  # type: ignore[arg-type]
            if "server_cpu_us" in result:
                target.cpu.append(float(result["server_cpu_us"]))  # type: ignore[arg-type]
            target.details.append(result)
            print(
                f"  round {round_number + 1}: {target.name:<48} {result['msg_per_s']:>9} msg/s"
                f"  p50 {result['p50_ms']} ms  failed {result['failed']}"
                f"  server CPU {result.get('server_cpu_us', '-')} µs/msg",
                flush=True,
            )


if __name__ == "__main__":
    sys.exit(main())
