"""The web UI and API of a mail server, as any local process would try it.

Before: with a mailroom.toml naming domains and no ``web`` line, 127.0.0.1:8025 served every
user's mail without credentials; any local process could read and delete it, add fault rules
that refuse mail on the live MX, and send anything anywhere as anyone through ``release``
(any ``From``, any ``Server``), around submission's AUTH and sender checks.

Now a mail server's web is off unless configured; when configured it refuses to start without
credentials (``web_auth``, ``web_auth_file``, ``MAILROOM_WEB_AUTH`` or ``web_users``); every
endpoint but the health probes asks for them; and release goes only through the server's
own routing, as the web user's own address. The catcher keeps its defaults (loopback, no
credentials: its mail is test mail).
"""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mailroom.policy.credentials import password_line
from mailroom.testing import SMTPTestServer
from tests.delivery.dnsserver import dns_that_cannot_answer
from tests.live import ServeProcess, wait_for

WEB_USER = "postmaster@example.test"
WEB_PASSWORD = "web-secret"
CONFIG = """
hostname = "mx.example.test"
data = "{data}"
domains = ["example.test"]
dns_servers = ["{dns}"]
{web}

[[listeners]]
address = "127.0.0.1:0"
role = "mx"

[users."alice@example.test"]

[aliases]
"postmaster@example.test" = "alice@example.test"

[policy]
check_null_mx = false
# No DNS here (a server that answers SERVFAIL): the sender domain check would answer 451 4.1.8.
check_sender_domain = false

[queue]
retry_schedule = ["1s"]

[routes]
"remote.test" = "127.0.0.1:{port}"
"""


def _config(tmp_path: Path, web: str = "", port: int = 1) -> Path:
    path = tmp_path / "mailroom.toml"
    path.write_text(
        CONFIG.format(dns=dns_that_cannot_answer(), data=tmp_path / "data", web=web, port=port)
    )
    return path


