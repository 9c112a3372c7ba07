"""Immutable MongoDB credentials, parsed from a Secrets Manager secret string.

Pure code: no boto3, no pymongo. Three secret formats are understood:

* the AWS rotation-template format::

    {"engine": "mongo", "host": "db.example.com", "port": 27017,
     "username": "app", "password": "...", "dbname": "mydb", "ssl": true,
     "replicaSet": "rs0", "authSource": "admin", "masterarn": "arn:..."}

  As in the AWS templates, the login (authentication) database is ``dbname``
  unless ``authSource`` says otherwise, and ``admin`` when neither is present.
  ``dbname`` is also the application's database unless the application names
  one (``RotatingMongoClient(..., database="mydb")``): with AWS's format and the
  users in ``admin``, ``dbname`` is ``admin`` and the data lives elsewhere.
  ``ssl`` (or ``tls``) is read as AWS reads it: a boolean or ``"true"`` /
  ``"false"`` in any case; anything else is refused. A missing ``ssl`` means no
  TLS, and there is never a plaintext fallback (AWS's templates try TLS, then
  plaintext); with ``uri`` the connection string decides;

* the seed article's format: ``username``, ``password``, ``ipaddress``,
  ``masterarn``, on port 27017 (or ``port`` when given);

* an explicit connection string without credentials (``uri``) plus
  ``username`` and ``password``: ``{"uri": "mongodb://h1,h2/?replicaSet=rs0",
  "username": "app", "password": "..."}``.

Amazon DocumentDB's console writes the AWS format with ``ssl: true`` and
``dbClusterIdentifier`` (and ``masterarn`` for a user secret). A secret is
taken for a DocumentDB one when it has ``dbClusterIdentifier`` or a host
under ``.docdb.amazonaws.com`` (``.docdb-elastic.amazonaws.com``, ``.cn``
included); then ``retryWrites=false`` is applied, because DocumentDB before
engine 8.0.2 refuses retryable writes. A ``retryWrites`` field in the secret
(or in a ``uri``'s query) always wins, and so does the application's own
``mongo_options={"retryWrites": ...}``.

The password never appears in ``repr()``, in an error or in a log line. It is
handed to pymongo as a keyword argument, never spliced into a URI, so any
character works.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import SecretFormatError

__all__ = [
    "DEFAULT_PORT",
    "DOCUMENTDB_HOST_SUFFIXES",
    "TLS_OPTION_FIELDS",
    "MongoCredentials",
    "parse_secret",
    "parse_secret_dict",
]

DEFAULT_PORT = 27017

# Secret fields that carry TLS settings, passed to pymongo under the same name.
TLS_OPTION_FIELDS: tuple[str, ...] = (
    "tlsCAFile",
    "tlsCertificateKeyFile",
    "tlsCertificateKeyFilePassword",
    "tlsAllowInvalidCertificates",
    "tlsAllowInvalidHostnames",
    "tlsInsecure",
    "tlsCRLFile",
)
_BOOL_TLS_OPTIONS = frozenset({"tlsAllowInvalidCertificates", "tlsAllowInvalidHostnames", "tlsInsecure"})
# Options whose values are themselves secret and must never be shown.
_SECRET_TLS_OPTIONS = frozenset({"tlsCertificateKeyFilePassword"})
DOCUMENTDB_HOST_SUFFIXES: tuple[str, ...] = (
    ".docdb.amazonaws.com",
    ".docdb.amazonaws.com.cn",
    ".docdb-elastic.amazonaws.com",
    ".docdb-elastic.amazonaws.com.cn",
)
"""Host names under these are Amazon DocumentDB endpoints (cluster, reader, instance, elastic)."""


@dataclass(frozen=True, slots=True)
class MongoCredentials:
    """One snapshot of the credentials in one secret version.

    Compare whole snapshots (``==``) to decide whether a client must switch:
    a user name is never paired with another version's password.

    Attributes:
        username: the MongoDB user.
        password: its password (hidden from ``repr``).
        hosts: ``host:port`` seeds; empty when ``uri`` is used.
        uri: a connection string without credentials, or ``None``.
        auth_source: the login database: the one the user is defined in
            (``authSource``, else ``dbname``, else ``admin``).
        database: ``dbname`` as written, or ``None``; the application's
            database unless the application names another.
        tls: whether to connect with TLS.
        replica_set: the replica set name, or ``None``.
        tls_options: extra TLS settings as ``(name, value)`` pairs.
        retry_writes: ``retryWrites`` for pymongo, or ``None`` to leave it to
            pymongo (and the URI): ``False`` for a DocumentDB secret unless the
            secret says otherwise.
        documentdb: the secret is an Amazon DocumentDB one (see the module docstring).
        secret_id: the secret the snapshot came from (for messages).
        version_id: the secret version the snapshot came from.
    """

    username: str
    password: str = field(repr=False)
    hosts: tuple[str, ...] = ()
    uri: str | None = None
    auth_source: str = "admin"
    database: str | None = None
    tls: bool = False
    replica_set: str | None = None
    tls_options: tuple[tuple[str, Any], ...] = field(default=(), repr=False)
    retry_writes: bool | None = None
    documentdb: bool = False
    secret_id: str = ""
    version_id: str | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return (
            f"MongoCredentials(username={self.username!r}, password='***', "
            f"endpoint={self.endpoint!r}, auth_source={self.auth_source!r}, "
            f"tls={self.tls!r}, version_id={self.version_id!r})"
        )

    @property
    def endpoint(self) -> str:
        """Where the credentials point, without user name or password."""
        if self.uri is not None:
            # Without the query: options such as tlsCertificateKeyFilePassword are secret.
            return self.uri.split("?", 1)[0]
        return ",".join(self.hosts)

    @property
    def uses_tls(self) -> bool:
        """Whether a connection uses TLS: the secret's flag, or a ``uri`` that turns it on (``mongodb+srv``)."""
        if self.tls:
            return True
        if self.uri is None:
            return False
        if self.uri.startswith("mongodb+srv://"):
            return not any(_uri_option_false(self.uri, name) for name in ("tls", "ssl"))
        query = urllib.parse.urlsplit(self.uri).query
        return any(
            name.lower() in {"tls", "ssl"} and value.strip().lower() == "true"
            for name, value in urllib.parse.parse_qsl(query)
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``pymongo.MongoClient`` (password included).

        Returns:
            A new dict; callers may add their own options (timeouts, pool size).
        """
        kwargs: dict[str, Any] = {
            "host": self.uri if self.uri is not None else list(self.hosts),
            "username": self.username,
            "password": self.password,
            "authSource": self.auth_source,
        }
        # With a URI the connection string decides TLS and the replica set
        # unless the secret sets them explicitly.
        if self.uri is None or self.tls:
            kwargs["tls"] = self.tls
        if self.replica_set is not None:
            kwargs["replicaSet"] = self.replica_set
        if self.retry_writes is not None:
            kwargs["retryWrites"] = self.retry_writes
        kwargs.update(self.tls_options)
        return kwargs


def parse_secret(secret_string: str | None, *, secret_id: str, version_id: str | None = None) -> MongoCredentials:
    """Parse a secret string into credentials.

    Args:
        secret_string: the ``SecretString`` of one version.
        secret_id: the secret's id or ARN, used in error messages only.
        version_id: the version the string came from.

    Returns:
        A frozen :class:`MongoCredentials`.

    Raises:
        SecretFormatError: the string is not a JSON object or misses or
            mangles a field; the message names the field, never a value.
    """
    if secret_string is None or not secret_string.strip():
        raise SecretFormatError("the secret has no SecretString; store a JSON object", secret_id=secret_id)
    try:
        document = json.loads(secret_string)
    except ValueError as exc:
        # The decoder's message quotes the text around the error: do not chain
        # it, it may hold part of the password.
        raise SecretFormatError(
            f"the SecretString is not valid JSON (line {getattr(exc, 'lineno', '?')}); store a JSON object",
            secret_id=secret_id,
        ) from None
    if not isinstance(document, dict):
        raise SecretFormatError("the SecretString must be a JSON object", secret_id=secret_id)
    return parse_secret_dict(document, secret_id=secret_id, version_id=version_id)


def parse_secret_dict(
    document: Mapping[str, Any], *, secret_id: str, version_id: str | None = None
) -> MongoCredentials:
    """Parse an already-decoded secret (see :func:`parse_secret`)."""
    username = _required_str(document, "username", secret_id)
    password = _required_str(document, "password", secret_id, strip=False)
    engine = document.get("engine")
    if engine is not None and (not isinstance(engine, str) or not engine.lower().startswith("mongo")):
        raise SecretFormatError("must be 'mongo' for a MongoDB secret", secret_id=secret_id, field="engine")
    database = _optional_str(document, "dbname", secret_id)
    auth_source = _optional_str(document, "authSource", secret_id) or database or "admin"
    replica_set = _optional_str(document, "replicaSet", secret_id)
    tls = _tls_flag(document, secret_id)
    tls_options = _tls_options(document, secret_id)

    uri = _optional_str(document, "uri", secret_id)
    hosts: tuple[str, ...] = ()
    if uri is not None:
        if "host" in document or "ipaddress" in document:
            raise SecretFormatError(
                "give either 'uri' or 'host'/'ipaddress', not both", secret_id=secret_id, field="uri"
            )
        _check_uri(uri, secret_id)
    else:
        if "host" in document:
            host = _required_str(document, "host", secret_id)
        elif "ipaddress" in document:
            host = _required_str(document, "ipaddress", secret_id)
        else:
            raise SecretFormatError(
                "is missing; add 'host' (AWS template), 'ipaddress' (article format) or 'uri'",
                secret_id=secret_id,
                field="host",
            )
        port = _port(document, secret_id)
        hosts = tuple(_with_port(part.strip(), port, secret_id) for part in host.split(","))
    documentdb = _is_documentdb(document, hosts, uri, secret_id)
    retry_writes = _optional_bool(document, "retryWrites", secret_id)
    if retry_writes is None and documentdb and not (uri is not None and _uri_sets(uri, "retrywrites")):
        retry_writes = False
    return MongoCredentials(
        username=username,
        password=password,
        hosts=hosts,
        uri=uri,
        auth_source=auth_source,
        database=database,
        tls=tls,
        replica_set=replica_set,
        tls_options=tls_options,
        retry_writes=retry_writes,
        documentdb=documentdb,
        secret_id=secret_id,
        version_id=version_id,
    )


def _required_str(document: Mapping[str, Any], name: str, secret_id: str, *, strip: bool = True) -> str:
    if name not in document:
        raise SecretFormatError("is missing", secret_id=secret_id, field=name)
    value = document[name]
    if not isinstance(value, str):
        raise SecretFormatError(f"must be a string, not {type(value).__name__}", secret_id=secret_id, field=name)
    if not (value.strip() if strip else value):
        raise SecretFormatError("is empty", secret_id=secret_id, field=name)
    return value.strip() if strip else value


def _optional_str(document: Mapping[str, Any], name: str, secret_id: str) -> str | None:
    if document.get(name) is None:
        return None
    return _required_str(document, name, secret_id)


def _port(document: Mapping[str, Any], secret_id: str) -> int:
    raw = document.get("port", DEFAULT_PORT)
    if isinstance(raw, bool):
        raise SecretFormatError("must be a number from 1 to 65535", secret_id=secret_id, field="port")
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if not isinstance(raw, int) or not 0 < raw < 65536:
        raise SecretFormatError("must be a number from 1 to 65535", secret_id=secret_id, field="port")
    return raw


def _with_port(host: str, port: int, secret_id: str) -> str:
    if not host or any(ch in host for ch in "/@?#"):
        raise SecretFormatError(
            "must be a host name or address (use 'uri' for a connection string)", secret_id=secret_id, field="host"
        )
    # A host that already names its port (or a bracketed IPv6 address with one) keeps it.
    if host.startswith("["):
        return host if "]:" in host else f"{host}:{port}"
    if host.count(":") == 1:
        given = host.partition(":")[2]
        if not given.isdigit():
            raise SecretFormatError("has a port that is not a number", secret_id=secret_id, field="host")
        return host
    if host.count(":") > 1:  # a bare IPv6 address
        return f"[{host}]:{port}"
    return f"{host}:{port}"


_TLS_VALUES = 'true or false (a JSON boolean, or the string "true" or "false" in any case, as AWS reads it)'


def _tls_flag(document: Mapping[str, Any], secret_id: str) -> bool:
    """``tls`` / ``ssl`` as AWS's templates read ``ssl``; missing means no TLS (and never a fallback)."""
    flags: dict[str, bool] = {}
    for name in ("tls", "ssl"):
        if document.get(name) is None:
            continue
        value = document[name]
        if isinstance(value, bool):
            flags[name] = value
        elif isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            flags[name] = value.strip().lower() == "true"
        else:
            kind = "another string" if isinstance(value, str) else f"a {type(value).__name__}"
            raise SecretFormatError(f"must be {_TLS_VALUES}, not {kind}", secret_id=secret_id, field=name)
    if len(set(flags.values())) > 1:
        raise SecretFormatError("'tls' and 'ssl' disagree; keep one of them", secret_id=secret_id, field="ssl")
    return next(iter(flags.values()), False)


def _tls_options(document: Mapping[str, Any], secret_id: str) -> tuple[tuple[str, Any], ...]:
    options: list[tuple[str, Any]] = []
    for name in TLS_OPTION_FIELDS:
        if document.get(name) is None:
            continue
        value = document[name]
        if name in _BOOL_TLS_OPTIONS:
            if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
                value = value.strip().lower() == "true"
            if not isinstance(value, bool):
                raise SecretFormatError("must be true or false", secret_id=secret_id, field=name)
        elif not isinstance(value, str) or not value:
            what = "a non-empty string" if name not in _SECRET_TLS_OPTIONS else "a string"
            raise SecretFormatError(f"must be {what}", secret_id=secret_id, field=name)
        options.append((name, value))
    return tuple(options)


def _optional_bool(document: Mapping[str, Any], name: str, secret_id: str) -> bool | None:
    value = document.get(name)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise SecretFormatError("must be true or false", secret_id=secret_id, field=name)
    return value


def _is_documentdb(document: Mapping[str, Any], hosts: tuple[str, ...], uri: str | None, secret_id: str) -> bool:
    """``dbClusterIdentifier`` (DocumentDB's console writes it) or a host under a DocumentDB domain."""
    if _optional_str(document, "dbClusterIdentifier", secret_id) is not None:
        return True
    names = [host.rsplit(":", 1)[0] if not host.startswith("[") else host for host in hosts]
    if uri is not None:
        netloc = urllib.parse.urlsplit(uri).netloc
        names = [part.strip().rsplit(":", 1)[0] for part in netloc.split(",")]
    return any(name.lower().rstrip(".").endswith(DOCUMENTDB_HOST_SUFFIXES) for name in names)


def _uri_sets(uri: str, option: str) -> bool:
    """Whether the connection string's query names ``option`` (case-insensitive, as pymongo reads it)."""
    query = urllib.parse.urlsplit(uri).query
    return any(name.lower() == option for name, _ in urllib.parse.parse_qsl(query, keep_blank_values=True))


def _uri_option_false(uri: str, option: str) -> bool:
    pairs = urllib.parse.parse_qsl(urllib.parse.urlsplit(uri).query)
    return any(name.lower() == option and value.strip().lower() == "false" for name, value in pairs)


def _check_uri(uri: str, secret_id: str) -> None:
    scheme, sep, _ = uri.partition("://")
    if not sep or scheme not in {"mongodb", "mongodb+srv"}:
        raise SecretFormatError("must start with mongodb:// or mongodb+srv://", secret_id=secret_id, field="uri")
    try:
        netloc = urllib.parse.urlsplit(uri).netloc
    except ValueError:  # e.g. an unclosed IPv6 bracket; the message would quote the URI
        raise SecretFormatError("is not a valid connection string", secret_id=secret_id, field="uri") from None
    if "@" in netloc:
        raise SecretFormatError(
            "must not contain a user name or password; put them in 'username' and 'password'",
            secret_id=secret_id,
            field="uri",
        )
    if not netloc:
        raise SecretFormatError("names no host", secret_id=secret_id, field="uri")
