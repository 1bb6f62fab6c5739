"""Session transcripts: every command and reply of a session (never the message body; AUTH
secrets redacted by the protocol), kept in memory for the web UI and linked to the messages
the session produced. Refused sessions, which produced no message, are kept too. With an
archive (:mod:`.transcript_archive`), finished ones are also written to disk and outlive a
restart."""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from typing import Any, Protocol

from mailroom.activity.hub import Hub
from mailroom.activity.transcript_archive import SessionFilter, expand_entries
from mailroom.protocol.server import ServerConnection, printable_line

__all__ = ["Transcript", "TranscriptLog"]

MAX_ENTRIES = 2000  # per session; a client that talks forever is cut short in the record


class Transcript:
    __slots__ = (
        "_auth_user",
        "_helo",
        "client_ip",
        "client_port",
        "conn",
        "ended",
        "entries",
        "id",
        "listener",
        "messages",
        "started",
        "tls",
        "truncated",
    )

    def __init__(self, session_id: str, client_ip: str, client_port: int, listener: str) -> None:
        self.id = session_id
        self.client_ip = client_ip
        self.client_port = client_port
        self.listener = listener
        self.started = time.time()
        self.ended: float | None = None
        # (time, "C" client / "S" server / "I" information, text or reply bytes)
        self.entries: list[tuple[float, str, str | bytes]] = []
        self.messages: list[str] = []
        self.tls = False
        # While the session lives, the EHLO name and the AUTH user are read from it when asked
        # (not copied at every reply); end() keeps what they were.
        self.conn: ServerConnection | None = None
        self._auth_user: str | None = None
        self._helo: str | None = None
        self.truncated = False

    @property
    def helo(self) -> str | None:
        return self.conn.hello_domain if self.conn is not None else self._helo

    @property
    def auth_user(self) -> str | None:
        return self.conn.authenticated if self.conn is not None else self._auth_user

    def freeze(self) -> None:
        """The session ended: keep its EHLO name and AUTH user, let it go."""
        if self.conn is not None:
            self._helo, self._auth_user = self.conn.hello_domain, self.conn.authenticated
            self.conn = None

    def _add(self, kind: str, value: str | bytes) -> None:
        if len(self.entries) < MAX_ENTRIES:
            self.entries.append((time.time(), kind, value))
        else:
            self.truncated = True

    def command(self, line: bytes | str) -> None:
        """A command line: raw bytes (made printable when shown) or text."""
        entries = self.entries
        if len(entries) < MAX_ENTRIES:
            entries.append((time.time(), "C", line))
        else:
            self.truncated = True

    def reply(self, wire: bytes) -> None:
        entries = self.entries
        if len(entries) < MAX_ENTRIES:
            entries.append((time.time(), "S", wire))
        else:
            self.truncated = True

    def note(self, text: str) -> None:
        self._add("I", text)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client": self.client_ip,
            "port": self.client_port,
            "listener": self.listener,
            "started": self.started,
            "ended": self.ended,
            "messages": list(self.messages),
            "tls": self.tls,
            "auth_user": self.auth_user,
            "helo": self.helo,
            "commands": sum(1 for _, kind, _ in self.entries if kind == "C"),
            "last_reply": _last_reply(self.entries),
        }

    def to_dict(self) -> dict[str, Any]:
        data = self.compact()
        data["entries"] = expand_entries(data["entries"])
        return data

    def compact(self) -> dict[str, Any]:
        """:meth:`to_dict` with each entry a list ``[time, "C"|"S"|"I", text]``: what the
        archive keeps (a third of the work to make and to store); :func:`expand_entries`
        makes the dicts when it is read."""
        data = self.summary()
        data["truncated"] = self.truncated
        data["entries"] = [[at, kind, _text(kind, value)] for at, kind, value in self.entries]
        return data


def _text(kind: str, value: str | bytes) -> str:
    if isinstance(value, str):
        return value
    if kind == "C":
        return printable_line(value)
    return value.decode("utf-8", "replace").rstrip("\r\n")


def _last_reply(entries: list[tuple[float, str, str | bytes]]) -> str | None:
    for _, kind, value in reversed(entries):
        if kind == "S" and isinstance(value, bytes):
            last = value.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
            return last.decode("utf-8", "replace")
    return None


class Archive(Protocol):
    """Where finished transcripts are kept past the in-memory few: ``transcripts.sqlite``
    (:class:`~.transcript_archive.TranscriptArchive`) or a fleet's PostgreSQL database
    (:class:`mailroom.postgres.transcripts.PgTranscriptArchive`). ``save`` never blocks."""

    dropped: int

    def save(self, transcript: Transcript) -> None: ...

    def flush(self, timeout: float = 30.0) -> bool: ...  # (a value: mypyc compiles this module)

    def close(self) -> None: ...

    def get(self, session_id: str) -> dict[str, Any] | None: ...

    def for_message(self, queue_id: str) -> dict[str, Any] | None: ...

    def list(self, where: SessionFilter, limit: int) -> tuple[int, list[dict[str, Any]]]: ...


class TranscriptLog:
    """The last ``keep`` sessions, live ones included."""

    def __init__(self, keep: int, hub: Hub) -> None:
        self.keep = keep
        self.hub = hub
        self._sessions: OrderedDict[str, Transcript] = OrderedDict()
        self._by_message: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._prefix = f"{int(time.time() * 1000):x}"  # unique across restarts
        # finished transcripts, on disk (TranscriptArchive) or in a fleet's database
        self.archive: Archive | None = None

    @property
    def enabled(self) -> bool:
        return self.keep > 0

    def begin(self, client_ip: str, client_port: int, listener: str) -> Transcript:
        transcript = Transcript(
            f"{self._prefix}-{next(self._ids)}", client_ip, client_port, listener
        )
        self._sessions[transcript.id] = transcript
        while len(self._sessions) > self.keep:
            _, old = self._sessions.popitem(last=False)
            for queue_id in old.messages:
                self._by_message.pop(queue_id, None)
        return transcript

    def message(self, transcript: Transcript, queue_id: str) -> None:
        transcript.messages.append(queue_id)
        self._by_message[queue_id] = transcript.id

    def end(self, transcript: Transcript) -> None:
        transcript.freeze()
        transcript.ended = time.time()
        if self.archive is not None:
            self.archive.save(transcript)
        if self.hub.active:
            self.hub.publish("session", transcript.summary())

    def get(self, session_id: str) -> Transcript | None:
        return self._sessions.get(session_id)

    def for_message(self, queue_id: str) -> Transcript | None:
        session_id = self._by_message.get(queue_id)
        return self._sessions.get(session_id) if session_id else None

    def list(
        self, *, limit: int = 50, offset: int = 0, refused_only: bool = False
    ) -> list[Transcript]:
        items = list(reversed(self._sessions.values()))
        if refused_only:
            items = [t for t in items if not t.messages]
        return items[offset : offset + limit]

    def __len__(self) -> int:
        return len(self._sessions)
