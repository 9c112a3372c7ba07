"""``secretswitch demo``: watch the active/passive switchover end to end (``python -m secretswitch.demo_app``)."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    from secretswitch.demo_app.config import add_arguments
    from secretswitch.demo_app.main import DESCRIPTION, run

    parser = subparsers.add_parser(
        "demo",
        help="run an application through rotations on a compressed clock and watch it switch users",
        description=DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(handler=run)
