"""The Secrets Manager seam: the only client module that talks to boto3.

It builds the project's boto3 clients (:func:`secretsmanager_client`: the
region from ``AWS_REGION`` as the other AWS SDKs and Lambda read it, a checked
endpoint URL, and a :class:`ConfigurationError` that says what to set instead
of botocore's ``NoRegionError``), reads one secret (``GetSecretValue`` by
staging label, ``DescribeSecret`` for the rotation schedule), counts every API
call it makes, and translates botocore's errors into the secretswitch error
tree (``raise ... from exc``). It never parses or logs the secret string:
:class:`SecretVersion` hides it from ``repr``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, SecretNotFoundError, SecretsManagerError

if TYPE_CHECKING:
    from botocore.config import Config
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = [
    "CallListener",
    "ENDPOINT_VARIABLES",
    "REGION_ADVICE",
    "RotationSchedule",
    "SecretSource",
    "SecretVersion",
    "aws_error_advice",
    "aws_error_behind",
    "call_limits",
    "check_endpoint_url",
    "default_secretsmanager_client",
    "error_code",
    "is_not_found",
    "REGION_PATTERN",
    "next_rotation_after",
    "resolve_region",
    "rotation_schedule_of",
    "secretsmanager_client",
    "translate_error",
]

REGION_PATTERN = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
"""The shape of an AWS region name (``us-east-1``, ``eu-central-2``, ``us-gov-west-1``)."""

REGION_ADVICE = (
    "no AWS region is configured; set AWS_REGION (or AWS_DEFAULT_REGION, or region in the AWS profile){how}, "
    "or for the local stack paste the exports `secretswitch local` prints"
)
"""What to do without a region; ``{how}`` names the caller's own way to pass one."""

_LIBRARY_REGION_HOW = ", or pass secretsmanager_client=boto3.client('secretsmanager', region_name=...)"

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL")
"""The variables boto3 reads a Secrets Manager endpoint from, most specific first."""

_NOT_FOUND_CODES = frozenset({"ResourceNotFoundException"})
_THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded", "LimitExceededException"}
)
_DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied"})
_BAD_CREDENTIALS_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
        "ExpiredToken",
    }
)
_log = logging.getLogger(__name__)

CallListener = Callable[[str, "str | None"], None]
"""``listener(operation, error)`` after each API call: ``error`` is ``None`` on success, else the AWS
error code (``ThrottlingException``) or the botocore exception's class name (``EndpointConnectionError``)."""

# AWS says "marked for deletion"; moto "marked deleted"; both mean DeleteSecret ran.
_DELETED = re.compile(r"marked (for )?delet|scheduled for deletion", re.IGNORECASE)


# ``rate(7 days)``/``rate(12 hours)`` and a ``Duration`` of ``"3h"``: the schedule forms one can reason about.
_RATE = re.compile(r"rate\(\s*(\d+)\s+(hour|hours|day|days)\s*\)")
_DURATION_HOURS = re.compile(r"(\d{1,2})h")


