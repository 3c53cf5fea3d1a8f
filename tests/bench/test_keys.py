"""Kafka's default partitioner on keys it has not seen (the lru_cache bypassed)."""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from schemas.keys import murmur2_partition
from tests.bench.workload import ORDER_NO, PARTITIONS

_uncached = murmur2_partition.__wrapped__


@pytest.mark.benchmark(group="keys")
@pytest.mark.parametrize(
    "key", [ORDER_NO.encode(), b"440305198012262283"], ids=["orderNo-16B", "buyerId-18B"]
)
def test_murmur2_partition_uncached(benchmark: BenchmarkFixture, key: bytes) -> None:
    benchmark.extra_info["per"] = "key"
    partition = benchmark(_uncached, key, PARTITIONS)
    assert 0 <= partition < PARTITIONS
    assert partition == murmur2_partition(key, PARTITIONS)
