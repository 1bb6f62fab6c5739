"""Fuzz entry point for the sans-IO SMTP server (mailroom.protocol.ServerConnection).

Each input is turned by hypothesis into a random session (settings, TLS, greeting, policy
decisions, a byte stream of SMTP fragments and noise, a way to cut it into reads) and played
whole and cut. The invariant, as in h11: random input only ever produces events and protocol
replies, never another exception; every reply is well-formed, ASCII, within 512-octet lines,
with a registered, class-consistent enhanced code; and the cut play says exactly what the
whole one says.

    .venv/bin/python tests/fuzz/fuzz_server.py --seconds 60         # random inputs, a minute
    .venv/bin/python tests/fuzz/fuzz_server.py --replay crash-*.bin  # saved failures again
    .venv/bin/python tests/fuzz/fuzz_server.py --atheris [args]      # coverage-guided

``fuzz_one_input(buffer)`` is the entry point any byte-oriented fuzzer can call.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make "tests" importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocol.drive import Scenario, check_reply, pieces, play, scenarios, streams


@settings(database=None, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario=scenarios, data=streams, cuts=st.lists(st.integers(min_value=0), max_size=16))
def fuzz_server(scenario: Scenario, data: bytes, cuts: list[int]) -> None:
    whole = play(scenario, [data] if data else [])
    for wire in whole.replies:
        check_reply(wire, enhanced=scenario.settings.enhanced_status_codes)
    cut = play(scenario, pieces(data, cuts))
    assert cut.replies == whole.replies
    assert cut.body == whole.body
    assert cut.events == whole.events


def fuzz_one_input(buffer: bytes) -> None:
    """Run one input; raises on a failure (hypothesis reports the session it built)."""
    fuzz_server.hypothesis.fuzz_one_input(buffer)


def run(
    seconds: float,
    *,
    seed: int | None = None,
    max_inputs: int | None = None,
    crash_dir: Path = Path("."),
) -> int:
    """Random inputs until ``seconds`` pass or ``max_inputs`` ran; returns how many ran."""
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline and (max_inputs is None or count < max_inputs):
        buffer = rng.randbytes(rng.randint(8, 2048))
        try:
            fuzz_one_input(buffer)
        except BaseException:
            path = crash_dir / f"crash-{hashlib.sha1(buffer).hexdigest()[:16]}.bin"
            path.write_bytes(buffer)
            print(f"failing input saved to {path}", file=sys.stderr)
            raise
        count += 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to run")
    parser.add_argument("--max-inputs", type=int, default=None, help="stop after this many")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible runs")
    parser.add_argument("--crash-dir", type=Path, default=Path("."), help="where to save failures")
    parser.add_argument("--replay", nargs="*", type=Path, default=None, help="saved inputs to run")
    parser.add_argument("--atheris", action="store_true", help="hand over to atheris")
    args, rest = parser.parse_known_args(argv)
    if args.replay is not None:
        for path in args.replay:
            fuzz_one_input(path.read_bytes())
            print(f"{path}: passes")
        return 0
    if args.atheris:
        import atheris  # type: ignore[import-not-found]

        # Coverage feedback from the code under test (and hypothesis's, which turns the bytes
        # into sessions); without it libFuzzer mutates blind.
        atheris.instrument_all()
        atheris.Setup([sys.argv[0], *rest], fuzz_one_input)
        atheris.Fuzz()
        return 0
    started = time.monotonic()
    count = run(args.seconds, seed=args.seed, max_inputs=args.max_inputs, crash_dir=args.crash_dir)
    print(f"{count} inputs in {time.monotonic() - started:.1f}s, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
