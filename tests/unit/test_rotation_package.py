"""The deployment zip imports on its own: handler module, client modules and pymongo, with only boto3 besides."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import pytest

from secretswitch.client.errors import ConfigurationError
from secretswitch.package import build_lambda_zip

PROBE = """
import sys
root = sys.argv[1]
import lambda_function, secretswitch, secretswitch.rotation_lambda, secretswitch.client, pymongo, bson
for module in (lambda_function, secretswitch, secretswitch.rotation_lambda, secretswitch.client, pymongo, bson):
    assert module.__file__.startswith(root), (module.__name__, module.__file__)
assert callable(lambda_function.lambda_handler)
assert not {"client", "rotation_lambda"} & set(sys.modules), "a top-level name of ours was imported"
# The function's boto3 client comes from the client's seam, in the zip too: AWS_REGION is honoured.
import os
os.environ.pop("AWS_DEFAULT_REGION", None)
os.environ["AWS_REGION"] = "eu-west-1"
from secretswitch.rotation_lambda.lambda_function import function_secretsmanager_client
assert function_secretsmanager_client({}).meta.region_name == "eu-west-1"
import secretswitch.client.secretsmanager as seam
assert seam.__file__.startswith(root), seam.__file__
try:
    lambda_function.lambda_handler({"Step": "nope", "SecretId": "s", "ClientRequestToken": "t"}, None)
except Exception as exc:
    assert type(exc).__name__ == "RotationError", exc
    print("refused:", exc)
"""


def test_the_zip_handler_imports_with_only_the_zip_and_boto3(tmp_path: Path) -> None:
    # Built from this environment's pymongo: fetching the Lambda platform's wheel needs the network.
    archive = build_lambda_zip(tmp_path / "rotation.zip", from_current_env=True)
    with zipfile.ZipFile(archive) as opened:
        names = set(opened.namelist())
        opened.extractall(tmp_path / "task")  # the Lambda runtime unpacks to /var/task
    assert {
        "lambda_function.py",
        "secretswitch/rotation_lambda/lambda_function.py",
        "secretswitch/client/credentials.py",
    } <= names
    assert "secretswitch/client/rotating.py" not in names
    # One import name of ours in the zip, like the wheel: nothing that a top-level module could shadow.
    assert not {"client", "rotation_lambda"} & {name.split("/")[0] for name in names}
    boto3_site = str(Path(boto3.__file__).resolve().parent.parent)
    task = str(tmp_path / "task")
    # Started from a folder with a client.py, a client/ package and a rotation_lambda.py of its own, first on
    # sys.path as a script's folder is: nothing of the function's may import them (each one fails the probe).
    own = tmp_path / "own"
    (own / "client").mkdir(parents=True)
    for decoy in (own / "client.py", own / "client" / "__init__.py", own / "rotation_lambda.py"):
        decoy.write_text(f"raise ImportError('the folder\\'s own {decoy.name} was imported')\n")
    # Nothing else on sys.path: the folder, the unpacked zip, boto3 (the runtime provides it) and the stdlib.
    code = (
        f"import sys; sys.path[:0] = [{str(own)!r}, {task!r}]; sys.path.append({boto3_site!r}); "
        "exec(open(sys.argv[2]).read())"
    )
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, task, str(probe)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=own,
    )
    assert result.returncode == 0, result.stderr
    assert "unknown rotation step" in result.stdout


CA_PROBE = """
import os, sys
sys.path[:0] = [sys.argv[1]]
from secretswitch.rotation_lambda.mongo import function_ca_file
print("resolved:", function_ca_file(os.environ))
"""


def _ca_pem() -> str:
    from cryptography.hazmat.primitives import serialization

    from secretswitch.embedded_stack.tls import new_certificate_authority

    return new_certificate_authority().certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_ca_bundle_lands_at_the_zip_root_where_tls_ca_file_finds_it(tmp_path: Path) -> None:
    bundle = tmp_path / "global-bundle.pem"
    bundle.write_text(_ca_pem() + _ca_pem())
    archive = build_lambda_zip(tmp_path / "rotation.zip", from_current_env=True, ca_bundle=bundle)
    with zipfile.ZipFile(archive) as opened:
        assert opened.read("global-bundle.pem") == bundle.read_bytes()
        opened.extractall(tmp_path / "task")
    task = tmp_path / "task"
    probe = tmp_path / "probe.py"
    probe.write_text(CA_PROBE)
    # As Lambda runs it: LAMBDA_TASK_ROOT is the unpacked zip, TLS_CA_FILE the bundle's name (the template's TlsCaFile).
    env = {"LAMBDA_TASK_ROOT": str(task), "TLS_CA_FILE": "global-bundle.pem", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, str(probe), str(task)], capture_output=True, text=True, timeout=60, check=False, env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"resolved: {task / 'global-bundle.pem'}" in result.stdout


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("global-bundle.pem", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n", "holds a private key"),
        ("global-bundle.pem", "hello\n", "holds no PEM certificate"),
        ("global-bundle.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", "cannot load"),
        ("lambda_function.py", "x", "name the file like global-bundle.pem"),
    ],
)
def test_a_ca_bundle_that_is_not_one_is_refused_before_anything_is_built(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    bundle = tmp_path / name
    bundle.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        build_lambda_zip(tmp_path / "rotation.zip", from_current_env=True, ca_bundle=bundle)
    assert not (tmp_path / "rotation.zip").exists()


def test_package_lambda_says_which_tls_ca_file_to_deploy_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from secretswitch.cli import main

    bundle = tmp_path / "my-ca.pem"
    bundle.write_text(_ca_pem())
    code = main(["package-lambda", "-o", str(tmp_path / "f.zip"), "--from-current-env", "--ca-bundle", str(bundle)])
    assert code == 0
    assert "TLS_CA_FILE=my-ca.pem" in capsys.readouterr().out
