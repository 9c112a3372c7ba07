"""One full rotation on the embedded stack: total and per step, as ratios against anchors.

Anchors measured in the same run: one ``GetSecretValue`` round trip to the local
Secrets Manager, one ``find_one`` on an open, logged-in MongoClient, and one
fresh MongoClient + SCRAM login + ``ping`` (each step logs in a few times, as
every rotation function does). Target: a full rotation ≤ 0.5 s.

    python -m bench rotation
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections import defaultdict
from typing import Any

__all__ = ["main"]

REGION = "ap-south-1"
RUNS = 7


def _median_s(fn: Any, number: int = 30) -> float:
    samples = []
    for _ in range(number):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    from secretswitch.embedded_stack.moto_server import register_rotation_function
    from secretswitch.embedded_stack.stack import EmbeddedStack
    from secretswitch.rotation_lambda.lambda_function import make_handler
    from secretswitch.rotation_lambda.rules import STEPS
    from secretswitch.rotation_tools.rotate import rotate_secret

    logging.getLogger("secretswitch").setLevel(logging.WARNING)
    with EmbeddedStack(region=REGION) as stack:
        sm = stack.secretsmanager_client()
        secret_id = stack.info.app_secret_id
        handler = make_handler(secretsmanager_client_factory=stack.secretsmanager_client)
        per_step: dict[str, list[float]] = defaultdict(list)

        def timed(event: dict[str, Any]) -> None:
            start = time.perf_counter()
            try:
                handler(event, None)
            finally:
                per_step[event["Step"]].append(time.perf_counter() - start)

        register_rotation_function(stack.rotation_function_arn, timed)
        totals = []
        rotate_secret(sm, secret_id, rotation_lambda_arn=stack.rotation_function_arn)  # warm-up
        per_step.clear()
        for _ in range(RUNS):
            start = time.perf_counter()
            outcome = rotate_secret(sm, secret_id, rotation_lambda_arn=stack.rotation_function_arn)
            totals.append(time.perf_counter() - start)
            if not outcome.completed:
                print(f"rotation failed: {outcome.message}", file=sys.stderr)
                return 1

        get_value = _median_s(lambda: sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT"))
        from secretswitch.client.credentials import parse_secret

        current = parse_secret(
            sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"], secret_id=secret_id
        )
        app = stack.mongo_client(current.username, current.password)
        app["mydb"]["items"].find_one()
        find_one = _median_s(lambda: app["mydb"]["items"].find_one({"_id": "seed"}))

        def fresh_login() -> None:
            client = stack.admin_client()
            try:
                client.admin.command("ping")
            finally:
                client.close()

        login = _median_s(fresh_login, number=15)
        app.close()

    total = statistics.median(totals)
    print(f"rotations: {RUNS} (after one warm-up), embedded stack (moto in-process + SecantusDB subprocess)\n")
    print("| measure | median | x GetSecretValue | x find_one | x fresh login |")
    print("|---|---|---|---|---|")
    rows = [("full rotation (RotateSecret → 4 steps)", total)]
    rows += [(step, statistics.median(per_step[step])) for step in STEPS]
    rows += [("anchor: GetSecretValue", get_value), ("anchor: find_one", find_one), ("anchor: fresh login", login)]
    for what, seconds in rows:
        print(
            f"| {what} | {seconds * 1000:.1f} ms | {seconds / get_value:.1f} | {seconds / find_one:.1f} | "
            f"{seconds / login:.2f} |"
        )
    verdict = "meets" if total <= 0.5 else "MISSES"
    print(f"\nfull rotation median {total * 1000:.0f} ms: {verdict} the ≤ 500 ms target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
