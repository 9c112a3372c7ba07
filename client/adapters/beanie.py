"""Beanie on a rotating client: ``init_beanie`` with the client's database (``secretswitch[beanie]``).

::

    from secretswitch.client import AsyncRotatingMongoClient
    from secretswitch.client.adapters.beanie import init_beanie

    @asynccontextmanager
    async def lifespan(app):
        async with AsyncRotatingMongoClient("mongodb-app", database="mydb") as rc:
            await init_beanie(rc, document_models=[Item])
            yield

Beanie keeps the ``AsyncDatabase`` it was given for the life of the
process and never asks for another one; the rotating client's database is
stable (its login changes in place on a switch or a repair) and the client
refreshes on its own schedule, so nothing else is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from secretswitch.client.async_rotating import AsyncRotatingMongoClient
from secretswitch.client.errors import ConfigurationError

if TYPE_CHECKING:
    from pymongo.asynchronous.database import AsyncDatabase

__all__ = ["init_beanie"]


async def init_beanie(
    rc: AsyncRotatingMongoClient,
    *,
    document_models: Sequence[Any],
    database: str | None = None,
    **options: Any,
) -> AsyncDatabase[dict[str, Any]]:
    """Initialise Beanie on ``rc``'s database (started: use ``async with rc`` or ``await rc.start()`` first).

    Args:
        rc: a started asyncio rotating client (Beanie 2 uses pymongo's ``AsyncMongoClient``).
        document_models: Beanie's ``document_models``.
        database: the database name (default: ``rc``'s default database).
        options: any other keyword argument of ``beanie.init_beanie`` (``allow_index_dropping``, …).

    Returns:
        The database Beanie was initialised with.

    Raises:
        ConfigurationError: ``rc`` is not an ``AsyncRotatingMongoClient``, or
            ``options`` names a connection (``connection_string``, ``database``).
        DatabaseError: ``rc`` is not started or is closed.
    """
    from beanie import init_beanie as beanie_init_beanie

    if not isinstance(rc, AsyncRotatingMongoClient):
        raise ConfigurationError(
            f"Beanie needs an AsyncRotatingMongoClient (pymongo's async API), not {type(rc).__name__}"
        )
    if "connection_string" in options:
        raise ConfigurationError("init_beanie(rc, ...) takes its connection from rc; drop connection_string")
    db = rc.database(database)
    await beanie_init_beanie(database=db, document_models=list(document_models), **options)
    return db
