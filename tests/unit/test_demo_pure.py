"""The demo's pure parts: argument checks, the verdict, event lines, timeline buckets."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from secretswitch.client.errors import ConfigurationError
from secretswitch.demo_app import runner
from secretswitch.demo_app.config import DemoConfig, add_arguments, config_from_args
from secretswitch.demo_app.events import DemoEvent, EventLog, format_event
from secretswitch.demo_app.report import (
    RotationRecord,
    SwitchRecord,
    check_rotations,
    check_writes,
    users_in_order,
    verdict,
)
from secretswitch.demo_app.timeline import bucket_rates, user_spans
from secretswitch.embedded_stack.errors import LocalStackError


def _config(*argv: str, environ: dict[str, str] | None = None) -> DemoConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)), environ or {})


def test_defaults_are_the_documented_schedule() -> None:
    config = _config()
    assert (config.rotations, config.rotation_days, config.refresh_days, config.day_seconds, config.workers) == (
        4,
        7.0,
        6.0,
        1.0,
        8,
    )
    assert not config.external
    assert config.max_days == 4 * 7 + 6 + 1


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--rotations", "0"], "--rotations"),
        (["--rotation-days", "-1"], "--rotation-days"),
        (["--refresh-days", "0"], "--refresh-days"),
        (["--day-seconds", "0"], "--day-seconds"),
        (["--day-seconds", "nan"], "--day-seconds"),
        (["--workers", "0"], "--workers"),
        (["--rate", "-5"], "--rate"),
        (["--refresh-days", "7"], "--refresh-days"),
        (["--refresh-days", "8"], "--refresh-days"),
        (["--day-seconds", "0.01"], "--day-seconds"),
        (["--secretsmanager-endpoint", "localhost:4566"], "--secretsmanager-endpoint"),
    ],
)
def test_bad_input_names_the_flag_to_change(argv: list[str], flag: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        _config(*argv)
    message = str(caught.value)
    assert flag in message
    assert "\n" not in message


def test_layout_and_database_options() -> None:
    assert (_config().layout, _config().database) == ("stack", None)
    assert _config("--aws-layout").layout == "aws"
    assert _config("--secret-id", "s", "--database", "orders").database == "orders"
    with pytest.raises(ConfigurationError, match="--aws-layout"):
        _config("--aws-layout", "--secret-id", "s")
    with pytest.raises(ConfigurationError, match="--database"):
        _config("--database", "my.db")


def test_refresh_not_shorter_than_rotation_suggests_a_value() -> None:
    with pytest.raises(ConfigurationError, match="try --refresh-days 6"):
        _config("--refresh-days", "7", "--rotation-days", "7")


def test_out_must_not_be_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "x"
    afile.write_text("")
    with pytest.raises(ConfigurationError, match="--out"):
        _config("--out", str(afile))


def test_secret_id_from_environment_selects_external_mode() -> None:
    config = _config(
        environ={
            "SECRETSWITCH_SECRET_ID": "prod/app",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://127.0.0.1:4566",
            "MONGODB_URI": "mongodb://reader@db/",
        }
    )
    assert config.external
    assert config.secret_id == "prod/app"
    assert config.endpoint == "http://127.0.0.1:4566"
    assert config.verify_uri == "mongodb://reader@db/"


def test_a_stray_endpoint_variable_alone_keeps_the_embedded_stack() -> None:
    config = _config(environ={"AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://127.0.0.1:4566"})
    assert not config.external
    assert config.verify_uri is None
    assert config.mongodb_uri is None


def test_mongodb_uri_alone_replaces_secantusdb_and_stays_out_of_repr() -> None:
    uri = "mongodb://admin:s3cret-pw@db.example.com:27017/?authSource=admin"
    config = _config(environ={"MONGODB_URI": uri})
    assert not config.external
    assert config.mongodb_uri == uri
    assert config.verify_uri is None
    assert "s3cret-pw" not in repr(config)


def test_mongodb_uri_with_a_secret_id_is_the_write_checker() -> None:
    uri = "mongodb://reader:pw@db.example.com/"
    config = _config(environ={"MONGODB_URI": uri, "SECRETSWITCH_SECRET_ID": "mongodb-app"})
    assert config.external
    assert config.verify_uri == uri
    assert config.mongodb_uri is None


def test_a_mongodb_uri_that_is_not_a_connection_string_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="mongodb:// or mongodb\\+srv://"):
        _config(environ={"MONGODB_URI": "db.example.com:27017"})


def test_check_writes_finds_lost_and_duplicated() -> None:
    acked = [(0, 1), (0, 2), (1, 1), (1, 2)]
    found = [(0, 1), (0, 2), (0, 2), (1, 1), (2, 9)]
    check = check_writes(acked, found)
    assert check.acknowledged == 4
    assert check.lost == 1
    assert check.lost_keys == ((1, 2),)
    assert check.duplicated == 1
    assert check.unacknowledged_present == 1


def test_check_writes_all_present_once() -> None:
    check = check_writes([(0, 1), (0, 2)], [(0, 2), (0, 1)])
    assert (check.lost, check.duplicated) == (0, 0)


def _rot(number: int, day: float, version: str, user: str, *, manual: bool = False) -> RotationRecord:
    return RotationRecord(number=number, day=day, version=version, user=user, manual=manual)


def test_every_rotation_followed_by_a_switch() -> None:
    rotations = [_rot(1, 7.5, "v1", "app_clone"), _rot(2, 14.5, "v2", "app")]
    switches = [SwitchRecord(12.0, "v1", "app_clone"), SwitchRecord(18.0, "v2", "app")]
    assert check_rotations(rotations, switches, refresh_days=6, end_day=21) == []


def test_a_rotation_without_a_switch_is_reported() -> None:
    rotations = [_rot(1, 7.5, "v1", "app_clone"), _rot(2, 14.5, "v2", "app")]
    switches = [SwitchRecord(12.0, "v1", "app_clone")]
    problems = check_rotations(rotations, switches, refresh_days=6, end_day=25)
    assert len(problems) == 1
    assert "rotation 2" in problems[0]


def test_a_switch_before_the_rotation_does_not_count() -> None:
    rotations = [_rot(1, 7.5, "v1", "app_clone")]
    assert check_rotations(rotations, [SwitchRecord(7.0, "v1", "app_clone")], refresh_days=6, end_day=20)


def test_a_superseded_rotation_is_followed_by_a_later_switch() -> None:
    rotations = [_rot(1, 7.5, "v1", "app_clone"), _rot(2, 9.5, "v2", "app", manual=True)]
    switches = [SwitchRecord(10.0, "v2", "app")]
    assert check_rotations(rotations, switches, refresh_days=6, end_day=20) == []


def test_an_unfinished_deadline_is_not_judged() -> None:
    rotations = [_rot(1, 7.5, "v1", "app_clone")]
    assert check_rotations(rotations, [], refresh_days=6, end_day=10) == []


def test_users_in_order_ignores_same_user_switches() -> None:
    switches = [SwitchRecord(1, "v1", "app_clone"), SwitchRecord(2, "v2", "app_clone"), SwitchRecord(3, "v3", "app")]
    assert users_in_order("app", switches) == ["app", "app_clone", "app"]


def test_verdict_lists_every_reason() -> None:
    assert verdict({"ops_ok": 10, "ops_failed": 0, "writes_lost": 0, "writes_verified": True}) == []
    reasons = verdict(
        {
            "ops_ok": 10,
            "ops_failed": 3,
            "writes_lost": 2,
            "writes_duplicated": 1,
            "writes_verified": True,
            "rotation_problems": ["rotation 2 ..."],
        }
    )
    assert len(reasons) == 4
    assert "3 operations failed" in reasons[0]
    assert verdict({"ops_ok": 0, "writes_verified": True}) == ["no operation succeeded"]
    assert any("could not be checked" in r for r in verdict({"ops_ok": 1, "writes_verified": False}))


def test_event_lines_name_users_and_versions_and_never_a_password() -> None:
    event = DemoEvent(
        "client_switched",
        day=12.25,
        t=3.5,
        wall="2024-01-01T00:00:00Z",
        fields={"from_user": "app", "to_user": "app_clone", "from_version": "aaaaaaaa-1", "to_version": "bbbbbbbb-2"},
    )
    line = format_event(event)
    assert "day  12.25" in line
    assert "app -> app_clone" in line
    assert "aaaaaaaa -> bbbbbbbb" in line
    assert "\n" not in line
    record = json.loads(event.to_json())
    assert record["kind"] == "client_switched"
    assert record["day"] == 12.25
    assert record["to_user"] == "app_clone"


@pytest.mark.parametrize(
    ("kind", "fields", "expected"),
    [
        ("rotation_started", {"number": 2, "manual": True, "from_user": "app"}, "manual, out of schedule"),
        ("rotation_step", {"number": 1, "step": "setSecret", "token": "t" * 36, "ok": True}, "setSecret"),
        ("rotation_step", {"number": 1, "step": "testSecret", "ok": False, "message": "boom"}, "FAILED: boom"),
        ("client_auth_recovered", {"to_user": "app"}, "RECOVERED"),
        ("verified", {"writes_lost": 0}, "writes_lost=0"),
    ],
)
def test_event_lines(kind: str, fields: dict[str, object], expected: str) -> None:
    assert expected in format_event(DemoEvent(kind, day=1.0, t=1.0, wall="", fields=fields))


def test_event_log_writes_json_lines(tmp_path: Path) -> None:
    now = [0.0]
    log = EventLog(lambda: now[0] / 2, started=0.0, monotonic=lambda: now[0])
    log.emit("started", run="r1")
    now[0] = 3.0
    path = tmp_path / "events.jsonl"
    log.open_file(path)
    log.emit("rotation_started", number=1)
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["kind"] for line in lines] == ["started", "rotation_started"]
    assert lines[1]["day"] == 1.5
    assert lines[1]["t"] == 3.0


def test_bucket_rates_are_per_real_second_and_by_user() -> None:
    # day_seconds 0.5, buckets of 1 day = 0.5 s: 2 ops in a bucket = 4 ops/s.
    rates = bucket_rates(
        [0.1, 0.2, 0.6, 0.7, 0.8],
        ["app", "app", "app_clone", "app_clone", "-"],
        [True, True, True, True, False],
        day_seconds=0.5,
        end_day=2.0,
        bucket_days=1.0,
    )
    assert rates.starts == (0.0, 1.0)
    assert rates.ok["app"] == (4.0, 0.0)
    assert rates.ok["app_clone"] == (0.0, 4.0)
    assert rates.failed == (0.0, 2.0)


def test_user_spans() -> None:
    assert user_spans("app", [(7.0, "app_clone"), (14.0, "app")], 20.0) == [
        (0.0, 7.0, "app"),
        (7.0, 14.0, "app_clone"),
        (14.0, 20.0, "app"),
    ]


def test_async_flag_selects_the_asyncio_client() -> None:
    assert _config("--async").async_client is True
    assert _config().async_client is False


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, LocalStackError])
def test_ctrl_c_while_the_stack_starts_leaves_no_empty_results_folder(
    interruption: type[BaseException], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing was collected yet: the folder the run made goes again; a folder given with --out stays."""

    def interrupted(config: DemoConfig, events: EventLog) -> None:
        raise interruption("stopped while the stack started")

    monkeypatch.setattr(runner, "embedded_infrastructure", interrupted)
    made = tmp_path / "results"
    with pytest.raises(interruption):
        runner.run_demo(_config("--out", str(made), "--plain"), stdout=io.StringIO())
    assert not made.exists()
    given = tmp_path / "mine"
    given.mkdir()
    with pytest.raises(interruption):
        runner.run_demo(_config("--out", str(given), "--plain"), stdout=io.StringIO())
    assert given.is_dir()


def test_the_rotation_guard_option_scales_the_gap_to_the_demo_days() -> None:
    config = _config("--rotation-guard", "--day-seconds", "2")
    assert config.rotation_guard
    assert config.rotation_guard_days == 3.5  # half of --rotation-days 7
    assert config.rotation_guard_seconds == 7.0
    assert not _config().rotation_guard
    with pytest.raises(ConfigurationError, match="embedded stack"):
        _config("--rotation-guard", "--secret-id", "prod/app")
