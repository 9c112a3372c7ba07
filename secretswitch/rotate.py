"""``secretswitch rotate``, ``status`` and ``doctor``: rotations from the command line.

The Secrets Manager endpoint is resolved as the rotation function does it:
``SECRETS_MANAGER_ENDPOINT``, else boto3's own (``AWS_ENDPOINT_URL_SECRETS_MANAGER``
as printed by ``secretswitch local``, else AWS); the region is ``--region``, else
``$AWS_REGION``, else boto3's (``$AWS_DEFAULT_REGION``, the profile). The secret id
defaults to ``$SECRETSWITCH_SECRET_ID``, which ``secretswitch local`` exports.

Every argument is checked before the first call to AWS (:func:`check_rotate_args`):
a bad ``--schedule``, ``--days`` or ``--lambda-arn`` (or ``$SECRETSWITCH_ROTATION_LAMBDA_ARN``)
is a one-line error and the secret is untouched.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from secretswitch.client.errors import ConfigurationError
from secretswitch.client.secretsmanager import REGION_PATTERN

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = ["LAMBDA_ARN_ENV", "SECRET_ID_ENV", "check_rotate_args", "register"]

LAMBDA_ARN_ENV = "SECRETSWITCH_ROTATION_LAMBDA_ARN"
SECRET_ID_ENV = "SECRETSWITCH_SECRET_ID"
_LAMBDA_ARN = re.compile(
    r"arn:aws(-[a-z]+)*:lambda:[a-z]{2}(-[a-z]+)+-\d{1,2}:\d{12}:function:[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?"
)


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
    _secret_id_argument(rotate)
    rotate.add_argument(
        "--lambda-arn",
        default=None,
        help=f"rotation function ARN (default: ${LAMBDA_ARN_ENV}, else the one on the secret)",
    )
    schedule = rotate.add_mutually_exclusive_group()
    schedule.add_argument(
        "--days",
        type=int,
        default=None,
        help="set the schedule to every N days, 1-1000 (default: keep the secret's schedule; 7 days if it has none)",
    )
    schedule.add_argument(
        "--schedule", help="set a ScheduleExpression instead of --days: rate(N days), rate(N hours) (N >= 4), cron(...)"
    )
    stuck = rotate.add_mutually_exclusive_group()
    stuck.add_argument(
        "--resume", action="store_true", help="re-run the four steps of the rotation in progress (safe to repeat)"
    )
    stuck.add_argument(
        "--cancel",
        action="store_true",
        help="drop the stuck AWSPENDING version if it never reached the database (refused otherwise)",
    )
    stuck.add_argument(
        "--emergency",
        action="store_true",
        help="rotate inside the rotation guard's gap (a leaked password): print who changes and who fails, set "
        "the override tag for one rotation (secretsmanager:TagResource), rotate; twice for a leaked AWSCURRENT user",
    )
    rotate.add_argument(
        "--leaked-user",
        default=None,
        metavar="USER",
        help="with --emergency: the user whose password leaked (AWSCURRENT's needs two rotations)",
    )
    rotate.add_argument(
        "--override-minutes",
        type=float,
        default=15.0,
        help="with --emergency: the override expires after this many minutes, at most 60 (default: %(default)s)",
    )
    rotate.add_argument(
        "--min-rotation-gap",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the rotation guard's gap, as the function is configured, checked before RotateSecret "
        "(default: $MIN_ROTATION_GAP; else 475200 on AWS, and on the local stack the function decides)",
    )
    _region_argument(rotate)
    rotate.set_defaults(handler=run_rotate)

    status = subparsers.add_parser(
        "status",
        help="versions, stages, users and the rotation schedule of a secret (no passwords)",
        description=(
            "Show a secret's rotation schedule and function, its last and next rotation, a rotation in progress, "
            "and every version with its staging labels, user name and creation time. Never shows a password."
        ),
    )
    _secret_id_argument(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--min-rotation-gap",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the rotation guard's gap, as the function is configured (default: $MIN_ROTATION_GAP, "
        "else the default 475200, 5.5 days; 0: off)",
    )
    _region_argument(status)
    status.set_defaults(handler=run_status)

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
    _secret_id_argument(doctor)
    doctor.add_argument(
        "--fix",
        action="store_true",
        help="drop an empty pending version (or resume one that reached the database), revoke a partner's extra "
        "roles, move AWSCURRENT back to the newest working version of the pair; never writes a password or grants "
        "a role",
    )
    _region_argument(doctor)
    doctor.set_defaults(handler=run_doctor)


def _secret_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "secret_id",
        metavar="SECRET_ID",
        nargs="?",
        default=None,
        help=f"the secret's name or ARN (default: ${SECRET_ID_ENV}, which `secretswitch local` exports)",
    )


def _region_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--region",
        default=None,
        help="AWS region (default: $AWS_REGION, else $AWS_DEFAULT_REGION or the AWS profile's region)",
    )


def _check_common(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Check the arguments every command takes; a missing SECRET_ID becomes ``$SECRETSWITCH_SECRET_ID``."""
    if args.secret_id is None:
        args.secret_id = environ.get(SECRET_ID_ENV)
        if args.secret_id is None:
            raise ConfigurationError(
                f"no secret id: give SECRET_ID or set ${SECRET_ID_ENV} (`secretswitch local` exports it)"
            )
    if not args.secret_id.strip():
        raise ConfigurationError("SECRET_ID is empty; give the secret's name or ARN, e.g. mongodb-app")
    if args.region is not None and not REGION_PATTERN.fullmatch(args.region):
        raise ConfigurationError(f"--region {args.region!r} is not an AWS region name; use e.g. us-east-1")


