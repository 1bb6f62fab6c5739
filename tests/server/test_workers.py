"""``mailroom serve --workers N``: worker processes on the same listeners (SO_REUSEPORT), with
the limits of one server (connections in all, per address, AUTH failures), one store, one
index, one web; SIGTERM drains them all; a worker that dies is replaced; kill -9 of the server
takes them all down. Real processes, real sockets (tests/live.py's ServeProcess)."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import signal
import smtplib
import socket
import urllib.request
from pathlib import Path

import pytest

from mailroom.policy.credentials import password_line
from mailroom.server.counts import SharedCounts, clear_row, row_length
from mailroom.store.ids import new_queue_id, set_process
from tests.live import (
    HOSTNAME,
    LineClient,
    ServeProcess,
    cli_list,
    maildir_files,
    queue_id_of,
    wait_for,
)

TOO_MANY = b"421 4.7.0 " + HOSTNAME.encode() + b" Error: too many connections"


def process_of(queue_id: str) -> int:
    """The process number a queue id carries (store/ids.py): 1 and up for workers."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = 0
    for char in queue_id:
        value = value * 32 + alphabet.index(char)
    return (value >> 26) & 0x3F


def children(pid: int) -> list[int]:
    """The live worker processes of a supervisor (multiprocessing's resource tracker, also its
    child, left out)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in command:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def send(address: tuple[str, int], n: int) -> str:
    with smtplib.SMTP(*address, timeout=30) as client:
        client.ehlo()
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        code, text = client.data(f"Subject: {n}\r\nMessage-ID: <{n}@test>\r\n\r\nhello {n}\r\n")
    assert code == 250, text
    return queue_id_of(text)


# -- the counters shared by the workers, without a process ------------------------------------


def test_shared_counts_add_up_every_worker_s_row() -> None:
    memory = multiprocessing.get_context("spawn").RawArray("I", 3 * row_length())
    workers = [SharedCounts(memoryview(memory), 3, index) for index in range(3)]
    assert workers[0].total(2) == 2
    assert workers[1].total(5) == 7  # each says its own, reads all
    for worker, ip in zip(workers, ["192.0.2.1", "192.0.2.1", "2001:db8::1"], strict=True):
        worker.add(ip)
    assert workers[2].for_ip("192.0.2.1") == 2
    assert workers[0].for_ip("2001:db8::1") == 1
    assert workers[0].for_ip("198.51.100.7") == 0
    workers[1].remove("192.0.2.1")
    assert workers[2].for_ip("192.0.2.1") == 1
    workers[1].remove("192.0.2.1")  # never below zero
    assert workers[0].for_ip("192.0.2.1") == 1
    clear_row(memoryview(memory), 0)  # worker 0 died: its connections went with it
    assert workers[2].for_ip("192.0.2.1") == 0
    assert workers[2].total(0) == 5


def test_queue_ids_carry_their_process() -> None:
    try:
        for number in (1, 2, 61):
            set_process(number)
            ids = [new_queue_id() for _ in range(1000)]
            assert len(set(ids)) == 1000
            assert {process_of(i) for i in ids} == {number}
        with pytest.raises(ValueError):
            set_process(64)
    finally:
        set_process(0)


# -- a real server with workers ------------------------------------------------------------------


def serve(serve_process, *flags: str, workers: int = 2) -> ServeProcess:  # type: ignore[no-untyped-def]
    process: ServeProcess = serve_process("--workers", str(workers), *flags)
    assert f"{workers} worker processes" in process.stderr
    return process


def test_workers_share_the_listener_the_store_and_the_index(serve_process) -> None:
    process = serve(serve_process, "--max-connections-per-ip", "0")
    ids = [send(process.smtp, n) for n in range(40)]
    # Forty connections from forty source ports: the kernel spread them over both workers,
    # and each worker's queue ids carry its number.
    assert {process_of(queue_id) for queue_id in ids} == {1, 2}
    assert len(set(ids)) == 40
    data = Path(process.stderr.split("data in ")[1].split(",")[0])
    assert len(maildir_files(data)) == 40
    assert sorted(row["id"] for row in cli_list(data)) == sorted(ids)
    assert process.terminate() == 0


def test_the_connection_limit_holds_across_workers(serve_process) -> None:
    process = serve(serve_process, "--max-connections", "6", "--max-connections-per-ip", "0")
    clients = []
    for _ in range(6):
        client = LineClient(process.smtp)
        assert client.reply().startswith(b"220 ")
        clients.append(client)
    # Whichever worker the seventh lands on, six are open in all.
    for _ in range(4):
        extra = LineClient(process.smtp)
        assert extra.reply().startswith(TOO_MANY), "over the limit of the whole server"
        extra.close()
    clients.pop().close()

    def admitted() -> bool:
        again = LineClient(process.smtp)
        reply = again.reply()
        again.close()
        return reply.startswith(b"220 ")

    wait_for(admitted, timeout=30)  # the worker that had it counts one less
    for client in clients:
        client.close()
    assert process.terminate() == 0


def test_the_per_address_limit_holds_across_workers(serve_process) -> None:
    process = serve(serve_process, "--max-connections-per-ip", "3")
    clients = [LineClient(process.smtp) for _ in range(3)]
    for client in clients:
        assert client.reply().startswith(b"220 ")
    for _ in range(4):
        extra = LineClient(process.smtp)
        assert extra.reply().startswith(b"421 4.7.0 " + HOSTNAME.encode() + b" Error: too many")
        extra.close()
    for client in clients:
        client.close()
    assert process.terminate() == 0


def test_auth_failures_are_counted_for_the_whole_server(serve_process, tmp_path: Path) -> None:
    passwords = tmp_path / "passwords"
    passwords.write_text(password_line("alice@example.test", "right password") + "\n")
    process = serve(
        serve_process,
        "--auth",
        str(passwords),
        "--allow-insecure-auth",
        "--max-auth-failures",
        "3",
        "--auth-failure-delay",
        "0",
        "--max-auth-failures-per-session",
        "0",
    )

    def auth(password: str) -> bytes:
        token = base64.b64encode(f"\0alice@example.test\0{password}".encode()).decode()
        client = LineClient(process.smtp)
        client.reply()
        client.command(b"EHLO client.test")
        reply = client.command(f"AUTH PLAIN {token}".encode())
        client.close()
        return reply

    # Three failures on three connections (spread over the workers by the kernel) ...
    for _ in range(3):
        assert auth("wrong").startswith(b"535 5.7.8")
    # ... and every worker refuses the address, even with the right password, once the
    # supervisor has told them (at once, in practice; the wait is for a loaded machine).
    refused = b"454 4.7.0 Error: too many failed authentications"
    wait_for(lambda: all(auth("right password").startswith(refused) for _ in range(6)), 30)
    assert process.terminate() == 0


def test_sigterm_drains_every_worker(serve_process) -> None:
    process = serve(serve_process, "--max-connections-per-ip", "0")
    # Messages in flight on many connections, each stopped mid-DATA. The kernel spreads them
    # over the workers by a hash of the addresses: 24 leave all on one worker 1 time in 8 million
    # (8, as before, 1 in 128 — seen once in CI).
    clients = []
    for n in range(24):
        client = LineClient(process.smtp, timeout=30)
        client.reply()
        client.command(b"EHLO client.test")
        client.command(b"MAIL FROM:<alice@example.test>")
        client.command(b"RCPT TO:<bob@example.test>")
        assert client.command(b"DATA").startswith(b"354")
        client.send(f"Subject: {n}\r\n\r\nhalf of it\r\n".encode())
        clients.append(client)
    idle = LineClient(process.smtp, timeout=30)
    idle.reply()
    workers = children(process.process.pid)
    assert len(workers) >= 2
    process.process.send_signal(signal.SIGTERM)
    # The idle session is told at once; each message in flight finishes, gets its 250, then
    # 421 4.3.2.
    assert idle.reply().startswith(b"421 4.3.2")
    ids = []
    for client in clients:
        reply = client.command(b"the rest\r\n.")
        assert reply.startswith(b"250 "), reply
        ids.append(queue_id_of(reply))
        assert client.reply().startswith(b"421 4.3.2")
        client.close()
    assert {process_of(queue_id) for queue_id in ids} == {1, 2}
    assert process.process.wait(timeout=60) == 0
    assert not any(alive(pid) for pid in workers)
    data = Path(process.stderr.split("data in ")[1].split(",")[0])
    assert len(maildir_files(data)) == 24


def test_a_worker_that_dies_is_replaced(serve_process) -> None:
    process = serve(serve_process, "--max-connections-per-ip", "0")
    first = sorted(children(process.process.pid))
    victim = first[0]
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in children(process.process.pid), timeout=30)
    wait_for(lambda: len(children(process.process.pid)) == len(first), timeout=60)
    assert "exited (status -9); starting another" in process.stderr
    ids = [send(process.smtp, n) for n in range(20)]
    assert len(set(ids)) == 20
    assert process.terminate() == 0


def test_a_worker_killed_mid_load_loses_nothing_that_got_250(serve_process, tmp_path) -> None:
    """kill -9 of one worker while messages flow through both: its connections die, the
    other worker (and the one started in its place) goes on; every message that got a 250 is
    stored once, and nothing is left in tmp/ (the other worker's files in flight were not
    taken for a crash's, and the dead one's were removed)."""
    import subprocess

    from mailroom.loadgen import make_body
    from tests.live import mailroom_command, split_trace

    process = serve(serve_process, "--max-connections-per-ip", "0")
    data = Path(process.stderr.split("data in ")[1].split(",")[0])
    record = tmp_path / "accepted.txt"
    host, port = process.smtp
    client = subprocess.Popen(
        mailroom_command(
            "bench-client",
            "--server",
            f"{host}:{port}",
            "--messages",
            "3000",
            "--connections",
            "20",
            "--size",
            "2048",
            "--record",
            str(record),
            "--json",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(lambda: len(maildir_files(data)) >= 500 or client.poll() is not None, 120)
    victim = children(process.process.pid)[0]
    os.kill(victim, signal.SIGKILL)
    out, _ = client.communicate(timeout=300)
    summary = json.loads(out)
    accepted = record.read_text().split()
    assert summary["messages"] == len(accepted) > 0
    assert process.terminate() == 0
    stored: dict[str, int] = {}
    for path in maildir_files(data):
        _, body = split_trace(path.read_bytes())
        message_id = next(
            line.split(b": ", 1)[1].decode()
            for line in body.split(b"\r\n")
            if line.startswith(b"Message-ID: ")
        )
        assert body == make_body(2048, message_id=message_id), path
        stored[message_id] = stored.get(message_id, 0) + 1
    assert all(count == 1 for count in stored.values())
    assert set(accepted) <= set(stored), "a message that got its 250 is missing"
    assert maildir_files(data, "tmp") == []


def test_kill_9_of_the_server_takes_every_worker_down(serve_process) -> None:
    process = serve(serve_process)
    workers = children(process.process.pid)
    assert workers
    process.process.kill()
    process.process.wait(timeout=30)
    wait_for(lambda: not any(alive(pid) for pid in workers), timeout=30)
    with pytest.raises(OSError), socket.create_connection(process.smtp, timeout=5) as sock:
        sock.recv(1)  # nobody listens any more


def test_the_web_sees_every_worker(serve_process, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        web_port = probe.getsockname()[1]
    process = serve(
        serve_process, "--web", f"127.0.0.1:{web_port}", "--max-connections-per-ip", "0"
    )
    base = f"http://127.0.0.1:{web_port}"

    def get(path: str) -> bytes:
        with urllib.request.urlopen(base + path, timeout=30) as answer:
            return bytes(answer.read())

    # A fault rule added through the web reaches every worker.
    request = urllib.request.Request(
        base + "/api/v1/faults",
        data=json.dumps({"rule": "rcpt:*@bounce.test:550 5.1.1 No such user here"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 201

    def refused_everywhere() -> bool:
        for _ in range(8):
            with smtplib.SMTP(*process.smtp, timeout=30) as client:
                client.ehlo()
                client.mail("alice@example.test")
                if client.rcpt("carol@bounce.test")[0] != 550:
                    return False
        return True

    wait_for(refused_everywhere, timeout=30)
    ids = [send(process.smtp, n) for n in range(10)]
    # /metrics adds up the workers' counters (they report each second).
    wait_for(
        lambda: b'mailroom_messages_total{result="accepted",code="250"} 10' in get("/metrics"), 30
    )
    listed = json.loads(get("/api/v1/messages"))
    assert sorted(m["ID"] for m in listed["messages"]) == sorted(ids)
    assert process.terminate() == 0