@dataclass(frozen=True, slots=True)
class SecretVersion:
    """One version of a secret as Secrets Manager returned it.

    Attributes:
        version_id: the version id.
        stages: its staging labels (``AWSCURRENT``, ...).
        secret_string: the raw ``SecretString`` (hidden from ``repr``), or
            ``None`` for a binary secret.
        created: its ``CreatedDate``, when the call returned one.
    """

    version_id: str | None
    stages: tuple[str, ...]
    secret_string: str | None = field(repr=False)
    created: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class RotationSchedule:
    """A secret's rotation schedule: the one schedule type of the project.

    :func:`rotation_schedule_of` reads it from ``DescribeSecret``; the embedded
    stack validates ``RotateSecret``'s ``RotationRules`` into it; the operator
    tools and the guard reason on it.

    Attributes:
        enabled: whether rotation is on.
        rotation_days: ``AutomaticallyAfterDays`` (derived from ``rate(N days)``;
            ``None`` for a rate in hours and for ``cron()``).
        schedule_expression: the ``rate()``/``cron()`` expression, if any.
        next_rotation: ``NextRotationDate`` (aware, UTC), if Secrets Manager gave one.
        last_rotated: ``LastRotatedDate`` (aware, UTC), if any.
        window_hours: the rotation window (``Duration``, e.g. ``"3h"``), or
            ``None`` when unset (a day for ``rate(N days)``).
        interval_hours: the rate in hours (``rate(N hours)``, or days x 24), ``None`` for ``cron()``.
    """

    enabled: bool
    rotation_days: int | None = None
    schedule_expression: str | None = None
    next_rotation: dt.datetime | None = None
    last_rotated: dt.datetime | None = None
    window_hours: int | None = None
    interval_hours: int | None = None

    @property
    def interval_days(self) -> int | None:
        """The old name of :attr:`rotation_days` (kept for callers of 0.x)."""
        return self.rotation_days

    @property
    def interval_seconds(self) -> float | None:
        """The rotation interval in seconds (``None``: ``cron()`` or no schedule)."""
        return None if self.interval_hours is None else self.interval_hours * 3600.0

    @property
    def window_seconds(self) -> float:
        """The rotation window in seconds: ``Duration``, else AWS's default of the rest of the UTC day."""
        return (self.window_hours if self.window_hours is not None else 24) * 3600.0

    def rules(self) -> dict[str, Any]:
        """The ``RotationRules`` structure ``DescribeSecret`` returns for this schedule."""
        rules: dict[str, Any] = {}
        if self.rotation_days is not None:
            rules["AutomaticallyAfterDays"] = self.rotation_days
        if self.schedule_expression is not None:
            rules["ScheduleExpression"] = self.schedule_expression
        if self.window_hours is not None:
            rules["Duration"] = f"{self.window_hours}h"
        return rules


def rotation_schedule_of(description: Mapping[str, Any]) -> RotationSchedule:
    """The one reader of ``RotationRules``: a ``DescribeSecret`` (or ``ListSecrets`` entry) as a schedule.

    Lenient (AWS wrote it): ``AutomaticallyAfterDays``, else the days of ``rate(N days)``; the hours of
    ``rate(N hours)``; ``Duration`` as ``"3h"``. Anything else reads as ``None``.
    """
    rules: Mapping[str, Any] = description.get("RotationRules") or {}
    expression = rules.get("ScheduleExpression") or None
    days = rules.get("AutomaticallyAfterDays") or None
    rate = _RATE.fullmatch(str(expression or "").strip())
    hours: int | None = None
    if rate is not None:
        value = int(rate.group(1))
        if rate.group(2).startswith("day"):
            days = days or value
            hours = value * 24
        else:
            hours = value
    elif days and not expression:
        hours = int(days) * 24
    duration = _DURATION_HOURS.fullmatch(str(rules.get("Duration") or "").strip())
    return RotationSchedule(
        enabled=bool(description.get("RotationEnabled", False)),
        rotation_days=int(days) if days else None,
        schedule_expression=expression,
        next_rotation=_aware(description.get("NextRotationDate")),
        last_rotated=_aware(description.get("LastRotatedDate")),
        window_hours=int(duration.group(1)) if duration else None,
        interval_hours=hours,
    )


