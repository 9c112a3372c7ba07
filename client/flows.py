"""How the core's flows talk to the shells: requests, and the two drivers ("sans I/O").

A flow (:meth:`client.core.ClientCore.refresh`, ...) is a generator: it
yields a request, the shell performs it and sends the answer back, or throws
the error in; the flow decides what a failure means. :func:`drive` performs
requests with blocking calls (the threaded client), :func:`drive_async` with
awaits (the asyncio client); the flow is the same code for both::

    ReadSecret(stage)               -> SecretVersion   GetSecretValue
    BuildClient(credentials)        -> client          pymongo's constructor (no I/O)
    CheckLogin(client, credentials) -> None            a ping as that user
    Adopt(client)                   -> client          the stable client, now logged in as ``client``
    CloseClient(client)             -> None            a client that failed its check
    Retire(generation, at_once)     -> None            close a replaced client
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from .credentials import MongoCredentials
from .state import Generation

__all__ = [
    "Adopt",
    "BuildClient",
    "CheckLogin",
    "CloseClient",
    "Plan",
    "ReadSecret",
    "Request",
    "Retire",
    "drive",
    "drive_async",
    "start_plan",
]

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class ReadSecret:
    """``GetSecretValue`` of the version with this staging label; answer: a ``SecretVersion``."""

    stage: str


@dataclass(frozen=True, slots=True)
class BuildClient:
    """Build a client that logs in with ``credentials``; answer: the client."""

    credentials: MongoCredentials


@dataclass(frozen=True, slots=True)
class CheckLogin:
    """Check that ``client`` logs in (a ``ping``); answer: ``None`` or a thrown error."""

    client: Any
    credentials: MongoCredentials


@dataclass(frozen=True, slots=True)
class Adopt:
    """``client`` passed its login check: make the stable client log in like it; answer: the stable client.

    The first client a rotating client adopts becomes its stable client;
    later ones hand their login over (:func:`client.mongo.adopt_login`) and
    are closed, so every handle on the stable client follows the switch.
    """

    client: Any


@dataclass(frozen=True, slots=True)
class CloseClient:
    """Close a client that never served anything (its check failed)."""

    client: Any


@dataclass(frozen=True, slots=True)
class Retire:
    """A generation was replaced: the ``run`` calls that read it move to the live one.

    Its client is the stable client (the login changed in place), so nothing
    is closed. ``at_once`` after a refused login: calls still entering it move
    to the live generation at once.
    """

    generation: Generation[Any, Any]
    at_once: bool


Request = ReadSecret | BuildClient | CheckLogin | Adopt | CloseClient | Retire
Plan = Generator[Request, Any, R]


def start_plan(plan: Plan[R]) -> tuple[Request | None, R | None]:
    """Run a flow up to its first request: ``(request, None)``, or ``(None, result)`` if it needed no I/O.

    Lets a shell answer cheap cases (the client was already repaired) without
    starting a task; errors the flow raises before any I/O propagate.
    """
    try:
        return plan.send(None), None
    except StopIteration as done:
        return None, done.value


def drive(plan: Plan[R], perform: Callable[[Request], Any], *, first: Request | None = None) -> R:
    """Run a flow with blocking I/O: answer each request with ``perform(request)``.

    ``first``: the flow was started with :func:`start_plan` and this is its pending request.
    """
    answer: Any = None
    error: Exception | None = None
    request = first
    while True:
        if request is None:
            try:
                request = plan.throw(error) if error is not None else plan.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        answer, error = None, None
        try:
            answer = perform(request)
        except Exception as exc:  # noqa: BLE001 - thrown into the flow, which decides
            error = exc
        request = None


async def drive_async(
    plan: Plan[R], perform: Callable[[Request], Awaitable[Any]], *, first: Request | None = None
) -> R:
    """Run a flow with asyncio: answer each request with ``await perform(request)`` (``first``: see :func:`drive`)."""
    answer: Any = None
    error: Exception | None = None
    request = first
    while True:
        if request is None:
            try:
                request = plan.throw(error) if error is not None else plan.send(answer)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
        answer, error = None, None
        try:
            answer = await perform(request)
        except Exception as exc:  # noqa: BLE001 - thrown into the flow, which decides
            error = exc
        request = None
