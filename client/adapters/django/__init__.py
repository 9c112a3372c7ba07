"""A Django database ``ENGINE`` on a rotating client (django-mongodb-backend; ``secretswitch[django]``).

In ``settings.py``::

    DATABASES = {
        "default": {
            "ENGINE": "secretswitch.client.adapters.django",
            "NAME": "mydb",
            "OPTIONS": {"secret_id": "mongodb-app"},
        },
    }

The engine is django-mongodb-backend's, with one change: the ``MongoClient``
it uses is a :class:`~secretswitch.client.RotatingMongoClient`'s, one per
database alias and process, built on first use from ``OPTIONS``:

* ``secret_id`` (required): the secret's name or ARN;
* ``policy`` (a :class:`~secretswitch.client.RefreshPolicy`),
  ``secretsmanager_client``, ``on_event``, ``close_grace``: passed to the
  rotating client;
* anything else: ``MongoClient`` options, as django-mongodb-backend's own
  ``OPTIONS`` are (``maxPoolSize``, ``serverSelectionTimeoutMS``, …).

``HOST``, ``PORT``, ``USER`` and ``PASSWORD`` stay empty: they come from the
secret. The backend's ``close_pool()`` forgets the client without closing it
(the rotating client is shared by every thread's connection);
:func:`~secretswitch.client.adapters.django.base.close_rotating_clients`
closes them at shutdown.
"""

from __future__ import annotations

__all__: list[str] = []
