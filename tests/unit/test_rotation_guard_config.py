"""The rotation guard's inputs: MIN_ROTATION_GAP, the override tag and the records it reads (no values)."""

from __future__ import annotations

import datetime as dt

import pytest

from secretswitch.client.errors import ConfigurationError
from secretswitch.client.policy import DEFAULT_MIN_ROTATION_GAP, RotationRecord
from secretswitch.client.secretsmanager import RotationSchedule
from secretswitch.rotation_lambda.rotation_guard import (
    MIN_ROTATION_GAP_ENV,
    OVERRIDE_TAG,
    format_override,
    min_rotation_gap,
    override_expiry,
    rotation_record,
)
from secretswitch.rotation_lambda.secretsmanager import SecretMetadata

T0 = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 0.0), ("", 0.0), ("0", 0.0), ("3600", 3600.0), (" 1.5 ", 1.5), ("default", DEFAULT_MIN_ROTATION_GAP)],
)
def test_min_rotation_gap(raw: str | None, expected: float) -> None:
    assert min_rotation_gap({} if raw is None else {MIN_ROTATION_GAP_ENV: raw}) == expected


@pytest.mark.parametrize("raw", ["-1", "5 days", "inf", "nan"])
def test_a_malformed_min_rotation_gap_is_refused(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="MIN_ROTATION_GAP must be a number of seconds"):
        min_rotation_gap({MIN_ROTATION_GAP_ENV: raw})


@pytest.mark.parametrize(
    ("tags", "expiry", "problem"),
    [
        ({}, None, False),
        ({OVERRIDE_TAG: "2026-12-02T12:30:00Z"}, T0.timestamp() + 1800, False),
        ({OVERRIDE_TAG: "2026-12-02T13:30:00+01:00"}, T0.timestamp() + 1800, False),
        ({OVERRIDE_TAG: "2026-12-02T12:30:00"}, None, True),  # no time zone: ambiguous
        ({OVERRIDE_TAG: "soon"}, None, True),
        ({"other": "2026-12-02T12:30:00Z"}, None, False),
    ],
)
def test_override_expiry(tags: dict[str, str], expiry: float | None, problem: bool) -> None:
    found, why = override_expiry(tags)
    assert found == expiry
    assert (why is not None) is problem


def test_format_override_round_trips() -> None:
    assert format_override(T0.timestamp()) == "2026-12-02T12:00:00Z"
    assert override_expiry({OVERRIDE_TAG: format_override(T0.timestamp())})[0] == T0.timestamp()


def test_rotation_record_reads_dates_and_labels_only() -> None:
    metadata = SecretMetadata(
        arn="arn",
        name="mongodb-app",
        rotation_enabled=True,
        versions={"v1": ("AWSPREVIOUS",), "v2": ("AWSCURRENT",), "v3": ("AWSPENDING",)},
        schedule=RotationSchedule(True, last_rotated=T0),
    )
    created = {"v0": T0 - dt.timedelta(days=30), "v1": T0 - dt.timedelta(days=7), "v2": T0, "v3": T0}
    assert rotation_record(metadata, created, "v3") == RotationRecord(
        last_rotated=T0.timestamp(),
        current_created=T0.timestamp(),
        other_versions=2,  # v0 (deprecated) and v1; not the current one, not the rotation's own
        rotation_started=T0.timestamp(),
    )
