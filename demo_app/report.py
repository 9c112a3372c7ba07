"""The demo's verdict: pure functions over what was recorded.

* :func:`check_writes`: every acknowledged write present exactly once;
* :func:`check_rotations`: every rotation picked up by the client;
* :func:`users_in_order`: the users that served the application, in order;
* :func:`verdict`: the reasons the run failed (empty when it passed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RotationRecord",
    "SwitchRecord",
    "WriteCheck",
    "check_rotations",
    "check_writes",
    "users_in_order",
    "verdict",
]


@dataclass(frozen=True)
class WriteCheck:
    """The final check of the writes of one side.

    Attributes:
        acknowledged: inserts the driver acknowledged.
        lost: acknowledged inserts that are not in the database.
        duplicated: acknowledged inserts that are in the database more than once.
        unacknowledged_present: inserts that raised but were applied anyway (not an error:
            the client cannot know; reported for completeness).
        lost_keys: up to ten lost ``(worker, seq)`` keys, for the report.
    """

    acknowledged: int
    lost: int
    duplicated: int
    unacknowledged_present: int
    lost_keys: tuple[tuple[int, int], ...] = ()


def check_writes(acknowledged: Iterable[tuple[int, int]], found: Iterable[tuple[int, int]]) -> WriteCheck:
    """Compare the acknowledged ``(worker, seq)`` keys with the keys found in the database."""
    acked = set(acknowledged)
    found_counts = Counter(found)
    lost = sorted(key for key in acked if found_counts[key] == 0)
    duplicated = sum(1 for key in acked if found_counts[key] > 1)
    extra = sum(1 for key in found_counts if key not in acked)
    return WriteCheck(
        acknowledged=len(acked),
        lost=len(lost),
        duplicated=duplicated,
        unacknowledged_present=extra,
        lost_keys=tuple(lost[:10]),
    )


@dataclass(frozen=True)
class RotationRecord:
    """A finished rotation: its number, the demo day it finished, the version and user it made AWSCURRENT."""

    number: int
    day: float
    version: str
    user: str
    manual: bool = False


@dataclass(frozen=True)
class SwitchRecord:
    """A client switch: the demo day, the version and user it switched to."""

    day: float
    version: str
    user: str


def check_rotations(
    rotations: Sequence[RotationRecord], switches: Sequence[SwitchRecord], *, refresh_days: float, end_day: float
) -> list[str]:
    """Problems with how the client followed the rotations (empty: it followed every one).

    A rotation is followed when the client switched to its version afterwards.
    A rotation superseded by another one before the client's refresh deadline
    (as an out-of-schedule rotation does) is followed when the client switched
    to a later version. A rotation whose refresh deadline is after the end of
    the run (an interrupted run) is not judged.
    """
    problems: list[str] = []
    ordered = sorted(rotations, key=lambda r: r.day)
    for index, rotation in enumerate(ordered):
        later = ordered[index + 1 :]
        switched_to_it = any(s.version == rotation.version and s.day >= rotation.day for s in switches)
        if switched_to_it:
            continue
        deadline = rotation.day + refresh_days
        superseded = [r for r in later if r.day <= deadline]
        later_versions = {r.version for r in later}
        if superseded and any(s.version in later_versions and s.day >= rotation.day for s in switches):
            continue
        if deadline > end_day:
            continue
        problems.append(
            f"rotation {rotation.number} (day {rotation.day:.1f}, {rotation.user}) was not followed by a client "
            f"switch within {refresh_days:g} days"
        )
    return problems


def users_in_order(initial_user: str | None, switches: Iterable[SwitchRecord]) -> list[str]:
    """The users that served the application, in order (a same-user switch adds nothing)."""
    users: list[str] = [initial_user] if initial_user else []
    for switch in switches:
        if not users or users[-1] != switch.user:
            users.append(switch.user)
    return users


def verdict(summary: Mapping[str, Any]) -> list[str]:
    """Why the run failed, one reason per line; empty when it passed."""
    reasons: list[str] = []
    if summary.get("interrupted"):
        reasons.append("interrupted before the end (Ctrl-C)")
    if summary.get("ops_failed", 0):
        reasons.append(f"{summary['ops_failed']} operations failed through the rotating client")
    if summary.get("writes_lost", 0):
        reasons.append(f"{summary['writes_lost']} acknowledged writes are missing")
    if summary.get("writes_duplicated", 0):
        reasons.append(f"{summary['writes_duplicated']} acknowledged writes are in the database more than once")
    if summary.get("writes_verified") is False:
        reasons.append("the writes could not be checked: " + str(summary.get("writes_check_error")))
    if summary.get("rotation_failures"):
        reasons.extend(str(r) for r in summary["rotation_failures"])
    reasons.extend(str(p) for p in summary.get("rotation_problems", []))
    if summary.get("ops_ok", 0) == 0 and not summary.get("interrupted"):
        reasons.append("no operation succeeded")
    return reasons
