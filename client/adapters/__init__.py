"""Adapters: the wiring of a rotating client into an ODM or a framework, one module each.

Each adapter is imported only when used and needs its library's extra:

* :mod:`secretswitch.client.adapters.beanie` — ``secretswitch[beanie]``:
  ``init_beanie`` on an :class:`~secretswitch.client.AsyncRotatingMongoClient`'s database;
* :mod:`secretswitch.client.adapters.mongoengine` — ``secretswitch[mongoengine]``:
  ``connect`` that makes MongoEngine use a
  :class:`~secretswitch.client.RotatingMongoClient`'s client, which
  MongoEngine's ``disconnect`` never closes;
* :mod:`secretswitch.client.adapters.django` — ``secretswitch[django]``: a
  Django database ``ENGINE`` (django-mongodb-backend) whose client is a
  rotating client built from ``OPTIONS``.

They rely on one property of the rotating clients: ``rc.client`` and
``rc.database(name)`` are the same objects for the life of ``rc`` (a switch
or a repair changes their login in place), so a library may keep them for
the life of the process. docs/embedding.md shows the wiring per stack.
"""

from __future__ import annotations

__all__: list[str] = []
