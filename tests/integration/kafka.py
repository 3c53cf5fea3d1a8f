"""Helpers for tests on the real broker: the broker itself, topics, workers, produce, consume.

Every wait is bounded (quix-streams' ``Timeout`` idea): a test fails, never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.certs import Certificates, make_certificates

ROOT = Path(__file__).resolve().parents[2]
BROKER_SCRIPT = ROOT / "kafka" / "broker.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_pair() -> int:
    """A port whose successor is free too (the broker's controller takes port + 1)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of ports")


@contextlib.contextmanager
def running_broker() -> Iterator[str]:
    """Start a broker of our own on free ports; yield its address; stop it."""
    port = free_port_pair()
    env = {**os.environ, "SANDAN_KAFKA_PORT": str(port)}
    subprocess.run(["bash", str(BROKER_SCRIPT), "start"], env=env, check=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", str(BROKER_SCRIPT), "stop"], env=env, check=False, timeout=60)
        subprocess.run(["rm", "-rf", str(ROOT / ".cache" / "kafka" / f"run-{port}")], check=False)


SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class SecureBroker:
    """A broker with, beside its PLAINTEXT listener, a SASL_SSL one (PLAIN, SCRAM-SHA-256 and
    SCRAM-SHA-512 for ``username``/``password``) and an SSL one; both want a client
    certificate signed by ``certs.ca``."""

    plaintext: str
    sasl_ssl: str
    ssl: str
    certs: Certificates
    username: str
    password: str

    def env(self, protocol: str = "SASL_SSL", mechanism: str = "PLAIN") -> dict[str, str]:
        """The ``SANDAN_*`` settings of a client of this broker."""
        env = {
            "SANDAN_BROKERS": self.sasl_ssl if protocol == "SASL_SSL" else self.ssl,
            "SANDAN_KAFKA_SECURITY_PROTOCOL": protocol,
            "SANDAN_KAFKA_SSL_CAFILE": str(self.certs.ca),
            "SANDAN_KAFKA_SSL_CERTFILE": str(self.certs.client_cert),
            "SANDAN_KAFKA_SSL_KEYFILE": str(self.certs.client_key),
        }
        if protocol == "SASL_SSL":
            env["SANDAN_KAFKA_SASL_MECHANISM"] = mechanism
            env["SANDAN_KAFKA_SASL_USERNAME"] = self.username
            env["SANDAN_KAFKA_SASL_PASSWORD"] = self.password
        return env


def _secure_listeners(port: int, sasl_port: int, ssl_port: int, certs: Certificates) -> str:
    user = "sandan"
    jaas = {
        "plain": "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_{user}="{{password}}";',
        "scram-sha-256": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "scram-sha-512": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    }
    lines = [
        f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1},"
        f"SASL_SSL://127.0.0.1:{sasl_port},SSL://127.0.0.1:{ssl_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_port},"
        f"SSL://127.0.0.1:{ssl_port}",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
        "SASL_SSL:SASL_SSL,SSL:SSL",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={certs.broker_keystore}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={certs.ca}",
        "listener.name.ssl.ssl.client.auth=required",
        "listener.name.sasl_ssl.ssl.client.auth=required",
        "sasl.enabled.mechanisms=" + ",".join(SASL_MECHANISMS),
        *(f"listener.name.sasl_ssl.{m}.sasl.jaas.config={c}" for m, c in jaas.items()),
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def running_secure_broker(folder: Path) -> Iterator[SecureBroker]:
    """Start a broker of our own with SASL_SSL and SSL listeners (certificates and settings in
    ``folder``); yield it; stop it."""
    certs = make_certificates(folder / "certs")
    port, sasl_port, ssl_port = free_port_pair(), free_port(), free_port()
    password = secrets.token_hex(12)
    config = folder / "listeners.properties"
    config.write_text(
        _secure_listeners(port, sasl_port, ssl_port, certs).replace("{password}", password)
    )
    scram = [f"--add-scram {m}=[name=sandan,password={password}]" for m in SASL_MECHANISMS[1:]]
    env = {
        **os.environ,
        "SANDAN_KAFKA_PORT": str(port),
        "SANDAN_KAFKA_EXTRA_CONFIG": str(config),
        "SANDAN_KAFKA_FORMAT_ARGS": " ".join(scram),
    }
    subprocess.run(["bash", str(BROKER_SCRIPT), "start"], env=env, check=True, timeout=180)
    try:
        yield SecureBroker(
            plaintext=f"127.0.0.1:{port}",
            sasl_ssl=f"127.0.0.1:{sasl_port}",
            ssl=f"127.0.0.1:{ssl_port}",
            certs=certs,
            username="sandan",
            password=password,
        )
    finally:
        subprocess.run(["bash", str(BROKER_SCRIPT), "stop"], env=env, check=False, timeout=60)
        subprocess.run(["rm", "-rf", str(ROOT / ".cache" / "kafka" / f"run-{port}")], check=False)


class Timeout:
    """``while timeout:`` loops until the deadline, then raises TimeoutError."""

    def __init__(self, seconds: float, what: str) -> None:
        self._end = time.monotonic() + seconds
        self._what = what

    def __bool__(self) -> bool:
        if time.monotonic() >= self._end:
            raise TimeoutError(f"timed out waiting for {self._what}")
        return True


@dataclass
class Worker:
    """A ``sandan worker`` subprocess."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    web_port: int = field(default_factory=free_port)
    loglevel: str = "info"

    def start(self) -> Worker:
        env = {**self.env, "SANDAN_WEB_PORT": str(self.web_port)}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker", "-l", self.loglevel],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        return self

    def status(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/status", timeout=2) as r:
                status: dict[str, Any] = json.loads(r.read())
                return status
        except OSError:
            return None

    def wait_ready(self, seconds: float = 60) -> dict[str, Any]:
        """Until the worker owns partitions and has restored them."""
        timeout = Timeout(seconds, "the worker to own its partitions")
        while timeout:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            status = self.status()
            if status and status.get("ready"):
                return status
            time.sleep(0.2)
        raise AssertionError("unreachable")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def unique_prefix() -> str:
    return f"it-{uuid.uuid4().hex[:10]}."


async def produce(
    brokers: str,
    records: Sequence[tuple[str, bytes | None, bytes | None]],
    *,
    security: Mapping[str, Any] | None = None,
) -> None:
    """Produce (topic, key, value) records in order and wait for every ack (``security``:
    streams.kafka_security.aiokafka_security of the settings; none is plaintext)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=brokers,
        max_request_size=8 * 1024 * 1024,
        linger_ms=2,
        **(security or {}),
    )
    await producer.start()
    try:
        for topic, key, value in records:
            await (await producer.send(topic, value, key=key))
    finally:
        await producer.stop()


async def consume(
    brokers: str,
    topics: list[str],
    *,
    count: int | None = None,
    idle: float = 3.0,
    limit: float = 60.0,
    security: Mapping[str, Any] | None = None,
) -> list[Any]:
    """Read committed records from the start: until ``count`` records, or until nothing new
    came for ``idle`` seconds (after at least one poll), or ``limit`` seconds in all."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=brokers,
        **(security or {}),
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        end = time.monotonic() + limit
        last_new = time.monotonic()
        while time.monotonic() < end:
            batch = await consumer.getmany(timeout_ms=200)
            fresh = [record for part in batch.values() for record in part]
            if fresh:
                records.extend(fresh)
                last_new = time.monotonic()
            if count is not None and len(records) >= count:
                if time.monotonic() - last_new >= min(idle, 1.0):
                    break  # a short settle so an extra record would be seen
            elif count is None and time.monotonic() - last_new >= idle:
                break
    finally:
        await consumer.stop()
    return records


async def committed_offsets(
    brokers: str, group: str, topics: list[str]
) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in (consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in (consumer.partitions_for_topic(topic) or ())
            ]
        result = {}
        for tp in partitions:
            result[tp] = await consumer.committed(tp) or 0
        return result
    finally:
        await consumer.stop()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def sandan(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``sandan ARGS`` with exactly the ``SANDAN_*`` settings of ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
