"""``mailroom list``, ``show`` and ``reindex``: the stored messages from the command line.

They find the data directory as ``mailroom serve`` does: ``--data``, else ``MAILROOM_DATA``,
else the ``data`` of the file given with ``--config``, else ``./mailroom-data``; and when there
is nothing there, they say which directory they looked in and why that one.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mailroom.settings_types import ConfigError

__all__ = ["add_store_commands"]


# Where the data directory is when --data is not given, and what said so: the command line
# (mailroom.cli) passes its reader of the configuration in (MAILROOM_DATA, --config FILE, the
# default), so this module, below the configuration, does not import it. It raises ConfigError
# for a file it cannot use.
DataDirFinder = Callable[[Path | None], tuple[Path, str]]


def _default_data_dir(config_file: Path | None) -> tuple[Path, str]:
    """Without the command line's finder (the module used on its own): no configuration."""
    if config_file is not None:
        raise ConfigError("--config is not available here; give --data")
    return Path("mailroom-data"), "the default; give --data DIR"


def _data_dir(args: argparse.Namespace, command: str) -> tuple[Path, str] | None:
    """The data directory and where it came from; None (said on stderr) if the file is bad."""
    if args.data is not None:
        return args.data, "--data"
    finder: DataDirFinder = args.find_data_dir
    try:
        return finder(args.config)
    except ConfigError as exc:
        print(f"mailroom {command}: {exc}", file=sys.stderr)
        return None


def _open_index(args: argparse.Namespace, command: str):  # type: ignore[no-untyped-def]
    from mailroom.store import Index

    found = _data_dir(args, command)
    if found is None:
        return None, None
    data, source = found
    path = data / "index.sqlite"
    if not path.exists():
        where = data.resolve()
        print(
            f"mailroom {command}: no messages: looked in {where} ({source}), which has no "
            "index.sqlite. Nothing stored there yet? If it holds Maildirs, `mailroom reindex` "
            "rebuilds the index.",
            file=sys.stderr,
        )
        return None, data
    return Index(path), data


def _cmd_list(args: argparse.Namespace) -> int:
    index, data = _open_index(args, "list")
    if index is None:
        return 1
    try:
        rows = index.list(limit=args.limit, offset=args.offset)
    except OSError as exc:  # a damaged index names itself and the way out (DamagedIndex)
        print(f"mailroom list: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print(f"mailroom list: no messages in {data.resolve()}", file=sys.stderr)
        return 0
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row.received))
        to = ", ".join(row.recipients)
        print(f"{row.id}  {when}  {row.size:>8}  <{row.sender}> -> {to}  {row.subject}")
    return 0


def _candidates(data: Path, prefix: str) -> list[tuple[str, float, str]]:
    with sqlite3.connect(data / "index.sqlite") as db:
        return db.execute(
            "SELECT id, received, subject FROM messages WHERE id LIKE ? ORDER BY id LIMIT 21",
            (prefix.replace("%", "").replace("_", "") + "%",),
        ).fetchall()


def _cmd_show(args: argparse.Namespace) -> int:
    index, data = _open_index(args, "show")
    if index is None:
        return 1
    try:
        row = index.get(args.id)
    except OSError as exc:
        print(f"mailroom show: {exc}", file=sys.stderr)
        return 1
    if row is None:
        found = _candidates(data, args.id) if args.id else []
        if len(found) > 1:
            print(
                f"mailroom show: {args.id} is ambiguous: it begins "
                f"{'more than 20' if len(found) > 20 else len(found)} ids; give more of one:",
                file=sys.stderr,
            )
            for id_, received, subject in found[:20]:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(received))
                print(f"  {id_}  {when}  {subject}", file=sys.stderr)
        else:
            print(f"mailroom show: no message {args.id} in {data.resolve()}", file=sys.stderr)
        return 1
    from mailroom.store.maildir import message_file

    path = message_file(data, row.path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        print(f"mailroom show: {path}: {exc.strerror}", file=sys.stderr)
        return 1
    if args.json:
        record = row.as_dict()
        record["raw"] = raw.decode("utf-8", errors="replace")
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
    return 0


def _cmd_reindex(args: argparse.Namespace) -> int:
    from mailroom.store.reindex import rebuild_index

    found = _data_dir(args, "reindex")
    if found is None:
        return 2
    data, _ = found
    try:
        count = rebuild_index(data)
    except OSError as exc:  # a full disk, a file where a directory should be
        print(f"mailroom reindex: {exc}", file=sys.stderr)
        return 1
    print(f"mailroom: indexed {count} messages from {data / 'mail'}")
    return 0


def _where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="the data directory (default: $MAILROOM_DATA, the --config file's, "
        "or ./mailroom-data)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="read the data directory from this mailroom.toml",
    )


def add_store_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    *,
    find_data_dir: DataDirFinder = _default_data_dir,
) -> None:
    listing = commands.add_parser("list", help="list stored messages, newest first")
    _where(listing)
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--offset", type=int, default=0, help="skip this many newest first")
    listing.add_argument("--json", action="store_true", help="print the index rows as JSON")
    listing.set_defaults(func=_cmd_list, find_data_dir=find_data_dir)

    show = commands.add_parser("show", help="print a stored message (raw, or --json)")
    show.add_argument("id", help="queue id (a unique prefix will do)")
    _where(show)
    show.add_argument(
        "--json", action="store_true", help="the index row and the raw message as JSON"
    )
    show.set_defaults(func=_cmd_show, find_data_dir=find_data_dir)

    reindex = commands.add_parser("reindex", help="rebuild the index from the Maildirs")
    _where(reindex)
    reindex.set_defaults(func=_cmd_reindex, find_data_dir=find_data_dir)
