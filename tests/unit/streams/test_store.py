"""The local state store (streams.store.Store) without a broker: staged writes, commit and
rollback, persistence across reopen, changelog checkpoints and the timer index.

``restore`` reads the changelog topic and is covered by the integration tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.records import Output
from streams.store import Store

CHANGELOG = "cbec.sandan-tickets-changelog"


def due_of(key: bytes, value: bytes) -> int | None:
    """Test values are ``b"<due ms>"`` (a timer) or anything else (no timer)."""
    return int(value) if value.isdigit() else None


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "tickets"


@pytest.fixture
def store(path: Path) -> Iterator[Store]:
    opened = Store(path, CHANGELOG, due=due_of)
    yield opened
    opened.close()


def fire(store: Store, partition: int, now_ms: int, limit: int = 100) -> list[bytes]:
    return list(store.due(partition, now_ms, limit))


# --- staged writes ---------------------------------------------------------------------------


def test_missing_key_is_none(store: Store) -> None:
    assert store.get(0, b"nothing") is None


def test_staged_write_is_visible_before_commit_and_gone_after_rollback(store: Store) -> None:
    store.put(0, b"k", b"v1")
    assert store.get(0, b"k") == b"v1"
    store.rollback()
    assert store.get(0, b"k") is None


def test_rollback_restores_the_committed_value(store: Store) -> None:
    store.put(0, b"k", b"v1")
    store.commit({})
    store.put(0, b"k", b"v2")
    assert store.get(0, b"k") == b"v2"
    store.rollback()
    assert store.get(0, b"k") == b"v1"


def test_last_staged_write_wins(store: Store) -> None:
    store.put(0, b"k", b"v1")
    store.put(0, b"k", b"v2")
    assert store.get(0, b"k") == b"v2"
    store.commit({})
    assert store.get(0, b"k") == b"v2"


def test_put_returns_its_changelog_record(store: Store) -> None:
    output = store.put(5, b"key", b"value")
    assert output == Output(CHANGELOG, b"key", b"value", 5)
    assert (output.topic, output.key, output.value, output.partition) == (
        CHANGELOG,
        b"key",
        b"value",
        5,
    )
    assert output.headers is None
    # a delete is a tombstone on the changelog
    assert store.put(5, b"key", None) == Output(CHANGELOG, b"key", None, 5)
    assert store.changelog == CHANGELOG


# --- commit and persistence ------------------------------------------------------------------


def test_commit_persists_and_survives_reopen(path: Path) -> None:
    store = Store(path, CHANGELOG, due=due_of)
    store.put(0, b"a", b"1000")
    store.put(3, b"b", b"other")
    store.commit({0: 41, 3: 7})
    store.close()

    reopened = Store(path, CHANGELOG, due=due_of)
    try:
        assert reopened.get(0, b"a") == b"1000"
        assert reopened.get(3, b"b") == b"other"
        assert reopened.checkpoint(0) == 42
        assert reopened.checkpoint(3) == 8
        assert fire(reopened, 0, 1000) == [b"a"]
    finally:
        reopened.close()


def test_rolled_back_writes_do_not_survive_reopen(path: Path) -> None:
    store = Store(path, CHANGELOG, due=due_of)
    store.put(0, b"a", b"1")
    store.commit({0: 0})
    store.put(0, b"a", b"2")
    store.put(0, b"b", b"3")
    store.rollback()
    store.close()

    reopened = Store(path, CHANGELOG, due=due_of)
    try:
        assert reopened.get(0, b"a") == b"1"
        assert reopened.get(0, b"b") is None
        assert reopened.checkpoint(0) == 1
    finally:
        reopened.close()


def test_put_none_deletes(store: Store) -> None:
    store.put(0, b"k", b"v")
    store.commit({})
    store.put(0, b"k", None)
    assert store.get(0, b"k") is None  # the staged delete is visible
    store.rollback()
    assert store.get(0, b"k") == b"v"
    store.put(0, b"k", None)
    store.commit({})
    assert store.get(0, b"k") is None


def test_delete_of_a_missing_key_is_harmless(store: Store) -> None:
    store.put(0, b"never", None)
    store.commit({0: 3})
    assert store.get(0, b"never") is None
    assert store.checkpoint(0) == 4


def test_empty_values_and_keys_are_values(store: Store) -> None:
    store.put(0, b"", b"")
    store.commit({})
    assert store.get(0, b"") == b""


def test_commit_clears_the_staged_writes(store: Store) -> None:
    store.put(0, b"k", b"v1")
    store.commit({})
    store.rollback()  # nothing left to forget
    assert store.get(0, b"k") == b"v1"


# --- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_is_zero_before_any_commit(store: Store) -> None:
    assert store.checkpoint(0) == 0
    assert store.checkpoint(65535) == 0


def test_checkpoint_is_last_offset_plus_one_per_partition(store: Store) -> None:
    store.put(0, b"k", b"v")
    store.put(1, b"k", b"v")
    store.commit({0: 0, 1: 99})
    assert store.checkpoint(0) == 1
    assert store.checkpoint(1) == 100
    assert store.checkpoint(2) == 0
    store.put(1, b"k", b"w")
    store.commit({1: 100})
    assert (store.checkpoint(0), store.checkpoint(1)) == (1, 101)


def test_rollback_keeps_the_checkpoint(store: Store) -> None:
    store.put(0, b"k", b"v")
    store.commit({0: 10})
    store.put(0, b"k", b"w")
    store.rollback()
    assert store.checkpoint(0) == 11


def test_large_offsets(store: Store) -> None:
    store.commit({7: 2**40})
    assert store.checkpoint(7) == 2**40 + 1


# --- partitions ------------------------------------------------------------------------------


def test_partitions_are_isolated(store: Store) -> None:
    store.put(0, b"same", b"zero")
    store.put(1, b"same", b"one")
    assert store.get(0, b"same") == b"zero"
    assert store.get(1, b"same") == b"one"
    store.commit({0: 0, 1: 0})
    assert store.get(0, b"same") == b"zero"
    assert store.get(1, b"same") == b"one"
    assert store.get(2, b"same") is None
    store.put(1, b"same", None)
    store.commit({1: 1})
    assert store.get(0, b"same") == b"zero"
    assert store.get(1, b"same") is None


def test_partition_prefix_is_not_a_key_prefix(store: Store) -> None:
    # partition 1 key b"\x00k" and partition 256 key b"k" must not meet: the u16 is fixed width
    store.put(1, b"\x00k", b"a")
    store.put(256, b"k", b"b")
    store.commit({})
    assert store.get(1, b"\x00k") == b"a"
    assert store.get(256, b"k") == b"b"
    assert store.get(1, b"k") is None


# --- the timer index -------------------------------------------------------------------------


def test_due_yields_keys_in_time_order_across_keys(store: Store) -> None:
    store.put(0, b"late", b"3000")
    store.put(0, b"early", b"1000")
    store.put(0, b"middle", b"2000")
    store.put(0, b"a-later", b"2500")
    store.commit({})
    assert fire(store, 0, 2500) == [b"early", b"middle", b"a-later"]


def test_due_includes_now_and_excludes_the_future(store: Store) -> None:
    store.put(0, b"k", b"1000")
    store.commit({})
    assert fire(store, 0, 999) == []
    assert fire(store, 0, 1000) == [b"k"]


def test_same_due_time_orders_by_key(store: Store) -> None:
    store.put(0, b"b", b"1000")
    store.put(0, b"a", b"1000")
    store.commit({})
    assert fire(store, 0, 1000) == [b"a", b"b"]


def test_due_respects_the_limit(store: Store) -> None:
    for i in range(5):
        store.put(0, b"k%d" % i, b"%d" % (1000 + i))
    store.commit({})
    assert fire(store, 0, 10_000, limit=2) == [b"k0", b"k1"]
    store.commit({})
    assert fire(store, 0, 10_000, limit=2) == [b"k2", b"k3"]
    store.commit({})
    assert fire(store, 0, 10_000, limit=2) == [b"k4"]
    store.commit({})
    assert fire(store, 0, 10_000, limit=2) == []
    assert fire(store, 0, 10_000, limit=0) == []


def test_fired_timers_disappear_only_after_commit(store: Store) -> None:
    store.put(0, b"k", b"1000")
    store.commit({})
    assert fire(store, 0, 5000) == [b"k"]
    store.rollback()
    assert fire(store, 0, 5000) == [b"k"]  # reappears after rollback
    store.commit({})
    assert fire(store, 0, 5000) == []
    assert store.get(0, b"k") == b"1000"  # firing removes the timer, not the value


def test_fired_timers_stay_gone_after_reopen(path: Path) -> None:
    store = Store(path, CHANGELOG, due=due_of)
    store.put(0, b"k", b"1000")
    store.put(0, b"j", b"9000")
    store.commit({})
    assert fire(store, 0, 5000) == [b"k"]
    store.commit({})
    store.close()
    reopened = Store(path, CHANGELOG, due=due_of)
    try:
        assert fire(reopened, 0, 10_000) == [b"j"]
    finally:
        reopened.close()


def test_staged_timers_are_not_due_before_commit(store: Store) -> None:
    store.put(0, b"k", b"1000")
    assert fire(store, 0, 5000) == []
    store.rollback()
    store.commit({})
    assert fire(store, 0, 5000) == []  # a rolled back timer is never written


def test_timer_rewritten_in_the_firing_transaction_survives(store: Store) -> None:
    store.put(0, b"k", b"1000")
    store.commit({})
    for key in fire(store, 0, 1000):
        store.put(0, key, b"1000")  # same due time again: the new entry equals the fired one
    store.commit({})
    assert fire(store, 0, 1000) == [b"k"]


def test_updated_value_adds_a_timer_and_keeps_the_stale_one(store: Store) -> None:
    store.put(0, b"k", b"1000")
    store.commit({})
    store.put(0, b"k", b"2000")
    store.commit({})
    # the stale entry still fires; the caller finds it stale from the value
    assert fire(store, 0, 1500) == [b"k"]
    store.commit({})
    assert fire(store, 0, 1500) == []
    assert fire(store, 0, 2000) == [b"k"]


def test_a_write_naming_the_replaced_timer_moves_it(store: Store) -> None:
    store.put(0, b"k", b"1000")
    store.commit({})
    store.put(0, b"k", b"2000", replaces_due_ms=1000)
    assert fire(store, 0, 1500) == [b"k"]  # the old entry goes with the commit, not before
    store.rollback()
    store.put(0, b"k", b"2000", replaces_due_ms=1000)
    store.commit({})
    assert fire(store, 0, 1500) == []
    assert fire(store, 0, 2000) == [b"k"]


def test_a_delete_naming_the_replaced_timer_removes_it(store: Store) -> None:
    store.put(0, b"k", b"1000")
    store.commit({})
    store.put(0, b"k", None, replaces_due_ms=1000)
    store.commit({})
    assert fire(store, 0, 5000) == []


def test_a_write_keeping_its_due_time_keeps_its_timer(store: Store) -> None:
    store.put(0, b"k", b"1000")
    store.commit({})
    store.put(0, b"k", b"1000", replaces_due_ms=1000)
    store.commit({})
    assert fire(store, 0, 1000) == [b"k"]


def test_value_without_due_time_adds_no_timer(store: Store) -> None:
    store.put(0, b"k", b"no timer")
    store.commit({})
    assert fire(store, 0, 2**62) == []
    assert store.get(0, b"k") == b"no timer"


def test_delete_adds_no_timer(store: Store) -> None:
    store.put(0, b"k", None)
    store.commit({})
    assert fire(store, 0, 2**62) == []


def test_store_without_due_function_has_no_timers(tmp_path: Path) -> None:
    store = Store(tmp_path / "ledger", "cbec.ledger-changelog")
    try:
        store.put(0, b"1000", b"1000")
        store.commit({0: 0})
        assert fire(store, 0, 2**62) == []
        assert store.get(0, b"1000") == b"1000"
    finally:
        store.close()


def test_timers_are_per_partition(store: Store) -> None:
    store.put(0, b"k", b"1000")
    store.put(1, b"k", b"500")
    store.put(2, b"other", b"100")
    store.commit({})
    assert fire(store, 0, 5000) == [b"k"]
    assert fire(store, 1, 5000) == [b"k"]
    assert fire(store, 3, 5000) == []
    store.commit({})
    assert fire(store, 0, 5000) == []
    assert fire(store, 1, 5000) == []
    assert fire(store, 2, 5000) == [b"other"]


def test_timer_order_is_numeric_not_textual(store: Store) -> None:
    store.put(0, b"big", b"10000000000")  # more digits, later
    store.put(0, b"small", b"999")
    store.commit({})
    assert fire(store, 0, 2**40) == [b"small", b"big"]


def test_due_at_epoch_zero(store: Store) -> None:
    store.put(0, b"k", b"0")
    store.commit({})
    assert fire(store, 0, 0) == [b"k"]


def test_negative_due_time_fires_at_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "neg", CHANGELOG, due=lambda key, value: -5)
    try:
        store.put(0, b"k", b"anything")
        store.commit({})
        assert fire(store, 0, 0) == [b"k"]
    finally:
        store.close()


def test_timers_and_checkpoints_do_not_look_like_values(store: Store) -> None:
    store.put(0, b"k", b"1000")
    store.commit({0: 5})
    # the timer and checkpoint rows share the database but not the value key space
    assert store.get(0, b"\x00\x00\x00\x00\x00\x00\x03\xe8k") is None
    assert store.get(0, b"") is None


# --- the scan's floor: past what fired, never past a live timer ------------------------------


def test_a_timer_written_below_what_fired_before_is_still_found(store: Store) -> None:
    store.put(0, b"a", b"1000")
    store.put(0, b"b", b"5000")
    store.commit({})
    assert fire(store, 0, 3000) == [b"a"]
    store.commit({})  # the next scan starts past 3000
    store.put(0, b"late", b"2000")  # written later, due earlier (a restore's stale timer)
    store.commit({})
    assert fire(store, 0, 3000) == [b"late"]
    store.commit({})
    assert fire(store, 0, 6000) == [b"b"]


def test_a_rolled_back_scan_moves_nothing(store: Store) -> None:
    store.put(0, b"a", b"1000")
    store.commit({})
    assert fire(store, 0, 3000) == [b"a"]
    store.rollback()
    assert fire(store, 0, 3000) == [b"a"]


def test_timers_cut_off_by_the_limit_come_next(store: Store) -> None:
    for key in (b"a", b"b", b"c"):
        store.put(0, key, b"1000")
    store.put(0, b"d", b"1500")
    store.commit({})
    assert fire(store, 0, 2000, limit=2) == [b"a", b"b"]
    store.commit({})
    assert fire(store, 0, 2000, limit=2) == [b"c", b"d"]
    store.commit({})
    assert fire(store, 0, 2000) == []


def test_a_reopened_store_scans_from_the_start(path: Path) -> None:
    store = Store(path, CHANGELOG, due=due_of)
    store.put(0, b"a", b"4000")
    store.commit({})
    assert fire(store, 0, 3000) == []
    store.commit({})
    store.put(0, b"b", b"1000")  # below the floor this store keeps: found all the same
    store.commit({})
    store.close()
    reopened = Store(path, CHANGELOG, due=due_of)
    try:
        assert fire(reopened, 0, 4000) == [b"b", b"a"]
    finally:
        reopened.close()


class _CountingIterators:
    """The store's database with its iterators counted (Rdict's methods cannot be patched)."""

    def __init__(self, db: Any) -> None:
        self.db, self.iterators = db, 0

    def iter(self) -> Any:
        self.iterators += 1
        return self.db.iter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


def test_a_scan_before_the_next_timer_does_not_seek(store: Store) -> None:
    store.put(0, b"a", b"1000")
    store.put(0, b"b", b"5000")
    store.commit({})
    counted = _CountingIterators(store._db)
    store._db = counted  # type: ignore[assignment]
    assert fire(store, 0, 2000) == [b"a"]
    store.commit({})  # the scan saw b's timer at 5000 next
    assert (fire(store, 0, 4999), counted.iterators) == ([], 1)
    store.put(0, b"c", b"3000")  # written below it: the floor comes down
    store.commit({})
    assert fire(store, 0, 4999) == [b"c"]
    store.commit({})
    assert (fire(store, 0, 5000), counted.iterators) == ([b"b"], 3)
    store.commit({})  # no timer left: no scan seeks until one is written
    assert (fire(store, 1, 10**12), fire(store, 0, 10**12), counted.iterators) == ([], [], 4)
    store._db = counted.db
