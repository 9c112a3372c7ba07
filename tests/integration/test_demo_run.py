"""The demo runs end to end, non-interactively, and its summary says what happened.

Each test runs ``python -m secretswitch.demo_app`` in a subprocess (its own embedded stack,
its own moto state), as a person would, and reads ``summary.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
FAST = ["--rotations", "2", "--day-seconds", "0.2", "--rate", "120", "--seed", "7"]


def _run_demo(
    tmp_path: Path, *extra: str, timeout: float = 120, entry: tuple[str, ...] = ("secretswitch.demo_app",)
) -> tuple[subprocess.CompletedProcess[str], Path]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("SECRETSWITCH_SECRET_ID", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "MONGODB_URI")
    }
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-m", *entry, *FAST, *extra, "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return result, out


def _summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())


def test_short_demo_passes_and_alternates_users(tmp_path: Path) -> None:
    result, out = _run_demo(tmp_path)
    summary = _summary(out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for key in (
        "ops_ok",
        "ops_failed",
        "writes_acknowledged",
        "writes_lost",
        "rotations",
        "switches",
        "users_seen",
        "secretsmanager_api_calls",
        "auth_recoveries",
        "day_seconds",
        "duration_s",
    ):
        assert key in summary, key
    assert summary["ops_failed"] == 0
    assert summary["writes_lost"] == 0
    assert summary["writes_duplicated"] == 0
    assert summary["writes_acknowledged"] > 0
    assert summary["rotations"] == 2
    assert summary["switches"] == summary["rotations"]
    assert summary["users_seen"] == ["app", "app_clone", "app"]
    # One GetSecretValue per refresh, nothing on the hot path: a handful of calls for thousands of operations.
    assert summary["secretsmanager_api_calls"] < 20
    assert summary["day_seconds"] == 0.2
    assert summary["client_api"] == "threads"
    kinds = [json.loads(line)["kind"] for line in (out / "events.jsonl").read_text().splitlines()]
    steps = [
        json.loads(line)["step"]
        for line in (out / "events.jsonl").read_text().splitlines()
        if json.loads(line)["kind"] == "rotation_step"
    ]
    assert steps == ["createSecret", "setSecret", "testSecret", "finishSecret"] * 2
    assert kinds.count("client_switched") == 2
    png = (out / "timeline.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert len(png) > 20_000
    # Plain output, one line per event (stdout is not a terminal), and the folder is named.
    assert str(out) in result.stdout
    assert "rotation 1: done" in result.stdout
    assert "PASSED" in result.stdout


def test_manual_rotation_recovers_through_the_auth_failure_path(tmp_path: Path) -> None:
    # 0.5 s a day: a repair (a read, a login check) takes up to ~0.5 s real time on a loaded 2-core machine,
    # which at FAST's 0.2 s a day is 2.5 demo days of a 6-day refresh budget.
    result, out = _run_demo(tmp_path, "--manual-rotation", "--day-seconds", "0.5")
    summary = _summary(out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert summary["ops_failed"] == 0
    assert summary["writes_lost"] == 0
    assert summary["rotations_manual"] >= 1
    assert summary["auth_recoveries"] >= 1
    assert "manual rotation:" in result.stdout


def test_the_demo_passes_on_a_stack_with_awss_layout(tmp_path: Path) -> None:
    """AWS's format with the users in admin (dbname admin): the application names mydb itself."""
    result, out = _run_demo(tmp_path, "--aws-layout")
    summary = _summary(out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert summary["ops_failed"] == 0
    assert summary["writes_lost"] == 0
    assert summary["writes_acknowledged"] > 0
    assert summary["switches"] == summary["rotations"] == 2


def test_async_demo_runs_the_same_workload_through_the_asyncio_client(tmp_path: Path) -> None:
    """`secretswitch demo --async`: the same verdict and files; the out-of-schedule rotation is recovered too."""
    result, out = _run_demo(tmp_path, "--async", "--manual-rotation", entry=("secretswitch", "demo"))
    summary = _summary(out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert summary["client_api"] == "asyncio"
    assert summary["ops_failed"] == 0
    assert summary["writes_lost"] == 0
    assert summary["writes_duplicated"] == 0
    assert summary["writes_acknowledged"] > 0
    assert summary["switches"] >= summary["rotations"] == 3
    assert summary["auth_recoveries"] >= 1
    assert (out / "events.jsonl").exists()
    assert (out / "timeline.png").read_bytes().startswith(b"\x89PNG")
    assert "PASSED" in result.stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--refresh-days", "7"], "--refresh-days"),
        (["--day-seconds", "-1"], "--day-seconds"),
        (
            [
                "--secret-id",
                "does-not-exist",
                "--secretsmanager-endpoint",
                "http://127.0.0.1:9",
                "--region",
                "us-east-1",
            ],
            "cannot reach",
        ),
        (["--secret-id", "s", "--secretsmanager-endpoint", "http://127.0.0.1:9"], "no AWS region is configured"),
        (["--secret-id", "s", "--secretsmanager-endpoint", "htp://127.0.0.1:9"], "--secretsmanager-endpoint"),
    ],
)
def test_bad_input_fails_in_one_line_before_anything_starts(tmp_path: Path, argv: list[str], expected: str) -> None:
    # A machine with no AWS configuration: no region unless the command gives one.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")
    }
    env["AWS_CONFIG_FILE"] = str(tmp_path / "no-aws-config")
    result = subprocess.run(
        [sys.executable, "-m", "secretswitch.demo_app", *argv, "--out", str(tmp_path / "never")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()
    assert "starting the embedded stack" not in result.stdout


def test_unknown_secret_id_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """Against a running Secrets Manager (a stack of its own), an unknown secret id is a one-line error."""
    from secretswitch.embedded_stack.stack import EmbeddedStack

    with EmbeddedStack(region="ap-southeast-1") as stack:
        env = {**os.environ, **stack.info.environment()}
        env.pop("SECRETSWITCH_SECRET_ID")
        result = subprocess.run(
            [
                sys.executable, "-m", "secretswitch.demo_app", "--secret-id", "no-such-secret",
                "--region", "ap-southeast-1", "--out", str(tmp_path / "never"),
            ],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "no-such-secret" in result.stderr
    assert "does not exist" in result.stderr
    assert not (tmp_path / "never").exists()
