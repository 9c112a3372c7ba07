"""The leak sequence: which rotations take a leaked password out of service soonest."""

from __future__ import annotations

import pytest

from secretswitch.client.errors import ConfigurationError
from secretswitch.rotation_tools.emergency import leak_sequence


@pytest.mark.parametrize(
    ("leaked", "expected"),
    [
        ("app_clone", ["ONE emergency rotation"]),  # AWSPREVIOUS: the next rotation changes it
        ("app", ["TWO emergency rotations"]),  # AWSCURRENT: the first rotation changes the other user
        (None, ["ONE emergency rotation", "TWO emergency rotations"]),  # unknown: both cases
    ],
)
def test_leak_sequence(leaked: str | None, expected: list[str]) -> None:
    lines = leak_sequence("app", "app_clone", leaked)
    assert len(lines) == len(expected)
    for line, words in zip(lines, expected, strict=True):
        assert words in line
        assert "\n" not in line


def test_a_leaked_user_outside_the_pair_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="neither the current user 'app' nor its partner 'app_clone'"):
        leak_sequence("app", "app_clone", "dba")
