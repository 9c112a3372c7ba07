"""``secretswitch``: one console command, one sub-command per module.

Each sub-command module has ``register(subparsers)``, which adds its parser and
sets ``handler`` to a function ``(args) -> int`` (the exit status). Errors of
the :class:`~client.errors.SecretSwitchError` tree are printed as one line
that says what to change, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from client.errors import SecretSwitchError

__all__ = ["main"]

# Modules that provide sub-commands, in the order --help lists them.
_COMMAND_MODULES = (
    "secretswitch.local",
    "secretswitch.demo",
    "secretswitch.simulate",
    "secretswitch.rotate",
    "secretswitch.package",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="secretswitch",
        description="Rotate MongoDB credentials in AWS Secrets Manager without an outage.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (never secret values)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.handler(args))
    except SecretSwitchError as exc:
        print(f"secretswitch {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"secretswitch {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
