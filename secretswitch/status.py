"""``secretswitch status``: a secret's versions, stages, users and schedule, and the rotation guard's view.

Never shows a password. Arguments and the Secrets Manager client as ``rotate`` has them
(:mod:`secretswitch.rotate`).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from secretswitch import rotate
from secretswitch.rotate import check_common, min_rotation_gap_of, region_argument, secret_id_argument

__all__ = ["register"]


def register(subparsers: Any) -> None:
    status = subparsers.add_parser(
        "status",
        help="versions, stages, users and the rotation schedule of a secret (no passwords)",
        description=(
            "Show a secret's rotation schedule and function, its last and next rotation, a rotation in progress, "
            "and every version with its staging labels, user name and creation time. Never shows a password."
        ),
    )
    secret_id_argument(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--min-rotation-gap",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the rotation guard's gap, as the function is configured (default: $MIN_ROTATION_GAP, "
        "else the default 475200, 5.5 days; 0: off)",
    )
    region_argument(status)
    status.set_defaults(handler=run_status)


def run_status(args: argparse.Namespace) -> int:
    from secretswitch.rotation_tools.status import secret_status

    check_common(args, os.environ)
    gap, gap_source = min_rotation_gap_of(args)
    status = secret_status(rotate._client(args.region), args.secret_id, min_rotation_gap=gap)
    if args.json:
        document = {
            "secret_id": status.secret_id,
            "arn": status.arn,
            "rotation_enabled": status.rotation_enabled,
            "rotation_days": status.rotation_days,
            "schedule_expression": status.schedule_expression,
            "rotation_lambda_arn": status.rotation_lambda_arn,
            "last_rotated": _when(status.last_rotated),
            "next_rotation": _when(status.next_rotation),
            "in_progress": status.in_progress,
            "rotation_guard": None
            if status.guard is None
            else {
                "min_gap_seconds": status.guard.min_gap,
                "last_switch": _when(status.guard.last_switch),
                "safe_from": _when(status.guard.safe_at),
                "allowed_now": status.guard.allowed_now,
                "schedule_keeps_gap": status.guard.schedule_keeps_gap,
                "override_until": _when(status.guard.override_until),
            },
            "versions": [
                {
                    "version_id": v.version_id,
                    "stages": list(v.stages),
                    "username": v.username,
                    "created": _when(v.created),
                    "problem": v.problem,
                }
                for v in status.versions
            ],
        }
        print(json.dumps(document, indent=2))
        return 0
    schedule = status.schedule_expression or (f"every {status.rotation_days} days" if status.rotation_days else "-")
    print(f"secret    {status.secret_id} ({status.arn})")
    print(f"rotation  {'enabled' if status.rotation_enabled else 'not enabled'}, {schedule}")
    print(f"function  {status.rotation_lambda_arn or '-'}")
    print(f"last      {_when(status.last_rotated)}")
    print(f"next      {_when(status.next_rotation)}")
    if status.in_progress:
        print(f"IN PROGRESS: version {status.in_progress} is AWSPENDING (see `secretswitch doctor`)")
    guard = status.guard
    if guard is not None and guard.min_gap <= 0:
        print(f"guard     the rotation guard is off ({gap_source})")
    elif guard is not None:
        when = "any time (no rotation history)" if guard.safe_at is None else f"safe from {_when(guard.safe_at)}"
        verdict = "now" if guard.allowed_now else "NOT now"
        print(f"guard     rotation guard, gap {_span(guard.min_gap)} ({gap_source}): next rotation {when}: {verdict}")
        if guard.schedule_keeps_gap is not None and guard.shortest_gap is not None:
            keeps = (
                "the schedule keeps the gap"
                if guard.schedule_keeps_gap
                else "the schedule does NOT keep the gap: scheduled rotations may be refused"
            )
            print(f"          {_span(guard.shortest_gap)} at least between two scheduled rotations: {keeps}")
        if guard.override_until is not None:
            print(f"          emergency override tag set, until {_when(guard.override_until)}")
    print(f"{'version':38} {'stages':28} {'user':16} created")
    for version in status.versions:
        user = version.username or f"({version.problem})"
        print(f"{version.version_id:38} {','.join(version.stages):28} {user:16} {_when(version.created)}")
    return 0


def _when(value: Any) -> str:
    return (
        value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else ("-" if value is None else str(value))
    )


def _span(seconds: float) -> str:
    return f"{seconds / 86400:.2f} d" if seconds >= 86400 else f"{seconds / 3600:.1f} h"
