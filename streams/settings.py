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
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec

from schemas.errors import SandanError

__all__ = ("SETTINGS_HELP", "Settings", "SettingsError", "parse_duration")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_LONGEST_DURATION = 3650 * 86400.0

# Variables the broker script (kafka/broker.sh) reads; allowed here so that one environment
# can hold both.
_BROKER_SCRIPT_SETTINGS = frozenset({"SANDAN_KAFKA_PORT", "SANDAN_KAFKA_HOME", "SANDAN_KAFKA_HEAP"})


class SettingsError(SandanError):
    """A setting is unknown or malformed; the message names it."""


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
    window: float = 24 * 3600.0
    retention: float = 7 * 86400.0
    single_limit: Decimal = Decimal(5000)
    annual_limit: Decimal = Decimal(26000)
    data_dir: Path = Path("data")
    max_document_bytes: int = 256 * 1024
    max_message_bytes: int = 4 * 1024 * 1024
    web_port: int = 6066
    worker_id: str = ""
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    gateway_keys: Path = Path("keys.json")
    gateway_ack_timeout: float = 10.0

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
        if not settings.worker_id:
            settings = msgspec.structs.replace(settings, worker_id=_default_worker_id(settings))
        return settings

    def topic(self, name: str) -> str:
        """The full name of a topic, e.g. ``topic("order")`` is ``cbec.order``."""
        return f"{self.topic_prefix}{name}"


def _default_worker_id(settings: Settings) -> str:
    """Stable per host and data directory: a restarted worker fences its predecessor."""
    where = f"{socket.gethostname()}:{settings.data_dir.resolve()}"
    return hashlib.sha1(where.encode(), usedforsecurity=False).hexdigest()[:12]


_PARSERS: dict[str, Callable[[str], Any]] = {
    "brokers": _brokers,
    "topic_prefix": _prefix,
    "partitions": _positive_int,
    "window": parse_duration,
    "retention": parse_duration,
    "single_limit": _amount,
    "annual_limit": _amount,
    "data_dir": Path,
    "max_document_bytes": _positive_int,
    "max_message_bytes": _positive_int,
    "web_port": _port,
    "worker_id": _prefix,
    "gateway_host": _host,
    "gateway_port": _port,
    "gateway_keys": Path,
    "gateway_ack_timeout": parse_duration,
}

SETTINGS_HELP = {
    "SANDAN_BROKERS": ("127.0.0.1:9092", "Kafka bootstrap servers, comma-separated host:port"),
    "SANDAN_TOPIC_PREFIX": ("cbec.", "prefix of every topic sandan reads, writes or owns"),
    "SANDAN_PARTITIONS": ("12", "partitions of the topics `sandan topics` creates"),
    "SANDAN_WINDOW": ("24h", "time a ticket waits for its three documents"),
    "SANDAN_RETENTION": ("7d", "time a ticket is kept after its first document"),
    "SANDAN_SINGLE_LIMIT": ("5000", "single-transaction limit of dutiable value, CNY"),
    "SANDAN_ANNUAL_LIMIT": ("26000", "annual limit per buyer, CNY"),
    "SANDAN_DATA_DIR": ("data", "local state (RocksDB) of this worker"),
    "SANDAN_MAX_DOCUMENT_BYTES": (
        "262144",
        "larger JSON documents and XML nodes are rejected SCHEMA",
    ),
    "SANDAN_MAX_MESSAGE_BYTES": (
        "4194304",
        "larger XML messages are rejected SCHEMA whole; the gateway's largest request body",
    ),
    "SANDAN_WEB_PORT": ("6066", "the worker's status page (/status)"),
    "SANDAN_WORKER_ID": ("from host and data dir", "this worker's stable transactional id"),
    "SANDAN_GATEWAY_HOST": ("127.0.0.1", "address the HTTP gateway listens on"),
    "SANDAN_GATEWAY_PORT": ("8080", "port of the HTTP gateway"),
    "SANDAN_GATEWAY_KEYS": ("keys.json", "the gateway's API keys file (reloaded on change)"),
    "SANDAN_GATEWAY_ACK_TIMEOUT": ("10s", "longest wait for the broker's ack before a 503"),
}
