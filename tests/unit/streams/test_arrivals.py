"""The arrival buffer (streams.arrivals.ArrivalBuffer): what is released up to a watermark, in
which order, and what it still holds (where its queues resume)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streams.arrivals import ArrivalBuffer
from streams.records import Record, TopicPartition

ORDERS = TopicPartition("cbec.order", 0)
PAYMENTS = TopicPartition("cbec.payment", 0)
WAYBILLS = TopicPartition("cbec.logistics", 0)
PARTITIONS = (ORDERS, PAYMENTS, WAYBILLS)
Buffer = ArrivalBuffer[TopicPartition, Record]


def offsets(buffer: Buffer) -> dict[TopicPartition, int]:
    """The first offset each queue still holds."""
    return {tp: record.offset for tp, record in buffer.heads()}


def records(tp: TopicPartition, timestamps: list[int], first: int = 0) -> list[Record]:
    return [
        Record(tp.topic, tp.partition, first + i, ts, None, b"") for i, ts in enumerate(timestamps)
    ]


def where(released: list[Record]) -> list[tuple[str, int, int]]:
    return [(r.topic, r.offset, r.timestamp) for r in released]


def test_a_lagging_topic_holds_back_what_arrived_after_its_last_record() -> None:
    buffer = Buffer()
    buffer.add(ORDERS, records(ORDERS, [100, 200, 300]))
    buffer.add(PAYMENTS, records(PAYMENTS, [150]))

    released = buffer.release(150)

    assert where(released) == [("cbec.order", 0, 100), ("cbec.payment", 0, 150)]
    assert offsets(buffer) == {ORDERS: 1}
    assert len(buffer) == 2
    assert buffer.buffered(ORDERS) == 2
    assert buffer.buffered(PAYMENTS) == 0


def test_what_was_held_back_comes_next_merged_with_the_late_topic() -> None:
    buffer = Buffer()
    buffer.add(ORDERS, records(ORDERS, [100, 200, 300]))
    buffer.release(100)
    buffer.add(PAYMENTS, records(PAYMENTS, [250, 260]))

    released = buffer.release(None)

    assert where(released) == [
        ("cbec.order", 1, 200),
        ("cbec.payment", 0, 250),
        ("cbec.payment", 1, 260),
        ("cbec.order", 2, 300),
    ]
    assert offsets(buffer) == {}
    assert len(buffer) == 0


def test_a_partition_keeps_its_offset_order_even_when_timestamps_go_back() -> None:
    buffer = Buffer()
    buffer.add(ORDERS, records(ORDERS, [100, 500, 120]))

    released = buffer.release(200)

    assert where(released) == [("cbec.order", 0, 100)]  # 120 waits behind 500
    assert offsets(buffer) == {ORDERS: 1}


def test_nothing_released_holds_everything() -> None:
    buffer = Buffer()
    buffer.add(ORDERS, records(ORDERS, [100]))

    assert buffer.release(99) == []
    assert buffer.release(0) == []
    assert offsets(buffer) == {ORDERS: 0}


def test_dropped_partitions_are_forgotten() -> None:
    buffer = Buffer()
    buffer.add(ORDERS, records(ORDERS, [100]))
    buffer.add(PAYMENTS, records(PAYMENTS, [100]))

    buffer.drop(lambda tp: tp == ORDERS)

    assert len(buffer) == 1
    released = buffer.release(None)
    assert where(released) == [("cbec.payment", 0, 100)]
    assert len(buffer) == 0


@given(
    st.lists(
        st.tuples(st.sampled_from(PARTITIONS), st.lists(st.integers(0, 20), max_size=6)),
        max_size=8,
    ),
    st.lists(st.one_of(st.none(), st.integers(0, 60)), min_size=1, max_size=4),
)
def test_every_record_is_released_once_in_partition_order_and_sorted_when_in_order(
    fetches: list[tuple[TopicPartition, list[int]]], watermarks: list[int | None]
) -> None:
    """Each fetch's records come after the partition's earlier ones in time, as they arrive."""
    buffer = Buffer()
    fetched: dict[TopicPartition, list[Record]] = {tp: [] for tp in PARTITIONS}
    released: list[Record] = []
    for (tp, steps), until in zip(fetches, watermarks * len(fetches), strict=False):
        last = fetched[tp][-1].timestamp if fetched[tp] else 0
        timestamps = [last + sum(steps[: i + 1]) for i in range(len(steps))]  # in order
        part = records(tp, timestamps, first=len(fetched[tp]))
        fetched[tp].extend(part)
        buffer.add(tp, part)
        out = buffer.release(until)
        assert all(until is None or r.timestamp <= until for r in out)
        assert [r.timestamp for r in out] == sorted(r.timestamp for r in out)
        released.extend(out)
        held = offsets(buffer)
        for queue in PARTITIONS:  # a queue resumes at its first record not released
            count = sum(1 for r in released if (r.topic, r.partition) == queue)
            assert held.get(queue, len(fetched[queue])) == count
        assert len(buffer) == sum(map(len, fetched.values())) - len(released)
    released.extend(buffer.release(None))

    for tp in PARTITIONS:
        mine = [r for r in released if (r.topic, r.partition) == tp]
        assert mine == fetched[tp]
    assert len(buffer) == 0


def test_a_limit_releases_the_earliest_and_keeps_the_rest_in_order() -> None:
    buffer = Buffer()
    buffer.add(ORDERS, records(ORDERS, [100, 200, 300]))
    buffer.add(PAYMENTS, records(PAYMENTS, [150, 250]))

    released = buffer.release(None, limit=3)

    assert where(released) == [
        ("cbec.order", 0, 100),
        ("cbec.payment", 0, 150),
        ("cbec.order", 1, 200),
    ]
    assert offsets(buffer) == {ORDERS: 2, PAYMENTS: 1}
    released = buffer.release(None, limit=3)
    assert where(released) == [("cbec.payment", 1, 250), ("cbec.order", 2, 300)]
    assert offsets(buffer) == {}
    assert buffer.release(None, limit=3) == []


@given(
    st.lists(st.lists(st.integers(0, 50), max_size=8), min_size=1, max_size=3),
    st.integers(1, 10),
)
def test_limited_releases_give_what_one_release_gives(stamps: list[list[int]], limit: int) -> None:
    whole, limited = Buffer(), Buffer()
    for tp, timestamps in zip(PARTITIONS, stamps, strict=False):
        batch = records(tp, sorted(timestamps))
        whole.add(tp, batch)
        limited.add(tp, batch)
    expected = whole.release(30)
    got: list[Record] = []
    while True:
        part = limited.release(30, limit)
        assert len(part) <= limit
        if not part:
            break
        got += part
    assert [r.timestamp for r in got] == [r.timestamp for r in expected]
    assert sorted(where(got)) == sorted(where(expected))


def test_earliest_names_what_a_limited_release_left() -> None:
    buffer = Buffer()
    buffer.add(ORDERS, records(ORDERS, [100, 200, 300]))
    buffer.add(PAYMENTS, records(PAYMENTS, [150]))
    buffer.release(None, limit=2)
    assert buffer.earliest(None) == 200
    assert buffer.earliest(199) is None
    buffer.release(None)
    assert buffer.earliest(None) is None
