"""The suite-wide leak check (tests/leakcheck.py) hears every logger of the project."""

from __future__ import annotations

import ast
import logging
import secrets
from pathlib import Path

import pytest

from secretswitch.embedded_stack import processes, provisioning, stack
from secretswitch.rotation_lambda import lambda_function
from secretswitch.rotation_tools import rotate
from tests import leakcheck

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("client", "rotation_lambda", "rotation_tools", "embedded_stack", "demo_app", "secretswitch")


def _logger_names_in_source() -> list[tuple[str, str]]:
    """(file, the argument of logging.getLogger) for every call in the project's own modules."""
    found: list[tuple[str, str]] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("**/*.py")):
            if path.is_symlink() or any(part.startswith(".") for part in path.relative_to(ROOT).parts):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "getLogger" and node.args:
                    found.append((str(path.relative_to(ROOT)), ast.unparse(node.args[0])))
    return found


def test_every_logger_of_the_project_is_named_under_secretswitch() -> None:
    names = _logger_names_in_source()
    assert len(names) >= 10
    for where, name in names:
        assert name == "__name__" or name.startswith(("'secretswitch.", '"secretswitch.')), (where, name)


@pytest.mark.parametrize("module", [rotate, stack, processes, lambda_function])
def test_a_password_logged_by_a_tools_or_stack_logger_is_caught(module: object) -> None:
    """A record of rotation_tools.* and embedded_stack.* reaches the recorder, and the check finds the password."""
    logger = getattr(module, "_log", None) or logging.getLogger(getattr(module, "__name__", ""))
    assert logger.name.startswith("secretswitch."), logger.name
    assert leakcheck.is_recorded(logger), logger.name
    password = secrets.token_urlsafe(24)
    chunks = leakcheck._recorder.chunks
    before = len(chunks)
    try:
        logger.debug("made up for the leak check: %s", password)
        recorded = chunks[before:]
        assert leakcheck.find_leaks([("mongodb-app", "v1", password)], recorded) == [("mongodb-app", "v1")]
    finally:
        del chunks[before:]  # a made-up password: not a leak of the suite's


def test_a_module_logger_named_after_its_module_is_under_the_package() -> None:
    assert provisioning.__name__ == "secretswitch.embedded_stack.provisioning"
    assert leakcheck.is_recorded(logging.getLogger(provisioning.__name__))
    assert leakcheck.find_leaks([("s", "v", "not-in-the-text-000000")], ["nothing here"]) == []
