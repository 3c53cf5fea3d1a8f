"""evaluate(): the per-ticket rules on a complete ticket."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from matchers import Limits, evaluate
from schemas.documents import Logistics, Order, Payment
from tests.bench.workload import TicketRecords


def _documents(ticket: TicketRecords) -> tuple[Order, Payment, Logistics]:
    order, payment, logistics = ticket.documents
    assert isinstance(order, Order)
    assert isinstance(payment, Payment)
    assert isinstance(logistics, Logistics)
    return order, payment, logistics


@pytest.mark.benchmark(group="evaluate")
def test_evaluate_clean_ticket(benchmark: BenchmarkFixture, clean: TicketRecords) -> None:
    benchmark.extra_info["per"] = "ticket"
    evaluation = benchmark(evaluate, *_documents(clean), Limits())
    assert evaluation.reasons == []
    assert evaluation.dutiable_value == Decimal("497.50")


@pytest.mark.benchmark(group="evaluate")
def test_evaluate_ticket_with_3_reasons(
    benchmark: BenchmarkFixture, three_reasons: TicketRecords
) -> None:
    benchmark.extra_info["per"] = "ticket"
    evaluation = benchmark(evaluate, *_documents(three_reasons), Limits())
    codes = [reason.code for reason in evaluation.reasons]
    assert codes == ["AMOUNT_MISMATCH", "PAYER_MISMATCH", "CONSIGNEE_MISMATCH"]
