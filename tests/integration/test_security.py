"""sandan over TLS and SASL, on a broker of the module's own with a SASL_SSL listener (PLAIN,
SCRAM-SHA-256, SCRAM-SHA-512) and an SSL listener, both asking for a client certificate signed
by the test CA (tests/certs.py): ``sandan topics`` creates the topics, the gateway takes a POST
and its record is on the topic; a worker decides a ticket; a wrong password or an unknown CA is
one clear line, at once."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.keys import add_key
from streams.kafka_security import aiokafka_security, librdkafka_security
from streams.settings import Settings
from streams.topics import Topics, create_topics
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.integration.gateway_process import GatewayProcess
from tests.integration.kafka import (
    SASL_MECHANISMS,
    SecureBroker,
    Timeout,
    Worker,
    consume,
    produce,
    run,
    running_secure_broker,
    sandan,
    unique_prefix,
)

PLATFORM = "3301980ABC"
JSON = "application/json"
# What the broker says to a wrong password, by mechanism.
REFUSED = {
    "PLAIN": "Authentication failed: Invalid username or password",
    "SCRAM-SHA-256": "Authentication failed during authentication due to invalid credentials "
    "with SASL mechanism SCRAM-SHA-256",
    "SCRAM-SHA-512": "Authentication failed during authentication due to invalid credentials "
    "with SASL mechanism SCRAM-SHA-512",
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    with running_secure_broker(tmp_path_factory.mktemp("secure-broker")) as started:
        yield started


def deployment_env(broker: SecureBroker, protocol: str = "SASL_SSL", **more: str) -> dict[str, str]:
    mechanism = more.pop("mechanism", "PLAIN")
    return {
        **broker.env(protocol, mechanism),
        "SANDAN_TOPIC_PREFIX": unique_prefix(),
        "SANDAN_PARTITIONS": "2",
        **more,
    }


def created_line(settings: Settings) -> str:
    names = Topics(settings).all()
    return f"created {len(names)} topics: {', '.join(names)}\n"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
def test_topics_and_the_gateway_over_sasl_ssl(
    broker: SecureBroker, mechanism: str, tmp_path: Path
) -> None:
    env = deployment_env(broker, mechanism=mechanism)
    settings = Settings.from_env(env)

    done = sandan(["topics"], env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == created_line(settings)
    again = sandan(["topics"], env)  # it lists what exists, over SASL_SSL too
    assert (again.returncode, again.stdout, again.stderr) == (0, "created 0 topics\n", "")

    keys = tmp_path / "keys.json"
    key = add_key(keys, "platform", [PLATFORM])
    gateway = GatewayProcess(env, keys, tmp_path / "gateway.log").start()
    try:
        body = as_bytes(order_dict(guid=str(uuid.uuid4()).upper(), orderNo=f"SEC-{mechanism}"))
        reply = gateway.post("/v1/orders", body, key, JSON)
        assert reply.status == 202, reply.body
        (entry,) = reply.json()["accepted"]
        records = run(
            consume(
                broker.sasl_ssl,
                [settings.topic("order")],
                count=1,
                idle=1.0,
                limit=30,
                security=aiokafka_security(settings),
            )
        )
        assert [(r.partition, r.offset, r.key, r.value) for r in records] == [
            (entry["partition"], entry["offset"], f"SEC-{mechanism}".encode(), body)
        ]
        # the receipt consumers authenticate too: an empty page, not a 503
        reply = gateway.get("/v1/receipts?limit=5&wait=0", key)
        assert reply.status == 200, reply.body
        assert reply.json()["receipts"] == []
    finally:
        assert gateway.stop() == 0
    log = (tmp_path / "gateway.log").read_text()
    assert f"Authenticated as sandan via {mechanism}" in log
    assert broker.password not in log


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
def test_a_wrong_password_is_one_clear_line(
    broker: SecureBroker, mechanism: str, tmp_path: Path
) -> None:
    wrong = {"SANDAN_KAFKA_SASL_PASSWORD": "not-it"}
    env = deployment_env(broker, mechanism=mechanism, **wrong)
    started = time.monotonic()
    done = sandan(["topics"], env)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"sandan: cannot connect to the brokers: {broker.sasl_ssl}: "
        f"[Error 58] SaslAuthenticationFailed: {REFUSED[mechanism]}\n"
    )
    assert time.monotonic() - started < 30  # refused at once, not retried until a timeout

    # The gateway runs, answers 503 and logs why.
    keys = tmp_path / "keys.json"
    add_key(keys, "platform", [PLATFORM])
    gateway = GatewayProcess(env, keys, tmp_path / "gateway.log").start(healthy=False)
    try:
        assert gateway.wait_health(503).json()["status"] == "unavailable"
        line = (
            f'Unable connect to "{broker.sasl_ssl}": '
            f"[Error 58] SaslAuthenticationFailed: {REFUSED[mechanism]}"
        )
        timeout = Timeout(30, "the gateway to log the refused password")
        while timeout and line not in gateway.log_tail(200):
            time.sleep(0.2)
    finally:
        gateway.stop()
    assert "not-it" not in (tmp_path / "gateway.log").read_text()


@pytest.mark.timeout(120)
def test_an_unknown_ca_is_one_clear_line(broker: SecureBroker) -> None:
    env = deployment_env(broker, SANDAN_KAFKA_SSL_CAFILE=str(broker.certs.other_ca))
    done = sandan(["topics"], env)
    assert done.returncode == 1
    assert done.stdout == ""
    prefix = (
        f"sandan: cannot connect to the brokers: {broker.sasl_ssl}: SSLCertVerificationError: "
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in "
        "certificate chain"
    )
    assert done.stderr.startswith(prefix), done.stderr
    assert done.stderr.count("\n") == 1


@pytest.mark.timeout(120)
def test_topics_over_ssl_with_a_client_certificate(broker: SecureBroker) -> None:
    env = deployment_env(broker, "SSL")
    done = sandan(["topics"], env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == created_line(Settings.from_env(env))
    # without the client certificate the broker hangs up
    env.pop("SANDAN_KAFKA_SSL_CERTFILE")
    env.pop("SANDAN_KAFKA_SSL_KEYFILE")
    refused = sandan(["topics"], env)
    assert refused.returncode == 1
    assert refused.stderr == (
        f"sandan: cannot connect to the brokers: {broker.ssl}: "
        f"KafkaConnectionError: Connection at {broker.ssl} closed\n"
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mechanism", SASL_MECHANISMS)
def test_the_librdkafka_properties_connect(broker: SecureBroker, mechanism: str) -> None:
    """What the engine gets for confluent-kafka: a record produced with those properties."""
    from confluent_kafka import Producer

    env = deployment_env(broker, mechanism=mechanism)
    settings = Settings.from_env(env)
    run(create_topics(settings))
    producer = Producer(
        {"bootstrap.servers": settings.brokers, "acks": "all", **librdkafka_security(settings)}
    )
    delivered: list[tuple[str | None, int | None]] = []
    producer.produce(
        settings.topic("order"),
        b"{}",
        key=b"librdkafka",
        on_delivery=lambda err, msg: delivered.append((str(err) if err else None, msg.offset())),
    )
    assert producer.flush(30) == 0
    assert delivered == [(None, 0)]
    records = run(
        consume(
            settings.brokers,
            [settings.topic("order")],
            count=1,
            idle=1.0,
            limit=30,
            security=aiokafka_security(settings),
        )
    )
    assert [(r.key, r.value) for r in records] == [(b"librdkafka", b"{}")]


@pytest.mark.timeout(180)
def test_the_worker_decides_over_sasl_ssl(broker: SecureBroker, tmp_path: Path) -> None:
    env = deployment_env(broker, mechanism="SCRAM-SHA-512", SANDAN_WINDOW="60s")
    settings = Settings.from_env(env)
    run(create_topics(settings))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
    worker_env = {**clean, **env, "SANDAN_DATA_DIR": str(tmp_path / "data")}
    worker = Worker(env=worker_env, log_path=tmp_path / "worker.log").start()
    try:
        worker.wait_ready(90)
        docs = {
            "order": order_dict(orderNo="SEC-W1"),
            "payment": payment_dict(orderNo="SEC-W1"),
            "logistics": logistics_dict(orderNo="SEC-W1"),
        }
        records = [(settings.topic(k), b"SEC-W1", as_bytes(d)) for k, d in docs.items()]
        run(produce(settings.brokers, records, security=aiokafka_security(settings)))
        released = run(
            consume(
                settings.brokers,
                [settings.topic("release")],
                count=1,
                limit=60,
                security=aiokafka_security(settings),
            )
        )
        assert [json.loads(r.value)["orderNo"] for r in released] == ["SEC-W1"]
    finally:
        worker.stop()
