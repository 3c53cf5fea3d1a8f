"""The ticket stage's transition per ticket, the Group's msgpack round trip, the buyer ledger."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from schemas.outputs import Decision
from schemas.receipts import Addressed
from streams.ledger import BuyerLedger, decide
from streams.records import LedgerRequest, Outcome
from streams.tickets import PENDING, Emit, Group
from tests.bench.workload import (
    EBP,
    ENCODER,
    GROUP_DECODER,
    ORDER_NO,
    RULES,
    T0,
    TicketRecords,
    renewed,
    transition,
)

REQUEST_DECODER = msgspec.msgpack.Decoder(LedgerRequest)
TRANSITION_ROUNDS = 5_000


def _check_transition(result: tuple[Group, bytes, list[Emit]]) -> None:
    group, stored, emitted = result
    (request,) = [item for item in emitted if not isinstance(item, Addressed)]
    assert isinstance(request, LedgerRequest)
    assert request.decision.ticketId == f"{EBP}:{ORDER_NO}"
    assert request.decision.dutiableValue == Decimal("497.50")
    assert group.tickets[EBP].status == PENDING
    assert GROUP_DECODER.decode(stored) == group


@pytest.mark.benchmark(group="ticket stage")
def test_transition_clean_ticket(benchmark: BenchmarkFixture, clean: TicketRecords) -> None:
    """Fresh Group; order, payment, waybill via on_document, the Group encoded after each and
    decoded before the next (one batch per document). Includes the decision on completion,
    where the three stored documents are decoded again (the same bytes every round: as when
    intake decoded them moments before) and evaluate() runs."""
    benchmark.extra_info["per"] = "ticket (3 documents)"
    _check_transition(benchmark(transition, clean))


@pytest.mark.benchmark(group="ticket stage")
def test_transition_clean_ticket_new_bytes(
    benchmark: BenchmarkFixture, clean: TicketRecords
) -> None:
    """The same, with new guids (so new document bytes) every round: the decision decodes
    documents it has never seen. One call per round (pedantic)."""
    serials = itertools.count(1)

    def setup() -> tuple[tuple[TicketRecords], dict[str, Any]]:
        return (renewed(clean, next(serials)),), {}

    benchmark.extra_info["per"] = "ticket (3 documents)"
    # pedantic() is untyped in pytest-benchmark 5.x
    result = benchmark.pedantic(  # type: ignore[no-untyped-call]
        transition, setup=setup, rounds=TRANSITION_ROUNDS, warmup_rounds=20
    )
    _check_transition(result)


@pytest.mark.benchmark(group="group msgpack")
def test_group_encode(benchmark: BenchmarkFixture, pending_group: Group) -> None:
    benchmark.extra_info["per"] = "group (1 ticket, 3 stored documents)"
    encoded = benchmark(ENCODER.encode, pending_group)
    benchmark.extra_info["bytes"] = len(encoded)
    assert GROUP_DECODER.decode(encoded) == pending_group


@pytest.mark.benchmark(group="group msgpack")
def test_group_decode(benchmark: BenchmarkFixture, pending_group: Group) -> None:
    encoded = ENCODER.encode(pending_group)
    benchmark.extra_info["per"] = "group (1 ticket, 3 stored documents)"
    benchmark.extra_info["bytes"] = len(encoded)
    decoded = benchmark(GROUP_DECODER.decode, encoded)
    assert decoded == pending_group


def _decide(request: LedgerRequest, released_before: Decimal) -> tuple[Decision, Outcome]:
    # A ledger as read from the store, so every round decides on the same total.
    ledger = BuyerLedger({2026: released_before})
    decided = decide(ledger, request, RULES.limits.annual_limit, T0 + 2500)
    assert decided is not None
    return decided


@pytest.mark.benchmark(group="ledger")
@pytest.mark.parametrize(
    ("released_before", "kind"),
    [(Decimal("1200.00"), "RELEASE"), (Decimal("25600.00"), "DIVERT")],
    ids=["release", "annual-limit-divert"],
)
def test_ledger_decide(
    benchmark: BenchmarkFixture,
    ledger_request: LedgerRequest,
    released_before: Decimal,
    kind: str,
) -> None:
    """decide() on one clean ticket; the timed call also builds the one-year BuyerLedger."""
    request = REQUEST_DECODER.decode(ENCODER.encode(ledger_request))  # this test's own copy
    benchmark.extra_info["per"] = "ticket"
    decision, outcome = benchmark(_decide, request, released_before)
    assert decision.decision == kind
    assert outcome.released is (kind == "RELEASE")
    assert outcome.revision == 1
