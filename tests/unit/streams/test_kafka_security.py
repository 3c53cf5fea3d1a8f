"""The security settings as client options (streams.kafka_security): aiokafka's keyword
arguments and librdkafka's properties, exactly, for each protocol."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest

from streams.kafka_security import aiokafka_security, connection_problem, librdkafka_security
from streams.settings import Settings
from tests.certs import Certificates, make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def settings(protocol: str, certs: Certificates | None = None, **more: str) -> Settings:
    env = {"SANDAN_KAFKA_SECURITY_PROTOCOL": protocol, **more}
    if certs is not None:
        env |= {
            "SANDAN_KAFKA_SSL_CAFILE": str(certs.ca),
            "SANDAN_KAFKA_SSL_CERTFILE": str(certs.client_cert),
            "SANDAN_KAFKA_SSL_KEYFILE": str(certs.client_key),
        }
    if protocol.startswith("SASL_"):
        env |= {
            "SANDAN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "SANDAN_KAFKA_SASL_USERNAME": "sandan",
            "SANDAN_KAFKA_SASL_PASSWORD": "pa55",
        }
    return Settings.from_env(env)


def without_context(options: dict[str, Any]) -> tuple[dict[str, Any], ssl.SSLContext | None]:
    options = dict(options)
    return options, options.pop("ssl_context", None)


def test_plaintext() -> None:
    assert aiokafka_security(Settings.from_env({})) == {"security_protocol": "PLAINTEXT"}
    assert librdkafka_security(Settings.from_env({})) == {"security.protocol": "plaintext"}


def test_sasl_ssl_with_a_client_certificate(certs: Certificates) -> None:
    config = settings("SASL_SSL", certs)
    options, context = without_context(aiokafka_security(config))
    assert options == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "sandan",
        "sasl_plain_password": "pa55",
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1
    assert librdkafka_security(config) == {
        "security.protocol": "sasl_ssl",
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.ca.location": str(certs.ca),
        "ssl.certificate.location": str(certs.client_cert),
        "ssl.key.location": str(certs.client_key),
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "sandan",
        "sasl.password": "pa55",
    }


def test_ssl_with_the_system_cas() -> None:
    config = settings("SSL")
    options, context = without_context(aiokafka_security(config))
    assert options == {"security_protocol": "SSL"}
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert librdkafka_security(config) == {
        "security.protocol": "ssl",
        "ssl.endpoint.identification.algorithm": "https",
    }


def test_sasl_plaintext_has_no_tls() -> None:
    config = settings("SASL_PLAINTEXT")
    assert aiokafka_security(config) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "sandan",
        "sasl_plain_password": "pa55",
    }
    assert librdkafka_security(config) == {
        "security.protocol": "sasl_plaintext",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "sandan",
        "sasl.password": "pa55",
    }


def test_connection_problem_names_a_closed_port() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = Settings.from_env({"SANDAN_BROKERS": f"127.0.0.1:{port}"})
    problem = asyncio.run(connection_problem(config))
    assert problem is not None
    assert problem.startswith(f"127.0.0.1:{port}: ")
    assert "Connect call failed" in problem or "refused" in problem.lower()