def next_rotation_after(rotated_at: dt.datetime, interval_hours: int | None) -> dt.datetime | None:
    """The one next-rotation formula: when the next window opens after a rotation at ``rotated_at``.

    AWS (``RotationRulesType``): with ``AutomaticallyAfterDays`` "Secrets Manager calculates the next
    rotation date based on the previous rotation", and "if you use a rate() expression, the rotation
    window starts at midnight" UTC. So a rate in days opens at midnight UTC of the day ``N`` days after
    the rotation's day; a rate in hours ``N`` hours after it; ``cron()`` (``None``) is not computed here.
    """
    if interval_hours is None:
        return None
    if interval_hours % 24 == 0:
        midnight = rotated_at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight + dt.timedelta(days=interval_hours // 24)
    return rotated_at + dt.timedelta(hours=interval_hours)


def aws_error_advice(code: str, message: str, *, operation: str, secret_id: str) -> str | None:
    """One clause for a person: what an AWS error code on ``secret_id`` means and what to do (``None``: no advice).

    Pure, so every boundary that meets botocore's errors words them the same
    way. ``code`` is the AWS error code, or the class name of a botocore error
    raised before any answer (``NoCredentialsError``, ``EndpointConnectionError``).
    ``message`` is AWS's own (it never carries a secret value).
    """
    if code in _THROTTLING_CODES:
        return (
            f"Secrets Manager is throttling {operation} (a request quota was exceeded); retry with backoff, "
            "spread the callers' refreshes, or raise the quota"
        )
    if code == "InvalidRequestException" and _DELETED.search(message):
        return (
            f"secret {secret_id!r} is scheduled for deletion; restore it "
            f"(`aws secretsmanager restore-secret --secret-id {secret_id}`) or use another secret"
        )
    if code in _DENIED_CODES:
        return (
            f"missing permission: the caller's IAM policy must allow secretsmanager:{operation} on {secret_id!r} "
            "(and kms:Decrypt on its key)"
        )
    if code in _BAD_CREDENTIALS_CODES:
        return (
            "AWS refused the credentials (unknown, expired or badly signed); check the access key, session token "
            "and clock (`aws sts get-caller-identity`)"
        )
    if code in _NOT_FOUND_CODES:
        return f"no secret {secret_id!r} (or no such version or stage); check the secret id and the region"
    if code in {"NoCredentialsError", "PartialCredentialsError"}:
        return (
            "no AWS credentials found; configure them (`aws configure`, AWS_PROFILE, an instance role), or for "
            "the local stack paste the exports `secretswitch local` prints"
        )
    if code in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"}:
        return (
            "Secrets Manager is unreachable; check the network and AWS_ENDPOINT_URL_SECRETS_MANAGER "
            "(for the local stack: is `secretswitch local` still running?)"
        )
    if code == "NoRegionError":
        return REGION_ADVICE.format(how=" or pass --region")
    if code == "SSLError":
        return (
            "the TLS handshake with the endpoint failed; the local stack speaks plain http:// (use the URL "
            "`secretswitch local` prints), otherwise check AWS_CA_BUNDLE and any proxy"
        )
    if code == "HTTPClientError" and "URL scheme" in message:
        return "the endpoint URL's scheme is neither http:// nor https://; fix AWS_ENDPOINT_URL_SECRETS_MANAGER"
    if code in {"DecryptionFailure", "KMSAccessDeniedException"}:
        return f"Secrets Manager cannot decrypt {secret_id!r}; allow kms:Decrypt on the secret's KMS key"
    return None


def resolve_region(region: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The region to give boto3: ``region``, else ``$AWS_REGION``; ``None`` leaves it to boto3.

    botocore reads ``AWS_DEFAULT_REGION`` and the profile but not ``AWS_REGION``,
    which the AWS CLI v2, the other SDKs and the Lambda runtime use and which
    wins over ``AWS_DEFAULT_REGION`` there; so it wins here too.
    """
    if region:
        return region
    env = os.environ if environ is None else environ
    return env.get("AWS_REGION", "").strip() or None


def check_endpoint_url(url: str, *, source: str) -> str:
    """Return ``url`` if it can name a Secrets Manager endpoint; ``source`` says where it came from.

    Raises:
        ConfigurationError: not an ``http://`` or ``https://`` URL with a host (a typo such as ``htp://``).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigurationError(
            f"{source} {url!r} is not an http:// or https:// URL with a host; use e.g. http://127.0.0.1:PORT "
            "as `secretswitch local` prints it, or unset it for AWS"
        )
    return url.strip()


def secretsmanager_client(
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    endpoint_source: str = "endpoint_url",
    config: Config | None = None,
    region_how: str = _LIBRARY_REGION_HOW,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
) -> SecretsManagerClient:
    """The one place the project builds a boto3 ``secretsmanager`` client from the environment.

    Args:
        region: the region; default :func:`resolve_region` (``$AWS_REGION``, then boto3's own).
        endpoint_url: an endpoint URL; default boto3's (``$AWS_ENDPOINT_URL_SECRETS_MANAGER``,
            ``$AWS_ENDPOINT_URL``, else AWS). Either is checked first.
        endpoint_source: how to name ``endpoint_url`` in an error (an option or a variable).
        config: a botocore ``Config`` (timeouts, retries).
        region_how: the caller's own way to pass a region, for the advice when there is none.
        aws_access_key_id / aws_secret_access_key: explicit keys (the embedded stack's dummy ones);
            default boto3's credential chain.

    Raises:
        ConfigurationError: no region anywhere, or an endpoint URL that cannot work; says what to set.
    """
    import boto3
    from botocore.exceptions import NoRegionError

    # boto3 reads the process environment (and the profile); so does this, to check what boto3 will use.
    if endpoint_url:
        endpoint_url = check_endpoint_url(endpoint_url, source=endpoint_source)
    else:
        endpoint_url = None
        for variable in ENDPOINT_VARIABLES:
            if os.environ.get(variable):
                check_endpoint_url(os.environ[variable], source=variable)
                break
    try:
        return boto3.client(
            "secretsmanager",
            region_name=resolve_region(region),
            endpoint_url=endpoint_url,
            config=config,
            aws_access_key_id=aws_access_key_id,
            aws_secret_access_key=aws_secret_access_key,
        )
    except NoRegionError:
        raise ConfigurationError(REGION_ADVICE.format(how=region_how)) from None
    except ValueError as exc:  # botocore's "Invalid endpoint: ..." (a profile's endpoint_url)
        raise ConfigurationError(f"{exc}; use an http:// or https:// URL with a host") from None


def default_secretsmanager_client() -> SecretsManagerClient:
    """:func:`secretsmanager_client` with the usual environment resolution, short timeouts and few retries.

    The rotating client keeps serving its last good credentials and backs off by
    itself, so a hanging call helps nobody.

    Raises:
        ConfigurationError: no region is configured, or an endpoint variable holds no usable URL.
    """
    return secretsmanager_client(config=call_limits(connect_timeout=3, read_timeout=5, max_attempts=2))


def call_limits(*, connect_timeout: float, read_timeout: float, max_attempts: int) -> Config:
    """A botocore ``Config`` with these timeouts (seconds) and at most ``max_attempts`` tries (standard retries)."""
    from botocore.config import Config

    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
    )


