"""What a pymongo error means: a refused login, a command that never left, a TLS setting to fix.

Part of the MongoDB seam (:mod:`client.mongo` re-exports every name): it
reads errors and public topology descriptions only, and builds nothing.

* :func:`is_auth_failure` / :func:`classify_failure` tell the rotating
  clients how an operation failed (a refused login, also inside a
  ``ServerSelectionTimeoutError``; a command that never left; a network error).
* :func:`translate_error` turns a pymongo error into the secretswitch error
  tree, naming the user and version, never the password.
* :func:`tls_failure` names a TLS failure (a CA that does not sign the
  server's certificate, a certificate for another host name, an expired one,
  a server that does not speak TLS, a plaintext client at a TLS-only server)
  and the setting to change.
"""

from __future__ import annotations

import re
from typing import Any

from pymongo.errors import (
    ConnectionFailure,
    InvalidOperation,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
)

from .credentials import MongoCredentials
from .errors import AuthenticationError, DatabaseError, TLSError
from .policy import Failure, is_auth_failure_code

__all__ = ["classify_failure", "client_trust", "is_auth_failure", "openssl_reason", "tls_failure", "translate_error"]

# How pymongo quotes a server's error inside a ServerSelectionTimeoutError's message.
_AUTH_CODE_IN_MESSAGE = re.compile(r"'code': (?:18|8000)\b")


