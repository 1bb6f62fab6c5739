"""The command line: ``mailroom serve``, ``explain``, ``replies``, …

Each subcommand is a small function that parses nothing itself; argparse does that, and the
work is done by the part the command is about.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from mailroom import __version__


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

    if args.markdown:
        sys.stdout.write(replies_markdown())
        return 0
    for name, template in CATALOGUE.items():
        print(f"{template.label:<11} {name:<34} {template.text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailroom", description="A mail server in Python that speaks SMTP exactly."
    )
    parser.add_argument("--version", action="version", version=f"mailroom {__version__}")
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
    replies.set_defaults(func=_cmd_replies)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
