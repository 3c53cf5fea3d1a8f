"""The whole pipeline per ticket (streams.pipeline.SandanPipeline on a store in a temporary
directory, all partitions owned): the clean ticket's order, payment and waybill in three
committed steps 1 s apart, each ticket with its own orderNo and guids. Intake, the ticket stage,
the buyer ledger in the same step, receipts, the changelog records and the RocksDB commit are
all in the timed call; Kafka is not (the engine's share: make throughput)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from schemas.documents import DOC_TYPES
from streams.records import Output
from tests.bench.workload import ORDER_NO, TicketRecords
from tests.unit.streams.harness import T0, PipelineHarness, on

ROUNDS = 2_000


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[PipelineHarness]:
    h = PipelineHarness(tmp_path, env={"SANDAN_ANNUAL_LIMIT": "1000000000"})  # one buyer
    yield h
    h.close()


def _renewed(clean: TicketRecords, serial: int) -> list[tuple[str, bytes, bytes]]:
    """The clean ticket's records with an orderNo and guids of ``serial``: (kind, key, value)."""
    order_no = f"SO{serial:014d}"
    renewed: list[tuple[str, bytes, bytes]] = []
    for index, (record, document) in enumerate(zip(*clean, strict=True)):
        guid = f"00000000-0000-4000-8000-{serial * 3 + index:012d}"
        value = (record.value or b"").replace(document.guid.encode(), guid.encode())
        value = value.replace(ORDER_NO.encode(), order_no.encode())
        renewed.append((record.doc_type, order_no.encode(), value))
    return renewed


@pytest.mark.benchmark(group="pipeline")
def test_pipeline_clean_ticket(
    benchmark: BenchmarkFixture, harness: PipelineHarness, clean: TicketRecords
) -> None:
    serials = itertools.count(1)

    def setup() -> tuple[tuple[list[tuple[str, bytes, bytes]], int], dict[str, Any]]:
        serial = next(serials)
        return (_renewed(clean, serial), T0 + serial * 3000), {}

    def ticket(records: list[tuple[str, bytes, bytes]], at_ms: int) -> list[Output]:
        outputs: list[Output] = []
        for n, (kind, key, value) in enumerate(records):
            outputs += harness.feed(kind, value, at_ms + n * 1000, key)
        return outputs

    benchmark.extra_info["per"] = "ticket (3 documents, 3 committed steps)"
    # pedantic() is untyped in pytest-benchmark 5.x
    outputs = benchmark.pedantic(  # type: ignore[no-untyped-call]
        ticket, setup=setup, rounds=ROUNDS, warmup_rounds=20
    )
    (release,) = on(outputs, "release")
    decision = json.loads(release.value or b"")
    assert (decision["decision"], decision["dutiableValue"]) == ("RELEASE", "497.50")
    assert decision["ticketId"].startswith("3301980ABC:SO")
    assert len(on(outputs, "receipt")) == len(DOC_TYPES) + len(DOC_TYPES)  # stored, concluded
