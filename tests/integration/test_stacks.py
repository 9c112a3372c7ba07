"""Every application stack keeps working through a planned and an out-of-schedule double rotation.

One test per row of issue 20's table, each with the real server and library
(gunicorn + Flask with ``--preload --max-requests 30``, uvicorn + FastAPI,
Beanie, MongoEngine, django-mongodb-backend, a ``multiprocessing`` fork pool)
and the wiring docs/embedding.md gives; the scenario is
:func:`tests.integration.stack_support.run_scenario` (a few seconds each).
Each asserts: every request after the rotations succeeds, none hangs, the
planned switch happened on the application's own schedule, and at most the
requests in flight when a login was refused failed (3 load clients + a burst
of 12). The figures of every row are printed at the end of the module.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from secretswitch.embedded_stack.stack import EmbeddedStack

from .stack_support import BURST, LOAD_CLIENTS, Figures, app_server, provision, run_scenario

# In flight at the moment of the refused login, at most: the load clients and one burst.
IN_FLIGHT = LOAD_CLIENTS + BURST
RESULTS: dict[str, Figures] = {}


def _gunicorn(app: str, *options: str) -> Callable[[int], Sequence[str]]:
    def argv(port: int) -> Sequence[str]:
        return [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "2",
                "-t", "30", *options, app]  # fmt: skip

    return argv


def _uvicorn(app: str) -> Callable[[int], Sequence[str]]:
    def argv(port: int) -> Sequence[str]:
        return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                "--timeout-graceful-shutdown", "2", app]  # fmt: skip

    return argv


def _pool(port: int) -> Sequence[str]:
    return [sys.executable, "-m", "tests.integration.stack_apps.pool_app", str(port)]


STACKS: dict[str, Callable[[int], Sequence[str]]] = {
    "flask-gunicorn-preload": _gunicorn(
        "tests.integration.stack_apps.flask_app:app", "-w", "3", "--preload", "--max-requests", "30"
    ),
    "fastapi-uvicorn": _uvicorn("tests.integration.stack_apps.fastapi_app:app"),
    "beanie": _uvicorn("tests.integration.stack_apps.beanie_app:app"),
    "mongoengine": _gunicorn(
        "tests.integration.stack_apps.mongoengine_app:app", "-w", "1", "-k", "gthread", "--threads", "4"
    ),
    "django-mongodb-backend": _gunicorn(
        "tests.integration.stack_apps.django_site.wsgi:application", "-w", "1", "-k", "gthread", "--threads", "4"
    ),
    "multiprocessing-fork-pool": _pool,
}


@pytest.mark.parametrize("name", list(STACKS))
def test_stack_serves_through_planned_and_double_rotation(stack: EmbeddedStack, tmp_path: Path, name: str) -> None:
    secret_id = provision(stack)
    with app_server(stack, STACKS[name], secret_id, tmp_path / f"{name}.log") as server:
        figures = run_scenario(stack, server.url, secret_id)
        RESULTS[name] = figures
        report = f"{name}: {figures.row()}\n--- server log ---\n{server.tail()}"
    assert figures.hung == 0, report
    assert figures.after_failed == 0, report
    assert figures.planned_switch_seen, report
    assert figures.load_failed <= IN_FLIGHT, report


def test_zz_stack_figures(capsys: pytest.CaptureFixture[str]) -> None:
    """Print every row's figures (load ok/failed, after ok/failed, hung, errors) for the record."""
    assert RESULTS, "no stack ran"
    with capsys.disabled():
        print("\napplication stacks (load ok/failed, after ok/failed):")
        for name, figures in RESULTS.items():
            print(f"  {name:28} {figures.row()}")
