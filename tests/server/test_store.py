"""What the running server stores, and when it says so: the 250 names the stored file's queue
id and comes only once the file is in new/; --store none keeps nothing."""

from __future__ import annotations

import asyncio
import os
import smtplib
import subprocess
from pathlib import Path

import pytest

from mailroom.loadgen import run_load
from mailroom.store.commit import CommitJob
from mailroom.store.envelope import Delivery, Envelope
from mailroom.store.ids import new_queue_id
from mailroom.store.maildir import MaildirStore, discard_tmp_of
from tests.live import (
    QUEUED_REPLY,
    LineClient,
    LiveServer,
    assert_stored,
    cli_list,
    maildir_files,
    queue_id_of,
    stored,
    tls_context,
)


def test_accepted_reply_names_the_stored_file(serve) -> None:
    live: LiveServer = serve()
    client = LineClient(live.smtp)
    client.reply()
    client.command(b"EHLO client.example.test")
    client.command(b"MAIL FROM:<alice@example.test>")
    client.command(b"RCPT TO:<bob@example.test>")
    client.command(b"DATA")
    reply = client.command(b"Subject: id\r\n\r\nhello\r\n.")
    match = QUEUED_REPLY.fullmatch(reply.decode())
    assert match, reply
    queue_id = match["id"]
    # At the moment of the 250 the file is in new/, under its queue id, and tmp/ is empty.
    (path,) = maildir_files(live.data)
    assert path.name.split(".")[1] == queue_id
    assert path.name.endswith(f",S={path.stat().st_size}")
    assert not maildir_files(live.data, "tmp")
    raw = path.read_bytes()
    assert f" id {queue_id}".encode() in raw
    client.command(b"QUIT")
    client.close()


def test_many_messages_on_one_connection_are_each_durable_at_their_250(serve) -> None:
    live: LiveServer = serve()
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        for n in range(20):
            client.mail("alice@example.test")
            client.rcpt("bob@example.test")
            code, text = client.data(f"Subject: {n}\r\n\r\nbody {n}\r\n".encode())
            assert code == 250
            queue_id = queue_id_of(text)
            assert len(maildir_files(live.data)) == n + 1
            assert not maildir_files(live.data, "tmp")
            assert stored(live.data, queue_id).endswith(f"body {n}\r\n".encode())


def test_large_message_streams_through_tmp(serve) -> None:
    live: LiveServer = serve()
    line = b"0123456789" * 9 + b"\r\n"
    body = b"Subject: large\r\n\r\n" + line * 40_000  # ~3.6 MB: spilled to tmp/ while read
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        client.mail("alice@example.test", [f"SIZE={len(body)}"])
        client.rcpt("bob@example.test")
        code, text = client.data(body)
    assert code == 250
    assert_stored(
        live.data,
        queue_id_of(text),
        body,
        sender="alice@example.test",
        recipients=["bob@example.test"],
    )


def test_chunking(serve) -> None:
    live: LiveServer = serve()
    first, last = b"Subject: bdat\r\n\r\nfirst chunk, ", b"last chunk.\r\n"
    client = LineClient(live.smtp)
    client.reply()
    client.command(b"EHLO client.example.test")
    client.command(b"MAIL FROM:<alice@example.test> BODY=BINARYMIME")
    client.command(b"RCPT TO:<bob@example.test>")
    client.send(b"BDAT %d\r\n" % len(first) + first)
    assert client.reply() == b"250 2.0.0 Ok: %d octets received\r\n" % len(first)
    client.send(b"BDAT %d LAST\r\n" % len(last) + last)
    queue_id = queue_id_of(client.reply())
    client.close()
    assert_stored(
        live.data,
        queue_id,
        first + last,
        sender="alice@example.test",
        recipients=["bob@example.test"],
    )


def test_store_none_accepts_and_keeps_nothing(serve) -> None:
    live: LiveServer = serve(store="none")
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        ids = []
        for n in range(3):
            client.mail("alice@example.test")
            client.rcpt("bob@example.test")
            code, text = client.data(f"Subject: {n}\r\n\r\ngone\r\n".encode())
            assert code == 250
            ids.append(queue_id_of(text))
    assert len(set(ids)) == 3
    live.stop()
    kept = [p.relative_to(live.data) for p in live.data.rglob("*") if p.is_file()]
    assert not (live.data / "mail").exists() or not any(
        p for p in (live.data / "mail").rglob("*") if p.is_file()
    ), kept
    assert not (live.data / "index.sqlite").exists(), kept


def test_file_and_directory_are_synced_before_the_250(serve, monkeypatch) -> None:
    import os

    live: LiveServer = serve()
    store = live.mail_server.store
    synced: list[str] = []
    real_sync = store._sync.sync

    def sync(fds: list[int], directories: set[str]) -> None:
        synced.extend(os.readlink(f"/proc/self/fd/{fd}") for fd in fds)
        real_sync(fds, directories)
        synced.extend(f"directory {path}" for path in sorted(directories))

    monkeypatch.setattr(store._sync, "sync", sync)
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        client.mail("alice@example.test")
        client.rcpt("bob@example.test")
        code, text = client.data(b"Subject: durable\r\n\r\nhi\r\n")
        # What was synced by the moment the 250 arrived:
        seen = list(synced)
    assert code == 250
    queue_id = queue_id_of(text)
    new = live.data / "mail" / "catchall" / "new"
    # The file while it was in tmp/ (its data: unnamed there, O_TMPFILE, where the filesystem
    # has them), then the directory it was linked or renamed into.
    assert len(seen) == 2, seen
    assert f"/catchall/tmp/{queue_id}." in seen[0] or "/catchall/tmp/#" in seen[0], seen
    assert seen[1] == f"directory {new}"
    assert queue_id in maildir_files(live.data)[0].name


