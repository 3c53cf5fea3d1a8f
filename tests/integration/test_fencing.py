"""A stalled worker is fenced: paused mid-transaction past its session timeout while its
partitions move to another worker, then resumed, it commits nothing.

The first worker stops itself (SIGSTOP, ``SANDAN_FAULT_STOP_BEFORE_OFFSETS``) with a
transaction open: its records are on the broker, its offsets not yet sent. A second worker
takes every partition once the first one's session expired, reprocesses what the open
transaction held and decides it. The first worker is then resumed within its transaction
timeout, so only the group generation (KIP-447) can stop it: its offsets are refused, its
transaction aborted, it starts a new engine and shares the partitions again, the records of its
open transaction are never visible to a read_committed reader, and every ticket has exactly one
decision.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from typing import Any

import psutil  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer, TopicPartition

from matchers.identity import resident_id_check_char
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.integration.conftest import PARTITIONS
from tests.integration.kafka import Timeout, consume, produce, run
from tests.integration.receipts import receipt

TICKETS = 600
STOP_AT = 4  # the transaction the first worker stops in


def _ticket(n: int) -> list[tuple[str, bytes, bytes]]:
    order_no = f"FENCE{n:06d}"
    guid = f"{n:035d}"
    first17 = f"44030519801226{n % 1000:03d}"  # a buyer each: far from the annual limit
    buyer = first17 + resident_id_check_char(first17)
    docs = {
        "order": order_dict(orderNo=order_no, guid="O" + guid, buyerIdNumber=buyer),
        "payment": payment_dict(orderNo=order_no, guid="P" + guid, payerIdNumber=buyer),
        "logistics": logistics_dict(orderNo=order_no, guid="L" + guid),
    }
    return [(kind, order_no.encode(), as_bytes(doc)) for kind, doc in docs.items()]


async def _open_transactions(brokers: str, topics: list[str]) -> dict[TopicPartition, range]:
    """Per partition of ``topics``: the offsets past the last stable one (an open
    transaction's records), where there are any."""
    committed = AIOKafkaConsumer(bootstrap_servers=brokers, isolation_level="read_committed")
    uncommitted = AIOKafkaConsumer(bootstrap_servers=brokers)
    await committed.start()
    await uncommitted.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        stable = await committed.end_offsets(tps)
        high = await uncommitted.end_offsets(tps)
    finally:
        await committed.stop()
        await uncommitted.stop()
    return {tp: range(stable[tp], high[tp]) for tp in tps if high[tp] > stable[tp]}


async def _visible(brokers: str, where: dict[TopicPartition, range]) -> list[tuple[Any, int]]:
    """The records a read_committed reader sees at those offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, isolation_level="read_committed")
    await consumer.start()
    seen: list[tuple[Any, int]] = []
    try:
        consumer.assign(list(where))
        for tp, offsets in where.items():
            consumer.seek(tp, offsets.start)
        ends = await consumer.end_offsets(list(where))
        todo = {tp for tp in where if ends[tp] > where[tp].start}
        deadline = time.monotonic() + 30
        while todo and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, records in batch.items():
                seen += [(tp, r.offset) for r in records if r.offset in where[tp]]
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return seen


def _stopped(pid: int) -> bool:
    return bool(psutil.Process(pid).status() == psutil.STATUS_STOPPED)


def test_a_worker_stalled_mid_transaction_is_fenced_when_it_resumes(deploy: Any) -> None:
    d = deploy(SANDAN_WINDOW="1h")
    records = [record for n in range(TICKETS) for record in _ticket(n)]
    zombie = d.worker("w1", SANDAN_FAULT_STOP_BEFORE_OFFSETS=str(STOP_AT))
    zombie.wait_ready()

    def feed() -> None:  # a paced stream through the stall, the takeover and the resume
        for i in range(0, len(records), 30):
            batch = [(d.topic(kind), key, value) for kind, key, value in records[i : i + 30]]
            run(produce(d.brokers, batch))
            time.sleep(0.2)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        assert zombie.process is not None
        pid = zombie.process.pid
        timeout = Timeout(60, "the first worker to stop itself mid-transaction")
        while timeout and not _stopped(pid):
            time.sleep(0.05)
        stopped_at = time.monotonic()
        outputs = [d.topic(t) for t in ("release", "divert", "receipt")]
        outputs += [d.topic("sandan-tickets-changelog"), d.topic("sandan-repartition")]
        open_records = run(_open_transactions(d.brokers, outputs))
        assert open_records, "the worker stopped with no transaction open"

        heir = d.worker("w2")
        timeout = Timeout(90, "the second worker to own every partition")
        while timeout:
            status = heir.status()
            if status and len(status["partitions"]) == PARTITIONS:
                break
            assert heir.alive(), heir.log_tail()
            time.sleep(0.5)
        # Resumed well within its 30 s transaction timeout (on a busy machine maybe not: then
        # the transaction coordinator has aborted it, which fences it as well).
        print(f"resumed after {time.monotonic() - stopped_at:.1f} s")
        zombie.process.send_signal(signal.SIGCONT)
        timeout = Timeout(60, "the resumed worker to find itself fenced")
        while timeout:
            fenced = [line for line in zombie.log_tail(400).splitlines() if "fenced:" in line]
            if fenced:
                break
            time.sleep(0.5)
        print(*fenced, sep="\n")
        # It started a new engine (new clients, from the committed offsets) and stays up.
        timeout = Timeout(60, "the fenced worker's new engine to own partitions again")
        while timeout:
            status = zombie.status()
            if status and status["partitions"]:
                break
            assert zombie.alive(), zombie.log_tail()
            time.sleep(0.5)
    finally:
        feeder.join(timeout=120)

    timeout = Timeout(120, "every ticket to be decided")
    decisions: list[Any] = []
    while timeout:
        decisions = run(
            consume(d.brokers, [d.topic("release"), d.topic("divert")], count=TICKETS, idle=2)
        )
        if len(decisions) >= TICKETS:
            break
        assert heir.alive(), heir.log_tail()
    decisions = run(consume(d.brokers, [d.topic("release"), d.topic("divert")], idle=3))
    values = [json.loads(r.value) for r in decisions]
    repeated = {t: n for t, n in Counter(v["ticketId"] for v in values).items() if n > 1}
    assert not repeated, f"decided twice: {list(repeated.items())[:5]}"
    assert {v["ticketId"] for v in values} == {f"3301980ABC:FENCE{n:06d}" for n in range(TICKETS)}
    assert {v["decision"] for v in values} == {"RELEASE"}
    # Every document: one 120 and one 399, once each.
    expected = {
        (kind + f"{n:035d}", status)
        for n in range(TICKETS)
        for kind in "OPL"
        for status in ("120", "399")
    }
    timeout = Timeout(60, "every receipt")
    while timeout:
        receipts = [receipt(r) for r in run(consume(d.brokers, [d.topic("receipt")], idle=2))]
        if len(receipts) >= len(expected):
            break
    seen = Counter((r["guid"], r["returnStatus"]) for r in receipts)
    assert {key: n for key, n in seen.items() if n > 1} == {}
    assert set(seen) == expected
    # The stalled transaction was aborted: none of its records ever became visible.
    assert run(_visible(d.brokers, open_records)) == []
