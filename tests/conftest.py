"""Shared fixtures: a fake clock for unit tests, the embedded stack for integration tests.

Unit tests never touch the stack: ``stack`` is only built when an integration
test asks for it, once per session, and stopped (by PID) at the end.

The session runs with a temporary folder of its own (``TMPDIR`` and
``tempfile.tempdir``, inherited by every command the tests start) and fails
if any ``secretswitch-stack-*`` folder is left in it at the end: a stack that
stopped, failed to start or was interrupted must leave none.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from secretswitch.embedded_stack.stack import EmbeddedStack

# Fails the session if any password a secret ever held reaches a log line or test output.
pytest_plugins = ["tests.leakcheck"]

_session_tmp: dict[str, str | None] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _session_tmp["saved_env"] = os.environ.get("TMPDIR")
    _session_tmp["saved_tempdir"] = tempfile.tempdir
    private = tempfile.mkdtemp(prefix="secretswitch-tests-")
    _session_tmp["path"] = private
    os.environ["TMPDIR"] = private
    tempfile.tempdir = private


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    private = _session_tmp.get("path")
    if private is None:
        return
    leaked = sorted(path.name for path in Path(private).glob("secretswitch-stack-*"))
    saved_env = _session_tmp.get("saved_env")
    if saved_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved_env
    tempfile.tempdir = _session_tmp.get("saved_tempdir")
    shutil.rmtree(private, ignore_errors=True)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"temporary folders: {len(leaked)} secretswitch-stack-* left behind")
    if leaked:
        if reporter is not None:
            reporter.write_line(f"LEFT BEHIND: {', '.join(leaked)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
    from secretswitch.embedded_stack.stack import EmbeddedStack

    with EmbeddedStack() as running:
        yield running
