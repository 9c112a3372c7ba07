"""The rotation function's cold start: importing its handler from the deployment zip, against ``import boto3``.

A Lambda cold start imports the handler module in a fresh interpreter. This
builds the zip as ``secretswitch package-lambda --from-current-env`` does,
unpacks it the way the runtime does, and times, in fresh interpreters
(``python -I -S``, only the zip and boto3 on the path), alternating, median of
``RUNS`` each:

* nothing (the interpreter's own start, subtracted from the two others);
* ``import boto3`` (the anchor: what every Python function that talks to AWS pays);
* ``import lambda_function`` (the handler and everything it imports at module level);
* both (the function imports boto3 on its first invocation, so a cold start pays both).

It also lists which of the zip's top-level entries that import loads, so the
zip can be checked to hold only what the function imports.

    python -m bench cold_import
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from bench._common import print_table

__all__ = ["main"]

RUNS = 11
_PROBE = "import sys, json; sys.path[:0] = [{task!r}]; sys.path.append({site!r}); {statement}"
_LOADED = "import lambda_function; print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {names!r})))"


def _run(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-I", "-S", "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    import boto3

    from secretswitch.package import build_lambda_zip

    site = str(Path(boto3.__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory(prefix="secretswitch-bench-") as tmp:
        archive = build_lambda_zip(Path(tmp) / "rotation.zip", from_current_env=True)
        task = str(Path(tmp) / "task")
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(task)
            entries = sorted({name.split("/")[0] for name in opened.namelist()})
        modules = {entry.removesuffix(".py") for entry in entries if not entry.endswith(".dist-info")}
        statements = {
            "nothing": "pass",
            "boto3": "import boto3",
            "function": "import lambda_function",
            "both": "import lambda_function, boto3",
        }
        samples: dict[str, list[float]] = {name: [] for name in statements}
        for statement in statements.values():  # one warm-up each: the first run fills the page cache
            _run(_PROBE.format(task=task, site=site, statement=statement))
        for _ in range(RUNS):
            for name, statement in statements.items():
                samples[name].append(_run(_PROBE.format(task=task, site=site, statement=statement)))
        loaded = subprocess.run(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                _PROBE.format(task=task, site=site, statement=_LOADED.format(names=modules)),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        size_kib = archive.stat().st_size / 1024
    bare = statistics.median(samples["nothing"])
    boto3_s = statistics.median(samples["boto3"]) - bare
    function_s = statistics.median(samples["function"]) - bare
    both_s = statistics.median(samples["both"]) - bare
    print_table(
        f"rotation function cold import (fresh interpreter, median of {RUNS}; interpreter start subtracted)",
        [
            ("`import boto3`", f"{boto3_s * 1000:.0f} ms", "1.0x"),
            (
                "`import lambda_function` from the zip",
                f"{function_s * 1000:.0f} ms",
                f"{function_s / boto3_s:.2f}x boto3",
            ),
            (
                "… + `import boto3` (all a first invocation has imported)",
                f"{both_s * 1000:.0f} ms",
                f"{both_s / boto3_s:.2f}x boto3",
            ),
            ("the zip (this environment's pymongo)", f"{size_kib:,.0f} KiB", f"{len(entries)} top-level entries"),
        ],
    )
    print(f"\nzip entries: {', '.join(entries)}")
    print(f"loaded by `import lambda_function`: {loaded}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
