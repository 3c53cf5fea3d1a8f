"""Store.restore on the real broker reads a changelog to its high watermark: a transaction
still open when the restore starts (on a cluster: committed, its marker not yet on the
changelog's partition) is waited for, its changes restored if it commits and skipped if it
aborts. Restoring only to the last stable offset lost them (found by the cluster chaos run,
tests/integration/test_cluster.py)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from confluent_kafka import Producer

from streams.store import Store
from tests.integration.kafka import run, unique_prefix

MARKER_DELAY = 2.0  # seconds the transaction stays open after the restore started


async def _topic(brokers: str) -> str:
    name = f"{unique_prefix()}changelog"
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, 1, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    finally:
        await admin.close()
    return name


def _open_transaction(brokers: str, topic: str, records: dict[bytes, bytes]) -> Producer:
    """A transaction whose records are written (the high watermark past them), not ended."""
    producer = Producer(
        {"bootstrap.servers": brokers, "transactional.id": f"restore-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for key, value in records.items():
        producer.produce(topic, value, key, partition=0)
    assert producer.flush(30) == 0
    return producer


def _restore_while_open(brokers: str, tmp_path: Path, *, commit: bool) -> tuple[Store, float]:
    topic = run(_topic(brokers))
    settled = _open_transaction(brokers, topic, {b"a": b"1"})
    settled.commit_transaction(30)
    pending = _open_transaction(brokers, topic, {b"b": b"2", b"a": b"3"})
    end = pending.commit_transaction if commit else pending.abort_transaction
    timer = threading.Timer(MARKER_DELAY, end, args=(30,))
    store = Store(tmp_path / "db", topic)
    started = time.monotonic()
    timer.start()
    try:
        asyncio.run(store.restore(brokers, {0}))
    finally:
        timer.join()
    return store, time.monotonic() - started


def test_a_transaction_committed_during_the_restore_is_restored(
    brokers: str, tmp_path: Path
) -> None:
    store, seconds = _restore_while_open(brokers, tmp_path, commit=True)
    try:
        assert (store.get(0, b"a"), store.get(0, b"b")) == (b"3", b"2")
        assert seconds >= MARKER_DELAY - 0.5  # it waited for the marker
        assert store.checkpoint(0) >= 3
    finally:
        store.close()


def test_a_transaction_aborted_during_the_restore_is_skipped(brokers: str, tmp_path: Path) -> None:
    store, seconds = _restore_while_open(brokers, tmp_path, commit=False)
    try:
        assert (store.get(0, b"a"), store.get(0, b"b")) == (b"1", None)
        assert seconds >= MARKER_DELAY - 0.5
    finally:
        store.close()
