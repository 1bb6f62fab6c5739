"""The HTTP API against a real server: mail goes in over SMTP (smtplib), comes out over HTTP."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

import pytest

from tests.live import LiveServer, maildir_files, stored, wait_for
from tests.web.http import Api
from tests.web.mail import PDF, PIXEL, plain, rich, send


def ids(listing: dict) -> list[str]:
    return [m["ID"] for m in listing["messages"]]


def index_ids(live: LiveServer) -> set[str]:
    with sqlite3.connect(live.data / "index.sqlite") as db:
        return {row[0] for row in db.execute("SELECT id FROM messages")}


# -- listing ---------------------------------------------------------------------------------


def test_empty_list(api: tuple[LiveServer, Api]) -> None:
    _, client = api
    listing = client.json("/api/v1/messages")
    assert listing == {
        "total": 0,
        "unread": 0,
        "count": 0,
        "messages_count": 0,
        "messages_unread": 0,
        "start": 0,
        "tags": [],
        "messages": [],
    }


def test_list_in_mailpits_shape(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    queue_id = send(
        live,
        rich(),
        sender="carol@example.test",
        recipients=["bob@example.test", "dave@example.test", "secret@example.test"],
    )
    listing = client.json("/api/v1/messages")
    assert (listing["total"], listing["unread"], listing["count"]) == (1, 1, 1)
    (item,) = listing["messages"]
    assert set(item) >= {
        "ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "Subject", "Created", "Size",
        "Attachments", "Snippet", "Tags",
    }  # fmt: skip
    assert item["ID"] == queue_id
    assert item["Read"] is False
    assert item["From"] == {"Name": "Carol", "Address": "carol@example.test"}
    assert item["To"] == [{"Name": "Bob", "Address": "bob@example.test"}]
    assert item["Cc"] == [{"Name": "Dave", "Address": "dave@example.test"}]
    # the envelope recipient no header names was a Bcc
    assert item["Bcc"] == [{"Name": "", "Address": "secret@example.test"}]
    assert item["Subject"] == "Quarterly report"
    assert item["Attachments"] == 1
    assert item["Snippet"] == "The report is attached. Regards, Carol"
    assert item["Size"] == len(stored(live.data, queue_id))
    assert item["MessageID"].endswith("@example.test") and "<" not in item["MessageID"]
    assert (
        item["Created"].endswith("Z")
        and abs(
            time.time()
            - time.mktime(time.strptime(item["Created"][:19], "%Y-%m-%dT%H:%M:%S"))
            + time.timezone
        )
        < 3600
    )


def test_paging_newest_first(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    sent = [send(live, plain(f"message {n}")) for n in range(5)]
    first = client.json("/api/v1/messages?start=0&limit=2")
    second = client.json("/api/v1/messages?start=2&limit=2")
    rest = client.json("/api/v1/messages?start=4&limit=2")
    assert ids(first) + ids(second) + ids(rest) == sent[::-1]
    assert (first["total"], first["count"], second["start"], rest["count"]) == (5, 2, 2, 1)
    assert client.get("/api/v1/messages?limit=x").status == 400
    assert client.get("/api/v1/messages?start=-1").status == 400


# -- one message -----------------------------------------------------------------------------


def test_message_text_html_attachments_and_envelope(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    queue_id = send(live, rich(), sender="carol@example.test", recipients=["bob@example.test"])
    message = client.json(f"/api/v1/message/{queue_id}")
    assert message["ID"] == queue_id
    assert message["Subject"] == "Quarterly report"
    assert message["Text"] == "The report is attached.\nRegards, Carol\n"
    assert '<h1 id="title">Quarterly report</h1>' in message["HTML"]
    assert message["ReturnPath"] == "carol@example.test"
    (attachment,) = message["Attachments"]
    assert attachment["FileName"] == "report.pdf"
    assert attachment["ContentType"] == "application/pdf"
    assert attachment["Size"] == len(PDF)
    assert attachment["Checksums"]["SHA256"] == hashlib.sha256(PDF).hexdigest()
    assert attachment["Checksums"]["MD5"] == hashlib.md5(PDF).hexdigest()
    (inline,) = message["Inline"]
    assert (inline["ContentID"], inline["ContentType"]) == ("chart@example.test", "image/png")
    ours = message["Mailroom"]
    assert ours["Sender"] == "carol@example.test"
    assert ours["Recipients"] == ["bob@example.test"]
    assert ours["Helo"] == "client.example.test"
    assert ours["Session"]  # the transcript of the session that brought it


def test_parts_download_decoded(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    queue_id = send(live, rich())
    message = client.json(f"/api/v1/message/{queue_id}")
    pdf = client.get(f"/api/v1/message/{queue_id}/part/{message['Attachments'][0]['PartID']}")
    assert pdf.status == 200
    assert pdf.body == PDF
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith('attachment; filename="report.pdf"')
    # whatever a part holds, it never runs as a page of the UI's origin
    assert pdf.headers["Content-Security-Policy"] == "sandbox"
    png = client.get(f"/api/v1/message/{queue_id}/part/{message['Inline'][0]['PartID']}")
    assert png.body == PIXEL
    assert client.get(f"/api/v1/message/{queue_id}/part/9.9").status == 404


def test_text_parts_are_served_in_their_charset(api: tuple[LiveServer, Api]) -> None:
    """A text part is served as its octets, so it says their charset: served as bare
    text/plain, a UTF-8 .txt opened in a tab (?inline=1, as the UI's link does) showed
    "GrÃ¼ÃŸe" in Chromium, which reads text without a charset as windows-1252."""
    live, client = api
    message = plain("Notes")
    message.add_attachment("Grüße — ok\n", subtype="plain", filename="notes.txt", charset="utf-8")
    latin = "Grüße\n".encode("latin-1")
    message.add_attachment(
        latin, "text", "plain", filename="latin.txt", params={"charset": "ISO-8859-1"}
    )
    message.add_attachment(b"odd", "text", "plain", filename="odd.txt", params={"charset": 'a b"'})
    queue_id = send(live, message)
    notes, old, odd = client.json(f"/api/v1/message/{queue_id}")["Attachments"]
    utf8 = client.get(f"/api/v1/message/{queue_id}/part/{notes['PartID']}?inline=1")
    assert utf8.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert utf8.body.decode("utf-8").splitlines() == ["Grüße — ok"]
    assert utf8.headers["Content-Disposition"].startswith("inline;")
    latin1 = client.get(f"/api/v1/message/{queue_id}/part/{old['PartID']}")
    assert (latin1.headers["Content-Type"], latin1.body) == (
        "text/plain; charset=iso-8859-1",
        latin,
    )
    # a charset that is no token is left out rather than written into the header
    assert (
        client.get(f"/api/v1/message/{queue_id}/part/{odd['PartID']}").headers["Content-Type"]
        == "text/plain"
    )


def test_raw_is_the_stored_file(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    queue_id = send(live, plain())
    raw = client.get(f"/api/v1/message/{queue_id}/raw")
    assert raw.status == 200
    assert raw.body == stored(live.data, queue_id)
    assert raw.headers["Content-Type"].startswith("text/plain")
    download = client.get(f"/api/v1/message/{queue_id}/raw?dl=1")
    assert download.headers["Content-Disposition"] == f'attachment; filename="{queue_id}.eml"'


def test_headers_every_field_in_order(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    message = plain("Headers", X_Trace="first")
    message["X-Trace"] = "second"
    message["X-Encoded"] = "=?utf-8?q?caf=C3=A9?="
    queue_id = send(live, message, recipients=["bob@example.test", "eve@example.test"])
    headers = client.json(f"/api/v1/message/{queue_id}/headers")
    assert headers["X-Trace"] == ["first", "second"]
    assert headers["X-Encoded"] == ["café"]
    assert headers["Subject"] == ["Headers"]
    assert headers["Delivered-To"] == ["bob@example.test", "eve@example.test"]
    assert list(headers) == sorted(headers)


def test_latest_prefix_and_unknown(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    send(live, plain("older"))
    newest = send(live, plain("newest"))
    assert client.json("/api/v1/message/latest")["ID"] == newest
    assert client.json(f"/api/v1/message/{newest[:10]}")["ID"] == newest
    missing = client.get("/api/v1/message/NOSUCHMESSAGE")
    assert missing.status == 404
    assert client.get("/api/v1/message/NOSUCHMESSAGE/raw").status == 404


def test_a_message_that_cannot_be_read_is_404_on_every_route(
    api: tuple[LiveServer, Api],
) -> None:
    """Every route that reads one message answers 404 for an id the index does not know and
    for a message whose file is gone from under the index (deleted by hand), with the same
    text on each (the bounces route had answered in JSON, the others in text)."""
    live, client = api
    gone = send(live, plain("deleted by hand"))
    [path] = maildir_files(live.data)
    path.unlink()
    routes = ["", "/headers", "/raw", "/part/1", "/html-check", "/bounces"]
    for message_id, text in (
        (gone, f"message {gone}: its file is gone"),
        ("NOSUCH", "no message NOSUCH"),
    ):
        for route in routes:
            answer = client.get(f"/api/v1/message/{message_id}{route}")
            assert (answer.status, answer.text) == (404, text), route
        body = {"To": ["x@example.test"], "Server": "127.0.0.1:9"}  # read before connecting
        answer = client.post(f"/api/v1/message/{message_id}/release", body)
        assert (answer.status, answer.text) == (404, text)


def test_an_html_only_message_has_its_readable_text_as_text(api: tuple[LiveServer, Api]) -> None:
    """Mailpit's Text of an HTML-only message is its HTML's text, links written after their
    words: a test that pulls a reset link out of Text finds it. Ours was empty. A message with
    a text part keeps that part as its Text."""
    live, client = api
    message = plain("Reset", From="App <app@example.test>")
    message.set_content(
        "<html><head><style>p { color: red }</style></head><body><h1>Hello</h1>"
        '<p>Click <a href="https://app.test/reset?t=1&amp;u=2">Reset your password</a>.</p>'
        "<script>var x = 1;</script><ul><li>one</li><li>two</li></ul></body></html>",
        subtype="html",
    )
    html_only = send(live, message)
    assert client.json(f"/api/v1/message/{html_only}")["Text"] == (
        "Hello\n\nClick Reset your password ( https://app.test/reset?t=1&u=2 ).\n\none\n\ntwo"
    )
    both = send(live, rich())
    assert client.json(f"/api/v1/message/{both}")["Text"] == (
        "The report is attached.\nRegards, Carol\n"
    )


def test_a_damaged_web_cache_is_made_again(web, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """web.sqlite (the web's cache of snippets and attachment counts) that SQLite cannot read
    is deleted and made again: every request had answered 500."""
    data = tmp_path / "data"  # the first server's (tests/live.py serve)
    data.mkdir(mode=0o700)
    (data / "web.sqlite").write_bytes(b"this is not a database, " * 100)
    live, client = web()
    queue_id = send(live, plain("after the damage"))
    listing = client.json("/api/v1/messages")
    assert [m["ID"] for m in listing["messages"]] == [queue_id]
    assert listing["messages"][0]["Snippet"] == "Just text."


def test_viewing_marks_read_and_put_sets_read(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    first, second, third = (send(live, plain(f"n{n}")) for n in range(3))
    assert client.json("/api/v1/messages")["unread"] == 3
    client.json(f"/api/v1/message/{first}")
    assert client.json("/api/v1/messages")["unread"] == 2
    answer = client.put("/api/v1/messages", {"IDs": [second, third], "Read": True})
    assert (answer.status, answer.text) == (200, "ok")
    assert client.json("/api/v1/messages")["unread"] == 0
    client.put("/api/v1/messages", {"IDs": [second], "Read": False})
    listing = client.json("/api/v1/messages")
    assert [m["ID"] for m in listing["messages"] if not m["Read"]] == [second]
    client.put("/api/v1/messages", {"Search": "subject:n0", "Read": False})
    assert client.json("/api/v1/messages")["unread"] == 2
    client.put("/api/v1/messages", {"Read": True})  # no IDs, no search: all
    assert client.json("/api/v1/messages")["unread"] == 0
    assert client.put("/api/v1/messages", {"Read": "yes"}).status == 400
    assert client.put("/api/v1/messages", raw=b"{not json").status == 400


def test_view_html_blocks_scripts_and_remote_content(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    queue_id = send(live, rich())
    view = client.get(f"/view/{queue_id}.html")
    assert view.status == 200
    policy = view.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "img-src data:" in policy
    assert "script-src" not in policy  # falls back to default-src 'none'
    # sandboxed even opened in a tab of its own; its links open pages of their own
    assert policy.endswith("; sandbox allow-popups allow-popups-to-escape-sandbox")
    assert view.text.startswith('<base target="_blank">')
    # remote content on request: images and styles from the network, still no scripts
    remote = client.get(f"/view/{queue_id}.html?remote=1").headers["Content-Security-Policy"]
    assert "img-src data: http: https:" in remote and "script-src" not in remote
    assert client.json(f"/api/v1/message/{queue_id}")["RemoteContent"] is True
    # the inline image travels inside the page, so nothing needs fetching
    assert 'src="data:image/png;base64,' in view.text
    assert "cid:chart@example.test" not in view.text
    text = client.get(f"/view/{queue_id}.txt")
    assert text.text == "The report is attached.\nRegards, Carol\n"
    plain_id = send(live, plain())
    assert client.get(f"/view/{plain_id}.html").status == 404
    assert client.json(f"/api/v1/message/{plain_id}")["RemoteContent"] is False
    eml = client.get(f"/api/v1/message/{plain_id}/raw?dl=1")
    assert eml.headers["Content-Type"] == "message/rfc822"
    assert eml.headers["Content-Disposition"] == f'attachment; filename="{plain_id}.eml"'


# -- search ----------------------------------------------------------------------------------


@pytest.fixture
def mailbag(api: tuple[LiveServer, Api]) -> tuple[Api, dict[str, str]]:
    live, client = api
    sent = {
        "report": send(live, rich(), sender="carol@example.test",
                       recipients=["bob@example.test", "hidden@example.test"]),
        "invoice": send(live, plain("Invoice 42", "Please pay the amount due.\n",
                                    From="Billing <billing@shop.test>")),
        "hello": send(live, plain("Hello there", "A longer body about kittens.\n" * 300,
                                  To="Zoe <zoe@example.test>"),
                      recipients=["zoe@example.test"]),
    }  # fmt: skip
    return client, sent


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["hello", "invoice", "report"]),
        ("from:carol", ["report"]),
        ("from:billing@shop.test", ["invoice"]),
        ("-from:carol", ["hello", "invoice"]),
        ("to:zoe", ["hello"]),
        ("to:hidden@example.test", ["report"]),  # the envelope: a Bcc recipient
        ("bcc:hidden", ["report"]),
        ("cc:dave", ["report"]),
        ("subject:invoice", ["invoice"]),
        ('subject:"hello there"', ["hello"]),
        ('"hello there"', ["hello"]),
        ("has:attachment", ["report"]),
        ("!has:attachment", ["hello", "invoice"]),
        ("has:inline", ["report"]),
        ("kittens", ["hello"]),  # body text
        ("amount due", ["invoice"]),  # two words, both in the body
        ("report.pdf", ["report"]),  # an attachment's name
        ("is:unread", ["hello", "invoice", "report"]),
        ("is:read", []),
        ("larger:5K", ["hello"]),
        ("smaller:5K", ["invoice", "report"]),
        ("after:2000-01-01", ["hello", "invoice", "report"]),
        ("before:2000-01-01", []),
        ("tag:anything", []),
        ("100%", []),  # LIKE wildcards are literal
        ("nothing-matches-this", []),
    ],
)
def test_search(mailbag: tuple[Api, dict[str, str]], query: str, expected: list[str]) -> None:
    client, sent = mailbag
    names = {queue_id: name for name, queue_id in sent.items()}
    from urllib.parse import quote

    listing = client.json(f"/api/v1/search?query={quote(query)}")
    assert sorted(names[i] for i in ids(listing)) == expected
    assert listing["messages_count"] == len(expected)
    assert listing["total"] == 3


def test_search_bad_input(mailbag: tuple[Api, dict[str, str]]) -> None:
    client, _ = mailbag
    bad_date = client.get("/api/v1/search?query=before:someday")
    assert bad_date.status == 400
    assert "not a date" in bad_date.json()["Error"]
    assert client.get("/api/v1/search?query=after:2024-01-01&tz=Mars/Olympus").status == 400
    assert client.get("/api/v1/search?query=larger:huge").status == 400
    # the first day of the calendar is a date (it was a 500): before every message
    first_day = client.json("/api/v1/search?query=before:0001-01-01")
    assert (first_day["messages_count"], first_day["total"]) == (0, 3)


def test_search_paging(mailbag: tuple[Api, dict[str, str]]) -> None:
    client, sent = mailbag
    page = client.json("/api/v1/search?query=example&start=1&limit=1")
    assert page["messages_count"] == 3 and page["count"] == 1
    assert ids(page) == [sent["invoice"]]


# -- deleting --------------------------------------------------------------------------------


def test_delete_by_ids_removes_file_and_index_row(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    keep = send(live, plain("keep"))
    gone = send(live, plain("gone"))
    assert len(maildir_files(live.data)) == 2
    answer = client.delete("/api/v1/messages", {"IDs": [gone]})
    assert (answer.status, answer.text) == (200, "ok")
    files = maildir_files(live.data)
    assert len(files) == 1 and f".{keep}." in files[0].name
    assert index_ids(live) == {keep}
    assert ids(client.json("/api/v1/messages")) == [keep]
    assert client.get(f"/api/v1/message/{gone}").status == 404
    assert client.json("/api/v1/info")["RuntimeStats"]["MessagesDeleted"] == 1


def test_delete_all_and_by_search(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    for n in range(3):
        send(live, plain(f"bulk {n}"))
    special = send(live, plain("special offer"))
    assert client.delete("/api/v1/search?query=subject:bulk").status == 200
    assert index_ids(live) == {special}
    assert client.delete("/api/v1/search").status == 400  # no query: not "everything"
    assert client.delete("/api/v1/messages").status == 200  # no IDs: everything
    assert maildir_files(live.data) == []
    assert index_ids(live) == set()
    assert client.json("/api/v1/messages")["total"] == 0


def test_a_body_that_is_not_json_or_nests_too_deep_is_a_400(api: tuple[LiveServer, Api]) -> None:
    """JSON arrays nested 100,000 deep made the decoder raise RecursionError: a 500; so did
    octets that are not UTF-8, and a charset Python does not know."""
    live, client = api
    send(live, plain())
    headers = {"Content-Type": "application/json"}
    for raw, words in (
        (b"[" * 100_000, b"nests too deep"),
        (b"{nope", b"is not JSON"),
        (b"\xff\xfe{", b"is not JSON"),
        (b'{"Read": "\xe9"}', b"is not JSON"),
    ):
        answer = client.request("PUT", "/api/v1/messages", raw=raw, headers=headers)
        assert answer.status == 400 and words in answer.body, answer.body[:200]
    assert client.json("/api/v1/messages")["unread"] == 1  # nothing changed
    # Past 1 MiB (its decoder holds the event loop that serves SMTP): 413, unread, whether
    # its length is declared or it comes in chunks.
    huge = b'{"IDs": [' + b'"x",' * (300 * 1024) + b'"x"]}'
    answer = client.request("PUT", "/api/v1/messages", raw=huge, headers=headers)
    assert answer.status == 413, answer.body[:200]
    chunked = {**headers, "Transfer-Encoding": "chunked"}
    answer = client.request("PUT", "/api/v1/messages", raw=iter([huge]), headers=chunked)
    assert answer.status == 413, answer.body[:200]
    bogus = {"Content-Type": "application/json; charset=x-bogus"}
    answer = client.request("PUT", "/api/v1/messages", raw=b'{"Read": true}', headers=bogus)
    assert answer.status == 200, answer.body[:200]  # JSON is UTF-8 whatever the label says
    assert client.json("/api/v1/messages")["unread"] == 0


# -- release ---------------------------------------------------------------------------------


def test_release_to_another_smtp_server(serve: object, api: tuple[LiveServer, Api]) -> None:
    live, client = api
    target: LiveServer = serve(hostname="relay.test")  # type: ignore[operator]
    queue_id = send(live, rich(), sender="carol@example.test")
    host, port = target.smtp
    answer = client.post(
        f"/api/v1/message/{queue_id}/release",
        {"To": ["someone@elsewhere.test"], "Server": f"{host}:{port}"},
        headers={"Accept": "application/json"},
    )
    assert answer.status == 200, answer.body
    result = answer.json()
    assert result["Delivered"] == ["someone@elsewhere.test"]
    assert result["Replies"]["someone@elsewhere.test"].startswith("250 2.0.0")
    released_id = result["Replies"]["someone@elsewhere.test"].rsplit(" ", 1)[1]
    raw = stored(target.data, released_id)
    original = stored(live.data, queue_id)
    # the relay's own trace on top, then the message as captured, less the delivery fields
    # mailroom added (Return-Path, Delivered-To); the capture's Received stays
    assert raw.count(b"Return-Path:") == 1 and raw.startswith(b"Return-Path: <carol@example.test>")
    assert b"Delivered-To: someone@elsewhere.test" in raw
    assert b"Delivered-To: bob@example.test" not in raw
    assert raw.endswith(original.split(b"Delivered-To: bob@example.test\r\n", 1)[1])
    # Mailpit clients send only To and read "ok"
    plain_answer = client.post(
        f"/api/v1/message/{queue_id}/release",
        {"To": ["x@elsewhere.test"], "Server": f"{host}:{port}"},
    )
    assert (plain_answer.status, plain_answer.text) == (200, "ok")


def test_release_errors(serve: object, api: tuple[LiveServer, Api]) -> None:
    live, client = api
    queue_id = send(live, plain())
    no_server = client.post(f"/api/v1/message/{queue_id}/release", {"To": ["a@b.test"]})
    assert no_server.status == 400 and "release_smtp" in no_server.json()["Error"]
    assert client.post(f"/api/v1/message/{queue_id}/release", {"To": []}).status == 400
    assert client.post(f"/api/v1/message/{queue_id}/release", {"To": ["nobody"]}).status == 400
    for sender in ("not an address", "a@b.test>\r\nRCPT TO:<c@d.test", 7):
        bad_from = {"To": ["a@b.test"], "From": sender, "Server": "127.0.0.1:9"}
        answer = client.post(f"/api/v1/message/{queue_id}/release", bad_from)
        assert answer.status == 400 and answer.json()["Error"] == "From must be an address"
    target: LiveServer = serve(faults=("rcpt:*@refused.test:550 5.1.1 No such user",))  # type: ignore[operator]
    host, port = target.smtp
    refused = client.post(
        f"/api/v1/message/{queue_id}/release",
        {"To": ["who@refused.test"], "Server": f"{host}:{port}"},
    )
    assert refused.status == 502
    assert refused.json()["Reply"] == "550 5.1.1 No such user"
    assert (
        client.post(
            "/api/v1/message/NOPE/release", {"To": ["a@b.test"], "Server": f"{host}:{port}"}
        ).status
        == 404
    )


def test_release_smtp_setting_is_the_default(web, serve) -> None:  # type: ignore[no-untyped-def]
    target: LiveServer = serve()
    host, port = target.smtp
    live, client = web(release_smtp=f"{host}:{port}")
    queue_id = send(live, plain("to be released"))
    assert client.json("/api/v1/webui")["MessageRelay"]["SMTPServer"] == f"{host}:{port}"
    answer = client.post(f"/api/v1/message/{queue_id}/release", {"To": ["r@elsewhere.test"]})
    assert (answer.status, answer.text) == (200, "ok")
    assert len(maildir_files(target.data)) == 1


# -- about the server ------------------------------------------------------------------------


def test_info_and_health(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    send(live, plain())
    info = client.json("/api/v1/info")
    assert info["Messages"] == 1 and info["Unread"] == 1
    assert info["RuntimeStats"]["SMTPAccepted"] == 1
    assert info["RuntimeStats"]["SMTPAcceptedSize"] > 0
    assert info["DatabaseSize"] > 0
    assert (client.get("/livez").status, client.get("/readyz").status) == (200, 200)


def test_openapi_describes_every_route(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    document = client.json("/api/v1/openapi.json")
    assert document["openapi"].startswith("3.")
    documented = {
        path.replace("{ID}", "{id}").replace("{PartID}", "{part}").replace("{SessionID}", "{id}")
        .replace("{RuleID}", "{id}"): set(methods)
        for path, methods in document["paths"].items()
    }  # fmt: skip
    app = live.mail_server.web.app
    served: dict[str, set[str]] = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith(("/api/", "/view/", "/metrics", "/livez", "/readyz")) and (
            route.method != "HEAD"
        ):
            served.setdefault(path, set()).add(route.method.lower())
    served.pop("/api/v1/openapi.json")
    served.pop("/api/v1/swagger.json")
    served.pop("/api/v1/docs")
    assert served == documented
    assert client.get("/api/v1/swagger.json").json() == document
    docs = client.get("/docs")
    assert docs.status == 200 and b"docs.js" in docs.body


def test_ui_pages_and_their_policy(api: tuple[LiveServer, Api]) -> None:
    _, client = api
    page = client.get("/")
    assert page.status == 200
    assert b'<script src="/static/app.js"' in page.body
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    for asset in ("app.js", "style.css", "docs.js", "favicon.svg"):
        assert client.get(f"/static/{asset}").status == 200
    # Refusals and errors too: a 404 that names the id asked for (raised by its handler, it
    # went out without them), the DNS-rebinding guard's 403, the host's own 404.
    for answer in (
        client.get("/api/v1/message/%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        client.get("/view/%3Cimg%20src%3Dx%3E.html"),
        client.get("/api/v1/messages", headers={"Host": "evil.example"}),
        client.get("/no/such/page"),
    ):
        assert answer.status in (403, 404), answer.status
        assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.body
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Referrer-Policy"] == "no-referrer"


# -- sessions, faults, explain, metrics --------------------------------------------------------


def test_sessions_and_the_transcript_of_a_message(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    queue_id = send(live, plain())
    transcript = client.json(f"/api/v1/message/{queue_id}/session")
    assert transcript["messages"] == [queue_id]
    texts = [(e["from"], e["text"]) for e in transcript["entries"]]
    assert ("client", "ehlo client.example.test") in texts
    assert ("client", "rcpt TO:<bob@example.test>") in texts
    replies = [e for e in transcript["entries"] if e["from"] == "server"]
    greeting = replies[0]
    assert greeting["text"].startswith("220 ")
    assert greeting["explanation"]["code"] == 220
    accepted = next(e for e in replies if "queued as" in e["text"])
    assert accepted["explanation"]["enhanced"]["code"] == "2.0.0"
    assert accepted["explanation"]["action"] == "done"
    wait_for(lambda: client.json(f"/api/v1/session/{transcript['id']}")["ended"])
    listing = client.json("/api/v1/sessions")
    assert listing["total"] == 1 and listing["sessions"][0]["id"] == transcript["id"]
    assert client.get("/api/v1/session/nope").status == 404


def test_refused_sessions_are_listed_and_explained(api: tuple[LiveServer, Api]) -> None:
    import smtplib

    live, client = api
    created = client.post("/api/v1/faults", {"rule": "rcpt:*@bounce.test:550 5.1.1 No such user"})
    assert created.status == 201
    with smtplib.SMTP(*live.smtp, timeout=30) as smtp:
        smtp.ehlo("client.example.test")
        smtp.mail("alice@example.test")
        code, text = smtp.rcpt("ghost@bounce.test")
        assert (code, text) == (550, b"5.1.1 No such user")
    refused = wait_for(lambda: client.json("/api/v1/sessions?refused=1")["sessions"])
    assert refused[0]["messages"] == []
    transcript = client.json(f"/api/v1/session/{refused[0]['id']}")
    entry = next(e for e in transcript["entries"] if e["text"] == "550 5.1.1 No such user")
    explanation = entry["explanation"]
    assert explanation["enhanced"]["title"] == "Bad destination mailbox address"
    assert explanation["classification"]["reason"] == "userunknown"
    notes = [e["text"] for e in transcript["entries"] if e["from"] == "info"]
    assert any("fault rule 1 fired" in note for note in notes)


def test_fault_rules_api(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    listing = client.json("/api/v1/faults")
    assert listing["rules"] == [] and "rcpt" in listing["stages"] and "STAGE" in listing["syntax"]
    rule = client.post("/api/v1/faults", {"rule": "mail:times=1:451 4.3.0 Try again later"})
    assert rule.status == 201
    body = rule.json()
    assert (body["stage"], body["action"], body["reply"], body["times"]) == (
        "mail", "reply", "451 4.3.0 Try again later", 1,
    )  # fmt: skip
    bad = client.post("/api/v1/faults", {"rule": "rcpt:550 4.1.1 class mismatch"})
    assert bad.status == 400 and "4.1.1" in bad.json()["Error"]
    assert client.post("/api/v1/faults", {"rule": ""}).status == 400
    assert client.post("/api/v1/faults", {"nothing": 1}).status == 400
    assert (
        client.post(
            "/api/v1/faults", raw=b"[1]", headers={"Content-Type": "application/json"}
        ).status
        == 400
    )
    second = client.post("/api/v1/faults", {"rule": "ehlo:close"}).json()
    assert [r["id"] for r in client.json("/api/v1/faults")["rules"]] == [body["id"], second["id"]]
    assert client.delete(f"/api/v1/faults/{second['id']}").status == 200
    assert client.delete(f"/api/v1/faults/{second['id']}").status == 404
    assert client.delete("/api/v1/faults/abc").status == 404
    assert [r["id"] for r in client.json("/api/v1/faults")["rules"]] == [body["id"]]
    assert live.mail_server.faults.rules[0].id == body["id"]
    assert client.delete("/api/v1/faults").json() == {"rules": []}
    assert live.mail_server.faults.rules == []


def test_explain(api: tuple[LiveServer, Api]) -> None:
    _, client = api
    answer = client.json("/api/v1/explain?reply=550%205.7.1%20Relaying%20denied")
    assert answer["code"] == 550
    assert answer["enhanced"]["title"] == "Delivery not authorized, message refused"
    assert answer["classification"]["reason"] == "norelaying"
    assert "5.7.1" in answer["rendered"]
    assert client.json("/api/v1/explain?reply=4.2.2")["action"] == "retry later"
    bad = client.get("/api/v1/explain?reply=hello")
    assert bad.status == 400 and bad.json()["Error"]


def parse_metrics(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics(api: tuple[LiveServer, Api]) -> None:
    import smtplib

    live, client = api
    message = plain()
    send(live, message)
    client.post("/api/v1/faults", {"rule": "rcpt:*@bounce.test:550 5.1.1 No such user"})
    client.post("/api/v1/faults", {"rule": "eod:times=1:554 5.7.1 Looks like spam"})
    with smtplib.SMTP(*live.smtp, timeout=30) as smtp:
        smtp.ehlo("client.example.test")
        smtp.mail("alice@example.test")
        assert smtp.rcpt("ghost@bounce.test")[0] == 550
        assert smtp.rcpt("bob@example.test")[0] == 250
        code, _ = smtp.data(message.as_bytes(policy=SMTP_POLICY))
        assert code == 554
    answer = client.get("/metrics")
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")

    def settled() -> dict[str, float] | None:
        metrics = parse_metrics(client.get("/metrics").text)
        return metrics if metrics["mailroom_sessions_active"] == 0 else None

    metrics = wait_for(settled)
    assert metrics['mailroom_messages_total{result="accepted",code="250"}'] == 1
    assert metrics['mailroom_messages_total{result="refused",code="554"}'] == 1
    assert metrics['mailroom_smtp_refusals_total{stage="RCPT",code="550"}'] == 1
    assert metrics['mailroom_smtp_refusals_total{stage="END_OF_DATA",code="554"}'] == 1
    assert metrics["mailroom_sessions_total"] == 2
    assert metrics["mailroom_message_bytes_total"] == len(message.as_bytes(policy=SMTP_POLICY))
    assert metrics["mailroom_store_committed_total"] == 1
    assert metrics["mailroom_store_commit_seconds_total"] > 0
    fired = (
        'mailroom_fault_rule_fired_total{id="1",rule="rcpt:*@bounce.test:550 5.1.1 No such user"}'
    )
    assert metrics[fired] == 1
    # every sample line belongs to a family with HELP and TYPE
    text = answer.text
    for name in {key.split("{")[0] for key in parse_metrics(text)}:
        assert f"# TYPE {name} " in text and f"# HELP {name} " in text


# -- access ----------------------------------------------------------------------------------


def test_basic_auth(web) -> None:  # type: ignore[no-untyped-def]
    live, _ = web(web_auth="admin:s3cret")
    base = live.mail_server.web.url
    anonymous = Api(base)
    denied = anonymous.get("/api/v1/messages")
    assert denied.status == 401
    assert denied.headers["WWW-Authenticate"].startswith('Basic realm="mailroom"')
    assert anonymous.get("/").status == 401
    assert anonymous.get("/metrics").status == 401
    assert Api(base, ("admin", "wrong")).get("/api/v1/messages").status == 401
    assert Api(base, ("other", "s3cret")).get("/api/v1/messages").status == 401
    assert anonymous.get("/api/v1/messages", headers={"Authorization": "Basic !!"}).status == 401
    assert Api(base, ("admin", "s3cret")).get("/api/v1/messages").status == 200
    # probes stay open for load balancers and orchestrators
    assert anonymous.get("/livez").status == 200 and anonymous.get("/readyz").status == 200


def test_cross_origin_changes_are_refused(api: tuple[LiveServer, Api]) -> None:
    live, client = api
    foreign = {"Origin": "http://evil.example"}
    assert client.post("/api/v1/faults", {"rule": "ehlo:close"}, headers=foreign).status == 403
    assert client.delete("/api/v1/messages", headers=foreign).status == 403
    assert live.mail_server.faults.rules == []
    host = client.base.split("//", 1)[1]
    same = {"Origin": f"http://{host}"}
    assert client.post("/api/v1/faults", {"rule": "ehlo:close"}, headers=same).status == 201
    # reading is not a change; the browser's same-origin policy keeps the answer from evil
    assert client.get("/api/v1/messages", headers=foreign).status == 200


def test_requests_other_sites_pages_embed_are_refused(api: tuple[LiveServer, Api]) -> None:
    """An <img> on another site's page (or on another port of this host: same-site) that
    names a GET doing more than reading, as Chromium sends it: opening a message marked it
    read, the link check made the server ask every link. Refused; a link followed from
    elsewhere, our own pages and clients without Fetch Metadata are answered."""
    live, client = api
    queue_id = send(live, plain())
    for site in ("cross-site", "same-site"):
        embedded = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}
        for path in (f"/api/v1/message/{queue_id}", f"/api/v1/message/{queue_id}/link-check"):
            answer = client.get(path, headers=embedded)
            assert answer.status == 403 and b"cross-site" in answer.body, (site, path)
    assert client.json("/api/v1/messages")["unread"] == 1
    followed = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert client.get("/", headers={**followed, "Sec-Fetch-Dest": "document"}).status == 200
    framed = {**followed, "Sec-Fetch-Dest": "iframe"}
    assert client.get(f"/view/{queue_id}.html", headers=framed).status == 403
    ours = {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"}
    assert client.get(f"/api/v1/message/{queue_id}", headers=ours).status == 200
    assert client.json("/api/v1/messages")["unread"] == 0


def test_binding_beyond_loopback_without_auth_warns(web, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    caplog.set_level(logging.WARNING, logger="mailroom.web")
    web(web="0.0.0.0:0")
    assert any("--web-auth" in r.getMessage() for r in caplog.records)
    caplog.clear()
    web(web="0.0.0.0:0", web_auth="a:b")
    web()
    assert not any("--web-auth" in r.getMessage() for r in caplog.records)


def test_web_off(serve) -> None:  # type: ignore[no-untyped-def]
    live = serve(web="off")
    assert live.mail_server.web is None


def test_store_none_lists_nothing(web) -> None:  # type: ignore[no-untyped-def]
    live, client = web(store="none")
    send(live, plain())
    assert client.json("/api/v1/messages")["total"] == 0
    assert client.get("/api/v1/message/latest").status == 404


def test_message_data_is_text_not_markup(api: tuple[LiveServer, Api]) -> None:
    """A subject or address with markup comes back as data; the UI puts it in as text."""
    live, client = api
    message = EmailMessage()
    message["From"] = '"<img src=x onerror=alert(1)>" <x@example.test>'
    message["To"] = "bob@example.test"
    message["Subject"] = "<script>alert(1)</script>"
    message.set_content("body")
    queue_id = send(live, message)
    item = client.json("/api/v1/messages")["messages"][0]
    assert item["Subject"] == "<script>alert(1)</script>"
    assert item["From"]["Name"] == "<img src=x onerror=alert(1)>"
    assert json.loads(client.get(f"/api/v1/message/{queue_id}").body)["ID"] == queue_id


def test_encoded_words_in_display_names_are_names_in_the_listing(
    api: tuple[LiveServer, Api],
) -> None:
    """RFC 2047 §6.2: an encoded word is decoded after the field is parsed, and what it holds
    is a name. The index decoded the whole field first, so the listing showed this From as
    support@bank.test and this To as naming victim@example.test (hiding that Bcc)."""
    import smtplib

    live, client = api
    raw = (
        b"From: =?utf-8?q?Bank_=3Csupport=40bank=2Etest=3E?= <attacker@evil.test>\r\n"
        b"To: =?utf-8?q?victim=40example=2Etest=2C?= <bob@example.test>,\r\n"
        b" =?utf-8?q?J=C3=B6rg_=22the=5C_man=22?= <jorg@example.test>\r\n"
        b"Subject: spoof\r\n\r\nbody\r\n"
    )
    recipients = ["bob@example.test", "jorg@example.test", "victim@example.test"]
    with smtplib.SMTP(*live.smtp, timeout=10) as smtp:
        smtp.sendmail("attacker@evil.test", recipients, raw)
    [item] = client.json("/api/v1/messages")["messages"]
    assert item["From"] == {"Name": "Bank <support@bank.test>", "Address": "attacker@evil.test"}
    assert item["To"] == [
        {"Name": "victim@example.test,", "Address": "bob@example.test"},
        {"Name": 'Jörg "the\\ man"', "Address": "jorg@example.test"},
    ]
    assert item["Bcc"] == [{"Name": "", "Address": "victim@example.test"}]
    # The message view reads the fields as the listing does, and a search finds the name.
    message = client.json(f"/api/v1/message/{item['ID']}")
    assert (message["From"], message["To"]) == (item["From"], item["To"])
    assert client.json("/api/v1/search?query=from:bank")["messages_count"] == 1


def test_from_is_always_an_address_object_as_in_mailpit(api: tuple[LiveServer, Api]) -> None:
    """Mailpit never gives a null From (its storage sets an empty address; a From it cannot
    read becomes the Name), and its clients read ``From.Address`` unguarded: mailroom gave
    null for a message without a From field, or with one that names no address."""
    import smtplib

    live, client = api
    with smtplib.SMTP(*live.smtp, timeout=10) as smtp:
        smtp.sendmail("app@example.test", ["bob@example.test"], b"Subject: none\r\n\r\nx\r\n")
        smtp.sendmail(
            "app@example.test",
            ["bob@example.test"],
            b"From: undisclosed-senders:;\r\nSubject: group\r\n\r\nx\r\n",
        )
    listing = client.json("/api/v1/messages")["messages"]
    by_subject = {item["Subject"]: item for item in listing}
    assert by_subject["none"]["From"] == {"Name": "", "Address": ""}
    assert by_subject["group"]["From"] == {"Name": "undisclosed-senders:;", "Address": ""}
    for item in listing:
        message = client.json(f"/api/v1/message/{item['ID']}")
        assert message["From"] == item["From"]


def test_view_latest_opens_the_newest_message_in_the_ui(api: tuple[LiveServer, Api]) -> None:
    """Mailpit's shortcut: /view/latest (``?query=`` the newest a search finds) opens the
    newest message in the UI, or the list when there is none; mailroom answered 404."""
    import http.client
    from urllib.parse import urlsplit

    live, client = api
    where = urlsplit(client.base)

    def location(path: str) -> tuple[int, str | None]:
        connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            return response.status, response.getheader("Location")
        finally:
            connection.close()

    assert location("/view/latest") == (302, "/")
    first = send(live, plain(subject="first"))
    second = send(live, plain(subject="second"))
    assert location("/view/latest") == (302, f"/#/message/{second}")
    assert location("/view/latest?query=subject:first") == (302, f"/#/message/{first}")
    assert location("/view/latest?query=subject:nothing") == (302, "/")
    assert client.get("/view/latest?query=larger:huge").status == 400


def test_dns_rebinding_is_refused_on_loopback(web) -> None:  # type: ignore[no-untyped-def]
    """A page of evil.example that points its name at 127.0.0.1 reaches the API with
    ``Host: evil.example``: refused; the names of this machine are answered."""
    live, client = web(web_allowed_hosts=("mail.internal",))
    port = client.base.rsplit(":", 1)[1]
    rebound = client.get("/api/v1/messages", headers={"Host": f"evil.example:{port}"})
    assert rebound.status == 403
    assert "--web-allowed-host evil.example" in rebound.text
    assert client.get("/", headers={"Host": "evil.example"}).status == 403
    for host in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        f"LOCALHOST.:{port}",
        f"app.localhost:{port}",
        f"[::1]:{port}",
        "192.0.2.1",
        f"{live.mail_server.config.hostname}:{port}",
        f"mail.internal:{port}",
    ):
        assert client.get("/api/v1/messages", headers={"Host": host}).status == 200, host
    # The WebSocket of live updates is guarded as well.
    upgrade = {"Host": "evil.example", "Connection": "Upgrade", "Upgrade": "websocket"}
    assert client.get("/api/events", headers=upgrade).status == 403


def test_host_guard_off_beyond_loopback_with_credentials_and_with_star(web) -> None:  # type: ignore[no-untyped-def]
    # Beyond loopback with credentials, other hosts name the server (docker compose's service
    # names): answered, as a rebinding page has no credentials to send.
    _, client = web(web="0.0.0.0:0", web_auth="a:b")
    authed = Api(client.base.replace("0.0.0.0", "127.0.0.1"), ("a", "b"))
    assert authed.get("/api/v1/messages", headers={"Host": "mailroom:8025"}).status == 200
    # Without credentials the guard holds beyond loopback too: evil.example pointed at this
    # machine's address is refused; its addresses and names, and the allowed ones, answer.
    live, client = web(web="0.0.0.0:0", web_allowed_hosts=("mailroom",))
    open_ = Api(client.base.replace("0.0.0.0", "127.0.0.1"))
    rebound = open_.get("/api/v1/messages", headers={"Host": "evil.example:8025"})
    assert rebound.status == 403
    assert "--web-allowed-host evil.example" in rebound.text
    for host in ("192.0.2.7:8025", "mailroom:8025", "localhost", live.mail_server.config.hostname):
        assert open_.get("/api/v1/messages", headers={"Host": host}).status == 200, host
    _, client = web(web_allowed_hosts=("*",))
    assert client.get("/api/v1/messages", headers={"Host": "anything.example"}).status == 200


# -- Mailpit's Chaos and Send ----------------------------------------------------------------


def test_chaos_triggers_are_fault_rules(api: tuple[LiveServer, Api]) -> None:
    import smtplib

    live, client = api
    answer = client.put("/api/v1/chaos", {"Sender": {"ErrorCode": 451, "Probability": 100}})
    assert answer.status == 200
    assert answer.json()["Sender"] == {"ErrorCode": 451, "Probability": 100}
    [rule] = client.json("/api/v1/faults")["rules"]
    assert (rule["stage"], rule["reply"], rule["origin"]) == (
        "mail",
        "451 4.0.0 Fault injected (chaos)",
        "chaos Sender",
    )
    # A rule of one's own stays when the triggers change.
    assert client.post("/api/v1/faults", {"rule": "rcpt:*@x.test:550 5.1.1 No"}).status == 201
    with smtplib.SMTP(*live.smtp, timeout=10) as smtp:
        smtp.ehlo("client.example.test")
        assert smtp.mail("a@example.test") == (451, b"4.0.0 Fault injected (chaos)")
    answer = client.put(
        "/api/v1/chaos", {"Authentication": {"ErrorCode": 535, "Probability": 12.5}}
    )
    assert answer.json() == {
        "Authentication": {"ErrorCode": 535, "Probability": 12.5},
        "Recipient": {"ErrorCode": 451, "Probability": 0},
        "Sender": {"ErrorCode": 451, "Probability": 0},  # reset, as in Mailpit
    }
    rules = client.json("/api/v1/faults")["rules"]
    assert [(r["stage"], r["probability"]) for r in rules] == [("rcpt", 1.0), ("auth", 0.125)]
    assert client.get("/api/v1/chaos").json() == answer.json()
    client.put("/api/v1/chaos", {})
    assert [r["stage"] for r in client.json("/api/v1/faults")["rules"]] == ["rcpt"]


def test_chaos_error_codes_default_as_in_mailpit(api: tuple[LiveServer, Api]) -> None:
    """Mailpit's defaults: 535 for Authentication, 451 for Sender and Recipient, for a
    trigger at 0 % and for an ErrorCode left out or 0. mailroom showed and used 451 for
    Authentication, and refused an ErrorCode of 0."""
    _, client = api
    off = {
        "Authentication": {"ErrorCode": 535, "Probability": 0},
        "Recipient": {"ErrorCode": 451, "Probability": 0},
        "Sender": {"ErrorCode": 451, "Probability": 0},
    }
    assert client.json("/api/v1/chaos") == off
    answer = client.put(
        "/api/v1/chaos",
        {"Authentication": {"Probability": 50}, "Recipient": {"ErrorCode": 0, "Probability": 10}},
    )
    assert answer.status == 200
    assert answer.json()["Authentication"] == {"ErrorCode": 535, "Probability": 50}
    assert answer.json()["Recipient"] == {"ErrorCode": 451, "Probability": 10}
    rules = {r["stage"]: r["reply"] for r in client.json("/api/v1/faults")["rules"]}
    assert rules == {
        "auth": "535 5.0.0 Fault injected (chaos)",
        "rcpt": "451 4.0.0 Fault injected (chaos)",
    }
    assert client.put("/api/v1/chaos", {}).json() == off


@pytest.mark.parametrize(
    "body, message",
    [
        ({"Sender": {"ErrorCode": 250, "Probability": 5}}, "ErrorCode must be a reply code"),
        ({"Sender": {"ErrorCode": 465, "Probability": 5}}, "not an SMTP reply code"),
        ({"Sender": {"ErrorCode": 451, "Probability": 101}}, "Probability must be a number"),
        ({"Sender": {"ErrorCode": 451, "Probability": "5"}}, "Probability must be a number"),
        ({"Sender": 5}, "must be an object"),
        ({"Relay": {"ErrorCode": 451, "Probability": 5}}, "unknown trigger 'Relay'"),
    ],
)
def test_bad_chaos_triggers_are_refused(
    api: tuple[LiveServer, Api], body: dict, message: str
) -> None:
    live, client = api
    answer = client.put("/api/v1/chaos", body)
    assert answer.status == 400 and message in answer.json()["Error"]
    assert live.mail_server.faults.rules == []


def test_send_builds_the_message_mailpit_would(api: tuple[LiveServer, Api]) -> None:
    import base64

    live, client = api
    answer = client.post(
        "/api/v1/send",
        {
            "From": {"Email": "app@example.test"},
            "Cc": [{"Email": "boss@example.test", "Name": "Büro Chef"}],
            "ReplyTo": [{"Email": "help@example.test"}],
            "Subject": "Grüße",
            "HTML": '<p>Logo: <img src="cid:logo"></p>',
            "Attachments": [
                {
                    "Content": base64.b64encode(PIXEL).decode(),
                    "Filename": "logo.png",
                    "ContentID": "logo",
                },
                {"Content": base64.b64encode(b"%PDF").decode(), "Filename": "a.pdf"},
            ],
        },
    )
    assert answer.status == 200
    queue_id = answer.json()["ID"]
    message = client.json(f"/api/v1/message/{queue_id}")
    assert message["Subject"] == "Grüße"
    assert message["Cc"] == [{"Name": "Büro Chef", "Address": "boss@example.test"}]
    assert message["ReplyTo"] == [{"Name": "", "Address": "help@example.test"}]
    assert [(a["FileName"], a["ContentType"]) for a in message["Attachments"]] == [
        ("a.pdf", "application/pdf")
    ]
    assert [(i["FileName"], i["ContentID"]) for i in message["Inline"]] == [("logo.png", "logo")]
    raw = stored(live.data, queue_id)
    assert raw.startswith(b"Return-Path: <app@example.test>\r\nDelivered-To: boss@example.test\r\n")


@pytest.mark.parametrize(
    "body, message",
    [
        ({"To": [{"Email": "b@example.test"}]}, "From: each address"),
        ({"From": {"Email": "a@example.test"}}, "at least one recipient"),
        ({"From": {"Email": "a@example.test"}, "Bcc": ["not an address"]}, "not an email address"),
        ({"From": {"Email": "a@x.test", "Name": "A\r\nBcc: evil@x.test"}, "Bcc": ["b@x.test"]},
         "no line breaks"),
        ({"From": {"Email": "a@x.test"}, "Bcc": ["b@x.test"], "Headers": {"X-A": "1\r\nX-B: 2"}},
         "one line of text"),
        ({"From": {"Email": "a@x.test"}, "Bcc": ["b@x.test"], "Headers": {"Subject": "twice"}},
         "cannot be set here"),
        ({"From": {"Email": "a@x.test"}, "Bcc": ["b@x.test"],
          "Attachments": [{"Filename": "a", "Content": "!!"}]}, "not base64"),
    ],
)  # fmt: skip
def test_send_refuses_what_cannot_make_a_message(
    api: tuple[LiveServer, Api], body: dict, message: str
) -> None:
    _, client = api
    answer = client.post("/api/v1/send", body)
    assert answer.status == 400 and message in answer.json()["Error"], answer.text
    assert client.json("/api/v1/messages")["total"] == 0


def test_the_web_over_https(web, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """--web-tls: the web listener speaks HTTPS with the SMTP listeners' certificate, so its
    passwords and messages do not cross the network in clear; plain HTTP gets no page."""
    import base64
    import socket
    import urllib.request

    from mailroom.config import ConfigError, load_config
    from tests.live import tls_context

    live, client = web(tls="self-signed", web_tls=True, web_auth="a:b")
    assert client.base.startswith("https://127.0.0.1:")
    context = tls_context(live.data)
    request = urllib.request.Request(client.base + "/api/v1/messages")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"a:b").decode())
    with urllib.request.urlopen(request, timeout=30, context=context) as answer:
        assert answer.status == 200
        assert json.loads(answer.read())["messages"] == []
    host, port = live.mail_server.web.address
    with socket.create_connection((host, port), timeout=30) as plain:
        plain.sendall(b"GET /api/v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert not plain.recv(4096).startswith(b"HTTP/")
    with pytest.raises(ConfigError, match="web_tls needs TLS"):
        load_config(None, {"web": "127.0.0.1:0", "web_tls": True, "data": tmp_path})
