"""``secretswitch local``: run the embedded stack in the foreground."""

from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "local",
        help="run moto Secrets Manager + SecantusDB on loopback until Ctrl-C",
        description=(
            "Start the embedded local stack (moto's Secrets Manager and SecantusDB with --auth), "
            "create the users and secrets, print the environment that points an application at it, "
            "and keep running until Ctrl-C."
        ),
    )
    parser.add_argument("--mongo-port", type=int, default=None, help="SecantusDB port (default: a free one)")
    parser.add_argument("--sm-port", type=int, default=0, help="Secrets Manager port (default: a free one)")
    parser.add_argument("--region", default="us-east-1", help="AWS region of the secrets (default: %(default)s)")
    parser.add_argument(
        "--mongodb-uri",
        default=os.environ.get("MONGODB_URI"),
        help="use this MongoDB (a user administrator's URI) instead of starting SecantusDB (default: $MONGODB_URI)",
    )
    parser.add_argument(
        "--aws-layout",
        action="store_true",
        help="write mongodb-app in AWS's layout (users in admin, dbname admin) "
        "instead of dbname mydb + authSource admin",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from embedded_stack.signals import stop_on_signals
    from embedded_stack.stack import EmbeddedStack

    stop_on_signals()
    stack = EmbeddedStack(
        region=args.region,
        mongo_port=args.mongo_port,
        secretsmanager_port=args.sm_port,
        mongodb_uri=args.mongodb_uri or None,
        layout="aws" if getattr(args, "aws_layout", False) else "stack",
    )
    try:
        info = stack.start()
        print("# secretswitch local stack is running. Paste these lines into another shell:")
        for key, value in info.environment().items():
            print(f"export {key}='{value}'")
        if stack.mongo is not None:
            print(
                f"# SecantusDB pid {stack.mongo.pid} on {info.mongo_host}:{info.mongo_port}; data in {stack.work_dir}"
            )
        else:
            print(f"# MongoDB from MONGODB_URI at {info.mongo_host}:{info.mongo_port}; users app, app_clone created")
        print("# rotate with: secretswitch rotate mongodb-app   (then: secretswitch status mongodb-app)")
        print("# Press Ctrl-C to stop.", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        print("# stopping ...", file=sys.stderr, flush=True)
    finally:
        stack.stop()
    print("# stopped; every process started was ended and the temporary data removed.", file=sys.stderr)
    return 0
