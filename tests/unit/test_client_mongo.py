"""The MongoDB seam: how a failed operation is classified, and closing a client nobody may wait on."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from secretswitch.client.errors import AuthenticationError
from secretswitch.client.mongo import classify_failure, discard_client, release_waiters
from secretswitch.client.policy import Failure

REFUSED = OperationFailure("Authentication failed.", code=18)


class _Description:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class _Topology:
    def __init__(self, *errors: BaseException | None) -> None:
        self._descriptions = {("db", 27017 + i): _Description(e) for i, e in enumerate(errors)}

    def server_descriptions(self) -> dict[Any, _Description]:
        return dict(self._descriptions)


class _Client:
    """Just enough of a MongoClient for classify_failure: its topology description."""

    def __init__(self, *errors: BaseException | None) -> None:
        self.topology_description = _Topology(*errors)
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("exc", "client", "closed", "expected"),
    [
        (REFUSED, None, False, Failure.AUTH),
        (OperationFailure("bad auth : authentication failed", code=8000), None, False, Failure.AUTH),
        (AuthenticationError("refused"), None, False, Failure.AUTH),
        # A login refused on another thread: the server is unknown, selection times out quoting it.
        (ServerSelectionTimeoutError("No servers, Timeout: 2s"), _Client(REFUSED), False, Failure.AUTH),
        (
            ServerSelectionTimeoutError("authentication failed, full error: {'ok': 0.0, 'code': 18}, Timeout: 2s"),
            None,
            False,
            Failure.AUTH,
        ),
        (ServerSelectionTimeoutError("connection refused, Timeout: 2s"), _Client(None), False, Failure.NOT_SENT),
        (ServerSelectionTimeoutError("No servers, Timeout: 2s"), _Client(AutoReconnect("x")), False, Failure.NOT_SENT),
        (InvalidOperation("Cannot use MongoClient after close"), None, True, Failure.NOT_SENT),
        (InvalidOperation("cannot set options after executing query"), None, False, Failure.OTHER),
        (AutoReconnect("connection reset"), None, False, Failure.CONNECTION),
        (OperationFailure("not authorized", code=13), None, False, Failure.OTHER),
        (DuplicateKeyError("E11000", code=11000), None, False, Failure.OTHER),
    ],
)
def test_classify_failure(exc: BaseException, client: Any, closed: bool, expected: Failure) -> None:
    assert classify_failure(exc, client, closed=closed) is expected


def test_a_client_without_pymongos_topology_is_still_closed() -> None:
    """The private hook is optional: without it discard_client is a plain close()."""
    client = _Client()
    assert release_waiters(client) is False
    discard_client(client)
    assert client.closed


def test_this_pymongo_keeps_the_login_where_adopt_login_changes_it() -> None:
    """The in-place login change relies on pymongo internals: fail loudly on a pymongo that moved them."""
    from pymongo import AsyncMongoClient, MongoClient

    from secretswitch.client.mongo import login_slots_available

    for client_class in (MongoClient, AsyncMongoClient):
        client = client_class("mongodb://u:p@127.0.0.1:1/?authSource=admin", connect=False)
        assert login_slots_available(client), client_class.__name__
        assert client._options.pool_options._credentials.username == "u"


def test_an_auth_failure_re_raised_without_from_is_still_recognised() -> None:
    """MongoEngine re-raises pymongo's error without ``from``: it is only in ``__context__``."""
    from secretswitch.client.mongo import is_auth_failure

    def library_call() -> None:
        try:
            raise OperationFailure("Authentication failed.", code=18)
        except OperationFailure:
            raise RuntimeError("the library's own error")  # noqa: B904 - what such libraries do

    with pytest.raises(RuntimeError) as failure:
        library_call()
    assert failure.value.__cause__ is None
    assert is_auth_failure(failure.value)
