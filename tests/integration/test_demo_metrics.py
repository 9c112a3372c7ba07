"""``secretswitch demo --metrics-port N``: a scrape during the run sees the switch counter rise after a rotation.

The demo runs in a subprocess as a person would run it (see test_demo_run.py);
the test scrapes http://127.0.0.1:N/metrics while it runs, until it exits.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from secretswitch.embedded_stack.stack import free_port

REPO = Path(__file__).resolve().parents[2]
# Two rotations 3.5 s apart: several scrapes land between them.
DEMO = ["--rotations", "2", "--day-seconds", "0.5", "--rate", "60", "--workers", "2", "--seed", "7"]


def _environment() -> dict[str, str]:
    return {
        key: value
        for key, value in os.environ.items()
        if key not in ("SECRETSWITCH_SECRET_ID", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "MONGODB_URI")
    }


def _total(text: str, name: str) -> float | None:
    """The sum of a metric's samples in Prometheus text format (``None``: no sample yet)."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")]
    return sum(values) if values else None


def test_a_scrape_during_the_demo_sees_the_switch_counter_rise_after_a_rotation(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    out = tmp_path / "results"
    log = tmp_path / "demo.log"
    with log.open("w") as output:
        demo = subprocess.Popen(
            [sys.executable, "-m", "secretswitch", "demo", *DEMO, "--metrics-port", str(port), "--out", str(out)],
            cwd=REPO,
            env=_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        switches: list[float] = []
        scrapes: list[str] = []
        deadline = time.monotonic() + 150
        try:
            while demo.poll() is None and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        text = response.read().decode()
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.05)  # not listening yet, or the run just ended
                    continue
                refreshed = _total(text, "secretswitch_client_refreshes_total")
                if refreshed is not None:  # the client has started
                    switches.append(_total(text, "secretswitch_client_switches_total") or 0.0)
                    scrapes.append(text)
                time.sleep(0.05)
        finally:
            if demo.poll() is None:
                demo.kill()
            demo.wait(30)
    printed = log.read_text()
    assert demo.returncode == 0, printed[-3000:]
    assert f"client metrics (Prometheus text format): {url}" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["switches"] == summary["rotations"] == 2
    assert switches, "no scrape saw the client's metrics"
    assert switches == sorted(switches), switches  # a counter never goes down
    assert switches[0] < switches[-1] <= 2, switches  # it rose while the demo ran
    last = scrapes[-1]
    for name in (
        "secretswitch_secretsmanager_calls_total",
        "secretswitch_client_credentials_age_seconds",
        "secretswitch_client_refresh_due_in_seconds",
        "secretswitch_client_healthy",
    ):
        assert _total(last, name) is not None, name
    assert 'secret_id="mongodb-app"' in last
    # The endpoint lives for the length of the run only.
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_a_metrics_port_that_is_taken_fails_in_one_line_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "secretswitch.demo_app", "--metrics-port", str(port), "--out", str(tmp_path / "no")],
            cwd=REPO,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--metrics-port" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "no").exists()
    assert "starting the embedded stack" not in result.stdout