def test_restart_keeps_messages_index_and_certificate(serve) -> None:
    first: LiveServer = serve(tls="self-signed")
    cert = (first.data / "tls" / "self-signed.pem").read_bytes()
    with smtplib.SMTP(*first.smtp) as client:
        client.sendmail("a@example.test", ["b@example.test"], b"Subject: before\r\n\r\n")
    first.stop()
    # A crash left a half-written file in tmp/: it never got a 250, so it is not a message.
    stray = first.data / "mail" / "catchall" / "tmp" / "1234.crashed"
    stray.write_bytes(b"Subject: half")
    second: LiveServer = serve(tls="self-signed", data=first.data)
    assert not stray.exists()
    assert (second.data / "tls" / "self-signed.pem").read_bytes() == cert
    with smtplib.SMTP(*second.smtp) as client:
        client.starttls(context=tls_context(second.data))
        client.sendmail("a@example.test", ["b@example.test"], b"Subject: after\r\n\r\n")
    rows = cli_list(second.data)
    assert [row["subject"] for row in rows] == ["after", "before"]
    assert len(maildir_files(second.data)) == 2


def test_no_size_limit(serve) -> None:
    live: LiveServer = serve(max_message_size="0")
    body = b"Subject: big\r\n\r\n" + (b"y" * 98 + b"\r\n") * 60_000  # 6 MB
    with smtplib.SMTP(*live.smtp) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == ""  # SIZE without a number: no limit
        assert client.sendmail("a@example.test", ["b@example.test"], body) == {}
    (path,) = maildir_files(live.data)
    assert path.read_bytes().endswith(body)


def test_the_index_decodes_a_header_s_encoded_words_up_to_a_bound() -> None:
    """The index's summary decodes RFC 2047 words (the standard library joins adjacent ones
    one by one, time with the square of their number); past 16 KiB they are kept as written."""
    from mailroom.store.headers import summarize_headers

    plain = summarize_headers(b"Subject: =?utf-8?q?caf=C3=A9?= au lait\r\n\r\nbody")
    assert plain.subject == "café au lait"
    words = b"=?utf-8?q?a?= " * 5000  # 70,000 characters
    subject = summarize_headers(b"Subject: " + words + b"\r\n\r\nbody").subject
    assert subject.startswith("a" * 1000)
    assert "=?utf-8?q?a?= =?utf-8?q?a?=" in subject


def test_what_a_dead_worker_left_in_tmp_is_all_removed(tmp_path: Path) -> None:
    """A worker killed between writing a message's files and moving them into place (step 1
    of the group commit, store/commit.py) leaves them in tmp/; its supervisor removes them by
    the worker's process id (discard_tmp_of). The queue entry's JSON beside a queued message
    carried no process id (queue/tmp/ID.json) and stayed until the next start of the server."""

    async def write_only() -> None:
        store = MaildirStore(
            tmp_path / "data", hostname="mx.test", loop=asyncio.get_running_loop(), sole=False
        )
        store.start()
        try:
            envelope = Envelope(
                new_queue_id(),
                "alice@example.test",
                ["bob@example.test", "carol@remote.test"],
                deliveries=[
                    Delivery("mailbox", "bob", ("bob@example.test",)),
                    Delivery("queue", "", ("carol@remote.test",)),
                ],
            )
            writer = store.begin(envelope)
            writer.write(b"Subject: half way\r\n\r\nhi\r\n")
            store.write(CommitJob(writer, asyncio.get_running_loop().create_future(), "x"))
        finally:
            store.close()

    asyncio.run(write_only())
    data = tmp_path / "data"
    left = [p for p in (data / "queue" / "tmp").iterdir()]
    assert len(left) == 2  # the message and its entry, unsynced, unplaced: as a kill leaves them
    assert discard_tmp_of(data, os.getpid()) == 2
    assert list((data / "queue" / "tmp").iterdir()) == []
    assert list((data / "queue" / "active").iterdir()) == []


def test_a_mailbox_on_another_filesystem_is_fsynced_not_syncfsed(serve, tmp_path: Path) -> None:
    """syncfs(2) flushes one filesystem, the data directory's. With mail/ on another (a mount
    point, or a symbolic link to another disk) the group commit still made its batches
    "durable" with one syncfs of the data directory's filesystem, and answered 250 for files
    it had not flushed. Now a mailbox or queue directory found on another filesystem turns the
    store to one fsync per file and directory, before any of its files is synced."""
    mail = tmp_path / "data" / "mail"
    mail.mkdir(parents=True, mode=0o700)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mail)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        live: LiveServer = serve(max_connections_per_ip=0)
        sync = live.mail_server.store._sync
        if sync._syncfs is None:
            pytest.skip("no syncfs here (Linux before 5.8)")
        calls: list[int] = []
        real = sync._syncfs

        def syncfs(fd: int) -> int:
            calls.append(fd)
            return real(fd)  # type: ignore[no-any-return]

        sync._syncfs = syncfs
        host, port = live.smtp
        result = asyncio.run(run_load(host, port, messages=200, connections=20, size=2048))
        assert (result.messages, result.failed) == (200, 0)
        assert calls == []
        assert sync.mode == "fsync"
        assert len(maildir_files(live.data)) == 200
        live.stop()
    finally:
        subprocess.run(["umount", "-l", str(mail)], check=False)
