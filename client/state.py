"""The values a rotating client hands around: the generation snapshot and the schedule check.

The floor under :mod:`client.flows`, :mod:`client.core` and the shells: it
imports none of them. A :class:`Generation` is *the* meaning of the word in
this package: one immutable snapshot of the live login (its credentials, the
stable client, its databases and the next time anything must be looked at),
replaced by a new one on every switch, never changed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .credentials import MongoCredentials
from .hub import InFlight

__all__ = ["Generation", "ScheduleCheck"]

C = TypeVar("C")  # the client type: MongoClient or AsyncMongoClient
D = TypeVar("D")  # its database type: Database or AsyncDatabase


@dataclass(frozen=True, eq=False, slots=True)
class Generation(Generic[C, D]):
    """One login with its credentials and schedule: replaced, never changed.

    Attributes:
        number: which generation this is: 1 for the first, +1 for each switch
            (0: the asyncio client's placeholder before ``start()``).
        refused: the database refused this client's login and no other client
            replaced it yet: nothing runs on it until it is repaired.
        check_at: the hot path's single comparison, the next time anything
            must be looked at (``-inf`` while refused or closed).
    """

    number: int
    credentials: MongoCredentials
    client: C
    default_database: D | None
    fetched_at: float
    refresh_at: float
    expires_at: float
    retry_at: float | None
    check_at: float
    refused: bool = False
    in_flight: InFlight = field(default_factory=InFlight)
    databases: dict[str, D] = field(default_factory=dict)

    def database(self, name: str) -> D:
        db = self.databases.get(name)
        if db is None:
            # A racing caller may build the same handle: both are equivalent.
            db = self.databases.setdefault(name, self.client[name])  # type: ignore[index]
        return db


@dataclass(frozen=True, slots=True)
class ScheduleCheck:
    """The result of ``check_rotation_schedule()``.

    Attributes:
        rotation_enabled: whether the secret rotates automatically.
        rotation_interval: the rotation interval in seconds, if readable.
        next_rotation: the next rotation date (UTC), if Secrets Manager gave one.
        warning: why the refresh interval is unsafe, or ``None``.
        deadline: the refresh deadline (client clock) now in force, if derived.
    """

    rotation_enabled: bool
    rotation_interval: float | None
    next_rotation: dt.datetime | None
    warning: str | None
    deadline: float | None
