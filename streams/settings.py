"""sandan's settings, read from ``SANDAN_*`` environment variables.

Every variable is optional; an unknown ``SANDAN_*`` name or a malformed value raises
:class:`SettingsError` naming the setting, so the worker stops at start instead of running
with a setting it does not understand.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import msgspec

from matchers.limits import ANNUAL_LIMIT, SINGLE_LIMIT
from schemas.errors import SandanError

__all__ = (
    "SETTINGS_HELP",
    "SaslMechanism",
    "Secret",
    "SecurityProtocol",
    "Settings",
    "SettingsError",
    "parse_duration",
)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_LONGEST_DURATION = 3650 * 86400.0

# Variables the broker script (kafka/broker.sh) reads; allowed here so that one environment
# can hold both.
_BROKER_SCRIPT_SETTINGS = frozenset(
    {
        "SANDAN_KAFKA_PORT",
        "SANDAN_KAFKA_HOME",
        "SANDAN_KAFKA_HEAP",
        "SANDAN_KAFKA_EXTRA_CONFIG",
        "SANDAN_KAFKA_FORMAT_ARGS",
        "SANDAN_KAFKA_NODES",
    }
)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
DocumentState = Literal["separate", "inline"]  # see SANDAN_DOCUMENT_STATE


class SettingsError(SandanError):
    """A setting is unknown or malformed; the message names it."""


class Secret:
    """A value that never shows: ``repr``, ``str`` and format give ``'***'``; ``reveal()`` it
    only where a client needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def parse_duration(text: str) -> float:
    """Seconds in ``15``, ``15s``, ``30m``, ``24h`` or ``7d``; ValueError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        msg = f"expected seconds or a number with a unit s, m, h or d, got {text!r}"
        raise ValueError(msg)
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 0 < seconds <= _LONGEST_DURATION:
        msg = f"expected a positive duration of at most 3650d, got {text!r}"
        raise ValueError(msg)
    return seconds


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        msg = f"expected a positive integer, got {text!r}"
        raise ValueError(msg)
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        msg = f"expected 0 or a positive integer, got {text!r}"
        raise ValueError(msg)
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:  # noqa: PLR2004
        msg = f"expected a TCP port 1-65535, got {text!r}"
        raise ValueError(msg)
    return value


def _amount(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        msg = f"expected a decimal amount, got {text!r}"
        raise ValueError(msg) from None
    if not value.is_finite() or value < 0:
        msg = f"expected a non-negative amount, got {text!r}"
        raise ValueError(msg)
    return value


def _brokers(text: str) -> str:
    for address in text.split(","):
        host, _, port = address.strip().rpartition(":")
        if not host or not port.isdigit():
            msg = f"expected host:port[,host:port...], got {text!r}"
            raise ValueError(msg)
    return text


def _host(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9.:_-]+", text):
        msg = f"expected a host name or IP address, got {text!r}"
        raise ValueError(msg)
    return text


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            msg = f"expected one of {', '.join(choices)}, got {text!r}"
            raise ValueError(msg)
        return text

    return parse


def _file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        msg = f"no such file: {text!r}"
        raise ValueError(msg)
    return path


def _nonempty(text: str) -> str:
    if not text:
        msg = "expected a value, got ''"
        raise ValueError(msg)
    return text


def _secret(text: str) -> Secret:
    return Secret(_nonempty(text))


def _switch(text: str) -> bool:
    if text not in ("on", "off"):
        msg = f"expected on or off, got {text!r}"
        raise ValueError(msg)
    return text == "on"


_LONGEST_URL = 200


def _url(text: str) -> str:
    """An http(s) URL with a host; no spaces or control characters (it goes in a client.id)."""
    parts = urlsplit(text)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(text) > _LONGEST_URL
        or any(c.isspace() or not c.isprintable() for c in text)
    ):
        msg = f"expected an http:// or https:// URL with a host, got {text!r}"
        raise ValueError(msg)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        msg = f"expected an http:// or https:// URL with a valid port, got {text!r}"
        raise ValueError(msg) from None
    return text


def _prefix(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]*", text):
        msg = f"expected letters, digits, '.', '_' or '-', got {text!r}"
        raise ValueError(msg)
    return text


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The worker's configuration (see SETTINGS_HELP for each field)."""

    brokers: str = "127.0.0.1:9092"
    topic_prefix: str = "cbec."
    partitions: int = 12
    replication_factor: int = 1
    window: float = 24 * 3600.0
    retention: float = 7 * 86400.0
    released_horizon: float = 180 * 86400.0
    document_state: DocumentState = "separate"
    single_limit: Decimal = SINGLE_LIMIT
    annual_limit: Decimal = ANNUAL_LIMIT
    data_dir: Path = Path("data")
    max_document_bytes: int = 256 * 1024
    max_message_bytes: int = 4 * 1024 * 1024
    web_port: int = 6066
    advertised_url: str = ""  # "": http://127.0.0.1:{web_port}
    metrics: bool = True
    worker_id: str = ""
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    gateway_keys: Path = Path("keys.json")
    gateway_ack_timeout: float = 10.0
    gateway_review_wait: float = 10.0
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: Secret | None = None
    fault_stop_before_offsets: int = 0
    dashboard_port: int = 8090
    dashboard_interval: float = 2.0
    alerts: bool = True
    alert_consignees: int = 3
    alert_consignees_window: float = 7 * 86400.0
    alert_buyers: int = 5
    alert_buyers_window: float = 7 * 86400.0
    alert_split_window: float = 3600.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the ``SANDAN_*`` variables of ``environ`` (default: the process environment)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, text in environ.items():
            if not name.startswith("SANDAN_") or name in _BROKER_SCRIPT_SETTINGS:
                continue
            field = name.removeprefix("SANDAN_").lower()
            parser = _PARSERS.get(field)
            if parser is None:
                known = ", ".join(f"SANDAN_{f.upper()}" for f in _PARSERS)
                msg = f"unknown setting {name}; the settings are {known}"
                raise SettingsError(msg)
            try:
                values[field] = parser(text)
            except ValueError as exc:
                msg = f"{name}: {exc}"
                raise SettingsError(msg) from None
        settings = cls(**values)
        if settings.window > settings.retention:
            msg = "SANDAN_WINDOW must not be longer than SANDAN_RETENTION"
            raise SettingsError(msg)
        if settings.released_horizon < settings.retention:
            msg = "SANDAN_RELEASED_HORIZON must not be shorter than SANDAN_RETENTION"
            raise SettingsError(msg)
        _check_kafka_security(settings)
        if not settings.worker_id:
            settings = msgspec.structs.replace(settings, worker_id=_default_worker_id(settings))
        if not settings.advertised_url:
            url = f"http://127.0.0.1:{settings.web_port}"
            settings = msgspec.structs.replace(settings, advertised_url=url)
        return settings

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for the brokers (None without TLS): the CA file's CAs (else the
        system's), the client certificate if given; broker host names are checked."""
        if self.kafka_security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(cafile=self.kafka_ssl_cafile)
        if self.kafka_ssl_certfile is not None:
            # An empty password: an encrypted key fails here instead of prompting on a tty.
            context.load_cert_chain(self.kafka_ssl_certfile, self.kafka_ssl_keyfile, password="")
        return context

    def topic(self, name: str) -> str:
        """The full name of a topic, e.g. ``topic("order")`` is ``cbec.order``."""
        return f"{self.topic_prefix}{name}"


