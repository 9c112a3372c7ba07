"""``secretswitch rotate``: start, resume or cancel a rotation from the command line.

Also the arguments ``rotate``, ``status`` (:mod:`secretswitch.status`) and ``doctor``
(:mod:`secretswitch.doctor`) share, and the one Secrets Manager client they build.

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
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from secretswitch.client.errors import ConfigurationError
from secretswitch.client.secretsmanager import REGION_PATTERN

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = [
    "LAMBDA_ARN_ENV",
    "SECRET_ID_ENV",
    "check_common",
    "check_rotate_args",
    "min_rotation_gap_of",
    "region_argument",
    "register",
    "secret_id_argument",
]

LAMBDA_ARN_ENV = "SECRETSWITCH_ROTATION_LAMBDA_ARN"
SECRET_ID_ENV = "SECRETSWITCH_SECRET_ID"
_LAMBDA_ARN = re.compile(
    r"arn:aws(-[a-z]+)*:lambda:[a-z]{2}(-[a-z]+)+-\d{1,2}:\d{12}:function:[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?"
)


def register(subparsers: Any) -> None:
    rotate = subparsers.add_parser(
        "rotate",
        help="rotate a secret now (RotateSecret; the local stack runs the four steps during the call)",
        description=(
            "Start a rotation the way RotateSecret does: refuse while a previous rotation is in progress, make a "
            "token, run createSecret, setSecret, testSecret and finishSecret, and stop at the first failing step. "
            "Against the local stack the steps run at once; against AWS, AWS invokes the deployed function."
        ),
    )
    secret_id_argument(rotate)
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
    region_argument(rotate)
    rotate.set_defaults(handler=run_rotate)


def secret_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "secret_id",
        metavar="SECRET_ID",
        nargs="?",
        default=None,
        help=f"the secret's name or ARN (default: ${SECRET_ID_ENV}, which `secretswitch local` exports)",
    )


def region_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--region",
        default=None,
        help="AWS region (default: $AWS_REGION, else $AWS_DEFAULT_REGION or the AWS profile's region)",
    )


def check_common(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
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

    check_common(args, environ)
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
        check_common(args, os.environ)
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
    return min_rotation_gap_of(args)[0]


def min_rotation_gap_of(args: argparse.Namespace) -> tuple[float, str]:
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
