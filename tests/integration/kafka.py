"""Helpers for tests on the real broker: the broker itself, topics, workers, produce, consume.

Every wait is bounded (quix-streams' ``Timeout`` idea): a test fails, never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

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

    def start(self) -> Worker:
        env = {**self.env, "SANDAN_WEB_PORT": str(self.web_port)}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker", "-l", "info"],
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


async def produce(brokers: str, records: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
    """Produce (topic, key, value) records in order and wait for every ack."""
    producer = AIOKafkaProducer(
        bootstrap_servers=brokers, max_request_size=8 * 1024 * 1024, linger_ms=2
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
) -> list[Any]:
    """Read committed records from the start: until ``count`` records, or until nothing new
    came for ``idle`` seconds (after at least one poll), or ``limit`` seconds in all."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=brokers,
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
