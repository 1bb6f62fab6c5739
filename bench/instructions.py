"""Server instructions per message, counted by valgrind's callgrind: a CPU cost that a shared,
noisy machine does not blur (user space only: the kernel's share is not counted).

    python bench/instructions.py [--python .venv-fast/bin/python] [--messages 2000]
        [--connections 10] [-- SERVE FLAGS...]

Starts ``mailroom serve --workers 1`` (``--store none`` unless flags are given) under
callgrind, sends 200 messages to warm it up, zeroes the counters, sends ``--messages``
messages of 1 KiB with ``mailroom bench-client`` (run natively, from this interpreter), dumps
the counters and prints the instructions per message. Two runs of one build agree within about
1%; A/B two builds by running it on each. ``--top N`` also prints the compiled functions (mypyc's
``CPyDef_...``) with their inclusive instructions per message. Needs valgrind.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

WARM_UP = 200


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, server: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                if sock.recv(100).startswith(b"220"):
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the server did not start under valgrind")


def load(port: int, messages: int, connections: int, extra: list[str]) -> dict[str, object]:
    command = [sys.executable, "-m", "mailroom", "bench-client", "--server", f"127.0.0.1:{port}"]
    command += ["--messages", str(messages), "--connections", str(connections)]
    command += ["--size", "1024", "--json", *extra]
    answer = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(answer.stdout)
    return result


def total(path: str) -> int:
    with open(path, errors="replace") as dump:
        for line in dump:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")


def inclusive(path: str) -> dict[str, int]:
    """Each function's instructions with its callees' (recursion counted once per frame)."""
    names: dict[str, str] = {}
    own: collections.Counter[str] = collections.Counter()
    fn = callee = ""
    after_call = False

    def name(text: str) -> str:
        match = re.match(r"\((\d+)\)(?: (.*))?", text)
        if match is None:
            return text
        if match.group(2) is not None:
            names[match.group(1)] = match.group(2)
        return names.get(match.group(1), text)

    with open(path, errors="replace") as dump:
        for line in dump:
            if line.startswith("fn="):
                fn = name(line[3:].strip())
            elif line.startswith("cfn="):
                callee = name(line[4:].strip())
            elif line.startswith("calls="):
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) >= 2:
                    if not after_call or callee != fn:
                        own[fn] += int(parts[1])
                    after_call = False
    return dict(own)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default=".venv-fast/bin/python", help="the server's")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--client-flag", action="append", default=[], help="e.g. --pipelining")
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("flags", nargs="*", help="mailroom serve flags (after --)")
    args = parser.parse_args()
    flags = args.flags or ["--store", "none"]
    port, web = free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="mailroom-callgrind-")
    out = os.path.join(workdir, "callgrind.out")
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]
    command += [args.python, "-m", "mailroom", "serve", "--smtp", f"127.0.0.1:{port}"]
    command += ["--web", f"127.0.0.1:{web}", "--data", os.path.join(workdir, "data")]
    command += ["--hostname", "bench.test", "--workers", "1", *flags]
    with open(os.path.join(workdir, "server.log"), "wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        wait_for(port, server)
        load(port, WARM_UP, args.connections, args.client_flag)
        time.sleep(1)
        subprocess.run(
            ["callgrind_control", "-z", str(server.pid)], capture_output=True, check=True
        )
        result = load(port, args.messages, args.connections, args.client_flag)
        subprocess.run(
            ["callgrind_control", "-d", str(server.pid)], capture_output=True, check=True
        )
        time.sleep(1)
    finally:
        server.terminate()
        server.wait()
    dump = sorted(glob.glob(out + ".*"), key=os.path.getmtime)[-1]
    instructions = total(dump)
    print(
        json.dumps(
            {
                "instructions_per_message": round(instructions / args.messages),
                "instructions": instructions,
                "accepted": result["messages"],
                "failed": result["failed"],
                "flags": flags,
                "dump": dump,
            }
        )
    )
    if args.top:
        costs = inclusive(dump)
        compiled = [(cost, fn) for fn, cost in costs.items() if fn.startswith("CPyDef_")]
        for cost, fn in sorted(compiled, reverse=True)[: args.top]:
            print(f"{cost // args.messages:>9} {fn}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
