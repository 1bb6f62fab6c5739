"""What email authentication costs: an mx listener that checks each message (one DKIM
signature, SPF and DMARC) beside the same listener with the checks off, and DKIM signing of
trusted mail (RSA-2048 and ed25519, as on submission) beside the same without keys.

    python bench/authentication.py [--messages 5000] [--connections 50] [--rounds 3]

DNS comes from a Knot DNS of the run's own on loopback (tests/dnspeers.py), asked directly, with
a TTL of an hour (the tests' Unbound passes TTL 0 on, made for records that change): mailroom's
resolver caches the answers by their TTL, as it would on a real server, so after the first
message each check costs its CPU and no network. The store is
``--store none`` (the message is read whole for the checks, then dropped), so the rows compare
the checks and not the disk. Signing runs on an mx listener whose client is in
``relay_networks``: the same trusted path as an authenticated submission, without TLS and AUTH
in the way. Each row: msg/s (median of the interleaved rounds) and the server's CPU per message.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run import PYTHON, Target, build_of, run_one  # noqa: E402
from tests.dnspeers import Knot  # noqa: E402

from mailroom.authentication.keys import generate_key  # noqa: E402
from mailroom.authentication.signing import sign  # noqa: E402

CONFIG = """
hostname = "mx.example.test"
domains = ["example.test"]
dns_servers = ["{dns}"]

[users."bob@example.test"]
[aliases]
"@example.test" = "bob@example.test"

[policy]
check_null_mx = false
{policy}

[authentication]
{authentication}
"""
CHECKS_OFF = 'spf = "off"\ndkim = "off"\ndmarc = "off"\niprev = "off"\narc = "off"'
CHECKS_ON = 'spf = "record"\ndkim = "record"\ndmarc = "enforce"\niprev = "off"\narc = "off"'


def message(size: int, author: str) -> bytes:
    head = (
        f"From: {author}\r\nTo: bob@example.test\r\nSubject: authenticated load\r\n"
        "Date: Sat, 05 Dec 2026 09:00:00 +0000\r\nMessage-ID: <bench@sender.test>\r\n\r\n"
    )
    line = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_+=\r\n"
    body = bytearray(head.encode())
    while len(body) < size:
        body += line
    return bytes(body)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mailroom-python", default=PYTHON)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="mailroom-bench-auth-"))
    sender_keys = root / "sender-keys"
    rsa = generate_key(sender_keys, "sender.test", "bench", "rsa")
    own = root / "own-keys"
    own_keys = [
        generate_key(own, "example.test", "rsa-bench", "rsa"),
        generate_key(own, "example.test", "ed-bench", "ed25519"),
    ]
    records = {
        "sender.test": {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]},
        "_dmarc.sender.test": {"TXT": ["v=DMARC1; p=reject"]},
        rsa.record_name: {"TXT": [rsa.public_record]},
    }
    inbound = message(args.size, "alice@sender.test")
    (root / "inbound.eml").write_bytes(sign(inbound, [rsa]) + inbound)
    (root / "outbound.eml").write_bytes(message(args.size, "bob@example.test"))

    with Knot(records, zones=["sender.test"], ttl=3600) as knot:

        def config(name: str, authentication: str, policy: str = "") -> Path:
            path = root / f"{name}.toml"
            path.write_text(
                CONFIG.format(dns=knot.address, policy=policy, authentication=authentication)
            )
            return path

        def serve(path: Path, data: str = "{dir}") -> list[str]:
            return [
                args.mailroom_python, "-m", "mailroom", "serve", "--config", str(path),
                "--smtp", "127.0.0.1:{port}", "--data", data, "--store", "none",
                "--log-level", "warning", "--web", "off", "--max-connections-per-ip", "0",
            ]  # fmt: skip

        def load(name: str, sender: str) -> list[str]:
            return ["--message", str(root / name), "--mail-from", sender]

        trusted = 'relay_networks = ["127.0.0.0/8"]'
        chosen = [
            Target(
                "mx, checks off",
                serve(config("off", CHECKS_OFF)),
                load("inbound.eml", "alice@sender.test"),
            ),
            Target(
                "mx, DKIM + SPF + DMARC",
                serve(config("on", CHECKS_ON)),
                load("inbound.eml", "alice@sender.test"),
            ),
            Target(
                "trusted, not signed",
                serve(config("unsigned", CHECKS_OFF + "\nsign = false", trusted)),
                load("outbound.eml", "bob@example.test"),
            ),
            Target(
                "trusted, signed rsa-2048 + ed25519",
                serve(config("signed", CHECKS_OFF, trusted), data=str(own)),
                load("outbound.eml", "bob@example.test"),
            ),
        ]
        print(
            f"{args.messages} messages of {args.size} octets over {args.connections} "
            f"connections, {args.rounds} rounds, median msg/s; "
            f"{build_of(args.mailroom_python)}; keys {', '.join(k.selector for k in own_keys)}",
            flush=True,
        )
        for round_number in range(args.rounds):
            for target in chosen:
                result = run_one(target, args, root)
                target.rates.append(float(result["msg_per_s"]))  # type: ignore[arg-type]
                if "server_cpu_us" in result:
                    target.cpu.append(float(result["server_cpu_us"]))  # type: ignore[arg-type]
                print(
                    f"  round {round_number + 1}: {target.name:<36} {result['msg_per_s']:>8} "
                    f"msg/s  failed {result['failed']}  server CPU "
                    f"{result.get('server_cpu_us', '-')} µs/msg",
                    flush=True,
                )
    print()
    print(f"{'row':<38} {'msg/s':>8} {'server CPU µs/msg':>18}")
    for target in chosen:
        cpu = statistics.median(target.cpu) if target.cpu else 0.0
        print(f"{target.name:<38} {target.rate:>8.0f} {cpu:>18.0f}")
    checks = chosen[1].cpu_per_message - chosen[0].cpu_per_message
    signing = chosen[3].cpu_per_message - chosen[2].cpu_per_message
    print(f"\nchecks cost {checks:.0f} µs of server CPU a message; signing {signing:.0f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
