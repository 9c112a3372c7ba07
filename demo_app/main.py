"""The demo's own entry point: ``python -m secretswitch.demo_app`` and ``secretswitch demo`` both end here."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from secretswitch.client.errors import SecretSwitchError

__all__ = ["DESCRIPTION", "build_parser", "main", "run"]

DESCRIPTION = (
    "Start the embedded stack (or use real AWS / MongoDB), run 8 worker threads (or asyncio tasks with --async) "
    "through the rotating client while the secret is rotated every --rotation-days, show it live, check "
    "every write, and write events.jsonl, summary.json and timeline.png. Exit 0 only if no operation failed, no write "
    "was lost and every rotation was followed by a client switch."
)


def run(args: argparse.Namespace) -> int:
    """Run the demo for parsed arguments; returns the exit status.

    Raises:
        ConfigurationError: an option cannot work (the caller prints it as one line, exit 2).
    """
    from secretswitch.embedded_stack.signals import stop_on_signals

    from .config import config_from_args
    from .runner import run_demo

    config = config_from_args(args, os.environ)
    # Any of them stops the demo as cleanly as Ctrl-C does (and still writes the results).
    stop_on_signals()
    return run_demo(config)


def build_parser() -> argparse.ArgumentParser:
    from .config import add_arguments

    parser = argparse.ArgumentParser(prog="python -m secretswitch.demo_app", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m secretswitch.demo_app [options]``; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except SecretSwitchError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
