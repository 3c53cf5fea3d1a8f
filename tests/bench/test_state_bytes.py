"""The state written per ticket: what the pipeline puts in its changelogs (and so in RocksDB),
for the load generator's default mix, as the engine would feed it (steps of 1,000 records, and of
100, where a ticket's documents come in more steps; every record applied in arrival order),
reported in ``extra_info`` (issue 11's "state bytes written per ticket, before and after").

On 2026-12-03, before document-level state (whole groups rewritten, documents inline), steps of
1,000: 3.0 tickets-changelog records and 4,287 bytes (keys and values) per ticket; 0.7 ledger
records and 41 bytes; steps of 100: 3.9 records and 5,448 bytes. After (each document version
once, under its own key): 9.0 records and 3,415 bytes, and 9.9 records and 3,605 bytes (2,458 of
documents, 989 of groups, 158 of tombstones): docs/loadtest/document-state-20261203.md.
The alerts (issue 12) add 2.2 records and 428 bytes per ticket (steps of 1,000; 2.7 and 552 in
steps of 100): a decided ticket's three keys, each written once per step.

Run: ``.venv/bin/pytest tests/bench/test_state_bytes.py --benchmark-only -s`` (it prints the
figures). The figures are counts, not timings: the same on any machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from loadtest.generator import generate
from loadtest.truth import DEFAULT_MIX
from streams.records import Output, Record
from streams.tickets import is_document_key
from tests.unit.streams.harness import T0, PipelineHarness

TICKETS = 2_000


def _run(data_dir: Path, step_records: int) -> dict[str, float]:
    plan = generate(7, TICKETS, rate=1000, window=10, max_delay=1, settle=2, faults=DEFAULT_MIX)
    h = PipelineHarness(data_dir)
    outputs: list[Output] = []
    try:
        records = plan.records
        for start in range(0, len(records), step_records):
            batch = []
            for n, planned in enumerate(records[start : start + step_records], start):
                at = T0 + int(planned.at * 1000)
                topic = h.settings.topic(planned.doc_type)
                batch.append(Record(topic, 0, n, at, planned.key, planned.value))
            outputs += h.step(batch, batch[-1].timestamp)
        outputs += h.step([], T0 + int(records[-1].at * 1000) + 200_000)  # every window closed
    finally:
        h.close()
    tickets = len(plan.decisions)
    figures: dict[str, float] = {"tickets": tickets, "records": len(plan.records)}
    for name in ("tickets", "ledger", "alerts"):
        changelog = [o for o in outputs if o.topic == f"cbec.sandan-{name}-changelog"]
        figures[f"{name}_changelog_records_per_ticket"] = len(changelog) / tickets
        figures[f"{name}_changelog_bytes_per_ticket"] = _size(changelog) / tickets
        if name == "tickets":  # split: document versions, groups, tombstones
            parts = {
                "documents": [o for o in changelog if is_document_key(o.key or b"") and o.value],
                "groups": [o for o in changelog if not is_document_key(o.key or b"") and o.value],
                "tombstones": [o for o in changelog if o.value is None],
            }
            for part, found in parts.items():
                figures[f"{part}_records_per_ticket"] = len(found) / tickets
                figures[f"{part}_bytes_per_ticket"] = _size(found) / tickets
            written = [o.key for o in parts["documents"]]
            figures["documents_written_again"] = len(written) - len(set(written))
    return figures


def _size(outputs: list[Output]) -> int:
    return sum(len(o.key or b"") + len(o.value or b"") for o in outputs)


@pytest.mark.benchmark(group="state written")
@pytest.mark.parametrize("step_records", [1_000, 100])
def test_state_bytes_written_per_ticket(
    benchmark: BenchmarkFixture, tmp_path_factory: pytest.TempPathFactory, step_records: int
) -> None:
    runs = iter(range(1_000))
    # pedantic() is untyped in pytest-benchmark 5.x
    figures = benchmark.pedantic(  # type: ignore[no-untyped-call]
        lambda: _run(tmp_path_factory.mktemp(f"state-{next(runs)}"), step_records),
        rounds=1,
        iterations=1,
    )
    benchmark.extra_info.update(figures)
    print({k: round(v, 1) for k, v in figures.items()})  # the figures are the point
    assert figures["tickets"] > 0.9 * TICKETS  # (a few slots become garbage or drafts)
    assert figures["tickets_changelog_records_per_ticket"] >= 1
    assert figures["documents_records_per_ticket"] >= 2.5  # about 3 each
    assert figures["documents_written_again"] == 0  # each version once
    assert figures["ledger_changelog_records_per_ticket"] > 0