def _default_worker_id(settings: Settings) -> str:
    """Stable per host and data directory: a restarted worker fences its predecessor."""
    where = f"{socket.gethostname()}:{settings.data_dir.resolve()}"
    return hashlib.sha1(where.encode(), usedforsecurity=False).hexdigest()[:12]


def _check_kafka_security(settings: Settings) -> None:
    """The security settings fit together, and the TLS files load."""
    protocol = settings.kafka_security_protocol
    sasl = {
        "SANDAN_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "SANDAN_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "SANDAN_KAFKA_SASL_PASSWORD": settings.kafka_sasl_password,
    }
    tls = {
        "SANDAN_KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "SANDAN_KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
        "SANDAN_KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile,
    }
    if protocol.startswith("SASL_"):
        missing = [name for name, value in sasl.items() if value is None]
        if missing:
            msg = f"SANDAN_KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}"
            raise SettingsError(msg)
    else:
        for name, value in sasl.items():
            if value is not None:
                msg = (
                    f"{name} is set but SANDAN_KAFKA_SECURITY_PROTOCOL is {protocol}: "
                    "SASL needs SASL_PLAINTEXT or SASL_SSL"
                )
                raise SettingsError(msg)
    if protocol not in ("SSL", "SASL_SSL"):
        for name, path in tls.items():
            if path is not None:
                msg = (
                    f"{name} is set but SANDAN_KAFKA_SECURITY_PROTOCOL is {protocol}: "
                    "TLS needs SSL or SASL_SSL"
                )
                raise SettingsError(msg)
        return
    if (settings.kafka_ssl_certfile is None) != (settings.kafka_ssl_keyfile is None):
        msg = "SANDAN_KAFKA_SSL_CERTFILE and SANDAN_KAFKA_SSL_KEYFILE go together"
        raise SettingsError(msg)
    try:
        settings.kafka_ssl_context()
    except ssl.SSLError as exc:
        names = ", ".join(name for name, path in tls.items() if path is not None)
        msg = f"{names or 'the system CAs'}: cannot load the TLS files ({exc})"
        raise SettingsError(msg) from None


