"""``secretswitch local``: run the embedded stack in the foreground until Ctrl-C.

Inputs are checked before anything exists (ports, region, ``--mongodb-uri``):
a bad one is a one-line error and leaves no process and no folder. A Ctrl-C
(or SIGTERM, SIGHUP) at any moment, start-up included, stops what was started;
the closing line says every process was ended only when
:meth:`~embedded_stack.stack.EmbeddedStack.leftovers` finds none.

The admin's URI is exported as ``SECRETSWITCH_ADMIN_MONGODB_URI``, not
``MONGODB_URI``: this command reads ``MONGODB_URI`` as "use this MongoDB", so a
second ``local`` started from a shell with the first one's exports still
starts a stack of its own.

``--rotation-function NAME=module:function`` (with ``--rotation-env``,
``--rotation-config``, ``--rotation-timeout``) registers more rotation
functions under Lambda ARNs; see :mod:`embedded_stack.functions`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is out of range; give a port from 1 to 65535 (0: a free one)")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "local",
        help="run moto Secrets Manager + SecantusDB on loopback until Ctrl-C",
        description=(
            "Start the embedded local stack (moto's Secrets Manager and SecantusDB with --auth and "
            "--sync-on-commit), create the users and secrets (mongodb-app with rotation configured: the local "
            "rotation function, rate(7 days)), print the environment that points an application, boto3 or the "
            "AWS CLI at it, and keep running until Ctrl-C."
        ),
    )
    parser.add_argument("--mongo-port", type=_port, default=None, help="SecantusDB port (default: a free one)")
    parser.add_argument("--sm-port", type=_port, default=0, help="Secrets Manager port (default: a free one)")
    parser.add_argument("--region", default="us-east-1", help="AWS region of the secrets (default: %(default)s)")
    parser.add_argument(
        "--mongodb-uri",
        default=None,
        help="use this MongoDB (a user administrator's URI) instead of starting SecantusDB (default: $MONGODB_URI)",
    )
    parser.add_argument(
        "--aws-layout",
        action="store_true",
        help="write mongodb-app in AWS's layout (users in admin, dbname admin) "
        "instead of dbname mydb + authSource admin",
    )
    parser.add_argument(
        "--min-rotation-gap",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="turn the rotation guard on: refuse a rotation less than SECONDS after the last switch "
        "(default: off, so that rotating on demand works; deployed: 475200, 5.5 days)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="run SecantusDB TLS-only with a CA and server certificate made for this stack (docs/tls.md); "
        "the secrets say ssl true and name the CA file, exported as SECRETSWITCH_TLS_CA_FILE",
    )
    _add_function_options(parser)
    parser.set_defaults(handler=run)


def _add_function_options(parser: Any) -> None:
    """``--rotation-function`` and friends: any rotation function on the local stack (docs/emulator.md)."""
    group = parser.add_argument_group(
        "rotation functions", "register your own rotation functions under Lambda ARNs (see docs/emulator.md)"
    )
    group.add_argument(
        "--rotation-function",
        action="append",
        default=[],
        metavar="NAME=MODULE:FUNCTION",
        help="run this handler for RotateSecret --rotation-lambda-arn arn:aws:lambda:REGION:123456789012:function:NAME "
        "(repeatable; imported from the current directory, in a worker process of its own)",
    )
    group.add_argument(
        "--rotation-env",
        action="append",
        default=[],
        metavar="NAME=KEY=VALUE",
        help="an environment variable of function NAME (repeatable)",
    )
    group.add_argument(
        "--rotation-config",
        type=Path,
        default=None,
        metavar="FILE",
        help="functions from a TOML or JSON file ([functions.NAME] handler, environment, timeout, path, python)",
    )
    group.add_argument(
        "--rotation-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a step may run before it is stopped, as Lambda's timeout (default: 30)",
    )
    group.add_argument(
        "--rotation-retries",
        type=int,
        default=0,
        metavar="N",
        help="run a failed rotation again from createSecret N times, as AWS retries one (default: 0)",
    )


def _functions(args: argparse.Namespace) -> list[Any]:
    from secretswitch.embedded_stack.functions import rotation_functions_from_options

    return rotation_functions_from_options(
        getattr(args, "rotation_function", []),
        getattr(args, "rotation_env", []),
        getattr(args, "rotation_config", None),
        getattr(args, "rotation_timeout", None),
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is out of range; give a number of seconds >= 0 (0: off)")
    return value


def run(args: argparse.Namespace) -> int:
    from secretswitch.embedded_stack.signals import stop_on_signals
    from secretswitch.embedded_stack.stack import EmbeddedStack

    # Checks every input and makes nothing: a bad one raises here (exit 2), before any process or folder.
    stack = EmbeddedStack(
        region=args.region,
        mongo_port=args.mongo_port or None,
        secretsmanager_port=args.sm_port,
        mongodb_uri=args.mongodb_uri or os.environ.get("MONGODB_URI") or None,
        layout="aws" if getattr(args, "aws_layout", False) else "stack",
        min_rotation_gap=getattr(args, "min_rotation_gap", None),
        rotation_functions=_functions(args),
        rotation_retries=getattr(args, "rotation_retries", 0),
        tls=bool(getattr(args, "tls", False)),
    )
    stop_on_signals()
    interrupted = ready = False
    stop_error: Exception | None = None
    try:
        info = stack.start()
        ready = True  # from here on, Ctrl-C is the normal way to stop
        print("# secretswitch local stack is running. Paste these lines into another shell:")
        for key, value in info.environment().items():
            print(f"export {key}='{value}'")
        if stack.mongo is not None:
            print(
                f"# SecantusDB pid {stack.mongo.pid} on {info.mongo_host}:{info.mongo_port}; data in {stack.work_dir}"
            )
        else:
            print(f"# MongoDB from MONGODB_URI at {info.mongo_host}:{info.mongo_port}; users app, app_clone created")
        if info.tls_ca_file:
            print(f"# TLS only: certificate for 127.0.0.1/localhost signed by the stack's own CA {info.tls_ca_file}")
        print(f"# {info.app_secret_id}: rotation configured (the local function, rate(7 days))")
        gap = info.min_rotation_gap
        print(
            f"# rotation guard: a rotation less than {gap:g} s after the last switch is refused"
            if gap
            else "# rotation guard: off (--min-rotation-gap SECONDS turns it on)"
        )
        secret = info.app_secret_id
        print(f"# rotate with: secretswitch rotate {secret}   (then: secretswitch status {secret})")
        print(f"#   or: aws secretsmanager rotate-secret --secret-id {info.app_secret_id}")
        for name, arn in info.rotation_functions.items():
            print(f"# rotation function {name}: {arn}")
            print(f"#   run it with: aws secretsmanager rotate-secret --secret-id ID --rotation-lambda-arn {arn}")
        print("# Press Ctrl-C to stop.", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # A second Ctrl-C must not cut the clean-up of the first short.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if interrupted:
            print("# stopping ...", file=sys.stderr, flush=True)
        try:
            stack.stop()
        except Exception as exc:  # noqa: BLE001 - reported below with what is left
            stop_error = exc
    left = stack.leftovers()
    if left:
        print(f"# NOT everything stopped: {', '.join(left)} is still there; stop or remove it by hand", file=sys.stderr)
        return 1
    if stop_error is not None:
        print(f"# stopped with an error: {stop_error}", file=sys.stderr)
        return 1
    print("# stopped; every process started was ended and the temporary data removed.", file=sys.stderr)
    # Ctrl-C is how a running stack is meant to stop; before it was ready, it is an interruption.
    return 0 if ready or not interrupted else 130