def check_rotate_args(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """Check ``rotate``'s arguments before anything is called; returns the function ARN to send (or ``None``).

    Raises:
        ConfigurationError: a value Secrets Manager would refuse or that names no function; says which and why.
    """
    from secretswitch.embedded_stack.contract import MAX_DAYS, parse_schedule_expression

    _check_common(args, environ)
    if args.days is not None and not 1 <= args.days <= MAX_DAYS:
        raise ConfigurationError(f"--days {args.days} is out of range; Secrets Manager accepts 1 to {MAX_DAYS} days")
    if args.schedule is not None:
        try:
            parse_schedule_expression(args.schedule)
        except ValueError as exc:
            raise ConfigurationError(f"--schedule: {exc}") from None
    if args.resume and (args.days is not None or args.schedule is not None or args.lambda_arn is not None):
        raise ConfigurationError(
            "--resume re-runs the rotation in progress as it was started; leave out --days, --schedule and --lambda-arn"
        )
    arn: str | None = args.lambda_arn
    source = "--lambda-arn"
    if arn is None and not args.resume:
        arn, source = environ.get(LAMBDA_ARN_ENV) or None, f"${LAMBDA_ARN_ENV}"
    if arn is not None and not _LAMBDA_ARN.fullmatch(arn):
        raise ConfigurationError(
            f"{source} {arn!r} is not a Lambda function ARN; expected "
            "arn:aws:lambda:REGION:ACCOUNT:function:NAME (`secretswitch local` prints the local one)"
        )
    return arn


def _client(region: str | None) -> SecretsManagerClient:
    from secretswitch.rotation_lambda.lambda_function import function_secretsmanager_client

    # The function's own builder: SECRETS_MANAGER_ENDPOINT, else boto3's endpoint; $AWS_REGION honoured.
    return function_secretsmanager_client(region=region, region_how=" or pass --region")


def run_rotate(args: argparse.Namespace) -> int:
    from secretswitch.rotation_tools.rotate import cancel_rotation, is_local_endpoint, rotate_secret

    if args.cancel:
        _check_common(args, os.environ)
        cancelled = cancel_rotation(_client(args.region), args.secret_id)
        print(f"{cancelled.secret_id}: {_with_token(cancelled.token, cancelled.message)}")
        return 0
    function_arn = check_rotate_args(args, os.environ)
    if args.leaked_user is not None and not args.emergency:
        raise ConfigurationError("--leaked-user goes with --emergency")
    client = _client(args.region)
    gap = _rotate_gap(args, is_local_endpoint(client))
    if args.emergency:
        from secretswitch.rotation_tools.emergency import emergency_rotate

        outcomes = emergency_rotate(
            client,
            args.secret_id,
            min_rotation_gap=gap or 0.0,
            leaked_user=args.leaked_user,
            override_seconds=args.override_minutes * 60,
            rotation_lambda_arn=function_arn,
            environ=os.environ,
        )
        for done in outcomes:
            print(f"{done.secret_id}: {_with_token(done.token, done.message)}")
        return 0 if outcomes and all(o.completed or o.asynchronous for o in outcomes) else 1
    outcome = rotate_secret(
        client,
        args.secret_id,
        rotation_lambda_arn=function_arn,
        rotation_days=args.days,
        resume=args.resume,
        schedule_expression=args.schedule,
        min_rotation_gap=gap,
    )
    print(f"{outcome.secret_id}: {_with_token(outcome.token, outcome.message)}")
    return 0 if outcome.completed or outcome.asynchronous else 1


def _with_token(token: str, message: str) -> str:
    # The version id once: in the message when it names it, else in front of it.
    return message if token in message else f"token {token}: {message}"


def _rotate_gap(args: argparse.Namespace, local: bool) -> float | None:
    """The gap ``rotate`` checks before RotateSecret: given, else $MIN_ROTATION_GAP, else the default on AWS only."""
    given = getattr(args, "min_rotation_gap", None)
    if given is None and not os.environ.get("MIN_ROTATION_GAP", "").strip() and local:
        return None  # the local function's own configuration decides (`secretswitch local --min-rotation-gap`)
    return _min_rotation_gap(args)[0]


def _when(value: Any) -> str:
    return (
        value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else ("-" if value is None else str(value))
    )


def _min_rotation_gap(args: argparse.Namespace) -> tuple[float, str]:
    """The guard's gap for status/rotate: ``--min-rotation-gap``, else ``$MIN_ROTATION_GAP``, else the default."""
    from secretswitch.client.policy import DEFAULT_MIN_ROTATION_GAP
    from secretswitch.rotation_lambda.rotation_guard import MIN_ROTATION_GAP_ENV, min_rotation_gap

    given = getattr(args, "min_rotation_gap", None)
    if given is not None:
        if not 0 <= given < float("inf"):
            raise ConfigurationError(f"--min-rotation-gap {given:g} is out of range; give seconds >= 0 (0: off)")
        return given, "--min-rotation-gap"
    if os.environ.get(MIN_ROTATION_GAP_ENV, "").strip():
        return min_rotation_gap(os.environ), f"${MIN_ROTATION_GAP_ENV}"
    return DEFAULT_MIN_ROTATION_GAP, "the default; the function's MIN_ROTATION_GAP decides"


def _span(seconds: float) -> str:
    return f"{seconds / 86400:.2f} d" if seconds >= 86400 else f"{seconds / 3600:.1f} h"


def run_status(args: argparse.Namespace) -> int:
    from secretswitch.rotation_tools.status import secret_status

    _check_common(args, os.environ)
    gap, gap_source = _min_rotation_gap(args)
    status = secret_status(_client(args.region), args.secret_id, min_rotation_gap=gap)
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


def run_doctor(args: argparse.Namespace) -> int:
    from secretswitch.rotation_tools.doctor import diagnose

    _check_common(args, os.environ)
    findings = diagnose(_client(args.region), args.secret_id, fix=args.fix)
    if not findings:
        print(f"{args.secret_id}: healthy (rotation on, no rotation stuck, AWSCURRENT logs in, the users' roles agree)")
        return 0
    for finding in findings:
        mark = "FIXED" if finding.fixed else ("PROBLEM" if not args.fix else "NOT FIXED")
        print(f"{mark:9} {finding.kind}: {finding.message}")
    return 0 if all(f.fixed for f in findings) else 1
