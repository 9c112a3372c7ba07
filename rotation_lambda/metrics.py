"""One CloudWatch Embedded Metric Format (EMF) record per rotation step: metrics without an agent.

CloudWatch Logs turns a log event that is an EMF JSON object into metrics
(namespace ``secretswitch/Rotation``): ``StepDuration`` (milliseconds),
``StepSucceeded`` and ``StepFailed`` (counts), by ``SecretName`` and by
``SecretName`` + ``Step``. ``Outcome`` (what the step did, or ``failed``)
and ``ErrorType`` (the exception's class) ride along as properties, for
Logs Insights. No PutMetricData call, no IAM permission beyond writing the
function's logs.

The record must be the whole log event, so it is written to stdout as one
line (the Lambda runtime's logging handler would prefix it). It carries the
secret's *name* (an ARN's name, without the suffix Secrets Manager appends),
the step and the outcome: never a secret value, a user or a token.

Written here in a few lines rather than with Powertools' ``Metrics`` or
``aws-embedded-metrics``: the format is one documented JSON object, and
either library would add its package to the zip and its import to every
cold start for one record per invocation (the zip holds only pymongo
beside the function; boto3 comes with the runtime).
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from .rules import STEPS

__all__ = ["NAMESPACE", "secret_name", "step_record", "write_stdout"]

NAMESPACE = "secretswitch/Rotation"
_DIMENSIONS = [["SecretName"], ["SecretName", "Step"]]
_METRICS = [
    {"Name": "StepDuration", "Unit": "Milliseconds"},
    {"Name": "StepSucceeded", "Unit": "Count"},
    {"Name": "StepFailed", "Unit": "Count"},
]
# arn:aws:secretsmanager:eu-west-1:123456789012:secret:mongodb-app-AbCdEf -> mongodb-app
_SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[^:]*:[0-9]*:secret:(?P<name>.+)-[A-Za-z0-9]{6}")


def secret_name(secret_id: object) -> str:
    """The secret's name, from a name or an ARN (``unknown`` when the event had none)."""
    if not isinstance(secret_id, str) or not secret_id:
        return "unknown"
    match = _SECRET_ARN.fullmatch(secret_id)
    return match.group("name") if match else secret_id


def step_record(
    *,
    secret_id: object,
    step: object,
    outcome: str,
    duration: float,
    timestamp: float,
    error_type: str | None = None,
) -> str:
    """One EMF record as a line of JSON.

    Args:
        secret_id: the event's ``SecretId`` (a name or an ARN).
        step: the event's ``Step``; anything but the four steps is ``invalid``.
        outcome: what the step did (``StepResult.outcome``), or ``failed``.
        duration: seconds the step took.
        timestamp: when it ended, seconds since the epoch.
        error_type: the exception's class name when the step failed.
    """
    failed = error_type is not None
    record: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(timestamp * 1000),
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": _DIMENSIONS, "Metrics": _METRICS}],
        },
        "SecretName": secret_name(secret_id),
        "Step": step if isinstance(step, str) and step in STEPS else "invalid",
        "Outcome": outcome,
        "StepDuration": round(duration * 1000.0, 3),
        "StepSucceeded": 0 if failed else 1,
        "StepFailed": 1 if failed else 0,
    }
    if error_type is not None:
        record["ErrorType"] = error_type
    return json.dumps(record, separators=(",", ":"))


def write_stdout(line: str) -> None:
    """Write one record as its own log event (the Lambda runtime sends each stdout line to CloudWatch Logs)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