_PARSERS: dict[str, Callable[[str], Any]] = {
    "brokers": _brokers,
    "topic_prefix": _prefix,
    "partitions": _positive_int,
    "replication_factor": _positive_int,
    "window": parse_duration,
    "retention": parse_duration,
    "released_horizon": parse_duration,
    "document_state": _one_of(get_args(DocumentState)),
    "single_limit": _amount,
    "annual_limit": _amount,
    "data_dir": Path,
    "max_document_bytes": _positive_int,
    "max_message_bytes": _positive_int,
    "web_port": _port,
    "advertised_url": _url,
    "metrics": _switch,
    "worker_id": _prefix,
    "gateway_host": _host,
    "gateway_port": _port,
    "gateway_keys": Path,
    "gateway_ack_timeout": parse_duration,
    "gateway_review_wait": parse_duration,
    "kafka_security_protocol": _one_of(get_args(SecurityProtocol)),
    "kafka_ssl_cafile": _file,
    "kafka_ssl_certfile": _file,
    "kafka_ssl_keyfile": _file,
    "kafka_sasl_mechanism": _one_of(get_args(SaslMechanism)),
    "kafka_sasl_username": _nonempty,
    "kafka_sasl_password": _secret,
    "fault_stop_before_offsets": _count,
    "dashboard_port": _port,
    "dashboard_interval": parse_duration,
    "alerts": _switch,
    "alert_consignees": _positive_int,
    "alert_consignees_window": parse_duration,
    "alert_buyers": _positive_int,
    "alert_buyers_window": parse_duration,
    "alert_split_window": parse_duration,
}

