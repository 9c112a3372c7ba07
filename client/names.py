"""The names Secrets Manager gives to stages and rotation steps, defined once for every package.

Pure constants: the client, the rotation function, the tools, the embedded stack
and the demo import them from here (``from secretswitch.client.names import
AWSCURRENT``), so a stage or a step is spelled in one place.
"""

from __future__ import annotations

__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "AWSPREVIOUS",
    "CREATE_SECRET",
    "FINISH_SECRET",
    "SET_SECRET",
    "STAGES",
    "STEPS",
    "TEST_SECRET",
]

AWSCURRENT = "AWSCURRENT"
"""The stage applications read: the version in use."""
AWSPENDING = "AWSPENDING"
"""The stage of the version a rotation is creating (createSecret to finishSecret)."""
AWSPREVIOUS = "AWSPREVIOUS"
"""The stage Secrets Manager moves to the version AWSCURRENT left."""
STAGES: tuple[str, ...] = (AWSCURRENT, AWSPENDING, AWSPREVIOUS)

CREATE_SECRET = "createSecret"
SET_SECRET = "setSecret"
TEST_SECRET = "testSecret"
FINISH_SECRET = "finishSecret"
STEPS: tuple[str, ...] = (CREATE_SECRET, SET_SECRET, TEST_SECRET, FINISH_SECRET)
"""The rotation function's steps, in the order Secrets Manager invokes them."""
