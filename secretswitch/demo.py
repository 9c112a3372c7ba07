"""``secretswitch demo``: watch the active/passive switchover end to end (``python -m demo_app``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    from demo_app.config import add_arguments

    parser = subparsers.add_parser(
        "demo",
        help="run an application through rotations on a compressed clock and watch it switch users",
        description=(
            "Start the embedded stack (or use real AWS / MongoDB), run 8 worker threads through the rotating "
            "client while the secret is rotated every --rotation-days, show it live, check every write, and "
            "write events.jsonl, summary.json and timeline.png. Exit 0 only if no operation failed, no write "
            "was lost and every rotation was followed by a client switch."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from demo_app.config import config_from_args
    from demo_app.runner import run_demo

    config = config_from_args(args, os.environ)

    from secretswitch.cli import stop_on_signals

    # Any of them stops the demo as cleanly as Ctrl-C does (and still writes the results).
    stop_on_signals()
    return run_demo(config)
