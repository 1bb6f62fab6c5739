"""The command line: ``mailroom serve``, ``explain``, ``replies``, …

Each subcommand is a small function that parses nothing itself; argparse does that, and the
work is done by the part the command is about.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailroom import __version__

if TYPE_CHECKING:
    from mailroom.delivery.commands import FleetQueue


def _cmd_explain(args: argparse.Namespace) -> int:
    from mailroom.codes import ExplainError, explain

    text = sys.stdin.read() if args.reply == ["-"] else " ".join(args.reply)
    try:
        result = explain(text)
    except ExplainError as exc:
        print(f"mailroom explain: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(result.render())
    return 0


def _cmd_replies(args: argparse.Namespace) -> int:
    from mailroom.codes.catalogue import CATALOGUE
    from mailroom.codes.docs import replies_markdown

    if args.registry:
        from mailroom.codes.coverage import registry_markdown, registry_text

        sys.stdout.write(registry_markdown() if args.markdown else registry_text())
        return 0
    if args.markdown:
        sys.stdout.write(replies_markdown())
        return 0
    for name, template in CATALOGUE.items():
        print(f"{template.label:<11} {name:<34} {template.text}")
    return 0


def _setup_logging(level: str) -> None:
    import logging

    from mailroom.activity.maillog import LOG_FORMAT

    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT)


def _serve_overrides(args: argparse.Namespace) -> dict[str, object]:
    names = (
        "hostname",
        "data",
        "smtp",
        "smtps",
        "max_message_size",
        "max_header_section",
        "max_recipients",
        "max_connections",
        "max_connections_per_ip",
        "max_bad_commands",
        "max_junk_commands",
        "max_refused_recipients",
        "timeout",
        "tls_handshake_timeout",
        "shutdown_grace",
        "bare_line_endings",
        "long_lines",
        "store",
        "node",
        "queue_lease",
        "tls",
        "tls_cert",
        "tls_key",
        "tls_min_version",
        "tls_ciphers",
        "tls_reload_interval",
        "auth",
        "log_level",
        "workers",
        "web",
        "web_auth",
        "web_auth_file",
        "web_users",
        "release_smtp",
        "max_auth_failures",
        "auth_failure_window",
        "max_auth_failures_per_session",
        "auth_failure_delay",
        "transcripts",
        "transcripts_stored",
        "transcripts_max_age",
        "spamassassin",
        "rspamd",
        "link_check_timeout",
        "link_check_max_links",
    )
    overrides = {name: getattr(args, name) for name in names}
    if args.fault:
        overrides["faults"] = tuple(args.fault)
    if args.web_allowed_host:
        overrides["web_allowed_hosts"] = tuple(args.web_allowed_host)
    for flag in (
        "require_tls",
        "web_tls",
        "require_auth",
        "allow_insecure_auth",
        "allow_internal_http_requests",
    ):
        if getattr(args, flag):
            overrides[flag] = True
    return overrides


def _raise_open_files_limit(connections: int) -> None:
    # Each connection is a file descriptor; the usual soft limit (1024) is below the default
    # max_connections. Raise it as far as the hard limit allows, as Postfix and nginx do.
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from mailroom.app import Mailroom
    from mailroom.config import ConfigError, load_config
    from mailroom.policy import CredentialError
    from mailroom.postgres.migrate import SchemaError
    from mailroom.supervisor import Supervisor

    try:
        config = load_config(args.config, _serve_overrides(args))
    except ConfigError as exc:
        print(f"mailroom serve: {exc}", file=sys.stderr)
        return 2
    _setup_logging(config.log_level)
    _raise_open_files_limit(config.max_connections + config.web_max_connections)

    async def run() -> None:
        workers = config.worker_count
        server: Mailroom | Supervisor
        if workers > 1:
            server = Supervisor(config, workers=workers, use_uvloop=not args.no_uvloop)
        else:
            server = Mailroom(config)
        await server.start()
        print(f"mailroom {__version__} ({core_build()})", file=sys.stderr, flush=True)
        print(
            f"mailroom: SMTP on {_listening(server, config)}, data in {config.data}"
            + (f", {workers} worker processes" if workers > 1 else ""),
            file=sys.stderr,
            flush=True,
        )
        if server.web is not None:
            print(f"mailroom: web UI and API on {server.web.url}", file=sys.stderr, flush=True)
        rules = server.faults.rules
        if rules:
            print(
                f"mailroom: {len(rules)} fault rule{'s' if len(rules) > 1 else ''} active "
                "(sessions will fail on purpose): " + "; ".join(rule.describe() for rule in rules),
                file=sys.stderr,
                flush=True,
            )
        await server.serve_until_signalled()

    if not args.no_uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
    try:
        asyncio.run(run())
    except (CredentialError, SchemaError) as exc:
        print(f"mailroom serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mailroom serve: {exc}", file=sys.stderr)
        return 1
    return 0


def _listening(server: Any, config: Any) -> str:
    """Where SMTP listens, for serve's start-up line: each socket, implicit TLS marked."""
    smtp = getattr(server, "smtp", None)
    if smtp is None:  # the supervisor of workers: each configured address with its port
        return ", ".join(
            f"{listener.host}:{listener.port}"
            + (" (implicit TLS)" if listener.implicit_tls else "")
            for listener in server.listeners
        )
    return ", ".join(
        f"{sock.getsockname()[0]}:{sock.getsockname()[1]}"
        + (" (implicit TLS)" if listener.implicit_tls else "")
        # one server per listener, in order; a name may stand for several sockets
        for listener, listening in zip(config.all_listeners, smtp.servers, strict=True)
        for sock in listening.sockets
    )


