"""The ``DatabaseWrapper`` Django loads for ``ENGINE: "secretswitch.client.adapters.django"``.

django-mongodb-backend's wrapper with its client taken from a rotating client
(see the package docstring for the settings). Django gives every thread its
own wrapper; they all share one :class:`~secretswitch.client.RotatingMongoClient`
per alias, whose ``client`` is stable for its life (a switch or a repair
changes its login in place), so the database the wrapper caches keeps working.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django_mongodb_backend.base import DatabaseWrapper as MongoDatabaseWrapper

from secretswitch.client.rotating import RotatingMongoClient

__all__ = ["DatabaseWrapper", "close_rotating_clients", "rotating_client"]

# OPTIONS that configure the rotating client; the rest are MongoClient options.
_CLIENT_OPTIONS = ("policy", "secretsmanager_client", "on_event", "close_grace")
_LOGIN_SETTINGS = ("HOST", "PORT", "USER", "PASSWORD")

_lock = threading.Lock()
_clients: dict[str, RotatingMongoClient] = {}


def rotating_client(alias: str, settings_dict: Mapping[str, Any]) -> RotatingMongoClient:
    """The rotating client of ``alias`` (built from ``settings_dict`` on first use; one per process).

    Raises:
        ImproperlyConfigured: ``OPTIONS`` has no ``secret_id``, or a login setting is set.
    """
    with _lock:
        rc = _clients.get(alias)
        if rc is None:
            rc = _clients[alias] = _build(alias, settings_dict)
        return rc


def _build(alias: str, settings_dict: Mapping[str, Any]) -> RotatingMongoClient:
    given = [name for name in _LOGIN_SETTINGS if settings_dict.get(name)]
    if given:
        raise ImproperlyConfigured(
            f"DATABASES[{alias!r}]: leave {', '.join(given)} empty; the login comes from OPTIONS['secret_id']"
        )
    options = dict(settings_dict.get("OPTIONS") or {})
    secret_id = options.pop("secret_id", None)
    if not isinstance(secret_id, str) or not secret_id:
        raise ImproperlyConfigured(f"DATABASES[{alias!r}]['OPTIONS'] needs 'secret_id': the secret's name or ARN")
    client_options = {name: options.pop(name) for name in _CLIENT_OPTIONS if name in options}
    return RotatingMongoClient(secret_id, database=settings_dict["NAME"], mongo_options=options, **client_options)


def close_rotating_clients() -> None:
    """Close every rotating client this process built: at process shutdown, once no query runs any more."""
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for rc in clients:
        rc.close()


class DatabaseWrapper(MongoDatabaseWrapper):  # type: ignore[misc]  # django-mongodb-backend is untyped
    """django-mongodb-backend's wrapper whose ``MongoClient`` is a rotating client's."""

    @property
    def rotating_client(self) -> RotatingMongoClient:
        """This alias's rotating client (built on first use)."""
        return rotating_client(self.alias, self.settings_dict)

    def get_connection_params(self) -> dict[str, Any]:
        # The login is the secret's: nothing from HOST/USER/PASSWORD reaches a MongoClient.
        return {}

    def get_new_connection(self, conn_params: Mapping[str, Any]) -> Any:
        return self.rotating_client.client

    def close_pool(self) -> None:
        """Forget the client without closing it: the rotating client is shared (see :func:`close_rotating_clients`)."""
        self.run_on_commit: list[Any] = []
        if self.session:
            self._end_session()
        self.connection = None
        with contextlib.suppress(AttributeError):  # the cached database, when it was made
            del self.database
