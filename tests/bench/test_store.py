"""The local state store (rocksdict) with the tickets store's values and timer function.

Each benchmark has its own database under pytest's temporary directory. Values are the clean
ticket's stored Group (one PENDING ticket, three documents), keyed by 1000 distinct orderNos.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from streams.pipeline import MAX_TIMERS_PER_BATCH
from streams.store import Store
from streams.tickets import Group, next_due
from tests.bench.workload import ENCODER, RULES, T0, group_due

BATCH = 1000
PARTITION = 3
CHANGELOG = "cbec.sandan-tickets-changelog"
KEYS = [f"SO2026112400{n:04d}".encode() for n in range(BATCH)]


@pytest.fixture
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    opened = Store(tmp_path_factory.mktemp("store") / "tickets", CHANGELOG, due=group_due)
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def value(pending_group: Group) -> bytes:
    return ENCODER.encode(pending_group)


def _fill(store: Store, value: bytes) -> None:
    for key in KEYS:
        store.put(PARTITION, key, value)
    store.commit({PARTITION: 0})


@pytest.mark.benchmark(group="store")
def test_store_put_batch_and_commit(
    benchmark: BenchmarkFixture, store: Store, value: bytes, pending_group: Group
) -> None:
    """1000 staged puts with their timers and the commit's WriteBatch, as the pipeline flushes a
    batch's groups (the Group's encoding is benchmarked apart, see test_group_encode)."""
    offsets = {PARTITION: 41_999}
    benchmark.extra_info["per"] = f"batch of {BATCH} puts + commit"
    benchmark.extra_info["value_bytes"] = len(value)

    def batch() -> None:
        for key in KEYS:
            store.put(PARTITION, key, value, next_due(pending_group))
        store.commit(offsets)

    benchmark(batch)
    assert store.get(PARTITION, KEYS[-1]) == value
    assert store.checkpoint(PARTITION) == 42_000
    due = group_due(KEYS[-1], value)
    assert due == T0 + RULES.window_ms
    assert len(list(store.due(PARTITION, due, 10 * BATCH))) == BATCH


@pytest.mark.benchmark(group="store")
def test_store_get_existing(benchmark: BenchmarkFixture, store: Store, value: bytes) -> None:
    _fill(store, value)
    benchmark.extra_info["per"] = f"{BATCH} gets"

    def gets() -> list[bytes | None]:
        return [store.get(PARTITION, key) for key in KEYS]

    found = benchmark(gets)
    assert found == [value] * BATCH


@pytest.mark.benchmark(group="store")
def test_store_due_scan(benchmark: BenchmarkFixture, store: Store, value: bytes) -> None:
    """Read 1000 due timers (oldest first); rolled back each round so the same ones stay due."""
    _fill(store, value)
    now_ms = T0 + RULES.window_ms
    benchmark.extra_info["per"] = f"scan of {BATCH} due timers"

    def scan() -> list[bytes]:
        keys = list(store.due(PARTITION, now_ms, MAX_TIMERS_PER_BATCH))
        store.rollback()
        return keys

    fired = benchmark(scan)
    assert fired == KEYS  # one due time, so in key order
