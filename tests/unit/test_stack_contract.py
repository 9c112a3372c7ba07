"""AWS's RotateSecret contract as the embedded Secrets Manager applies it: pure rules, table-tested."""

from __future__ import annotations

import datetime as dt

import pytest

from secretswitch.client.secretsmanager import RotationSchedule
from secretswitch.embedded_stack import contract
from secretswitch.embedded_stack.contract import (
    RequestKind,
    classify_request,
    next_rotation,
    parse_rotation_rules,
    parse_schedule_expression,
)

NEW = "n" * 36


def _on(**fields: object) -> RotationSchedule:
    return RotationSchedule(True, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ({"AutomaticallyAfterDays": 7}, _on(rotation_days=7, interval_hours=168)),
        ({"AutomaticallyAfterDays": 1000}, _on(rotation_days=1000, interval_hours=24000)),
        (
            {"ScheduleExpression": "rate(7 days)"},
            _on(rotation_days=7, schedule_expression="rate(7 days)", interval_hours=168),
        ),
        (
            {"ScheduleExpression": "rate(1 day)"},
            _on(rotation_days=1, schedule_expression="rate(1 day)", interval_hours=24),
        ),
        (
            {"ScheduleExpression": "rate(10 days)", "Duration": "3h"},
            RotationSchedule(
                True, rotation_days=10, schedule_expression="rate(10 days)", window_hours=3, interval_hours=240
            ),
        ),
        (
            {"ScheduleExpression": "rate(12 hours)", "Duration": "2h"},
            _on(schedule_expression="rate(12 hours)", window_hours=2, interval_hours=12),
        ),
        (
            {"ScheduleExpression": "cron(0 16 ? * SAT *)"},
            _on(schedule_expression="cron(0 16 ? * SAT *)"),
        ),
        (
            {"AutomaticallyAfterDays": 30, "Duration": "24h"},
            _on(rotation_days=30, window_hours=24, interval_hours=720),
        ),
    ],
)
def test_valid_rotation_rules_are_read_as_describe_secret_reports_them(
    rules: dict[str, object], expected: RotationSchedule
) -> None:
    assert parse_rotation_rules(rules) == expected


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"AutomaticallyAfterDays": 7, "ScheduleExpression": "rate(7 days)"}, "not both"),
        ({}, "give AutomaticallyAfterDays"),
        ({"AutomaticallyAfterDays": 0}, "1 to 1000"),
        ({"AutomaticallyAfterDays": 1001}, "1 to 1000"),
        ({"AutomaticallyAfterDays": True}, "1 to 1000"),
        ({"AutomaticallyAfterDays": "7"}, "1 to 1000"),
        ({"ScheduleExpression": "rate(2 hours)"}, "at most every 4 hours"),
        ({"ScheduleExpression": "rate(0 days)"}, "1 to 1000"),
        ({"ScheduleExpression": "rate(7 weeks)"}, "neither rate"),
        ({"ScheduleExpression": "weekly"}, "neither rate"),
        ({"ScheduleExpression": "cron(0 16 * *)"}, "6 fields"),
        ({"ScheduleExpression": ""}, "empty"),
        ({"ScheduleExpression": "rate(7 days)", "Duration": "25h"}, "1h to 24h"),
        ({"ScheduleExpression": "rate(7 days)", "Duration": "3"}, "1h to 24h"),
        ({"ScheduleExpression": "rate(7 days)", "Duration": "0h"}, "1h to 24h"),
        ({"ScheduleExpression": "rate(4 hours)", "Duration": "4h"}, "shorter than the rotation interval"),
    ],
)
def test_invalid_rotation_rules_are_refused_with_the_rule_they_break(rules: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rotation_rules(rules)


def test_describe_secret_rules_show_what_was_set() -> None:
    assert parse_schedule_expression("rate(7 days)").rules() == {
        "AutomaticallyAfterDays": 7,
        "ScheduleExpression": "rate(7 days)",
    }
    assert parse_rotation_rules({"AutomaticallyAfterDays": 3}).rules() == {"AutomaticallyAfterDays": 3}
    assert parse_schedule_expression("cron(0 4 ? * MON *)").rules() == {"ScheduleExpression": "cron(0 4 ? * MON *)"}


def test_next_rotation_opens_at_midnight_utc_for_days_and_after_the_interval_for_hours() -> None:
    at = dt.datetime(2024, 3, 1, 17, 30, tzinfo=dt.UTC)
    assert next_rotation(parse_schedule_expression("rate(7 days)"), at) == dt.datetime(2024, 3, 8, tzinfo=dt.UTC)
    assert next_rotation(parse_schedule_expression("rate(6 hours)"), at) == dt.datetime(
        2024, 3, 1, 23, 30, tzinfo=dt.UTC
    )
    assert next_rotation(parse_schedule_expression("cron(0 4 ? * MON *)"), at) is None


CURRENT = {"v1": ("AWSCURRENT",)}


@pytest.mark.parametrize(
    ("versions", "token", "kind", "run_token"),
    [
        # Nothing in progress: a new rotation, with the caller's token or a new one.
        (CURRENT, None, RequestKind.NEW, NEW),
        (CURRENT, "t" * 36, RequestKind.NEW, "t" * 36),
        # AWSPENDING on the AWSCURRENT version: finished (AWS's rule), so a new rotation may start.
        ({"v1": ("AWSCURRENT", "AWSPENDING")}, None, RequestKind.NEW, NEW),
        ({"v0": ("AWSPREVIOUS",), "v1": ("AWSPENDING", "AWSCURRENT")}, None, RequestKind.NEW, NEW),
        # The same token as the rotation in progress: a retry of it.
        ({"v1": ("AWSCURRENT",), "p": ("AWSPENDING",)}, "p", RequestKind.RETRY, "p"),
        # The token of a finished rotation: nothing to do.
        ({"v0": ("AWSPREVIOUS",), "v1": ("AWSCURRENT",)}, "v1", RequestKind.ALREADY_DONE, "v1"),
    ],
)
def test_a_request_is_classified_from_the_versions_and_its_token(
    versions: dict[str, tuple[str, ...]], token: str | None, kind: RequestKind, run_token: str
) -> None:
    request = classify_request("mongodb-app", versions, token, NEW)
    assert request.kind is kind
    assert request.token == run_token


def test_a_rotation_in_progress_refuses_a_new_one_and_says_how_to_resume_it() -> None:
    versions = {"v1": ("AWSCURRENT",), "pending-version": ("AWSPENDING",)}
    for token in (None, "another-token-" + "x" * 20):
        request = classify_request("mongodb-app", versions, token, NEW)
        assert request.kind is RequestKind.REFUSED
        assert "version pending-version is AWSPENDING" in request.reason
        assert "ClientRequestToken=pending-version" in request.reason
        assert "`secretswitch rotate mongodb-app --resume`" in request.reason


def test_a_token_naming_an_old_version_is_refused() -> None:
    request = classify_request("s", {"v0": ("AWSPREVIOUS",), "v1": ("AWSCURRENT",)}, "v0", NEW)
    assert request.kind is RequestKind.REFUSED
    assert "already exists" in request.reason


def test_public_names_are_exported() -> None:
    public = {name for name in vars(contract) if not name.startswith("_") and callable(getattr(contract, name))}
    public -= {"annotations", "dataclass", "Any", "Mapping", "Sequence"}
    assert public <= set(contract.__all__)