def _data_dir_of(path: Path) -> Path | FleetQueue:
    """Where a mailroom.toml keeps its queue (for ``mailroom queue --config``): its data
    directory, or a fleet's PostgreSQL database."""
    from mailroom.config import load_config

    config = load_config(path)
    if config.on_postgres:
        from mailroom.postgres.queue_view import PgQueueView  # psycopg: only for a fleet

        return PgQueueView(config.store)
    return config.data


def _find_data_dir(config_file: Path | None) -> tuple[Path, str]:
    """The data directory as ``mailroom serve`` finds it when ``--data`` is not given, and
    what said so (for ``list``, ``show`` and ``reindex``): ``MAILROOM_DATA``, the file given
    with ``--config``, or the default. Raises ConfigError for a file it cannot use."""
    import os

    from mailroom.config import DATA_VARIABLE, load_config

    config = load_config(config_file)
    if os.environ.get(DATA_VARIABLE):
        return config.data, f"${DATA_VARIABLE}"
    if config_file is not None and config.data != Path("mailroom-data"):
        return config.data, str(config_file)
    return config.data, "the default; give --data DIR, MAILROOM_DATA or --config FILE"


def _read_config(path: Path):  # type: ignore[no-untyped-def]
    from mailroom.config import load_config

    return load_config(path)


def _cmd_check_config(args: argparse.Namespace) -> int:
    from mailroom.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"mailroom check-config: {exc}", file=sys.stderr)
        return 2
    if config.mail is None:
        print(f"{args.config}: ok: a mail catcher (no domains)")
        return 0
    mail = config.mail
    listeners = ", ".join(str(listener) for listener in config.all_listeners)
    local = f"LMTP to {mail.lmtp.host}:{mail.lmtp.port}" if mail.lmtp is not None else "Maildirs"
    print(
        f"{args.config}: ok: mail server for {', '.join(sorted(mail.directory.domains))}; "
        f"{len(mail.directory.users)} users, {len(mail.directory.aliases)} aliases, "
        f"{len(mail.queue.routes)} routes; local delivery to {local}; listeners {listeners}"
    )
    auth = mail.authentication
    print(
        f"  authentication on mx listeners: spf {auth.spf}, dkim {auth.dkim}, dmarc {auth.dmarc}, "
        f"iprev {auth.iprev}, arc {auth.arc}; signing {'on' if auth.sign else 'off'}, "
        f"SRS {'on' if auth.srs else 'off'}, ARC sealing {'on' if auth.arc_seal else 'off'}"
    )
    from mailroom.authentication.keys import KeyFileError, load_keys

    try:
        keys = load_keys(config.data)
    except KeyFileError as exc:
        print(f"mailroom check-config: DKIM key: {exc}", file=sys.stderr)
        return 2
    for domain in sorted(mail.directory.domains):
        found = keys.get(domain, ())
        if found:
            print(f"  DKIM {domain}: " + ", ".join(f"{k.selector} ({k.algorithm})" for k in found))
        elif auth.sign:
            print(
                f"  DKIM {domain}: no key (mailroom dkim keygen {domain}); its mail goes unsigned"
            )

    from mailroom.config_warnings import config_warnings

    for warning in config_warnings(mail):
        print(f"{args.config}: warning: {warning}")
    return 0


