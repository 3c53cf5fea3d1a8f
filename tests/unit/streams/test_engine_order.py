"""Order of arrival across workers, the engine's bookkeeping without a broker
(streams.engine.Engine, streams/hops.py): the marks a worker writes, the watermark the other
workers' marks give, where each partition resumes after a crash, and what routing replays."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import TopicPartition as KafkaPartition

from schemas.keys import murmur2_partition
from schemas.outputs import Source
from streams.engine import IDLE_AFTER_MS, IDLE_MARK_EVERY_MS, MARK_EVERY_MS, MAX_HELD, Engine
from streams.hops import (
    MARK,
    TICKETS,
    Mark,
    hop_headers,
    hop_origin,
    mark_value,
    read_mark,
    request_headers,
    request_source,
)
from streams.intake import Incoming
from streams.pipeline import SandanPipeline
from streams.records import Record, Routed, TopicPartition
from streams.settings import Settings
from tests.factories import as_bytes, order_dict

T0 = 1_795_490_400_000
PARTITIONS = 2


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    settings = Settings.from_env(
        {"SANDAN_DATA_DIR": str(tmp_path), "SANDAN_PARTITIONS": str(PARTITIONS)}
    )
    engine = Engine(settings, SandanPipeline(settings))
    engine.assignment = {0}
    engine._remote_origins = engine._others_inputs()
    return engine


def mark(engine: Engine, partition: int, offset: int, until: int, owned: int = 1) -> Record:
    origins = [(topic, owned) for topic in engine.topics.inputs]
    value = mark_value(until, origins)
    return Record(engine.topics.repartition, partition, offset, 0, None, value, ((MARK, b""),))


def hop(engine: Engine, partition: int, offset: int, origin: int, at: int) -> Record:
    topic = engine.topics.order
    incoming = Incoming("order", b"k", b"{}", Source(topic, origin, 7, at))
    headers = tuple(hop_headers(incoming))
    return Record(engine.topics.repartition, partition, offset, at, b"ORD", b"{}", headers)


def hold_hops(engine: Engine, records: list[Record]) -> None:
    """What the engine does with records fetched from repartition partition 0."""
    engine._hold(
        engine._arrivals, TopicPartition(engine.topics.repartition, 0), records, hop_origin
    )


def routed(engine: Engine, partition: int, offset: int, at: int) -> Routed:
    record = Record(engine.topics.order, partition, offset, at, b"k", b"{}")
    return Routed(record, 0, None)


def test_the_others_marks_set_the_watermark(engine: Engine) -> None:
    assert engine._remote_origins == [(topic, 1) for topic in engine.topics.inputs]
    assert engine._ordered_until(T0) == 0  # nothing heard from the other worker yet
    order, payment, waybill = engine.topics.inputs
    hold_hops(engine, [mark(engine, 0, 0, T0 - 500)])
    assert engine._ordered_until(T0) == T0 - 500
    assert engine._ordered_until(T0 - 900) == T0 - 900  # this worker's own routing lags more
    # A mark for fewer origins (another worker's share) and an older one change nothing.
    hold_hops(engine, [mark(engine, 0, 1, T0 - 100), mark(engine, 0, 2, T0 - 800)])
    assert engine._ordered_until(T0) == T0 - 100
    assert engine._marks[TopicPartition(engine.topics.repartition, 0)] == {
        (order, 1): T0 - 100,
        (payment, 1): T0 - 100,
        (waybill, 1): T0 - 100,
    }


def test_one_worker_alone_waits_for_nobody(engine: Engine) -> None:
    engine.assignment = {0, 1}
    engine._remote_origins = engine._others_inputs()
    assert engine._ordered_until(T0) == T0
    assert engine._routing_marks(T0) == []


def test_marks_go_to_every_partition_of_the_others_when_the_time_moved_on(engine: Engine) -> None:
    (out,) = engine._routing_marks(T0)
    assert (out.topic, out.partition, out.key, out.headers) == (
        engine.topics.repartition,
        1,
        None,
        [(MARK, b"")],
    )
    record = Record(out.topic, 1, 0, 0, None, out.value, tuple(out.headers or ()))
    assert read_mark(record) == Mark(T0, [(topic, 0) for topic in engine.topics.inputs])
    assert engine._routing_marks(T0) == []  # not moved on
    assert len(engine._routing_marks(T0 + 10)) == 1
    assert engine._routing_marks(0) == []  # not moved on (nothing routed yet, for a new one)


def test_a_step_marks_when_it_writes_anyway_else_every_50_ms(engine: Engine) -> None:
    """Both kinds together: routing marks to the others' repartition partition (1), applying
    marks to every ledger partition (0, 1)."""
    topics = engine.topics

    def marks(at: int, *, busy: bool, moved: int = 0) -> list[tuple[str, int | None]]:
        outputs = engine._step_marks(at + moved, at + moved, at, busy=busy)
        return [(o.topic, o.partition) for o in outputs]

    both = [(topics.repartition, 1), (topics.ledger, 0), (topics.ledger, 1)]
    assert marks(T0, busy=True) == both
    assert marks(T0 + 10, busy=False) == []  # too soon, and nothing written anyway
    assert marks(T0 + 20, busy=True) == both  # writes anyway
    assert marks(T0 + 20 + MARK_EVERY_MS - 1, busy=False) == []
    assert marks(T0 + 20 + MARK_EVERY_MS, busy=False) == both
    assert marks(T0 + 20 + 2 * MARK_EVERY_MS, busy=True, moved=-1000) == []  # not moved on


def test_an_idle_worker_marks_less_often_until_a_step_writes_again(engine: Engine) -> None:
    """Idle marks are transactions of their own: after IDLE_AFTER_MS without a step that wrote,
    every IDLE_MARK_EVERY_MS instead of every MARK_EVERY_MS."""

    def marked(at: int, *, busy: bool = False) -> bool:
        return bool(engine._step_marks(at, at, at, busy=busy))

    assert marked(T0, busy=True)
    assert marked(T0 + MARK_EVERY_MS)  # busy lately: every 50 ms
    idle = T0 + IDLE_AFTER_MS  # idle from here
    assert marked(idle)
    assert not marked(idle + MARK_EVERY_MS)
    assert not marked(idle + IDLE_MARK_EVERY_MS - 1)
    assert marked(idle + IDLE_MARK_EVERY_MS)
    assert marked(idle + IDLE_MARK_EVERY_MS + 1, busy=True)  # writes anyway
    assert marked(idle + IDLE_MARK_EVERY_MS + 1 + MARK_EVERY_MS)  # busy lately again


def test_partitions_resume_at_their_first_record_still_held(engine: Engine) -> None:
    orders = TopicPartition(engine.topics.order, 0)
    payments = TopicPartition(engine.topics.payment, 0)
    repartition = TopicPartition(engine.topics.repartition, 0)
    engine._next.update({orders: 10, payments: 4, repartition: 30})
    engine._hold_routed([routed(engine, 0, 5, T0), routed(engine, 0, 6, T0 + 1)])
    hold_hops(
        engine,
        [
            hop(engine, 0, 21, origin=1, at=T0 + 5),
            mark(engine, 0, 22, T0),
            hop(engine, 0, 23, origin=1, at=T0 + 6),
        ],
    )
    assert engine._held_positions() == {
        orders: (5, "10"),  # routed to 10: what comes again below it was routed before
        payments: (4, ""),
        repartition: (21, ""),
    }
    released = engine._arrivals.release(T0 + 5)
    assert [item.timestamp for item in released] == [T0, T0 + 1, T0 + 5]
    assert engine._held_positions()[repartition] == (23, "")
    assert engine._held_positions()[orders] == (10, "")


def test_revoked_partitions_forget_what_they_held(engine: Engine) -> None:
    orders = TopicPartition(engine.topics.order, 0)
    repartition = TopicPartition(engine.topics.repartition, 0)
    engine._next.update({orders: 10, repartition: 30})
    engine._hold_routed([routed(engine, 0, 5, T0)])
    hold_hops(engine, [hop(engine, 0, 21, origin=1, at=T0), mark(engine, 0, 22, T0)])
    engine.forget([orders, repartition])
    assert len(engine._arrivals) == 0
    assert engine._marks == {}
    assert engine._held_positions() == {}


def test_a_replayed_record_is_routed_without_its_rejections_again(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"SANDAN_DATA_DIR": str(tmp_path), "SANDAN_PARTITIONS": str(PARTITIONS)}
    )
    pipeline = SandanPipeline(settings)
    pipeline.partitions = {0}
    topic = settings.topic("order")
    here = next(n for n in (f"R{i}" for i in range(99)) if murmur2_partition(n.encode(), 2) == 0)
    there = next(n for n in (f"R{i}" for i in range(99)) if murmur2_partition(n.encode(), 2) == 1)
    records = [
        Record(topic, 0, 0, T0, b"k", b"{not json"),
        Record(topic, 0, 1, T0, b"k", as_bytes(order_dict(orderNo=here))),
        Record(topic, 0, 2, T0, b"k", as_bytes(order_dict(orderNo=there))),
    ]
    first = pipeline.route(records, T0, {})
    outputs = pipeline.process([], T0, T0)
    assert [r.record.offset for r in first] == [1]
    assert sorted(o.topic.rsplit(".", 1)[-1] for o in outputs) == [
        "receipt",
        "rejected",
        "sandan-repartition",
    ]
    pipeline.commit({})
    again = pipeline.route(records, T0, {TopicPartition(topic, 0): 3})
    outputs = pipeline.process([], T0, T0)
    assert [r.record.offset for r in again] == [1]
    # no second rejection; the hop may go again (its owner ignores an exact redelivery)
    assert [o.topic.rsplit(".", 1)[-1] for o in outputs] == ["sandan-repartition"]
    pipeline.close()


class PauseRecorder:
    """Stands in for the consumer's pause and resume: what the engine asked for."""

    def __init__(self) -> None:
        self.paused: set[tuple[str, int]] = set()

    def pause(self, partitions: list[KafkaPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[KafkaPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}


def test_too_much_held_pauses_only_what_is_ahead_of_the_routing(engine: Engine) -> None:
    recorder = PauseRecorder()
    engine.consumer = recorder  # type: ignore[assignment]
    order, payment, waybill = (TopicPartition(t, 0) for t in engine.topics.inputs)
    engine._last_arrival.update({order: T0, payment: T0 + 500, waybill: T0 + 900})
    engine._caught_up.add(waybill)  # nothing to fetch there
    engine._pause_overfull(T0)
    assert recorder.paused == set()  # little held: nothing paused

    engine._arrivals.add(order, [routed(engine, 0, n, T0) for n in range(MAX_HELD + 1)])
    engine._pause_overfull(T0)
    assert recorder.paused == {payment}  # the one routing waits for goes on
    engine._last_arrival[order] = T0 + 600  # it moved on past the paused one
    engine._pause_overfull(T0 + 500)
    assert recorder.paused == {order}  # the paused one, reached, is fetched again; order waits
    engine._arrivals.release(T0, MAX_HELD // 2 + 2)
    engine._pause_overfull(T0 + 500)
    assert recorder.paused == set()  # half applied: every one fetched again


def request(engine: Engine, offset: int, ticket_partition: int, at: int) -> Record:
    headers = tuple(request_headers(ticket_partition))
    return Record(engine.topics.ledger, 0, offset, at, b"buyer", b"", headers)


def applying_mark(engine: Engine, offset: int, until: int, owned: list[int]) -> Record:
    value = mark_value(until, [(TICKETS, p) for p in owned])
    return Record(engine.topics.ledger, 0, offset, 0, None, value, ((MARK, b""),))


def test_the_ledger_decides_up_to_where_every_worker_has_applied(engine: Engine) -> None:
    ledger = TopicPartition(engine.topics.ledger, 0)
    engine._next[ledger] = 40
    hold = [request(engine, 30, 1, T0 + 5), request(engine, 31, 0, T0 + 2)]
    engine._hold(engine._requests, ledger, hold, request_source)
    assert engine._decide_until() == 0  # no worker has told yet
    engine._hold(engine._requests, ledger, [applying_mark(engine, 32, T0 + 3, [1])], request_source)
    assert engine._decide_until() == 0  # this worker's own mark is missing
    engine._hold(engine._requests, ledger, [applying_mark(engine, 33, T0 + 9, [0])], request_source)
    assert engine._decide_until() == T0 + 3
    released = engine._requests.release(engine._decide_until())
    assert [(r.offset, r.timestamp) for r in released] == [(31, T0 + 2)]
    assert engine._held_positions()[ledger] == (30, "")  # the request of T0 + 5 is held


def test_applying_marks_go_to_every_ledger_partition_unless_alone(engine: Engine) -> None:
    outputs = engine._applying_marks(T0)
    assert [(o.topic, o.partition) for o in outputs] == [
        (engine.topics.ledger, 0),
        (engine.topics.ledger, 1),
    ]
    record = Record(engine.topics.ledger, 0, 0, 0, None, outputs[0].value, ((MARK, b""),))
    assert read_mark(record) == Mark(T0, [(TICKETS, 0)])
    engine.assignment = {0, 1}
    engine._remote_origins = engine._others_inputs()
    assert engine._applying_marks(T0 + 100) == []
    assert engine._decide_until() is None
