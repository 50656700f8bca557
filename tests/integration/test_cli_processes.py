"""The real ``pgmq-codegen`` entry point as a long-running process: signals and the demo."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

from tests.unit.test_cli import cli

ENV = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}


def _command() -> list[str]:
    exe = shutil.which("pgmq-codegen")
    return [exe] if exe else [sys.executable, "-m", "pgmq_codegen.cli"]


def test_listen_stops_cleanly_on_sigterm(dsn):
    """docker stop / systemd send SIGTERM: the tail ends like Ctrl-C, with a 'stopped' line and exit 0."""
    proc = subprocess.Popen(
        [*_command(), "listen", "--dsn", dsn], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # blocks until the self-check line (or the process ends)
            seen.append(line)
            if "self-check passed" in line:
                break
        assert any("self-check passed" in line for line in seen), "".join(seen)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert rest.strip().splitlines()[-1] == "stopped"
    assert "Traceback" not in rest


def test_listen_help_says_how_it_stops():
    assert "SIGTERM" in cli("listen", "--help").stdout