class SecretSource:
    """Reads one secret through a boto3 Secrets Manager client.

    Args:
        secret_id: the secret's name or ARN.
        client: a boto3 ``secretsmanager`` client; ``None`` builds one with
            :func:`default_secretsmanager_client`.

    Thread-safe: boto3 clients are, and the call counter is.
    """

    def __init__(self, secret_id: str, client: SecretsManagerClient | Any | None = None) -> None:
        self.secret_id = secret_id
        self._own_client = client is None
        self._client = client if client is not None else default_secretsmanager_client()
        self._calls_lock = threading.Lock()
        self._api_calls = 0
        self._listeners: tuple[CallListener, ...] = ()

    def after_fork_in_child(self) -> None:
        """In a forked child: never share the parent's HTTP connections (boto3 clients are not fork-safe).

        A client this source built is built anew; one the application passed
        keeps its configuration and credentials but drops its pooled
        connections, whose sockets the parent still uses.
        """
        self._calls_lock = threading.Lock()
        if self._own_client:
            self._client = default_secretsmanager_client()
            return
        session = getattr(getattr(self._client, "_endpoint", None), "http_session", None)
        close = getattr(session, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()  # urllib3 opens new connections on the next call

    @property
    def api_calls(self) -> int:
        """Every API call made so far (failed ones included)."""
        return self._api_calls

    def observe(self, listener: CallListener) -> None:
        """Call ``listener(operation, error)`` after every API call (telemetry; it must not block)."""
        with self._calls_lock:
            self._listeners = (*self._listeners, listener)

    def _answered(self, operation: str, exc: Exception | None) -> None:
        if not self._listeners:
            return
        error = None if exc is None else error_code(exc)
        for listener in self._listeners:
            try:
                listener(operation, error)
            except Exception:  # noqa: BLE001 - telemetry must never break a read
                _log.exception("secret %s: Secrets Manager call listener %r failed", self.secret_id, listener)

    def _count(self, operation: str) -> None:
        with self._calls_lock:
            self._api_calls += 1

    def get_version(self, stage: str = "AWSCURRENT") -> SecretVersion:
        """``GetSecretValue`` of the version that has staging label ``stage``.

        Raises:
            SecretNotFoundError: the secret, or a version with that label, does not exist.
            SecretsManagerError: Secrets Manager is unreachable, throttles or refuses.
        """
        self._count("GetSecretValue")
        try:
            response = self._client.get_secret_value(SecretId=self.secret_id, VersionStage=stage)
        except Exception as exc:
            self._answered("GetSecretValue", exc)
            raise self._translate(exc, "GetSecretValue", stage) from exc
        self._answered("GetSecretValue", None)
        return SecretVersion(
            version_id=response.get("VersionId"),
            stages=tuple(response.get("VersionStages", ())),
            secret_string=response.get("SecretString"),
        )

    def rotation_schedule(self) -> RotationSchedule:
        """``DescribeSecret``: is rotation on, how often, and when next.

        Raises:
            SecretNotFoundError: the secret does not exist.
            SecretsManagerError: Secrets Manager is unreachable, throttles or refuses.
        """
        self._count("DescribeSecret")
        try:
            response = self._client.describe_secret(SecretId=self.secret_id)
        except Exception as exc:
            self._answered("DescribeSecret", exc)
            raise self._translate(exc, "DescribeSecret", None) from exc
        self._answered("DescribeSecret", None)
        return rotation_schedule_of(response)

    def _translate(self, exc: Exception, operation: str, stage: str | None) -> SecretsManagerError:
        return translate_error(
            exc, operation=operation, secret_id=self.secret_id, where=f"stage {stage}" if stage else ""
        )


def translate_error(exc: Exception, *, operation: str, secret_id: str, where: str = "") -> SecretsManagerError:
    """The one translation of a boto3 error into the project's error tree (raise it ``from exc``).

    ``SecretNotFoundError`` when :func:`is_not_found` says so, else ``SecretsManagerError``; the message names
    the operation, the secret id and ``where`` (a stage, a version), and adds :func:`aws_error_advice`.
    AWS's and botocore's own messages name endpoints and ids, never a secret value.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    what = f"{operation} on secret {secret_id!r}" + (f" ({where})" if where else "")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", ""))
        advice = aws_error_advice(code, message, operation=operation, secret_id=secret_id)
        if code in _NOT_FOUND_CODES:
            return SecretNotFoundError(f"{what}: not found ({code}); {advice or message}".rstrip("; "))
        return SecretsManagerError(f"{what} failed: {code}; {advice or message}".rstrip("; "))
    if isinstance(exc, BotoCoreError):
        # Only the advice that adds something: "unreachable" is said already.
        advice = aws_error_advice(type(exc).__name__, str(exc), operation=operation, secret_id=secret_id)
        tail = f"; {advice}" if advice and type(exc).__name__ in {"SSLError", "HTTPClientError"} else ""
        return SecretsManagerError(f"{what} failed: Secrets Manager unreachable ({type(exc).__name__}: {exc}){tail}")
    return SecretsManagerError(f"{what} failed: {type(exc).__name__}")


def aws_error_behind(exc: BaseException) -> tuple[str | None, str, str]:
    """The AWS error code, message and operation behind ``exc`` (its ``__cause__`` chain), if any.

    botocore's own errors (no credentials, endpoint unreachable) count with their class name as the code.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ClientError):
            error = current.response.get("Error", {})
            return str(error.get("Code", "Unknown")), str(error.get("Message", "")), current.operation_name
        if isinstance(current, BotoCoreError):
            return type(current).__name__, "", ""
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None, "", ""


def is_not_found(exc: BaseException) -> bool:
    """Whether a boto3 error says the secret (or the asked version or stage) does not exist: the one not-found rule."""
    return isinstance(exc, Exception) and error_code(exc) in _NOT_FOUND_CODES


def error_code(exc: Exception) -> str:
    """The AWS error code of a ClientError, else the exception's class name (a bounded set either way)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


def _aware(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
