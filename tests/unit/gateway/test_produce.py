"""The gateway's producer wrapper (gateway.produce) around a stand-in for aiokafka's producer:
the configuration, the in-flight bound, the ack timeout, failures and the supervisor. The real
producer is exercised on the broker, including an outage, in tests/integration/test_gateway.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaError, OutOfOrderSequenceNumber

from gateway import produce
from gateway.errors import UnavailableError
from gateway.produce import Acked, OutRecord, Producer
from schemas.keys import murmur2_partition
from streams.settings import Settings

SETTINGS = Settings(gateway_ack_timeout=0.2)


class FakeKafka:
    """Records what it is asked; acks when the test says so."""

    made: ClassVar[list[FakeKafka]] = []
    fail_start: ClassVar[bool] = False

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.futures: list[asyncio.Future[Any]] = []
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.batches: list[tuple[str, int, int]] = []
        self.ends: dict[int, int] = {}
        self.stopped = False
        self.reachable = True
        self.client = SimpleNamespace(fetch_all_metadata=self._metadata)
        FakeKafka.made.append(self)

    async def _metadata(self) -> object:
        if not self.reachable:
            raise KafkaError("Unable to get cluster metadata over all known brokers")
        return object()

    async def start(self) -> None:
        if FakeKafka.fail_start:
            raise KafkaConnectionError("Unable to bootstrap from [127.0.0.1:1]")

    async def stop(self) -> None:
        self.stopped = True

    async def flush(self) -> None:
        pass

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def create_batch(self) -> FakeBatch:
        return FakeBatch()

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        # As aiokafka's idempotent producer: one batch of a partition in flight, one queued;
        # a third waits for room.
        while len(unacked := [f for f in self._of(partition) if not f.done()]) >= 2:
            await asyncio.wait(unacked, return_when=asyncio.FIRST_COMPLETED)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        self.batches.append((topic, partition, len(batch.records)))
        self.sent += [(topic, key, value) for key, value in batch.records]
        return future

    def _of(self, partition: int) -> list[asyncio.Future[Any]]:
        return [
            future
            for future, (_, of, _) in zip(self.futures, self.batches, strict=True)
            if of == partition
        ]

    def ack(self, count: int | None = None) -> None:
        """Ack the first ``count`` batches (all if None), offsets counted per partition."""
        for future, (topic, partition, size) in list(zip(self.futures, self.batches, strict=True))[
            :count
        ]:
            if not future.done():
                base = self.ends.get(partition, 0)
                self.ends[partition] = base + size
                future.set_result(SimpleNamespace(topic=topic, partition=partition, offset=base))


class FakeBatch:
    """A record batch that takes up to 100 records."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    def append(
        self, *, key: bytes, value: bytes, timestamp: None, headers: list[tuple[str, bytes]]
    ) -> object | None:
        if len(self.records) >= 100:
            return None
        self.records.append((key, value))
        return object()


@pytest.fixture(autouse=True)
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeKafka.made = []
    FakeKafka.fail_start = False
    monkeypatch.setattr(produce, "PROBE_INTERVAL", 0.01)


def records(count: int, size: int = 10) -> list[OutRecord]:
    return [OutRecord("t", b"k%d" % n, b"v" * size, []) for n in range(count)] if count else []


def run(test: Callable[[Producer], Awaitable[None]], **kwargs: Any) -> None:
    async def main() -> None:
        producer = Producer(SETTINGS, factory=FakeKafka, **kwargs)
        producer.start()
        try:
            for _ in range(1000):  # up to 10 s: a busy machine may take more than 1 s
                if producer.connected or FakeKafka.fail_start:
                    break
                await asyncio.sleep(0.01)
            await test(producer)
        finally:
            await producer.close()

    asyncio.run(main())


