"""secretswitch: MongoDB credentials from AWS Secrets Manager, rotated without an outage.

The one installed import name. The client's public API is re-exported here
(``from secretswitch import RotatingMongoClient``); the parts live in
subpackages: ``secretswitch.client`` (the library applications embed),
``secretswitch.rotation_lambda`` (the rotation function),
``secretswitch.rotation_tools`` (rotate, status, doctor),
``secretswitch.embedded_stack`` (moto + SecantusDB on loopback, the ``local``
extra) and ``secretswitch.demo_app`` (the demo, the ``demo`` extra). The
command line lives in ``secretswitch.cli``.
"""

from __future__ import annotations

from . import client as _client
from .client import *  # noqa: F403 - the client's public API is this package's (its __all__ is checked by a test)

__all__ = list(_client.__all__)
