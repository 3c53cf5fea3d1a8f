"""The throughput measurement's backlog with malformed records, and its reports' alert counts
(loadtest.throughput)."""

from __future__ import annotations

import argparse
from collections import Counter

from loadtest.fuzz import check
from loadtest.generator import generate
from loadtest.throughput import (
    BACKLOG_MIX,
    Input,
    Measured,
    comparison_report,
    garbage_report,
    with_garbage,
)


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


def measured(name: str, garbage: int = 0) -> Measured:
    return Measured(
        name=name,
        tickets=100,
        records=300 + garbage,
        garbage=garbage,
        decided=100,
        outputs=110,
        span_s=2.0,
        tickets_per_minute=3000,
        records_per_minute=9000 + 30 * garbage,
        worker_cpu_s=1.5,
        tickets_per_cpu_s=67,
        load=1.0,
        mismatches=[],
        alerts_expected=4,
        alerts_seen=4,
    )


def test_the_reports_count_the_alerts_seen_and_expected() -> None:
    args = argparse.Namespace(
        tickets=100, workers=1, partitions=12, seed=1, rounds=1, garbage=0.1, garbage_max_size=64
    )
    runs = [measured("clean"), measured("10% garbage", 33)]
    records: list[Input] = [("order", None, b"x" * 10)]
    for text in (
        garbage_report(args, runs, records, 330),
        comparison_report(args, [measured("a"), measured("b")], "a", "b", 0.95),
    ):
        assert "| alerts seen / expected | mismatches |" in text
        rows = [
            line
            for line in text.splitlines()
            if line.startswith(("| clean", "| 10%", "| a", "| b"))
        ]
        assert len(rows) == 2
        assert all(row.endswith("| 4 / 4 | 0 |") for row in rows)
