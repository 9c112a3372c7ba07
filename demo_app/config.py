"""The demo's options: parsed from the command line and the environment, checked before anything starts.

Pure code: no servers, no network. :func:`config_from_args` turns parsed
arguments (and the environment) into a frozen :class:`DemoConfig`, or raises
:class:`~client.errors.ConfigurationError` with one line that says what to
change.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from secretswitch.client.errors import ConfigurationError

__all__ = ["DAY", "DemoConfig", "add_arguments", "config_from_args"]

DAY = 86400.0
"""Seconds in one (demo) day."""

SECRET_ID_ENV = "SECRETSWITCH_SECRET_ID"
ENDPOINT_ENV = "AWS_ENDPOINT_URL_SECRETS_MANAGER"
MONGODB_URI_ENV = "MONGODB_URI"
# A rotation (four steps, two logins, one updateUser) takes 0.6-1 s on the local stack under the workload.
MIN_ROTATION_INTERVAL_S = 1.0


@dataclass(frozen=True)
class DemoConfig:
    """Everything one demo run needs to know.

    Attributes:
        rotations: scheduled rotations to run.
        rotation_days: demo days between scheduled rotations.
        refresh_days: the client's refresh interval, in demo days (an upper bound).
        day_seconds: real seconds in one demo day.
        workers: application worker threads.
        rate: target operations per second of all workers together.
        write_ratio: share of operations that are inserts (the rest are reads).
        manual_rotation: add one out-of-schedule rotation in the middle of a cache period.
        rotation_guard: turn the embedded function's rotation guard on, with a gap scaled to the
            demo's days (:attr:`rotation_guard_days`): the manual rotation is then refused.
        naive: also run the same workload through a plain ``MongoClient``, side by side.
        async_client: run the workload as asyncio tasks through ``AsyncRotatingMongoClient``.
        out_dir: where the results go; ``None`` means a new folder under the current directory.
        plain: print one line per event even on a terminal.
        external: use an existing Secrets Manager (real AWS or ``endpoint``) and the secret it holds.
        secret_id: the application's secret (external mode).
        endpoint: Secrets Manager endpoint URL (external mode); ``None`` means AWS itself.
        region: AWS region; ``None`` means ``$AWS_REGION``, else boto3's resolution (external), or us-east-1 (embedded).
        verify_uri: a MongoDB URI that can read the application's database, for the final
            check of every acknowledged write (external mode; ``MONGODB_URI``).
        mongodb_uri: a real MongoDB to use instead of SecantusDB (embedded mode; ``MONGODB_URI``).
        seed: seed of the workload's random choices (reproducible runs).
        layout: the embedded stack's secret layout (``stack`` or ``aws``: AWS's format, ``dbname: admin``).
        database: the application's database (external mode); ``None`` means the secret's ``dbname``.
        metrics_port: serve the client's metrics (Prometheus text format) on 127.0.0.1 at this
            port for the length of the run (0: any free port); ``None``: no endpoint.
        tls: the embedded stack's SecantusDB speaks TLS only, with a CA made for the run.
    """

    rotations: int = 4
    rotation_days: float = 7.0
    refresh_days: float = 6.0
    day_seconds: float = 1.0
    workers: int = 8
    rate: float = 200.0
    write_ratio: float = 0.5
    manual_rotation: bool = False
    rotation_guard: bool = False
    naive: bool = False
    async_client: bool = False
    out_dir: Path | None = None
    plain: bool = False
    external: bool = False
    secret_id: str = "mongodb-app"
    endpoint: str | None = None
    region: str | None = None
    verify_uri: str | None = field(default=None, repr=False)
    mongodb_uri: str | None = field(default=None, repr=False)
    seed: int | None = None
    layout: str = "stack"
    database: str | None = None
    metrics_port: int | None = None
    tls: bool = False

    @property
    def demo_seconds_per_real_second(self) -> float:
        return DAY / self.day_seconds

    @property
    def refresh_interval(self) -> float:
        """The client's refresh interval in demo seconds."""
        return self.refresh_days * DAY

    @property
    def rotation_guard_days(self) -> float:
        """The guard's gap in demo days: half the rotation interval.

        Not the rule's refresh interval + margin: the demo compresses days, not the rotation
        itself (about a second, a demo day or two), and the guard measures from the end of the
        last rotation. Half the interval still refuses the out-of-schedule rotation (at most
        3 demo days after the last one) and lets the scheduled ones through.
        """
        return self.rotation_days / 2

    @property
    def rotation_guard_seconds(self) -> float:
        """The guard's gap in real seconds (``MIN_ROTATION_GAP`` of the demo's function)."""
        return self.rotation_guard_days * self.day_seconds

    @property
    def last_rotation_day(self) -> float:
        return self.rotations * self.rotation_days

    @property
    def max_days(self) -> float:
        """The latest demo day the run may last: after the last rotation, one refresh interval and a day."""
        return self.last_rotation_day + self.refresh_days + 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser`` (``python -m secretswitch.demo_app`` and ``secretswitch demo``)."""
    timing = parser.add_argument_group("compressed time")
    timing.add_argument("--rotations", type=int, default=4, help="scheduled rotations to run (default: %(default)s)")
    timing.add_argument(
        "--rotation-days", type=float, default=7.0, help="demo days between rotations (default: %(default)s)"
    )
    timing.add_argument(
        "--refresh-days",
        type=float,
        default=6.0,
        help="the client's refresh interval in demo days; must be shorter than --rotation-days (default: %(default)s)",
    )
    timing.add_argument(
        "--day-seconds", type=float, default=1.0, help="real seconds in one demo day (default: %(default)s)"
    )
    workload = parser.add_argument_group("workload")
    workload.add_argument("--workers", type=int, default=8, help="application threads (default: %(default)s)")
    workload.add_argument(
        "--rate", type=float, default=200.0, help="operations per second, all workers together (default: %(default)s)"
    )
    workload.add_argument("--seed", type=int, default=None, help="seed the workload's random choices")
    scenarios = parser.add_argument_group("scenarios")
    scenarios.add_argument(
        "--manual-rotation",
        action="store_true",
        help="rotate once more out of schedule, mid cache period, so the client's cached user changes "
        "under it; the client must recover through the authentication-failure path",
    )
    scenarios.add_argument(
        "--rotation-guard",
        action="store_true",
        help="turn the rotation guard on in the demo's function, with a gap of half --rotation-days (in demo "
        "days): a rotation that comes too soon (--manual-rotation) is refused and nothing changes",
    )
    scenarios.add_argument(
        "--naive",
        action="store_true",
        help="also run the same workload through a plain MongoClient built once, side by side",
    )
    scenarios.add_argument(
        "--async",
        dest="async_client",
        action="store_true",
        help="run the application as asyncio tasks through AsyncRotatingMongoClient (same workload, same checks)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out", type=Path, default=None, help="results folder (default: a new folder under the current directory)"
    )
    output.add_argument("--plain", action="store_true", help="one line per event, even on a terminal")
    output.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="N",
        help="serve the client's OpenTelemetry metrics in Prometheus text format on http://127.0.0.1:N/metrics "
        "while the demo runs (0: any free port)",
    )
    external = parser.add_argument_group(
        "real infrastructure",
        "By default the demo starts its own Secrets Manager (moto) and MongoDB (SecantusDB). Give a secret id "
        f"(or set {SECRET_ID_ENV}) or an endpoint to use an existing Secrets Manager instead: real AWS through "
        f"boto3's usual configuration, or the endpoint in --secretsmanager-endpoint / {ENDPOINT_ENV}. "
        "The secret names the MongoDB; set MONGODB_URI to a user that can read the application's database "
        "for the final check of every write. Without a secret id or endpoint, MONGODB_URI (or --mongodb-uri) "
        "instead replaces SecantusDB: a real mongod or Atlas, as a user that may create users; the demo creates "
        "app and app_clone there (refusing if they exist) and drops them at the end.",
    )
    external.add_argument("--secret-id", default=None, help=f"the application's secret (env {SECRET_ID_ENV})")
    external.add_argument(
        "--secretsmanager-endpoint", default=None, help=f"Secrets Manager endpoint URL (env {ENDPOINT_ENV})"
    )
    external.add_argument(
        "--region", default=None, help="AWS region (default: $AWS_REGION, else $AWS_DEFAULT_REGION or the profile's)"
    )
    external.add_argument(
        "--mongodb-uri", default=None, help=f"a real MongoDB instead of SecantusDB (env {MONGODB_URI_ENV})"
    )
    external.add_argument(
        "--database",
        default=None,
        help="the application's database when it is not the secret's dbname (e.g. AWS's format with dbname admin)",
    )
    external.add_argument(
        "--tls",
        action="store_true",
        help="the embedded stack's SecantusDB speaks TLS only, with a CA and certificate made for the run; "
        "everything connects with certificate and host-name verification on (docs/tls.md)",
    )
    external.add_argument(
        "--aws-layout",
        action="store_true",
        help="the embedded stack writes AWS's secret layout (users in admin, dbname admin) instead of "
        "dbname mydb + authSource admin",
    )


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> DemoConfig:
    """Build and check the configuration.

    Raises:
        ConfigurationError: an option cannot work; the message says what to change.
    """
    _positive_int(args.rotations, "--rotations")
    _positive(args.rotation_days, "--rotation-days")
    _positive(args.refresh_days, "--refresh-days")
    _positive(args.day_seconds, "--day-seconds")
    _positive_int(args.workers, "--workers")
    _positive(args.rate, "--rate")
    if args.refresh_days >= args.rotation_days:
        raise ConfigurationError(
            f"--refresh-days ({args.refresh_days:g}) must be shorter than --rotation-days ({args.rotation_days:g}): "
            "a client that re-reads the secret less often than it is rotated can hold a password that was changed; "
            f"try --refresh-days {args.rotation_days * 6 / 7:g}"
        )
    if args.day_seconds * args.rotation_days < MIN_ROTATION_INTERVAL_S:
        raise ConfigurationError(
            f"--day-seconds {args.day_seconds:g} x --rotation-days {args.rotation_days:g} leaves "
            f"{args.day_seconds * args.rotation_days:.2g} s between rotations, and a rotation takes up to a second "
            f"on the local stack; use --day-seconds {MIN_ROTATION_INTERVAL_S / args.rotation_days:.2g} or more"
        )
    if args.rate / args.workers > 500:
        raise ConfigurationError(f"--rate {args.rate:g} is more than 500 operations per second per worker; lower it")
    secret_id = args.secret_id or environ.get(SECRET_ID_ENV) or None
    endpoint = args.secretsmanager_endpoint or None
    external = secret_id is not None or endpoint is not None
    if external and endpoint is None:
        endpoint = environ.get(ENDPOINT_ENV) or None
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"--secretsmanager-endpoint {endpoint!r} is not a URL; give it as http://host:port or https://host"
        )
    mongodb_uri = args.mongodb_uri or environ.get(MONGODB_URI_ENV) or None
    if mongodb_uri is not None and not mongodb_uri.startswith(("mongodb://", "mongodb+srv://")):
        raise ConfigurationError("MONGODB_URI / --mongodb-uri must be a mongodb:// or mongodb+srv:// connection string")
    verify_uri = mongodb_uri if external else None
    database = getattr(args, "database", None)
    if database is not None and (not database.strip() or any(ch in database for ch in '/\\. "$')):
        raise ConfigurationError(f"--database {database!r} is not a MongoDB database name")
    aws_layout = bool(getattr(args, "aws_layout", False))
    if aws_layout and external:
        raise ConfigurationError("--aws-layout shapes the embedded stack's secret; it does not apply to --secret-id")
    metrics_port = getattr(args, "metrics_port", None)
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        raise ConfigurationError(f"--metrics-port {metrics_port} is not a TCP port; give 1-65535 (or 0: any free port)")
    rotation_guard = bool(getattr(args, "rotation_guard", False))
    if rotation_guard and external:
        raise ConfigurationError(
            "--rotation-guard configures the embedded stack's function; a deployed function has its own "
            "MIN_ROTATION_GAP (deploy/template.yaml's MinRotationGap)"
        )
    tls = bool(getattr(args, "tls", False))
    if tls and (external or mongodb_uri is not None):
        raise ConfigurationError(
            "--tls makes a CA for the embedded stack's SecantusDB; with --secret-id or MONGODB_URI the secret "
            "(or the URI) already says how to reach the database over TLS"
        )
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise ConfigurationError(f"--out {args.out} exists and is not a folder; give a folder (it is created if new)")
    return DemoConfig(
        rotations=args.rotations,
        rotation_days=args.rotation_days,
        refresh_days=args.refresh_days,
        day_seconds=args.day_seconds,
        workers=args.workers,
        rate=args.rate,
        manual_rotation=args.manual_rotation,
        rotation_guard=rotation_guard,
        naive=args.naive,
        async_client=getattr(args, "async_client", False),
        out_dir=args.out,
        plain=args.plain,
        external=external,
        secret_id=secret_id or "mongodb-app",
        endpoint=endpoint,
        region=args.region,
        verify_uri=verify_uri,
        mongodb_uri=None if external else mongodb_uri,
        seed=args.seed,
        layout="aws" if aws_layout else "stack",
        database=database,
        metrics_port=metrics_port,
        tls=tls,
    )


def _positive(value: float, flag: str) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{flag} must be a positive number, not {value:g}")


def _positive_int(value: int, flag: str) -> None:
    if value <= 0:
        raise ConfigurationError(f"{flag} must be a positive whole number, not {value}")