def _listening_ports(pid: int) -> set[int]:
    """The TCP ports a process listens on (from /proc: its socket inodes in LISTEN state)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _http(
    method: str,
    url: str,
    *,
    auth: tuple[str, str] | None = None,
    body: Any = None,
    source: str | None = None,
) -> tuple[int, Any]:
    """``source``: the loopback address the request comes from (all of 127/8 is this host)."""

    async def go() -> tuple[int, Any]:
        headers = {"Authorization": aiohttp.encode_basic_auth(*auth)} if auth else {}
        connector = aiohttp.TCPConnector(local_addr=(source, 0) if source else None)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.request(method, url, json=body, headers=headers) as response,
        ):
            answer = await response.read()
            kind = response.headers.get("Content-Type", "")
            return response.status, json.loads(answer) if "json" in kind else answer

    return asyncio.run(go())


# -- off unless configured; never without credentials --------------------------------------------


def test_a_mail_servers_web_is_off_unless_configured(tmp_path: Path) -> None:
    # One process (--workers 1): its listening sockets are all the server's (with workers, the
    # supervisor keeps the ports bound but not listening, and the workers listen).
    server = ServeProcess(
        ["--config", str(_config(tmp_path)), "--workers", "1"], tmp_path / "serve.log"
    )
    try:
        server.wait_started()
        smtp_ports = {port for _, port in server.addresses}
        assert _listening_ports(server.process.pid) == smtp_ports
        assert "web UI" not in server.stderr
    finally:
        server.terminate()


@pytest.mark.parametrize("command", ["serve", "check-config"])
def test_a_mail_servers_web_without_credentials_refuses_to_start(
    tmp_path: Path, command: str
) -> None:
    config = _config(tmp_path, web='web = "127.0.0.1:0"')
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mailroom",
            command,
            *(["--config"] if command == "serve" else []),
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "MAILROOM_WEB_AUTH"},
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "web_auth" in done.stderr and "web_users" in done.stderr


# -- with credentials ----------------------------------------------------------------------------


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[SMTPTestServer]:
    """Another server: the route for remote.test, and where a forged release would go."""
    server = SMTPTestServer(tmp_path / "elsewhere").start()
    yield server
    server.stop()


@pytest.fixture
def mail_server(tmp_path: Path, elsewhere: SMTPTestServer) -> Iterator[SMTPTestServer]:
    web = f'web = "127.0.0.1:0"\nweb_auth = "{WEB_USER}:{WEB_PASSWORD}"'
    config = _config(tmp_path, web=web, port=elsewhere.port)
    server = SMTPTestServer(tmp_path / "data", {"web": None}, config_file=config).start()
    yield server
    server.stop()


def _receive(server: SMTPTestServer) -> str:
    """A message for alice from outside; its id."""
    with smtplib.SMTP(*server.address("mx"), timeout=10) as client:
        client.sendmail("bob@remote.test", ["alice@example.test"], b"Subject: s\r\n\r\nsecret\r\n")
    [row] = server.server.store.index.list()
    return row.id


ENDPOINTS = [
    ("GET", "api/v1/messages", None),
    ("GET", "api/v1/search?query=secret", None),
    ("GET", "api/v1/message/{id}", None),
    ("GET", "api/v1/message/{id}/raw", None),
    ("GET", "view/{id}.txt", None),
    ("GET", "api/v1/sessions", None),
    ("GET", "api/v1/faults", None),
    ("POST", "api/v1/faults", {"rule": "rcpt:*:550 5.1.1 No such user"}),
    ("DELETE", "api/v1/messages", {"IDs": ["{id}"]}),
    ("POST", "api/v1/message/{id}/release", {"To": ["x@remote.test"]}),
    ("PUT", "api/v1/chaos", {"Recipient": {"ErrorCode": 451, "Probability": 100}}),
    ("GET", "metrics", None),
    ("GET", "api/events", None),
    ("GET", "", None),
    # Open only where an MTA-STS policy is published (tests/transport/test_publish.py); this
    # server publishes none, so the path is as closed as the rest.
    ("GET", ".well-known/mta-sts.txt", None),
]


def test_every_endpoint_asks_for_credentials(mail_server: SMTPTestServer) -> None:
    message_id = _receive(mail_server)
    web = mail_server.server.web
    assert web is not None
    for method, path, body in ENDPOINTS:
        url = web.url + path.format(id=message_id)
        if isinstance(body, dict) and "IDs" in body:
            body = {"IDs": [message_id]}
        assert _http(method, url, body=body)[0] == 401, (method, path)
        # A wrong password, from an address of its own: 401, then 429 once that address is
        # past max_auth_failures.
        wrong = _http(method, url, body=body, auth=(WEB_USER, "guess"), source="127.0.0.2")
        assert wrong[0] in (401, 429), (method, path)
    # Nothing happened: no rule, the message is there, nothing was sent.
    assert mail_server.server.faults.rules == []
    assert len(mail_server.server.store.index.list()) == 1
    # The probes stay open; the right credentials open the rest.
    assert _http("GET", web.url + "livez")[0] == 200
    status, listing = _http("GET", web.url + "api/v1/messages", auth=(WEB_USER, WEB_PASSWORD))
    assert status == 200 and listing["total"] == 1


def test_release_goes_through_the_queue_as_the_web_users_own_address(
    mail_server: SMTPTestServer, elsewhere: SMTPTestServer
) -> None:
    message_id = _receive(mail_server)
    web = mail_server.server.web
    assert web is not None
    url = web.url + f"api/v1/message/{message_id}/release"
    login = (WEB_USER, WEB_PASSWORD)
    # To a server the request names, as anyone: refused.
    forged = {"To": ["x@remote.test"], "From": "ceo@bank.test", "Server": elsewhere_addr(elsewhere)}
    status, answer = _http("POST", url, auth=login, body=forged)
    assert status == 400 and "Server" in answer["Error"]
    status, answer = _http("POST", url, auth=login, body={**forged, "Server": None})
    assert status == 403 and "ceo@bank.test" not in answer.get("Queued", "")
    assert elsewhere.messages == []
    # As the web user's own address, through the queue and its routes: delivered.
    status, answer = _http("POST", url, auth=login, body={"To": ["x@remote.test"]})
    assert status == 200, answer
    assert answer["From"] == WEB_USER
    [delivered] = wait_for(lambda: elsewhere.messages, timeout=30)
    assert delivered.sender == WEB_USER
    assert delivered.recipients == ["x@remote.test"]
    assert b"secret" in delivered.raw


def elsewhere_addr(server: SMTPTestServer) -> str:
    return f"{server.host}:{server.port}"


def test_a_web_user_without_an_address_cannot_release(
    tmp_path: Path, elsewhere: SMTPTestServer
) -> None:
    users = tmp_path / "web-users"
    users.write_text(password_line("admin", "admin-secret") + "\n")
    web = f'web = "127.0.0.1:0"\nweb_users = "{users}"'
    config = _config(tmp_path, web=web, port=elsewhere.port)
    server = SMTPTestServer(tmp_path / "data", {"web": None}, config_file=config).start()
    try:
        message_id = _receive(server)
        assert server.server.web is not None
        url = server.server.web.url + f"api/v1/message/{message_id}/release"
        assert _http("POST", url, body={"To": ["x@remote.test"]})[0] == 401
        status, answer = _http(
            "POST", url, auth=("admin", "admin-secret"), body={"To": ["x@remote.test"]}
        )
        assert status == 403 and "own address" in answer["Error"]
    finally:
        server.stop()


def test_delivered_outbound_messages_leave_the_list(
    tmp_path: Path, elsewhere: SMTPTestServer
) -> None:
    """A message that only went out (forwarded off-site) is listed while it is queued; once
    delivered its file is gone, and so is its line in the list (it gave 404 when opened)."""
    web = f'web = "127.0.0.1:0"\nweb_auth = "{WEB_USER}:{WEB_PASSWORD}"'
    config = _config(tmp_path, web=web, port=elsewhere.port)
    config.write_text(
        config.read_text().replace(
            "[aliases]", '[aliases]\n"dave@example.test" = "dave@remote.test"'
        )
    )
    server = SMTPTestServer(tmp_path / "data", {"web": None}, config_file=config).start()
    try:
        with smtplib.SMTP(*server.address("mx"), timeout=10) as client:
            client.sendmail("bob@example.test", ["dave@example.test"], b"Subject: out\r\n\r\nx\r\n")
        wait_for(lambda: elsewhere.messages, timeout=30)
        assert server.server.web is not None
        login = (WEB_USER, WEB_PASSWORD)

        def listed() -> list[str]:
            status, listing = _http("GET", server.server.web.url + "api/v1/messages", auth=login)
            assert status == 200
            return [m["ID"] for m in listing["messages"]]

        wait_for(lambda: listed() == [], timeout=30)
    finally:
        server.stop()
    # A restart finds nothing stale either.
    assert server.server.store.index.list() == []


# -- credentials off the command line ----------------------------------------------------------


@pytest.mark.parametrize("how", ["file", "environment"])
def test_web_credentials_kept_off_the_command_line(tmp_path: Path, how: str) -> None:
    secret = "s3cret-" + how
    env = {k: v for k, v in os.environ.items() if k != "MAILROOM_WEB_AUTH"}
    args = ["--data", str(tmp_path / "data"), "--smtp", "127.0.0.1:0", "--web", "127.0.0.1:0"]
    if how == "file":
        path = tmp_path / "web-auth"
        path.write_text(f"admin:{secret}\n")
        path.chmod(0o600)
        args += ["--web-auth-file", str(path)]
    else:
        env["MAILROOM_WEB_AUTH"] = f"admin:{secret}"
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "mailroom", "serve", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env=env,
    )
    try:
        url = wait_for(lambda: _web_url(log.read_text()), timeout=30)
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert secret.encode() not in cmdline
        assert _http("GET", url + "api/v1/messages")[0] == 401
        assert _http("GET", url + "api/v1/messages", auth=("admin", "nope"))[0] == 401
        assert _http("GET", url + "api/v1/messages", auth=("admin", secret))[0] == 200
    finally:
        process.terminate()
        process.wait(timeout=60)


def _web_url(stderr: str) -> str | None:
    marker = "mailroom: web UI and API on "
    for line in stderr.splitlines():
        if line.startswith(marker):
            return line[len(marker) :].strip()
    return None


def test_web_users_failures_are_limited_per_address(serve, tmp_path: Path) -> None:
    """Against a file of users each wrong password costs an argon2 check: past
    max_auth_failures from one address, 429 without a check; a browser already logged in
    goes on."""
    users = tmp_path / "web-users"
    users.write_text(password_line("admin", "right") + "\n")
    live = serve(web="127.0.0.1:0", web_users=str(users), max_auth_failures=3)
    url = live.mail_server.web.url + "api/v1/messages"
    assert _http("GET", url, auth=("admin", "right"))[0] == 200  # remembered from now on
    assert [_http("GET", url, auth=("admin", f"guess{n}"))[0] for n in range(3)] == [401] * 3
    assert _http("GET", url, auth=("admin", "guess4"))[0] == 429
    assert _http("GET", url, auth=("nobody", "x"))[0] == 429
    assert _http("GET", url, auth=("admin", "right"))[0] == 200


def test_credentials_known_good_at_one_address_do_not_pass_the_limit_of_another(
    serve, tmp_path: Path
) -> None:
    """The operator logged in from 127.0.0.1; a guesser at 127.0.0.2 past the limit gets 429
    for the right password as for any other, so nothing tells it which guess was right."""
    users = tmp_path / "web-users"
    users.write_text(password_line("admin", "right") + "\n")
    live = serve(web="127.0.0.1:0", web_users=str(users), max_auth_failures=3)
    url = live.mail_server.web.url + "api/v1/messages"
    assert _http("GET", url, auth=("admin", "right"))[0] == 200  # remembered for 127.0.0.1
    guesses = [_http("GET", url, auth=("admin", f"guess{n}"), source="127.0.0.2") for n in range(3)]
    assert [status for status, _ in guesses] == [401] * 3
    assert _http("GET", url, auth=("admin", "right"), source="127.0.0.2")[0] == 429
    assert _http("GET", url, auth=("admin", "right"))[0] == 200  # the operator goes on


def test_web_auth_failures_are_limited_per_address(serve) -> None:
    """The one USER:PASSWORD of web_auth is guessed no faster than a file of users: past
    max_auth_failures from one address, 429 whatever the password."""
    live = serve(web="127.0.0.1:0", web_auth="admin:right", max_auth_failures=3)
    url = live.mail_server.web.url + "api/v1/messages"
    assert _http("GET", url, auth=("admin", "right"))[0] == 200  # remembered for 127.0.0.1
    guesses = [_http("GET", url, auth=("admin", f"guess{n}"), source="127.0.0.2") for n in range(3)]
    assert [status for status, _ in guesses] == [401] * 3
    assert _http("GET", url, auth=("admin", "guess4"), source="127.0.0.2")[0] == 429
    assert _http("GET", url, auth=("admin", "right"), source="127.0.0.2")[0] == 429
    assert _http("GET", url, auth=("admin", "right"))[0] == 200  # the operator goes on


def test_the_catchers_web_keeps_its_defaults(serve) -> None:
    live = serve(web="127.0.0.1:0")
    assert live.config.web_auth is None
    assert _http("GET", live.mail_server.web.url + "api/v1/messages")[0] == 200
