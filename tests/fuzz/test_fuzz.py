"""The fuzz entry point runs, for a few hundred inputs, and does report a failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailroom.protocol import ServerConnection
from tests.fuzz import fuzz_server

SCRIPT = Path(fuzz_server.__file__)


def test_a_few_hundred_inputs(tmp_path):
    assert fuzz_server.run(120, seed=3, max_inputs=300, crash_dir=tmp_path) == 300
    assert list(tmp_path.iterdir()) == []


def test_a_failure_is_reported_and_saved(tmp_path, monkeypatch):
    def broken(self, reply):
        raise KeyError("protocol bug")

    monkeypatch.setattr(ServerConnection, "greet", broken)
    with pytest.raises(KeyError):
        fuzz_server.run(10, seed=1, max_inputs=5, crash_dir=tmp_path)
    (saved,) = tmp_path.iterdir()
    with pytest.raises(KeyError):
        fuzz_server.fuzz_one_input(saved.read_bytes())


def test_runs_standalone_for_a_bounded_time(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--seconds",
            "1",
            "--seed",
            "7",
            "--crash-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("no failure")
