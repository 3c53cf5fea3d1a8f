"""The gateway's tail (gateway.tail): it starts at the end, is ready once the end of every
partition is known, and hands over what was committed while it paused for the broker, also on
a partition that had no record yet. The consumer is an in-memory stand-in; the real one runs in
tests/integration/test_gateway.py and tests/integration/test_gateway_review.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from gateway import tail as tail_module
from gateway.tail import Tail

TOPIC = "t.review-result"


class FakeTopic:
    """A topic's committed records per partition, and whether the broker is up."""

    def __init__(self, partitions: int) -> None:
        self.log: dict[int, list[SimpleNamespace]] = {p: [] for p in range(partitions)}
        self.up = True
        self.consumers = 0
        self.stopped = 0

    def append(self, partition: int, value: bytes) -> None:
        records = self.log[partition]
        records.append(SimpleNamespace(partition=partition, offset=len(records), value=value))

    async def partition_count(self, topic: str) -> int:
        return len(self.log)


class FakeConsumer:
    """Positions resolved lazily after seek_to_end, as aiokafka's."""

    def __init__(self, topic: FakeTopic) -> None:
        self.topic = topic
        self.positions: dict[TopicPartition, int | None] = {}
        topic.consumers += 1

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.topic.stopped += 1

    def assign(self, tps: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(tps, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        for tp in tps:
            self.positions[tp] = None  # the end when next asked

    async def position(self, tp: TopicPartition) -> int:
        position = self.positions[tp]
        if position is None:
            position = self.positions[tp] = len(self.topic.log[tp.partition])
        return position

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        batch = {}
        for tp in self.positions:
            start = await self.position(tp)
            if records := self.topic.log[tp.partition][start:]:
                batch[tp] = records
                self.positions[tp] = start + len(records)
        if not batch:
            await asyncio.sleep(0.005)
        return batch


def test_the_tail_hands_over_what_came_after_its_start_and_during_a_pause(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tail_module, "PAUSE", 0.01)
    topic = FakeTopic(3)
    topic.append(0, b"before the start")
    seen: list[bytes] = []
    tail = Tail(
        TOPIC,
        lambda: FakeConsumer(topic),
        topic.partition_count,
        lambda: topic.up,
        lambda record: seen.append(record.value),
        "test",
    )

    async def until(condition: Any) -> None:
        while not condition():  # noqa: ASYNC110 - polling the stand-in, bounded by the caller
            await asyncio.sleep(0.005)

    async def main() -> None:
        async with asyncio.timeout(5):
            assert not await tail.wait_ready(0.01)  # not started
            tail.start()
            assert await tail.wait_ready(1)
            topic.append(1, b"first")
            await until(lambda: seen == [b"first"])
            topic.up = False
            await until(lambda: topic.stopped == 1)  # the tail closed its consumer
            # Committed during the pause, on a partition that had no record since the start.
            topic.append(2, b"while paused")
            topic.append(1, b"second")
            topic.up = True
            await until(lambda: len(seen) == 3)
            assert sorted(seen) == [b"first", b"second", b"while paused"]
            assert topic.consumers == 2
            await tail.close()

    asyncio.run(main())