def is_auth_failure(exc: BaseException) -> bool:
    """True when ``exc`` (or what it was raised from or during) is MongoDB refusing the user name or password."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, AuthenticationError):
            return True
        if isinstance(current, OperationFailure) and is_auth_failure_code(current.code):
            return True
        # A library that re-raises without ``from`` (MongoEngine does) leaves it in __context__.
        current = current.__cause__ if current.__cause__ is not None else current.__context__
        seen += 1
    return False


def _topology_refused_login(client: Any) -> bool:
    """True when pymongo marked a server of ``client`` unknown because it refused the login."""
    try:
        descriptions = client.topology_description.server_descriptions().values()
    except (AttributeError, PyMongoError):
        return False
    return any(sd.error is not None and is_auth_failure(sd.error) for sd in descriptions)


def classify_failure(exc: BaseException, client: Any = None, *, closed: bool = False) -> Failure:
    """How an operation on ``client`` failed, as far as running it again is concerned.

    Args:
        exc: what the operation raised.
        client: the client it ran on (its topology tells a refused login apart
            inside a server selection timeout).
        closed: the rotating client had closed ``client`` (pymongo then raises
            ``InvalidOperation`` before sending anything).
    """
    if is_auth_failure(exc):
        return Failure.AUTH
    if isinstance(exc, ServerSelectionTimeoutError):
        # After a refused login pymongo marks the server unknown: operations
        # that wait for it time out with the login error in the description.
        if (client is not None and _topology_refused_login(client)) or _AUTH_CODE_IN_MESSAGE.search(str(exc)):
            return Failure.AUTH
        return Failure.NOT_SENT
    if isinstance(exc, InvalidOperation) and closed:
        return Failure.NOT_SENT
    if isinstance(exc, ConnectionFailure):
        return Failure.CONNECTION
    return Failure.OTHER


def translate_error(exc: PyMongoError, credentials: MongoCredentials) -> DatabaseError:
    """A secretswitch error for a pymongo error (names the user and version, never the password)."""
    who = f"user {credentials.username!r} (version {credentials.version_id}) at {credentials.endpoint!r}"
    if is_auth_failure(exc):
        return AuthenticationError(f"MongoDB refused {who}: authentication failed; the password may have rotated")
    tls = tls_failure(exc, credentials)
    if tls is not None:
        # With TLS on, a failed handshake is a setting to fix; without it, the
        # server may simply be down (or a TLS-only one): the text says which.
        error_class = TLSError if credentials.uses_tls else DatabaseError
        return error_class(f"MongoDB unreachable for {who}: {tls}")
    return DatabaseError(f"MongoDB failed for {who}: {type(exc).__name__}")


# -- TLS failures ----------------------------------------------------------------

# OpenSSL's reason in pymongo's text: "[SSL: CODE] certificate verify failed: ... (_ssl.c:1006)".
_OPENSSL_REASON = re.compile(r"\[(?:SSL|X509|PEM)(?:: [A-Z0-9_]+)?\] ([^()]+?)\s*\(_ssl\.c:\d+\)")
_UNTRUSTED_CA = (
    "unable to get local issuer certificate",
    "unable to get issuer certificate",
    "self-signed certificate",
    "self signed certificate",
    "unable to verify the first certificate",
    "certificate signature failure",
)
_NOT_TLS = (
    "wrong_version_number",
    "wrong version number",
    "unexpected_eof",
    "eof occurred in violation of protocol",
    "record layer failure",
    "packet length too long",
    "unknown protocol",
    "http_request",
    "handshake operation timed out",
)
_CLOSED_ON_PLAINTEXT = ("connection reset by peer", "connection closed", "broken pipe")


def openssl_reason(text: str) -> str | None:
    match = _OPENSSL_REASON.search(text)
    return match.group(1).strip().rstrip(".") if match else None


def client_trust(credentials: MongoCredentials) -> str:
    """Which CA a client built from ``credentials`` trusts, and how to change it (for messages)."""
    ca_file = dict(credentials.tls_options).get("tlsCAFile")
    if ca_file:
        return (
            f"this side trusts the CA in the secret's tlsCAFile ({ca_file!r}): point it at the CA bundle that "
            "signed the server's certificate (or pass mongo_options={'tlsCAFile': ...})"
        )
    return (
        "the secret has no tlsCAFile, so this side trusts the system's CA store only: add tlsCAFile naming the "
        "CA bundle that signed the server's certificate (DocumentDB: global-bundle.pem) to the secret, or pass "
        "mongo_options={'tlsCAFile': ...}"
    )


def tls_failure(exc: BaseException, credentials: MongoCredentials, *, trust: str | None = None) -> str | None:
    """The cause of a TLS failure and the setting to change, in one line; ``None`` when ``exc`` is not one.

    Args:
        exc: what pymongo raised (a ``ServerSelectionTimeoutError`` quotes the server's error).
        credentials: what the client connected with (host, TLS on or off).
        trust: which CA this side uses and where to change it (default: :func:`client_trust`).
    """
    text = _error_text(exc)
    lowered = text.lower()
    reason = openssl_reason(text)
    detail = f" (OpenSSL: {reason})" if reason else ""
    endpoint = credentials.endpoint
    if "certificate has expired" in lowered or "certificate is not yet valid" in lowered:
        when = "has expired" if "expired" in lowered else "is not valid yet"
        return (
            f"TLS: the server's certificate {when}{detail}; renew the certificate of the server at {endpoint!r} "
            "(or correct this machine's clock); verification stays on"
        )
    if "hostname mismatch" in lowered or "ip address mismatch" in lowered:
        return (
            f"TLS: the server's certificate is not valid for the host the secret names ({endpoint!r}){detail}; "
            "set the secret's host to a name the certificate lists (DocumentDB: the cluster endpoint, not an "
            "address or a tunnel), or have the certificate reissued for it; host-name verification stays on"
        )
    if any(marker in lowered for marker in _UNTRUSTED_CA):
        return (
            f"TLS: the server's certificate at {endpoint!r} is not signed by a CA this side trusts{detail}; "
            f"{trust or client_trust(credentials)}"
        )
    if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
        return f"TLS: the server's certificate at {endpoint!r} failed verification{detail}; " + (
            trust or client_trust(credentials)
        )
    if credentials.uses_tls:
        if any(marker in lowered for marker in _NOT_TLS) or (
            isinstance(exc, ServerSelectionTimeoutError) and "no servers found yet" in lowered
        ):
            return (
                f"TLS: the server at {endpoint!r} did not complete a TLS handshake: it does not speak TLS on that "
                f"port{detail or ' (no answer to the handshake)'}; check the secret's host and port — secretswitch "
                'never falls back to plaintext: set the secret\'s "ssl" to false only if that server is meant to be '
                "plaintext"
            )
        return None
    if any(marker in lowered for marker in _CLOSED_ON_PLAINTEXT):
        return (
            f"the server at {endpoint!r} closed the connection before answering, as a TLS-only server does "
            'with a plaintext client: if it requires TLS, set "ssl": true (and tlsCAFile) in the secret'
        )
    return None


def _error_text(exc: BaseException) -> str:
    """The text of ``exc`` and its causes (pymongo wraps the SSL error; the password is never in it)."""
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 5:
        parts.append(str(current))
        current = current.__cause__ or current.__context__
    return " | ".join(parts)