def _cmd_passwd(args: argparse.Namespace) -> int:
    import getpass

    from mailroom.policy.credentials import CredentialError, password_line

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        try:
            password = getpass.getpass(f"password for {args.user}: ")
            again = getpass.getpass("again: ")
        except (EOFError, KeyboardInterrupt):
            print(
                "\nmailroom passwd: no password read (without a terminal, give it on stdin "
                "with --password-stdin)",
                file=sys.stderr,
            )
            return 2
        if password != again:
            print("mailroom passwd: the passwords differ", file=sys.stderr)
            return 2
    if not password:
        print("mailroom passwd: empty password", file=sys.stderr)
        return 2
    try:
        line = password_line(args.user, password)
    except CredentialError as exc:
        print(f"mailroom passwd: {exc}", file=sys.stderr)
        return 2
    if args.file:
        with args.file.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
    else:
        print(line)
    return 0


def _cmd_send(args: argparse.Namespace) -> int:
    from mailroom.client.send_command import run

    return run(args)


def _add_send(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from mailroom.client.send_command import add_arguments

    send = commands.add_parser(
        "send",
        help="send a message and show the session, every reply explained (like swaks)",
        description="Send a message built from flags (or a file with --data) and print the "
        "session with each reply explained. Exit status: 0 delivered to every recipient, "
        "75 (EX_TEMPFAIL) only temporary failures, 69 (EX_UNAVAILABLE) a permanent failure, "
        "2 usage error.",
    )
    add_arguments(send)
    send.set_defaults(func=_cmd_send)


def _cmd_sendmail(args: argparse.Namespace) -> int:
    from mailroom.client.sendmail import main as sendmail

    return sendmail(args.args, prog="mailroom sendmail")


def _add_sendmail(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sendmail = commands.add_parser(
        "sendmail",
        help="sendmail(8)-compatible submission of the message on stdin (-t, -i, -f, -F)",
        add_help=False,
    )
    sendmail.add_argument("args", nargs=argparse.REMAINDER)
    sendmail.set_defaults(func=_cmd_sendmail)


def _add_serve(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = commands.add_parser(
        "serve",
        help="run the SMTP server (a mail catcher on 127.0.0.1:1025 by default)",
        description="With no options: SMTP on 127.0.0.1:1025, accept mail for any recipient, "
        "store it in ./mailroom-data, never relay. Every setting can also be given in a TOML "
        "file (--config) under the same name with underscores.",
    )
    add = serve.add_argument
    add("--config", type=Path, help="TOML file with settings (flags win)")
    add("--hostname", help="the name this server gives itself (default: the host name)")
    add("--data", type=Path, help="data directory (default ./mailroom-data)")
    add(
        "--smtp",
        action="append",
        metavar="HOST:PORT",
        help="plain/STARTTLS listener (repeatable; default 127.0.0.1:1025)",
    )
    add(
        "--smtps",
        action="append",
        metavar="HOST:PORT",
        help="implicit TLS listener, RFC 8314 (repeatable)",
    )
    add("--max-message-size", metavar="SIZE", help="e.g. 50M (default); 0 for no limit")
    add(
        "--max-header-section",
        metavar="SIZE",
        help="a message's header section, before its empty line (default 1M); 0 for no limit",
    )
    add("--max-recipients", type=int, help="per message (default 100)")
    add("--max-connections", type=int, help="at once (default 1000)")
    add(
        "--max-connections-per-ip",
        type=int,
        help="at once from one address (default 100; 0 for no limit)",
    )
    add(
        "--max-bad-commands",
        type=int,
        help="refused commands (4xx or 5xx) in a row before 421 (default 20)",
    )
    add(
        "--max-junk-commands",
        type=int,
        help="NOOP, RSET, VRFY, EXPN, HELP, HELO, EHLO and BDAT 0 since the last message "
        "taken; one more gets 421 (default 100; 0 for no limit)",
    )
    add(
        "--max-refused-recipients",
        type=int,
        help="RCPTs refused for any reason (past --max-recipients, unknown, greylisted...) since "
        "the last message taken; the next RCPT gets 421 (default 1000; 0 for no limit)",
    )
    add(
        "--timeout",
        type=float,
        help="seconds to wait for a command or data (default 300, RFC 5321 §4.5.3.2)",
    )
    add("--tls-handshake-timeout", type=float, help="seconds (default 30)")
    add(
        "--shutdown-grace",
        type=float,
        help="seconds a message in flight may take to finish on SIGTERM (default 30)",
    )
    add(
        "--bare-line-endings",
        choices=("reject", "normalize"),
        help="a message with bare CR or LF: refuse it (default) or rewrite them to CRLF",
    )
    add(
        "--long-lines",
        choices=("reject", "accept"),
        help="a message line over 1000 octets: refuse (default) or accept",
    )
    add(
        "--store",
        metavar="STORE",
        help="maildir (default), none (discard), or postgresql://USER@HOST/DB: a database "
        "a fleet of nodes shares (run `mailroom db migrate` first)",
    )
    add("--node", metavar="NAME", help="this node's name in a fleet (default: the host name)")
    add(
        "--queue-lease",
        type=float,
        metavar="SECONDS",
        help="a fleet's claim on a queue entry lasts this long unrenewed (default 60)",
    )
    add(
        "--tls",
        choices=("off", "self-signed", "files"),
        help="self-signed: make a certificate for the hostname in DATA/tls",
    )
    add("--tls-cert", type=Path, help="certificate chain (PEM)")
    add("--tls-key", type=Path, help="private key (PEM)")
    add(
        "--tls-min-version",
        choices=("1.2", "1.3"),
        help="the oldest TLS version a listener accepts (default 1.2)",
    )
    add(
        "--tls-ciphers", metavar="LIST", help="OpenSSL cipher list for TLS 1.2 (default: OpenSSL's)"
    )
    add(
        "--tls-reload-interval",
        type=float,
        metavar="SECONDS",
        help="look for a renewed tls-cert/tls-key this often (default 60; 0: only on SIGHUP)",
    )
    add("--require-tls", action="store_true", help="530 5.7.0 until STARTTLS")
    add(
        "--auth",
        metavar="accept-any|FILE",
        help="offer AUTH: accept any credentials, or users of a file from `mailroom passwd`",
    )
    add("--require-auth", action="store_true", help="530 5.7.0 until AUTH")
    add("--allow-insecure-auth", action="store_true", help="offer PLAIN and LOGIN without TLS")
    add(
        "--max-auth-failures",
        type=int,
        metavar="N",
        help="failed AUTHs from one address within the window before 454 4.7.0 "
        "(default 5; 0 for no limit)",
    )
    add("--auth-failure-window", type=float, metavar="SECONDS", help="(default 600)")
    add(
        "--max-auth-failures-per-session",
        type=int,
        metavar="N",
        help="failed AUTHs in one session before 421 4.7.0 and close (default 3; 0: no limit)",
    )
    add(
        "--auth-failure-delay",
        type=float,
        metavar="SECONDS",
        help="a failed AUTH is answered this late (default 1; 0 at once)",
    )
    add(
        "--transcripts",
        type=int,
        metavar="N",
        help="sessions whose transcripts are kept for the web UI (default 1000; 0 keeps none)",
    )
    add(
        "--transcripts-stored",
        type=int,
        metavar="N",
        help="finished transcripts also kept in DATA/transcripts.sqlite across restarts "
        "(default 10000; 0 stores none)",
    )
    add(
        "--transcripts-max-age",
        type=float,
        metavar="SECONDS",
        help="stored transcripts older than this are deleted (default 604800, a week)",
    )
    add(
        "--spamassassin",
        metavar="HOST:PORT",
        help="SpamAssassin's spamd, for the web UI's spam check (as Mailpit's flag)",
    )
    add(
        "--rspamd",
        metavar="URL",
        help="rspamd's controller (http://HOST:11333), for the spam check",
    )
    add(
        "--allow-internal-http-requests",
        action="store_true",
        help="let the link check fetch loopback and private addresses (as Mailpit's flag)",
    )
    add("--link-check-timeout", type=float, metavar="SECONDS", help="for each link (default 10)")
    add(
        "--link-check-max-links",
        type=int,
        metavar="N",
        help="links checked in a message (default 100)",
    )
    add(
        "--fault",
        action="append",
        metavar="RULE",
        help="fail on purpose, e.g. 'rcpt:*@bounce.test:550 5.1.1 No such user' "
        "(STAGE[:MATCH][:p=P|every=N|times=N]:REPLY|delay=S|disconnect|close; repeatable)",
    )
    add(
        "--web",
        metavar="HOST:PORT|off",
        help="the web UI and HTTP API (the catcher's default 127.0.0.1:8025; a mail server's "
        "is off unless given, and needs credentials)",
    )
    add(
        "--web-auth",
        metavar="USER:PASSWORD",
        help="HTTP basic auth for the web UI and API; visible to local users in the process "
        "list: prefer --web-auth-file or MAILROOM_WEB_AUTH",
    )
    add(
        "--web-auth-file",
        type=Path,
        metavar="FILE",
        help="a file whose first line is USER:PASSWORD for the web UI and API",
    )
    add(
        "--web-users",
        type=Path,
        metavar="FILE",
        help="web users with argon2 passwords (lines from `mailroom passwd`)",
    )
    add(
        "--web-tls",
        action="store_true",
        help="HTTPS on the web listener, with the SMTP listeners' certificate (needs --tls)",
    )
    add(
        "--web-allowed-host",
        action="append",
        metavar="NAME",
        help="a host name the web UI answers to (on loopback, or without credentials) besides "
        "localhost, IP addresses and the hostname "
        "(a guard against DNS rebinding; '*' for any; repeatable)",
    )
    add(
        "--release-smtp",
        metavar="HOST:PORT",
        help="the SMTP server the web UI's 'release' sends captured messages to by default",
    )
    add("--log-level", choices=("debug", "info", "warning", "error"))
    add(
        "--workers",
        type=int,
        metavar="N",
        help="processes accepting SMTP connections on the same listeners (default: one per "
        "CPU, at most 8; 1: a single process)",
    )
    add("--no-uvloop", action="store_true", help="use the standard asyncio event loop")
    serve.set_defaults(func=_cmd_serve)


def _add_passwd(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    passwd = commands.add_parser("passwd", help="make a password file line (argon2 + SCRAM)")
    passwd.add_argument("user")
    passwd.add_argument("--file", type=Path, help="append to this file instead of printing")
    passwd.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin",
    )
    passwd.set_defaults(func=_cmd_passwd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailroom", description="A mail server in Python that speaks SMTP exactly."
    )
    parser.add_argument(
        "--version", action="version", version=f"mailroom {__version__} ({core_build()})"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    explain = commands.add_parser(
        "explain",
        help="explain a reply code, an enhanced code or a whole reply",
        description="Explain '550', '5.7.1', '550 5.1.1 <x@y>: no such user', or a "
        "multi-line reply read from stdin with '-'.",
    )
    explain.add_argument("reply", nargs="+", help="code, enhanced code, reply text, or -")
    explain.add_argument("--json", action="store_true", help="print JSON")
    explain.set_defaults(func=_cmd_explain)

    replies = commands.add_parser("replies", help="list every reply mailroom sends")
    replies.add_argument("--markdown", action="store_true", help="print docs/replies.md")
    replies.add_argument(
        "--registry",
        action="store_true",
        help="every code of the IANA registry: where mailroom sends it and the test that shows "
        "it, or why no server can (with --markdown: docs/registry.md)",
    )
    replies.set_defaults(func=_cmd_replies)

    _add_serve(commands)
    from mailroom.store.commands import add_store_commands

    add_store_commands(commands, find_data_dir=_find_data_dir)
    _add_passwd(commands)
    check = commands.add_parser(
        "check-config", help="validate a mailroom.toml; each error names its line"
    )
    check.add_argument("config", type=Path, nargs="?", default=Path("mailroom.toml"))
    check.set_defaults(func=_cmd_check_config)
    _add_send(commands)
    _add_sendmail(commands)
    from mailroom.delivery.commands import add_queue_command
    from mailroom.dns_commands import add_dns_commands

    add_queue_command(commands, data_dir_of=_data_dir_of)
    add_dns_commands(commands)
    from mailroom.postgres.commands import add_db_command

    add_db_command(commands, read_config=_read_config)
    from mailroom.bounces.command import add_bounces_command

    add_bounces_command(commands)
    bench = commands.add_parser(
        "bench-client",
        help="SMTP load generator (see `mailroom bench-client --help`)",
        add_help=False,
    )
    bench.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def core_build() -> str:
    """How the protocol core runs in this install: compiled by mypyc (``pip install .`` where a
    C compiler is found, see setup.py) or interpreted, and why."""
    from mailroom.protocol import server

    where = Path(server.__file__ or "")
    if not where.name.endswith(".py"):
        return "protocol core compiled with mypyc"
    if (where.parents[3] / "setup.py").exists():  # src/mailroom/protocol/server.py
        return "pure Python: a development install runs its sources"
    return "pure Python: installed without a C compiler (or with MAILROOM_COMPILE=0)"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sendmail"]:
        # sendmail's own options (-t, -i, -oi, -f) are not mailroom's: hand them over whole.
        return _cmd_sendmail(argparse.Namespace(args=argv[1:]))
    if argv[:1] == ["bench-client"]:
        from mailroom.loadgen import main as bench_client

        return bench_client(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`mailroom list | head -3`): stop quietly, as cat does. Python
        # would report the failed flush of stdout at exit, so stdout now points nowhere.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a program killed by it
    return result


if __name__ == "__main__":
    raise SystemExit(main())
