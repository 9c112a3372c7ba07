"""``secretswitch doctor``: find a stuck rotation, credentials that fail and role drift; ``--fix`` repairs what is safe.

Arguments and the Secrets Manager client as ``rotate`` has them (:mod:`secretswitch.rotate`).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from secretswitch import rotate
from secretswitch.rotate import check_common, region_argument, secret_id_argument

__all__ = ["register"]


def register(subparsers: Any) -> None:
    doctor = subparsers.add_parser(
        "doctor",
        help="find a stuck rotation, credentials that fail and role drift; --fix repairs what is safe",
        description=(
            "Check a secret end to end and report every finding: rotation turned off, an AWSCURRENT that cannot be "
            "parsed, a rotation stuck in progress, AWSCURRENT credentials that MongoDB refuses (or a database that "
            "cannot be reached), and roles that differ between the two users. With --fix, drop a pending version "
            "that never reached the database (or resume one that did), revoke roles the passive user holds beyond "
            "the current user's, and move AWSCURRENT back to the newest version that parses and logs in when it is "
            "the current user's or its partner's; it never writes a password nor grants a role. "
            "Exit 0 when healthy (or everything was fixed), 1 otherwise."
        ),
    )
    secret_id_argument(doctor)
    doctor.add_argument(
        "--fix",
        action="store_true",
        help="drop an empty pending version (or resume one that reached the database), revoke a partner's extra "
        "roles, move AWSCURRENT back to the newest working version of the pair; never writes a password or grants "
        "a role",
    )
    region_argument(doctor)
    doctor.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    from secretswitch.rotation_tools.doctor import diagnose

    check_common(args, os.environ)
    findings = diagnose(rotate._client(args.region), args.secret_id, fix=args.fix)
    if not findings:
        print(f"{args.secret_id}: healthy (rotation on, no rotation stuck, AWSCURRENT logs in, the users' roles agree)")
        return 0
    for finding in findings:
        mark = "FIXED" if finding.fixed else ("PROBLEM" if not args.fix else "NOT FIXED")
        print(f"{mark:9} {finding.kind}: {finding.message}")
    return 0 if all(f.fixed for f in findings) else 1