SETTINGS_HELP = {
    "SANDAN_BROKERS": ("127.0.0.1:9092", "Kafka bootstrap servers, comma-separated host:port"),
    "SANDAN_TOPIC_PREFIX": ("cbec.", "prefix of every topic sandan reads, writes or owns"),
    "SANDAN_PARTITIONS": ("12", "partitions of the topics `sandan topics` creates"),
    "SANDAN_REPLICATION_FACTOR": (
        "1",
        "replicas of each topic `sandan topics` creates (at most the number of brokers)",
    ),
    "SANDAN_WINDOW": ("24h", "time a ticket waits for its three documents"),
    "SANDAN_RETENTION": ("7d", "time a ticket is kept after its first document"),
    "SANDAN_RELEASED_HORIZON": (
        "180d",
        "time a released ticket is remembered after its first document, a document resent "
        "for it rejected (at least SANDAN_RETENTION)",
    ),
    "SANDAN_DOCUMENT_STATE": (
        "separate",
        "separate: the ticket state stores each document version once, under its own key; "
        "inline: in its ticket's record, as versions before 2026-12-04 did (to roll an upgrade "
        "from one, see the README)",
    ),
    "SANDAN_SINGLE_LIMIT": (str(SINGLE_LIMIT), "single-transaction limit of dutiable value, CNY"),
    "SANDAN_ANNUAL_LIMIT": (str(ANNUAL_LIMIT), "annual limit per buyer, CNY"),
    "SANDAN_DATA_DIR": ("data", "local state (RocksDB) of this worker"),
    "SANDAN_MAX_DOCUMENT_BYTES": (
        "262144",
        "larger JSON documents and XML nodes are rejected SCHEMA",
    ),
    "SANDAN_MAX_MESSAGE_BYTES": (
        "4194304",
        "larger XML messages are rejected SCHEMA whole; the gateway's largest request body",
    ),
    "SANDAN_WEB_PORT": ("6066", "the worker's web server: /status and /metrics"),
    "SANDAN_ADVERTISED_URL": (
        "http://127.0.0.1:6066",
        "URL at which this worker's web server is reachable (default: on 127.0.0.1 at "
        "SANDAN_WEB_PORT); its consumer's client.id is `sandan-worker {url}`, for discovery",
    ),
    "SANDAN_METRICS": (
        "on",
        "on or off: off updates no metric (/metrics keeps the worker's info and process "
        "metrics), to measure what the metrics cost",
    ),
    "SANDAN_WORKER_ID": ("from host and data dir", "this worker's stable transactional id"),
    "SANDAN_GATEWAY_HOST": ("127.0.0.1", "address the HTTP gateway listens on"),
    "SANDAN_GATEWAY_PORT": ("8080", "port of the HTTP gateway"),
    "SANDAN_GATEWAY_KEYS": ("keys.json", "the gateway's API keys file (reloaded on change)"),
    "SANDAN_GATEWAY_ACK_TIMEOUT": ("10s", "longest wait for the broker's ack before a 503"),
    "SANDAN_GATEWAY_REVIEW_WAIT": (
        "10s",
        "longest wait for a review's result before the gateway answers 202 PENDING",
    ),
    "SANDAN_KAFKA_SECURITY_PROTOCOL": (
        "PLAINTEXT",
        "how clients talk to the brokers: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    ),
    "SANDAN_KAFKA_SSL_CAFILE": ("system CAs", "PEM file of the CAs that sign the brokers' certs"),
    "SANDAN_KAFKA_SSL_CERTFILE": ("none", "PEM client certificate (chain) for mutual TLS"),
    "SANDAN_KAFKA_SSL_KEYFILE": ("none", "PEM unencrypted private key of the client certificate"),
    "SANDAN_KAFKA_SASL_MECHANISM": ("none", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
    "SANDAN_KAFKA_SASL_USERNAME": ("none", "SASL user name"),
    "SANDAN_KAFKA_SASL_PASSWORD": ("none", "SASL password (never logged)"),
    "SANDAN_FAULT_STOP_BEFORE_OFFSETS": (
        "0",
        "tests only: the worker stops itself (SIGSTOP) before the offsets of its Nth "
        "transaction; 0 is off",
    ),
    "SANDAN_DASHBOARD_PORT": ("8090", "port of `sandan dashboard` (on 127.0.0.1)"),
    "SANDAN_DASHBOARD_INTERVAL": ("2s", "how often the dashboard finds and scrapes the workers"),
    "SANDAN_ALERTS": ("on", "on or off: off raises no pattern alert (cbec.alert stays empty)"),
    "SANDAN_ALERT_CONSIGNEES": (
        "3",
        "ID_MANY_CONSIGNEES: one buyer ID with more than this many distinct consignees or "
        "consignee addresses within SANDAN_ALERT_CONSIGNEES_WINDOW",
    ),
    "SANDAN_ALERT_CONSIGNEES_WINDOW": ("7d", "the window of ID_MANY_CONSIGNEES"),
    "SANDAN_ALERT_BUYERS": (
        "5",
        "ADDRESS_MANY_IDS: one consignee address or telephone receiving for more than this "
        "many distinct buyer IDs within SANDAN_ALERT_BUYERS_WINDOW",
    ),
    "SANDAN_ALERT_BUYERS_WINDOW": ("7d", "the window of ADDRESS_MANY_IDS"),
    "SANDAN_ALERT_SPLIT_WINDOW": (
        "1h",
        "SPLIT_ORDERS: one buyer's orders to one consignee within this, each within "
        "SANDAN_SINGLE_LIMIT and together above it",
    ),
}
