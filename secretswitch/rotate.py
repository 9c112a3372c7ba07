"""``secretswitch rotate``, ``status`` and ``doctor``: rotations from the command line.

The Secrets Manager endpoint is resolved as the rotation function does it:
``SECRETS_MANAGER_ENDPOINT``, else boto3's own (``AWS_ENDPOINT_URL_SECRETS_MANAGER``
as printed by ``secretswitch local``, else AWS).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["register"]


def register(subparsers: Any) -> None:
    rotate = subparsers.add_parser(
        "rotate",
        help="rotate a secret now (locally: run the four steps; on AWS: RotateSecret)",
        description=(
            "Start a rotation the way RotateSecret does: refuse while a previous rotation is in progress, make a "
            "token, run createSecret, setSecret, testSecret and finishSecret, and stop at the first failing step. "
            "Against the local stack the steps run at once; against AWS, AWS invokes the deployed function."
        ),
    )
    rotate.add_argument("secret_id", metavar="SECRET_ID")
    rotate.add_argument(
        "--lambda-arn",
        default=os.environ.get("SECRETSWITCH_ROTATION_LAMBDA_ARN") or None,
        help="rotation function ARN (default: $SECRETSWITCH_ROTATION_LAMBDA_ARN, else the one on the secret)",
    )
    schedule = rotate.add_mutually_exclusive_group()
    schedule.add_argument(
        "--days",
        type=int,
        default=None,
        help="set the schedule to every N days (default: keep the secret's schedule; 7 days if it has none)",
    )
    schedule.add_argument("--schedule", help="set a rate()/cron() ScheduleExpression instead of --days")
    stuck = rotate.add_mutually_exclusive_group()
    stuck.add_argument(
        "--resume", action="store_true", help="re-run the four steps of the rotation in progress (safe to repeat)"
    )
    stuck.add_argument(
        "--cancel",
        action="store_true",
        help="drop the stuck AWSPENDING version if it never reached the database (refused otherwise)",
    )
    rotate.set_defaults(handler=run_rotate)

    status = subparsers.add_parser(
        "status", help="versions, stages, users and the rotation schedule of a secret (no passwords)"
    )
    status.add_argument("secret_id", metavar="SECRET_ID")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=run_status)

    doctor = subparsers.add_parser(
        "doctor",
        help="find a stuck rotation, credentials that fail and role drift; --fix repairs what is safe",
    )
    doctor.add_argument("secret_id", metavar="SECRET_ID")
    doctor.add_argument(
        "--fix",
        action="store_true",
        help="resume (or cancel) a stuck rotation, revoke a partner's extra roles, move AWSCURRENT back to a "
        "working AWSPREVIOUS; never writes a password or grants a role",
    )
    doctor.set_defaults(handler=run_doctor)


def _client() -> SecretsManagerClient:
    from rotation_lambda.lambda_function import default_secretsmanager_client

    return default_secretsmanager_client()


def run_rotate(args: argparse.Namespace) -> int:
    from rotation_tools.rotate import cancel_rotation, rotate_secret

    if args.cancel:
        cancelled = cancel_rotation(_client(), args.secret_id)
        print(f"{cancelled.secret_id}: token {cancelled.token}: {cancelled.message}")
        return 0
    outcome = rotate_secret(
        _client(),
        args.secret_id,
        rotation_lambda_arn=args.lambda_arn,
        rotation_days=args.days,
        resume=args.resume,
        schedule_expression=args.schedule,
    )
    print(f"{outcome.secret_id}: token {outcome.token}: {outcome.message}")
    return 0 if outcome.completed or outcome.asynchronous else 1


def _when(value: Any) -> str:
    return (
        value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else ("-" if value is None else str(value))
    )


def run_status(args: argparse.Namespace) -> int:
    from rotation_tools.status import secret_status

    status = secret_status(_client(), args.secret_id)
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
    print(f"{'version':38} {'stages':28} {'user':16} created")
    for version in status.versions:
        user = version.username or f"({version.problem})"
        print(f"{version.version_id:38} {','.join(version.stages):28} {user:16} {_when(version.created)}")
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    from rotation_tools.doctor import diagnose

    findings = diagnose(_client(), args.secret_id, fix=args.fix)
    if not findings:
        print(f"{args.secret_id}: healthy (no rotation stuck, AWSCURRENT logs in, the users' roles agree)")
        return 0
    for finding in findings:
        mark = "FIXED" if finding.fixed else ("PROBLEM" if not args.fix else "NOT FIXED")
        print(f"{mark:9} {finding.kind}: {finding.message}")
    return 0 if all(f.fixed for f in findings) else 1
