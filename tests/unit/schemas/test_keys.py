"""Ticket identity and its partition (schemas.keys): murmur2_partition must pick the partition
Kafka's Java default partitioner picks, i.e. ``(murmur2(key) & 0x7fffffff) % n``; and the
contract's timestamps (streams.timefmt.iso_ms)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.partitioner import DefaultPartitioner, murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.keys import murmur2_partition, ticket_id
from streams.timefmt import iso_ms


def kafka_partition(key: bytes, partitions: int) -> int:
    chosen: int = DefaultPartitioner()(key, list(range(partitions)), list(range(partitions)))
    return chosen


@settings(max_examples=2000, deadline=None)
@given(key=st.binary(min_size=0, max_size=64), partitions=st.integers(1, 50))
def test_murmur2_partition_equals_kafkas_default_partitioner(key: bytes, partitions: int) -> None:
    expected = (murmur2(key) & 0x7FFFFFFF) % partitions
    assert murmur2_partition(key, partitions) == expected
    assert expected == kafka_partition(key, partitions)


@pytest.mark.parametrize("length", range(65))
def test_every_tail_length(length: int) -> None:
    key = bytes((i * 37 + 251) % 256 for i in range(length))  # high bytes: sign handling
    for partitions in (1, 7, 12, 50, 2**31 - 1):
        assert murmur2_partition(key, partitions) == (murmur2(key) & 0x7FFFFFFF) % partitions


# Java's org.apache.kafka.common.utils.Utils.murmur2 (signed int), from Kafka's UtilsTest.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "signed"), JAVA_MURMUR2.items())
def test_java_murmur2_values(key: bytes, signed: int) -> None:
    assert murmur2(key) == signed & 0xFFFFFFFF  # aiokafka agrees with Java
    positive = signed & 0x7FFFFFFF
    for partitions in (1, 3, 12, 31, 2**31 - 1):
        assert murmur2_partition(key, partitions) == positive % partitions


@pytest.mark.parametrize(
    ("key", "partitions", "partition"),
    [
        # computed with aiokafka.partitioner.murmur2
        (b"", 12, 9),
        (b"21", 12, 0),
        (b"foobar", 12, 6),
        (b"abc", 12, 3),
        (b"abc", 7, 4),
        (b"SO20261124000001", 12, 9),
        (b"SO20261124000001", 7, 4),
        (b"a-little-bit-longer-string", 12, 11),
    ],
)
def test_known_partitions(key: bytes, partitions: int, partition: int) -> None:
    assert murmur2_partition(key, partitions) == partition


def test_partition_of_an_order_number_is_its_utf8_key() -> None:
    order_no = "订单-0001"
    key = order_no.encode()
    assert murmur2_partition(key, 12) == kafka_partition(key, 12)


def test_ticket_id() -> None:
    assert ticket_id("3301980ABC", "SO20261124000001") == "3301980ABC:SO20261124000001"


@pytest.mark.parametrize("ebp_code", [None, ""])
def test_waybill_only_ticket_id_has_an_empty_platform(ebp_code: str | None) -> None:
    assert ticket_id(ebp_code, "SO20261124000001") == ":SO20261124000001"


# --- streams.timefmt.iso_ms (kept here: the brief allows no file of its own) ------------------


@pytest.mark.parametrize(
    ("epoch_ms", "text"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1, "1970-01-01T00:00:00.001Z"),
        (10, "1970-01-01T00:00:00.010Z"),
        (999, "1970-01-01T00:00:00.999Z"),
        (1000, "1970-01-01T00:00:01.000Z"),
        (1_795_490_400_000, "2026-11-24T03:20:00.000Z"),
        (1_795_490_100_123, "2026-11-24T03:15:00.123Z"),
        (1_795_490_159_999, "2026-11-24T03:15:59.999Z"),
        (1_709_164_800_050, "2024-02-29T00:00:00.050Z"),
        (1_735_689_599_999, "2024-12-31T23:59:59.999Z"),
        (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
    ],
)
def test_iso_ms(epoch_ms: int, text: str) -> None:
    assert iso_ms(epoch_ms) == text


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 253_402_300_799_999))
def test_iso_ms_agrees_with_datetime(epoch_ms: int) -> None:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=epoch_ms)
    expected = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert iso_ms(epoch_ms) == expected
