"""A suite-wide check that no password reaches a log line, an error or captured output.

Loaded as a pytest plugin by ``tests/conftest.py``. While the suite runs it
records every log record of the project's loggers (at DEBUG, whatever the
root level) and every test report's text: captured stdout, stderr and log,
and failure tracebacks. At the end it collects every password that any
secret version in any embedded Secrets Manager (moto's in-process state, all
accounts and regions) ever held, and fails the session if one of them
appears in the recorded text. It names the secret and version, never the
password.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest

# Every logger of the project is under the one package name (``__name__`` and "secretswitch.rotation").
_PROJECT_LOGGERS = ("secretswitch",)
# Passwords the tests make up by hand are short and may appear in assertions
# on purpose; every password a rotation or the stack generates is longer.
_MIN_LENGTH = 16


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.chunks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.chunks.append(self.format(record))
        except Exception:  # a bad record must not break the test that logged it
            self.chunks.append(str(record.msg))
        if record.exc_info and record.exc_info[1] is not None:
            self.chunks.append(repr(record.exc_info[1]))


_recorder = _Recorder()
_saved_levels: dict[str, int] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    for name in _PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        _saved_levels[name] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(_recorder)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for _, content in report.sections:
        _recorder.chunks.append(content)
    if report.longrepr is not None:
        _recorder.chunks.append(report.longreprtext)


def _passwords_in_moto() -> list[tuple[str, str, str]]:
    """(secret name, version id, password) for every version moto holds."""
    moto_backends = sys.modules.get("moto.backends")
    if moto_backends is None:
        return []
    found: list[tuple[str, str, str]] = []
    for account_backends in moto_backends.get_backend("secretsmanager").values():
        for backend in account_backends.values():
            for secret in list(backend.secrets.values()):
                for version_id, version in list(getattr(secret, "versions", {}).items()):
                    password = _password_of(version.get("secret_string"))
                    if password is not None and len(password) >= _MIN_LENGTH:
                        found.append((secret.name, version_id, password))
    return found


def _password_of(secret_string: Any) -> str | None:
    if not isinstance(secret_string, str):
        return None
    try:
        document = json.loads(secret_string)
    except ValueError:
        return None
    password = document.get("password") if isinstance(document, dict) else None
    return password if isinstance(password, str) else None


def find_leaks(passwords: list[tuple[str, str, str]], chunks: list[str]) -> list[tuple[str, str]]:
    """(secret name, version id) of every password that appears in one of the recorded ``chunks``."""
    text = "\n".join(chunks)
    return [(name, version) for name, version, password in passwords if password in text]


def is_recorded(logger: logging.Logger) -> bool:
    """Whether a record of ``logger`` reaches the recorder (it is, or propagates to, a project logger)."""
    current: logging.Logger | None = logger
    while current is not None:
        if _recorder in current.handlers:
            return True
        if not current.propagate:
            return False
        current = current.parent if isinstance(current.parent, logging.Logger) else None
    return False


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for name in _PROJECT_LOGGERS:
        logger = logging.getLogger(name)
        logger.removeHandler(_recorder)
        logger.setLevel(_saved_levels.get(name, logging.NOTSET))
    passwords = _passwords_in_moto()
    leaks = find_leaks(passwords, _recorder.chunks)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    summary = (
        f"leak check: {len(passwords)} secret passwords checked against {len(_recorder.chunks)} "
        f"log records and test outputs: {len(leaks)} found"
    )
    if reporter is not None:
        reporter.write_line(summary)
    if leaks:
        for name, version in leaks:
            message = f"LEAK: the password of secret {name!r} version {version} appears in a log line or test output"
            if reporter is not None:
                reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
