"""The throughput measurement's backlog with malformed records (loadtest.throughput)."""

from __future__ import annotations

from collections import Counter

from loadtest.fuzz import check
from loadtest.generator import generate
from loadtest.throughput import BACKLOG_MIX, with_garbage


def test_with_garbage_adds_a_share_of_rejected_records_and_expects_them() -> None:
    plan = generate(4, 200, rate=None, window=3600.0, faults=BACKLOG_MIX)
    records, truth, garbage_bytes = with_garbage(plan, 0.1, seed=4, max_size=8192)
    bad = [r for r in records if r[1] is not None and r[1].startswith(b"garbage-")]
    assert len(records) == len(plan.records) + len(bad)
    assert len(bad) == round(len(plan.records) / 9)  # 10 % of all records
    assert garbage_bytes == sum(len(value) for _, _, value in bad)
    assert [r for r in records if r not in bad] == [
        (r.doc_type, r.key, r.value) for r in plan.records
    ]  # the plan's records in their order
    assert records[-1] != bad[-1] or records[0] != bad[0]  # spread, not appended
    assert len({key for _, key, _ in bad}) == len(bad)
    assert all(check(kind, value) == "rejected" for kind, _, value in bad)
    added = Counter(truth.rejections) - Counter(plan.rejections)
    assert sum(added.values()) == len(bad)
    assert all(r.code == "SCHEMA" for r in added)
    assert Counter(r.doc_type for r in added.elements()) == Counter(kind for kind, _, _ in bad)
    assert truth.decisions == plan.decisions
