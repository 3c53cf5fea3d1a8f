"""How sandan's Kafka clients authenticate to the brokers: the ``SANDAN_KAFKA_*`` security
settings as client options, in one place.

``aiokafka_security(settings)`` gives the keyword arguments of aiokafka's clients
(``AIOKafkaProducer``, ``AIOKafkaConsumer``, ``AIOKafkaAdminClient``), to pass beside
``bootstrap_servers``; ``librdkafka_security(settings)`` gives the same as librdkafka
(confluent-kafka) configuration properties, to merge beside ``bootstrap.servers``:

====================================  ============================  ==========================
setting                               aiokafka                      librdkafka
====================================  ============================  ==========================
SANDAN_KAFKA_SECURITY_PROTOCOL        security_protocol             security.protocol
SANDAN_KAFKA_SSL_CAFILE               ssl_context (its CAs)         ssl.ca.location
SANDAN_KAFKA_SSL_CERTFILE, _KEYFILE   ssl_context (cert chain)      ssl.certificate.location,
                                                                    ssl.key.location
SANDAN_KAFKA_SASL_MECHANISM           sasl_mechanism                sasl.mechanism
SANDAN_KAFKA_SASL_USERNAME            sasl_plain_username           sasl.username
SANDAN_KAFKA_SASL_PASSWORD            sasl_plain_password           sasl.password
====================================  ============================  ==========================

Both check the brokers' host names against their certificates. The results hold the password:
never log them. ``connection_problem(settings)`` connects once, as a client would, and says
what went wrong (a refused password, an unknown CA) where aiokafka only says it could not
bootstrap.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError

from streams.settings import Settings

__all__ = ("aiokafka_security", "connection_problem", "librdkafka_security")

PROBE_TIMEOUT = 15.0


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka client (beside ``bootstrap_servers``)."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = settings.kafka_ssl_context()
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_sasl_mechanism is not None:
        assert settings.kafka_sasl_password is not None  # noqa: S101 - Settings.from_env checks
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password.reveal()
    return options


def librdkafka_security(settings: Settings) -> dict[str, str]:
    """librdkafka (confluent-kafka) configuration properties (beside ``bootstrap.servers``)."""
    config = {"security.protocol": settings.kafka_security_protocol.lower()}
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        config["ssl.endpoint.identification.algorithm"] = "https"
        if settings.kafka_ssl_cafile is not None:
            config["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
        if settings.kafka_ssl_certfile is not None and settings.kafka_ssl_keyfile is not None:
            config["ssl.certificate.location"] = str(settings.kafka_ssl_certfile)
            config["ssl.key.location"] = str(settings.kafka_ssl_keyfile)
    if settings.kafka_sasl_mechanism is not None:
        assert settings.kafka_sasl_username is not None  # noqa: S101 - Settings.from_env checks
        assert settings.kafka_sasl_password is not None  # noqa: S101
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = settings.kafka_sasl_password.reveal()
    return config


async def connection_problem(settings: Settings) -> str | None:
    """Connect to each bootstrap broker in turn as a client would (TLS, SASL); None as soon as
    one takes us, else what each said, e.g. ``127.0.0.1:9093: SaslAuthenticationFailedError:
    ... invalid credentials with SASL mechanism SCRAM-SHA-256``."""
    problems = []
    options = aiokafka_security(settings)
    for address in settings.brokers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                conn = await create_conn(
                    host, int(port), request_timeout_ms=int(PROBE_TIMEOUT * 1000), **options
                )
        except (KafkaError, OSError, TimeoutError) as exc:
            problems.append(f"{host}:{port}: {_describe(exc)}")
            continue
        conn.close()
        return None
    return "; ".join(problems)


def _describe(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc)
    if not text:
        return name
    # aiokafka's errors name themselves: "[Error 58] SaslAuthenticationFailedError: ..."
    return text if name in text else f"{name}: {text}"
