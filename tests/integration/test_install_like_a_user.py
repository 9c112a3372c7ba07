"""Install secretswitch as a user does and use it from an application that has its own ``client``.

The wheel is built from a copy of the repository (``pip wheel --no-deps``,
with build isolation as a user's pip does), installed with ``--no-deps`` into
a fresh venv, and the dependencies are borrowed from this environment through
a ``.pth`` line that comes *after* the new venv's own site-packages (so the
test installs nothing from an index, and this environment's editable
secretswitch is never what the application imports: its finder is only
installed by a ``.pth`` file processed in a site directory, which a path added
by a ``.pth`` line is not).

The application's folder holds a ``client.py``, a ``client/`` package and a
``rotation_lambda.py`` of its own, as real applications do; before the one
import name (issue 19) the first of them broke ``from client import ...``
and ``python -m secretswitch status``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from secretswitch.embedded_stack.stack import EmbeddedStack

REPO = Path(__file__).resolve().parents[2]
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", ".venv.lock", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis",
    "secretswitch-demo-*", "fleet-simulation", "*.zip",
)  # fmt: skip

APP = '''"""An application with a client module of its own, using secretswitch."""
import os
import sys

import client  # the application's own client/ package (a client.py sits next to it too)
import rotation_lambda  # and its own rotation_lambda.py
from secretswitch import AsyncRotatingMongoClient, ConfigurationError, RefreshPolicy, RotatingMongoClient

import secretswitch

assert client.WHOSE == "the application's client package", client.__file__
assert rotation_lambda.WHOSE == "the application's", rotation_lambda.__file__
assert secretswitch.__file__.startswith(sys.argv[1]), secretswitch.__file__
assert AsyncRotatingMongoClient and ConfigurationError
for heavy in ("rich", "matplotlib", "moto", "secantus"):
    assert heavy not in sys.modules, f"import secretswitch pulled in {heavy}"

with RotatingMongoClient(
    os.environ["SECRETSWITCH_SECRET_ID"], database="mydb", policy=RefreshPolicy(refresh_interval=60.0)
) as rc:
    orders = rc.collection("install_like_a_user")
    orders.insert_one({"from": "the installed wheel"})
    print("user", rc.active_user, "orders", orders.count_documents({"from": "the installed wheel"}))
'''


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    python: Path
    site_packages: Path


def _run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(map(str, args))}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("install-like-a-user")
    source = root / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=_NOT_COPIED)
    dist = root / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(source)], cwd=root)
    (wheel,) = dist.glob("secretswitch-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    python = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheel)],
        cwd=root,
    )
    site_packages = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).strip()
    )
    # The dependencies from this environment, after the new venv's own site-packages.
    (site_packages / "zz_borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return Installed(wheel=wheel, venv=venv, python=python, site_packages=site_packages)


@pytest.fixture
def own_app(tmp_path: Path) -> Path:
    """An application folder with its own client.py, client/ package and rotation_lambda.py."""
    app = tmp_path / "ownapp"
    (app / "client").mkdir(parents=True)
    (app / "client.py").write_text('WHOSE = "the application\'s client.py"\n')
    (app / "client" / "__init__.py").write_text('WHOSE = "the application\'s client package"\n')
    (app / "rotation_lambda.py").write_text('WHOSE = "the application\'s"\n')
    (app / "app.py").write_text(APP)
    return app


def _user_env(stack: EmbeddedStack) -> dict[str, str]:
    """What a user has after pasting `secretswitch local`'s exports (and nothing of this test session)."""
    keep = {name: os.environ[name] for name in ("PATH", "HOME", "TMPDIR", "LANG") if name in os.environ}
    return {**keep, **stack.info.environment()}


def test_the_wheel_installs_one_import_name(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
        (top_level,) = [name for name in names if name.endswith(".dist-info/top_level.txt")]
        assert wheel.read(top_level).decode().split() == ["secretswitch"]
    assert {name.split("/")[0] for name in names} == {"secretswitch", top_level.split("/")[0]}
    # The linked folders arrive as real files under the one name.
    assert {
        "secretswitch/client/rotating.py",
        "secretswitch/rotation_lambda/lambda_function.py",
        "secretswitch/demo_app/__main__.py",
    } <= set(names)
    assert sorted(path.name for path in installed.site_packages.iterdir() if not path.name.endswith(".pth")) == sorted(
        ["secretswitch", installed.wheel.name.split("-py3")[0] + ".dist-info"]
    )


def test_an_app_with_its_own_client_module_uses_the_installed_wheel(
    installed: Installed, own_app: Path, stack: EmbeddedStack
) -> None:
    out = _run([str(installed.python), "app.py", str(installed.venv)], cwd=own_app, env=_user_env(stack), timeout=120)
    user, count = out.split()[1], int(out.split()[3])
    assert user in {"app", "app_clone"}
    assert count >= 1


def test_the_command_line_works_from_that_folder(installed: Installed, own_app: Path, stack: EmbeddedStack) -> None:
    env = _user_env(stack)
    help_text = _run([str(installed.python), "-m", "secretswitch", "--help"], cwd=own_app, env=env, timeout=60)
    assert "rotate" in help_text
    assert "doctor" in help_text
    # The collision the issue found: `python -m secretswitch status` next to an application's client.py.
    status = _run([str(installed.python), "-m", "secretswitch", "status"], cwd=own_app, env=env, timeout=60)
    assert f"secret    {stack.info.app_secret_id} (" in status
    script = _run([str(installed.venv / "bin" / "secretswitch"), "--help"], cwd=own_app, env=env, timeout=60)
    assert "package-lambda" in script
