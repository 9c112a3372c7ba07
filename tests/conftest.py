"""Shared fixtures: a fake clock for unit tests, the embedded stack for integration tests.

Unit tests never touch the stack: ``stack`` is only built when an integration
test asks for it, once per session, and stopped (by PID) at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from embedded_stack.stack import EmbeddedStack

# Fails the session if any password a secret ever held reaches a log line or test output.
pytest_plugins = ["tests.leakcheck"]


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        assert seconds >= 0, "a monotonic clock never goes back"
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        """Use as an injected ``sleep``: advances instead of waiting."""
        self.advance(max(0.0, seconds))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def stack() -> Iterator[EmbeddedStack]:
    """The embedded local stack (moto + SecantusDB), shared by the session."""
    from embedded_stack.stack import EmbeddedStack

    with EmbeddedStack() as running:
        yield running
