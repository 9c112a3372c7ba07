"""The deployment zip imports on its own: handler module, client modules and pymongo, with only boto3 besides."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import boto3

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
from secretswitch.rotation_lambda.lambda_function import default_secretsmanager_client
assert default_secretsmanager_client({}).meta.region_name == "eu-west-1"
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
