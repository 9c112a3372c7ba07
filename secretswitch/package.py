"""``secretswitch package-lambda``: build the rotation function's deployment zip.

The zip holds, at its root:

* ``lambda_function.py``: a shim re-exporting
  :func:`secretswitch.rotation_lambda.lambda_function.lambda_handler`, because
  the Lambda runtime puts the zip root on ``sys.path`` and the SAM handler is
  ``lambda_function.lambda_handler``;
* ``secretswitch/rotation_lambda/`` and the ``secretswitch.client`` modules it
  imports (``credentials``, ``errors``, the Secrets Manager seam
  ``secretsmanager`` that builds its boto3 client, and the MongoDB seam
  ``mongo`` with the pure ``policy`` it uses) under minimal ``secretswitch/__init__.py`` and
  ``secretswitch/client/__init__.py`` (the real ones pull in the rotating
  client, which the function does not need): the same one import name as the
  wheel, so nothing in the zip can collide with a top-level module;
* pymongo (and dnspython) for the Lambda platform, from PyPI
  (``pip install --platform manylinux2014_x86_64 --only-binary=:all:``), from a
  local wheel directory (``--wheel-dir``, offline), or copied from this
  environment (``--from-current-env``, for tests on the same platform).

* with ``--ca-bundle FILE``, that CA bundle at the root under its own name
  (e.g. ``global-bundle.pem``, Amazon's CA for DocumentDB): set the
  function's ``TLS_CA_FILE`` (the template's ``TlsCaFile``) to that name. It
  is checked first: PEM certificates that Python's ``ssl`` loads, no private key.

boto3 is not bundled: the Lambda Python runtime provides it.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from secretswitch.client.errors import ConfigurationError

__all__ = ["CLIENT_MODULES", "DEFAULT_PLATFORM", "DEFAULT_PYTHON", "build_lambda_zip", "check_ca_bundle", "register"]

DEFAULT_PLATFORM = "manylinux2014_x86_64"
DEFAULT_PYTHON = "3.12"  # the runtime in deploy/template.yaml
CLIENT_MODULES = (
    "credentials.py",
    "errors.py",
    "mongo.py",
    "mongo_errors.py",
    "names.py",
    "policy.py",
    "secretsmanager.py",
)
_DEPENDENCIES = ("pymongo", "dnspython")
# The installed package (a wheel) or secretswitch/ in a checkout, whose subpackages link to the top-level folders.
_PACKAGE = Path(__file__).parent
_SHIM = '''"""Lambda entry point: handler ``lambda_function.lambda_handler`` (see rotation_lambda/)."""

from secretswitch.rotation_lambda.lambda_function import lambda_handler

__all__ = ["lambda_handler"]
'''
_PACKAGE_INIT = '''"""secretswitch as the rotation function's zip carries it: the function and its client modules."""
'''
_CLIENT_INIT = '''"""The parts of the secretswitch client the rotation function needs (credentials, errors, seams)."""
'''


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "package-lambda",
        help="build the rotation function's deployment zip (function + pymongo for Lambda)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("dist/rotation-lambda.zip"), help="zip path (%(default)s)"
    )
    parser.add_argument("--platform", default=DEFAULT_PLATFORM, help="pip platform tag (%(default)s)")
    parser.add_argument("--python-version", default=DEFAULT_PYTHON, help="Lambda Python version (%(default)s)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wheel-dir", type=Path, help="install pymongo from this directory of wheels, offline")
    source.add_argument(
        "--from-current-env",
        action="store_true",
        help="copy pymongo from this environment (only right when it runs on the Lambda platform)",
    )
    parser.add_argument(
        "--ca-bundle",
        type=Path,
        default=None,
        metavar="FILE",
        help="put this PEM CA bundle in the zip (e.g. DocumentDB's global-bundle.pem) and set the function's "
        "TLS_CA_FILE (the template's TlsCaFile) to its file name",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path = build_lambda_zip(
        args.output,
        platform=args.platform,
        python_version=args.python_version,
        wheel_dir=args.wheel_dir,
        from_current_env=args.from_current_env,
        ca_bundle=getattr(args, "ca_bundle", None),
    )
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB); handler: lambda_function.lambda_handler")
    if getattr(args, "ca_bundle", None) is not None:
        name = args.ca_bundle.name
        print(f"CA bundle: {name} at the zip's root; deploy with TLS_CA_FILE={name} (sam deploy ... TlsCaFile={name})")
    return 0


def build_lambda_zip(
    output: Path,
    *,
    platform: str = DEFAULT_PLATFORM,
    python_version: str = DEFAULT_PYTHON,
    wheel_dir: Path | None = None,
    from_current_env: bool = False,
    ca_bundle: Path | None = None,
) -> Path:
    """Build the deployment zip and return its path.

    Args:
        ca_bundle: a PEM CA bundle to put at the zip's root (for ``TLS_CA_FILE``).

    Raises:
        ConfigurationError: the sources are missing, pip cannot fetch pymongo,
            or the CA bundle is not one.
    """
    if ca_bundle is not None:
        check_ca_bundle(ca_bundle)
    with tempfile.TemporaryDirectory(prefix="secretswitch-lambda-") as tmp:
        build = Path(tmp)
        _copy_sources(build)
        if ca_bundle is not None:
            shutil.copyfile(ca_bundle, build / ca_bundle.name)
        if from_current_env:
            _copy_installed(build)
        else:
            _pip_install(build, platform=platform, python_version=python_version, wheel_dir=wheel_dir)
        output.parent.mkdir(parents=True, exist_ok=True)
        _write_zip(build, output)
    return output


_BUNDLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\.(pem|crt|cer)")


def check_ca_bundle(path: Path) -> int:
    """Check that ``path`` is a PEM CA bundle fit for the zip; returns how many certificates it holds.

    Raises:
        ConfigurationError: it is missing, not PEM certificates, holds a private key, or has a name
            the zip's root cannot take.
    """
    if not _BUNDLE_NAME.fullmatch(path.name):
        raise ConfigurationError(
            f"--ca-bundle {path}: name the file like global-bundle.pem (letters, digits, ._-; ending .pem, .crt "
            "or .cer): it lands at the zip's root under that name"
        )
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"--ca-bundle {path}: cannot be read as a PEM file ({type(exc).__name__})") from None
    if "PRIVATE KEY-----" in text:
        raise ConfigurationError(
            f"--ca-bundle {path} holds a private key; a CA bundle carries certificates only — never ship a key"
        )
    count = text.count("-----BEGIN CERTIFICATE-----")
    if count == 0:
        raise ConfigurationError(f"--ca-bundle {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as exc:
        raise ConfigurationError(f"--ca-bundle {path}: Python's ssl cannot load it ({exc.reason or exc})") from None
    return count


def _copy_sources(build: Path) -> None:
    source = _PACKAGE / "rotation_lambda"
    if not (source / "lambda_function.py").is_file():
        raise ConfigurationError(f"the rotation function is not installed under {_PACKAGE}; reinstall secretswitch")
    package = build / "secretswitch"
    package.mkdir()
    (package / "__init__.py").write_text(_PACKAGE_INIT)
    target = package / "rotation_lambda"
    target.mkdir()
    for path in sorted(source.glob("*.py")):
        shutil.copy2(path, target / path.name)
    client = package / "client"
    client.mkdir()
    (client / "__init__.py").write_text(_CLIENT_INIT)
    for name in CLIENT_MODULES:
        shutil.copy2(_PACKAGE / "client" / name, client / name)
    (build / "lambda_function.py").write_text(_SHIM)


def _pip_install(build: Path, *, platform: str, python_version: str, wheel_dir: Path | None) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--target", str(build), "--platform", platform, "--python-version", python_version,
        "--implementation", "cp", "--only-binary=:all:", "--upgrade", "pymongo>=4.6,<5",
    ]  # fmt: skip
    if wheel_dir is not None:
        command += ["--no-index", "--find-links", str(wheel_dir)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise ConfigurationError(
            f"pip could not get pymongo for {platform} / Python {python_version}"
            f"{' from ' + str(wheel_dir) if wheel_dir else ''}:\n{tail}\n"
            "download the wheels elsewhere and pass --wheel-dir, or use --from-current-env on the Lambda platform"
        )


def _copy_installed(build: Path) -> None:
    for name in _DEPENDENCIES:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError as exc:
            raise ConfigurationError(f"{name} is not installed in this environment") from exc
        for file in distribution.files or ():
            if "__pycache__" in file.parts or (file.parts[0].endswith(".dist-info") is False and file.suffix == ".pyc"):
                continue
            source = Path(str(distribution.locate_file(file)))
            if not source.is_file():
                continue
            target = build / file
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _write_zip(build: Path, output: Path) -> None:
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(build.rglob("*")):
            if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            archive.write(path, path.relative_to(build).as_posix())