async def callbacks_run() -> None:
    """Let the callbacks and tasks a send or an ack starts run (flush, drain, settle)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def acked_later(kafka: FakeKafka, delay: float = 0.02) -> None:
    await asyncio.sleep(delay)
    kafka.ack()


async def keep_acking(kafka: FakeKafka, every: float = 0.01) -> None:
    while True:
        await asyncio.sleep(every)
        kafka.ack()


def test_the_producer_is_idempotent_with_acks_all() -> None:
    async def test(producer: Producer) -> None:
        config = FakeKafka.made[0].config
        assert config["enable_idempotence"] is True
        assert config["acks"] == "all"
        assert 0 < config["linger_ms"] <= 10
        assert config["max_request_size"] > SETTINGS.max_message_bytes

    run(test)


def test_send_returns_every_ack_in_order() -> None:
    async def test(producer: Producer) -> None:
        kafka = FakeKafka.made[0]
        waiter = asyncio.create_task(acked_later(kafka))
        acked = await producer.send(records(3))
        await waiter
        # One batch per partition (Kafka's default partitioner: murmur2 of the key), offsets
        # from the batch's base offset, in the request's order.
        partitions = [murmur2_partition(b"k%d" % n, 4) for n in range(3)]
        expected: list[Acked] = []
        ends: dict[int, int] = {}
        for partition in partitions:
            expected.append(Acked("t", partition, ends.get(partition, 0)))
            ends[partition] = ends.get(partition, 0) + 1
        assert acked == expected
        assert sorted(key for _, key, _ in kafka.sent) == [b"k0", b"k1", b"k2"]
        assert (producer.in_flight_records, producer.in_flight_bytes) == (0, 0)

    run(test)


def test_no_ack_in_time_is_503_and_the_records_stay_counted_until_acked() -> None:
    async def test(producer: Producer) -> None:
        kafka = FakeKafka.made[0]
        with pytest.raises(UnavailableError) as info:
            await producer.send(records(2))
        assert info.value.status == 503
        assert info.value.retry_after == produce.RETRY_AFTER_UNREACHABLE
        assert info.value.detail.startswith(
            "the broker did not acknowledge every record within 0.2 s; sending the same "
            "documents again is safe"
        )
        assert producer.in_flight_records == 2
        kafka.ack()
        await callbacks_run()
        assert (producer.in_flight_records, producer.in_flight_bytes) == (0, 0)

    run(test)


def test_too_much_in_flight_is_503_at_once() -> None:
    async def test(producer: Producer) -> None:
        kafka = FakeKafka.made[0]
        with pytest.raises(UnavailableError):
            await producer.send(records(3))
        with pytest.raises(UnavailableError) as info:
            await producer.send(records(2))
        assert info.value.retry_after == produce.RETRY_AFTER_BUSY
        assert "too many records in flight" in info.value.detail
        assert len(kafka.sent) == 3  # the second request sent nothing
        kafka.ack()
        await callbacks_run()
        waiter = asyncio.create_task(acked_later(kafka))
        assert len(await producer.send(records(2))) == 2
        await waiter

    run(test, max_records=4)


def test_the_byte_bound_counts_keys_and_values() -> None:
    async def test(producer: Producer) -> None:
        with pytest.raises(UnavailableError) as info:
            await producer.send(records(1, size=1000))
        assert "too many records in flight" in info.value.detail

    run(test, max_bytes=1000)


def test_a_refused_record_is_503_and_replaces_the_producer() -> None:
    async def test(producer: Producer) -> None:
        kafka = FakeKafka.made[0]

        async def refuse() -> None:
            await asyncio.sleep(0.02)
            kafka.futures[0].set_exception(OutOfOrderSequenceNumber())
            kafka.ack()

        task = asyncio.create_task(refuse())
        with pytest.raises(UnavailableError) as info:
            await producer.send(records(2))
        await task
        assert "OutOfOrderSequenceNumber" in info.value.detail
        for _ in range(100):
            if len(FakeKafka.made) == 2 and producer.connected:
                break
            await asyncio.sleep(0.01)
        assert kafka.stopped
        assert len(FakeKafka.made) == 2

    run(test)


def test_no_broker_at_start_is_503_and_unhealthy() -> None:
    FakeKafka.fail_start = True

    async def test(producer: Producer) -> None:
        await asyncio.sleep(0.05)
        assert not producer.connected
        assert "cannot connect to the broker: KafkaConnectionError" in producer.reason
        with pytest.raises(UnavailableError) as info:
            await producer.send(records(1))
        assert info.value.detail.startswith("the broker is unreachable (cannot connect")
        with pytest.raises(UnavailableError):
            await producer.partition_count("t")
        assert all(kafka.stopped for kafka in FakeKafka.made)  # every failed start cleaned up
        FakeKafka.fail_start = False
        for _ in range(100):
            if producer.connected:
                break
            await asyncio.sleep(0.01)
        assert producer.connected
        assert await producer.partition_count("t") == 4

    run(test)


def test_the_probe_follows_the_broker() -> None:
    async def test(producer: Producer) -> None:
        kafka = FakeKafka.made[0]
        kafka.reachable = False
        await asyncio.sleep(0.05)
        assert not producer.connected
        assert producer.reason.startswith("broker unreachable: KafkaError")
        kafka.reachable = True
        await asyncio.sleep(0.05)
        assert producer.connected

    run(test)


def test_records_of_requests_in_flight_together_share_one_batch_per_partition() -> None:
    async def test(producer: Producer) -> None:
        kafka = FakeKafka.made[0]
        same_key = [OutRecord("t", b"k", b"v%d" % n, []) for n in range(250)]
        acker = asyncio.create_task(keep_acking(kafka))
        answers = await asyncio.gather(
            *(producer.send(same_key[n : n + 50]) for n in range(0, 250, 50))
        )
        acker.cancel()
        assert [size for _, _, size in kafka.batches] == [100, 100, 50]  # five requests, 3 batches
        offsets = [acked.offset for answer in answers for acked in answer]
        assert offsets == list(range(250))

    run(test)


def test_records_that_arrive_while_a_batch_is_in_flight_go_out_together_after_its_ack() -> None:
    async def test(producer: Producer) -> None:
        kafka = FakeKafka.made[0]
        one_key = [OutRecord("t", b"k", b"v%d" % n, []) for n in range(6)]
        first = asyncio.create_task(producer.send(one_key[:1]))
        await callbacks_run()
        assert [size for _, _, size in kafka.batches] == [1]
        later = []
        for record in one_key[1:]:  # five requests, each in a turn of its own
            later.append(asyncio.create_task(producer.send([record])))
            await callbacks_run()
        assert [size for _, _, size in kafka.batches] == [1]  # they wait for the ack
        kafka.ack()
        await callbacks_run()
        assert [size for _, _, size in kafka.batches] == [1, 5]
        kafka.ack()
        answers = [await first, *[await request for request in later]]
        assert [acked.offset for (acked,) in answers] == list(range(6))
        assert [value for _, _, value in kafka.sent] == [record.value for record in one_key]

    run(test)
