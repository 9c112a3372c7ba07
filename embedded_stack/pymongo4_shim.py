"""Run AWS's MongoDB rotation templates, written for PyMongo 3, under PyMongo 4 on the local stack.

AWS's templates (``SecretsManagerMongoDBRotationSingleUser`` and
``...MultiUser`` in aws-samples/aws-secrets-manager-rotation-lambdas) log in
with ``MongoClient(host=..., port=..., ssl=...)[dbname].authenticate(user,
password)`` and leave with ``db.logout()``. PyMongo 4 removed both: a client
authenticates once, when it is made. Register this module's handler instead of
the template's, and name the template in ``ROTATION_TEMPLATE_MODULE``::

    secretswitch local --aws-layout \\
      --rotation-function awsmongo=secretswitch.embedded_stack.pymongo4_shim:lambda_handler \\
      --rotation-env awsmongo=ROTATION_TEMPLATE_MODULE=lambda_function

It imports the template once, replaces the ``MongoClient`` the template
imported by :class:`DeferredClient` (its databases log in the PyMongo 4 way,
with a client of their own made by ``authenticate``), and hands every event to
the template's ``lambda_handler``. Nothing of the template is changed on disk.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__all__ = ["DeferredClient", "DeferredDatabase", "lambda_handler", "load_template"]

TEMPLATE_MODULE_ENV = "ROTATION_TEMPLATE_MODULE"


class DeferredDatabase:
    """``client[dbname]`` as PyMongo 3 had it: unauthenticated until :meth:`authenticate`."""

    def __init__(self, client_options: dict[str, Any], name: str) -> None:
        self._options = client_options
        self.name = name
        self._client: Any = None

    def authenticate(self, name: str, password: str, source: str | None = None, **_: Any) -> bool:
        """Log in as ``name`` (PyMongo 3's signature); raises ``PyMongoError`` when refused, as it did.

        PyMongo 4 authenticates at the first operation, so a ``ping`` makes the
        refusal happen here, where the template catches it.
        """
        from secretswitch.client.mongo import open_mongo_client

        self.logout()
        client: Any = open_mongo_client(
            **self._options, username=name, password=password, authSource=source or self.name
        )
        try:
            client[self.name].command("ping")
        except Exception:
            client.close()
            raise
        self._client = client
        return True

    def command(self, *args: Any, **kwargs: Any) -> Any:
        if self._client is None:
            from pymongo.errors import OperationFailure

            raise OperationFailure("command on a database that is not authenticated (call authenticate first)")
        return self._client[self.name].command(*args, **kwargs)

    def logout(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __getattr__(self, attribute: str) -> Any:
        if self._client is None:
            raise AttributeError(f"{attribute!r}: authenticate first (PyMongo 4 shim)")
        return getattr(self._client[self.name], attribute)


class DeferredClient:
    """Stands in for ``pymongo.MongoClient`` in a template: keeps the options, connects per database."""

    def __init__(self, host: Any = None, port: Any = None, **options: Any) -> None:
        self._options = {**options, "host": host, "port": port}

    def __getitem__(self, name: str) -> DeferredDatabase:
        return DeferredDatabase(self._options, name)

    def close(self) -> None:
        """Each database holds its own client (closed by its ``logout``)."""


_templates: dict[str, Any] = {}


def load_template(module_name: str) -> Any:
    """Import the template once and give it :class:`DeferredClient` for its ``MongoClient``."""
    if module_name not in _templates:
        module: Any = importlib.import_module(module_name)
        module.MongoClient = DeferredClient
        _templates[module_name] = module
    return _templates[module_name]


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    """The template's ``lambda_handler``, with the shim in place."""
    template = load_template(os.environ.get(TEMPLATE_MODULE_ENV, "lambda_function"))
    return template.lambda_handler(event, context)
