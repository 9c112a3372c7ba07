"""``secretswitch``: one console command, one sub-command per module.

Each sub-command module has ``register(subparsers)``, which adds its parser and
sets ``handler`` to a function ``(args) -> int`` (the exit status).

Every error ends in one line on stderr, ``secretswitch COMMAND: error: ...``,
that names the bad value or what to do, and never a traceback (``-v`` shows
one for an unexpected error):

=====  ==============================================================
exit   when
=====  ==============================================================
2      a bad argument or environment value (argparse, ConfigurationError),
       or the local stack cannot start with the given ones (LocalStackError)
1      the operation failed (Secrets Manager, MongoDB, a rotation step)
130    interrupted (Ctrl-C, SIGTERM, SIGHUP)
141    the reader of the output went away (``| head``)
=====  ==============================================================

AWS errors reach the user with :func:`client.secretsmanager.aws_error_advice`:
throttling, a deleted secret, a missing permission and refused credentials
each get their own advice.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from secretswitch.client.errors import ConfigurationError, SecretSwitchError

__all__ = ["main"]

# Modules that provide sub-commands, in the order --help lists them.
_COMMAND_MODULES = (
    "secretswitch.local",
    "secretswitch.demo",
    "secretswitch.simulate",
    "secretswitch.rotate",
    "secretswitch.status",
    "secretswitch.doctor",
    "secretswitch.package",
)
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="secretswitch",
        description="Rotate MongoDB credentials in AWS Secrets Manager without an outage.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (never secret values)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def error_line(exc: BaseException) -> str:
    """The one line shown for ``exc``: its message, with advice for an AWS error code underneath it."""
    from secretswitch.client.secretsmanager import aws_error_advice, aws_error_behind

    message = str(exc).strip()
    first, _, rest = message.partition("\n")
    line = first + (" (more with -v)" if rest else "")
    code, aws_message, operation = aws_error_behind(exc)
    if code is not None:
        secret_id = getattr(exc, "secret_id", None) or _secret_id_of(message) or "the secret"
        advice = aws_error_advice(code, aws_message, operation=operation, secret_id=secret_id)
        if advice is not None and advice not in line:
            line = f"{line} — {advice}"
    return line


def _secret_id_of(message: str) -> str | None:
    # The gateways name the secret as "secret 'ID'".
    marker = "secret '"
    start = message.find(marker)
    if start < 0:
        return None
    end = message.find("'", start + len(marker))
    return message[start + len(marker) : end] if end > start else None


def _silence_stdout() -> None:
    # The reader is gone: point stdout at /dev/null so the interpreter's final flush does not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # `secretswitch status X | head -c1`: the reader left; nothing more to say to it.
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from secretswitch.embedded_stack.errors import LocalStackError

    where = f"secretswitch {args.command}"
    try:
        status = int(args.handler(args))
        sys.stdout.flush()  # inside the try: a closed pipe is reported here, not at interpreter exit
        return status
    except (ConfigurationError, LocalStackError) as exc:
        print(f"{where}: error: {str(exc) if args.verbose else error_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except SecretSwitchError as exc:
        print(f"{where}: error: {str(exc) if args.verbose else error_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"{where}: error: unexpected {type(exc).__name__}: {error_line(exc)} (run with -v for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
