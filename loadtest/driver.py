"""Producing a plan to Kafka on its schedule, and reading back what sandan decided.

Open loop: each record is sent at its planned time (``speed`` scales the schedule), whatever
the worker's pace, so a slow worker shows up as lag and latency, not as a slower load.

A plan's expected alerts (``Plan.alerts``) hold for workers with the alert settings the ground
truth plans for (loadtest.truth): :func:`alert_env` gives them to a run's workers, and
:func:`alert_settings_problems` says why given settings would not do.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from loadtest.truth import ALERT_BUYERS, ALERT_CONSIGNEES, ALERT_WINDOW, Plan
from matchers.limits import SINGLE_LIMIT
from streams.settings import Settings

__all__ = (
    "alert_env",
    "alert_settings_problems",
    "count_receipts",
    "decode_alert",
    "end_offsets",
    "produce_plan",
    "read_outputs",
)

MAX_REQUEST_BYTES = 8 * 1024 * 1024
_STATUS = re.compile(rb'<(?:[\w.-]+:)?returnStatus>([0-9-]+)<|"returnStatus":"([0-9-]+)"')


async def produce_plan(brokers: str, prefix: str, plan: Plan) -> float:
    """Send every record at its time; return the seconds the whole plan took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=brokers,
        linger_ms=5,
        max_batch_size=512 * 1024,
        max_request_size=MAX_REQUEST_BYTES,
    )
    await producer.start()
    started = time.monotonic()
    try:
        pending = []
        for record in plan.records:
            delay = record.at - (time.monotonic() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(
                await producer.send(f"{prefix}{record.doc_type}", record.value, key=record.key)
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def end_offsets(
    brokers: str, topics: list[str], partitions: int
) -> dict[TopicPartition, int]:
    """The current end of each partition of ``topics`` (where a run's outputs will start)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, isolation_level="read_committed")
    await consumer.start()
    try:
        wanted = [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
        offsets: dict[TopicPartition, int] = await consumer.end_offsets(wanted)
        return offsets
    finally:
        await consumer.stop()


async def read_outputs(
    brokers: str,
    start: dict[TopicPartition, int],
    *,
    until: int,
    deadline: float,
    idle: float = 2.0,
    give_up: float | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Read committed records from ``start`` until ``until`` records came (and then ``idle``
    quiet seconds), or ``give_up`` quiet seconds (if given) however many came, or ``deadline``
    (monotonic) passed; by topic, values decoded."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=brokers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_partition_fetch_bytes=MAX_REQUEST_BYTES * 2,
    )
    await consumer.start()
    seen: dict[str, list[dict[str, Any]]] = {tp.topic: [] for tp in start}
    count = 0
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=50_000)
            for tp, records in batch.items():
                seen[tp.topic].extend(orjson.loads(r.value) for r in records)
                count += len(records)
            if batch:
                quiet_since = time.monotonic()
                continue
            quiet = time.monotonic() - quiet_since
            if (count >= until and quiet >= idle) or (give_up is not None and quiet >= give_up):
                break
    finally:
        await consumer.stop()
    return seen


async def count_receipts(
    brokers: str, start: dict[TopicPartition, int], *, deadline: float, idle: float = 2.0
) -> Counter[tuple[str, str]]:
    """Receipts from ``start`` by (returnStatus, format), until ``idle`` quiet seconds or
    ``deadline`` (monotonic)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=brokers, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    counts: Counter[tuple[str, str]] = Counter()
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < idle:
            batch = await consumer.getmany(timeout_ms=200, max_records=50_000)
            for records in batch.values():
                for record in records:
                    match = _STATUS.search(record.value or b"")
                    status = (match.group(1) or match.group(2)).decode() if match else "?"
                    xml = dict(record.headers).get("content-type") == b"application/xml"
                    counts[(status, "xml" if xml else "json")] += 1
            if batch:
                quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return counts


def alert_env() -> dict[str, str]:
    """The ``SANDAN_ALERT_*`` settings a run gives its workers: the thresholds the ground truth
    plans for, and every window ``truth.ALERT_WINDOW`` (longer than any run: one window)."""
    window = f"{ALERT_WINDOW:.0f}"
    return {
        "SANDAN_ALERT_CONSIGNEES": str(ALERT_CONSIGNEES),
        "SANDAN_ALERT_CONSIGNEES_WINDOW": window,
        "SANDAN_ALERT_BUYERS": str(ALERT_BUYERS),
        "SANDAN_ALERT_BUYERS_WINDOW": window,
        "SANDAN_ALERT_SPLIT_WINDOW": window,
    }


def alert_settings_problems(settings: Settings, span: float) -> list[str]:
    """Why workers with ``settings`` could raise other alerts than a plan's truth expects over
    a run of at most ``span`` seconds (empty: exactly those): alerts off, other thresholds or
    single limit, or a window not longer than the run. A window longer than the run but other
    than ``truth.ALERT_WINDOW`` will do (the run is one window all the same)."""
    problems = [] if settings.alerts else ["SANDAN_ALERTS is off"]
    for name, value, truth in (
        ("SANDAN_ALERT_CONSIGNEES", settings.alert_consignees, ALERT_CONSIGNEES),
        ("SANDAN_ALERT_BUYERS", settings.alert_buyers, ALERT_BUYERS),
        ("SANDAN_SINGLE_LIMIT", settings.single_limit, SINGLE_LIMIT),
    ):
        if value != truth:
            problems.append(f"{name} is {value}, the ground truth's {truth}")
    for name, window in (
        ("SANDAN_ALERT_CONSIGNEES_WINDOW", settings.alert_consignees_window),
        ("SANDAN_ALERT_BUYERS_WINDOW", settings.alert_buyers_window),
        ("SANDAN_ALERT_SPLIT_WINDOW", settings.alert_split_window),
    ):
        if window <= span:
            problems.append(f"{name} is {window:g}s, not longer than the run ({span:g}s)")
    return problems


def decode_alert(raw: bytes | None) -> dict[str, Any]:
    """An alert record's JSON object; one that is not as ``{"unreadable": ...}`` (which the
    verifier reports as malformed)."""
    try:
        value = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    return {"unreadable": (raw or b"")[:200].decode(errors="replace")}
