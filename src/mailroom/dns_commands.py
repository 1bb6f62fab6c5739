"""``mailroom dkim keygen`` and ``mailroom dns-records``: the keys a mail server's domains sign
with and the DNS records they publish.

These read the configuration (its data directory, domains, hostname and certificate), so they
sit beside it, above the parts whose records they print: email authentication's
(:mod:`mailroom.authentication.records`) and transport security's (:mod:`mailroom.tls_publish`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailroom.config import Config

__all__ = ["add_dns_commands", "listener_certificate"]


def _data_dir(args: argparse.Namespace) -> tuple[Path, Any]:
    """The data directory: --data, else the one of --config (or ./mailroom.toml), else the
    default."""
    from mailroom.config import Config, load_config

    config = None
    path = args.config
    if path is None and Path("mailroom.toml").exists():
        path = Path("mailroom.toml")
    if path is not None:
        config = load_config(path)
    if args.data is not None:
        return args.data, config
    return (config.data if config is not None else Config.data), config


def _cmd_keygen(args: argparse.Namespace) -> int:
    from mailroom.authentication.keys import (
        Algorithm,
        KeyFileError,
        default_selector,
        generate_key,
    )
    from mailroom.authentication.records import txt
    from mailroom.config import ConfigError

    try:
        data, _ = _data_dir(args)
    except ConfigError as exc:
        print(f"mailroom dkim keygen: {exc}", file=sys.stderr)
        return 2
    algorithms: list[Algorithm] = [args.algorithm] if args.algorithm else ["rsa", "ed25519"]
    for algorithm in algorithms:
        selector = args.selector or default_selector(algorithm)
        if args.selector and len(algorithms) > 1:
            selector = f"{args.selector}-{algorithm}"
        try:
            key = generate_key(data, args.domain, selector, algorithm)
        except KeyFileError as exc:
            print(f"mailroom dkim keygen: {exc}", file=sys.stderr)
            return 2
        print(f"; {key.algorithm} key in {data / 'dkim' / key.domain / (selector + '.key')}")
        print(f"{key.record_name}. IN TXT {txt(key.public_record)}")
    print(
        "; Publish the record(s), then restart mailroom: it signs with every key of the domain."
        "\n; Rotation: make a new selector, publish it, then rename the old .key to "
        ".key.retired."
    )
    return 0


def _cmd_dns_records(args: argparse.Namespace) -> int:
    from mailroom.authentication.keys import KeyFileError, load_keys
    from mailroom.authentication.records import dns_records
    from mailroom.config import ConfigError
    from mailroom.tls_publish import tls_dns_records

    try:
        data, config = _data_dir(args)
        keys = load_keys(data)
    except (ConfigError, KeyFileError) as exc:
        print(f"mailroom dns-records: {exc}", file=sys.stderr)
        return 2
    if config is None or config.mail is None:
        print(
            "mailroom dns-records: needs a mailroom.toml with domains = [...] (--config FILE)",
            file=sys.stderr,
        )
        return 2
    import ipaddress

    for address in args.address:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            print(f"mailroom dns-records: not an IP address: {address}", file=sys.stderr)
            return 2
    domains = sorted(config.mail.directory.domains)
    primary = config.mail.directory.primary_domain
    if primary in domains:
        domains.remove(primary)
        domains.insert(0, primary)
    published = config.mail.published
    sys.stdout.write(
        dns_records(
            domains,
            config.hostname,
            keys,
            addresses=args.address,
            mta_sts=published is not None and published.mode is not None,
            tls_reporting=published is not None and bool(published.rua),
        )
    )
    transport = tls_dns_records(
        published, hostname=config.hostname, certificate=listener_certificate(config)
    )
    if transport:
        sys.stdout.write("\n; ---- transport security ([mta_sts], [tls_reporting], TLSA)\n")
        sys.stdout.write("\n".join(transport) + "\n")
    return 0


def listener_certificate(config: Config) -> Path | None:
    """The listeners' certificate (for its TLSA record): the configured file, or the
    self-signed one made in the data directory once the server has run."""
    if config.tls == "files":
        return config.tls_cert
    if config.tls == "self-signed":
        path = config.data / "tls" / "self-signed.pem"
        return path if path.exists() else None
    return None


def add_dns_commands(commands: Any) -> None:
    dkim = commands.add_parser("dkim", help="DKIM keys: mailroom dkim keygen DOMAIN")
    sub = dkim.add_subparsers(dest="dkim_command", required=True)
    keygen = sub.add_parser(
        "keygen",
        help="make a DKIM key (RSA-2048 and ed25519 by default) and print its TXT record",
    )
    keygen.add_argument("domain")
    keygen.add_argument("--selector", help="default: the algorithm and the month, rsa-202612")
    keygen.add_argument("--algorithm", choices=("rsa", "ed25519"), help="default: both")
    keygen.add_argument("--config", type=Path, help="mailroom.toml (for its data directory)")
    keygen.add_argument("--data", type=Path, help="the data directory (default: the config's)")
    keygen.set_defaults(func=_cmd_keygen)
    records = commands.add_parser(
        "dns-records",
        help="print the DNS records the configured domains need (MX, SPF, DKIM, DMARC, ...)",
    )
    records.add_argument("--config", type=Path, help="mailroom.toml (default ./mailroom.toml)")
    records.add_argument("--data", type=Path, help="where the DKIM keys are (default: config's)")
    records.add_argument(
        "--address",
        action="append",
        default=[],
        help="the server's public address (repeatable): for its A/AAAA, PTR and SPF",
    )
    records.set_defaults(func=_cmd_dns_records)
