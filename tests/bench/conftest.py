"""Shared benchmark data, built once per session (tests/bench/workload.py builds it)."""

from __future__ import annotations

import pytest

from schemas.outputs import Decision
from schemas.receipts import Addressed
from streams.records import LedgerRequest
from streams.tickets import Group
from tests.bench.workload import TicketRecords, ticket_records, transition
from tests.factories import logistics_dict, payment_dict


@pytest.fixture(scope="session")
def clean() -> TicketRecords:
    """docs/examples' clean ticket: released by the rules, on to the buyer ledger."""
    return ticket_records()


@pytest.fixture(scope="session")
def three_reasons() -> TicketRecords:
    """The example ticket with AMOUNT_MISMATCH, PAYER_MISMATCH and CONSIGNEE_MISMATCH."""
    return ticket_records(
        payment=payment_dict(amountPaid="500.00", payerName="李四"),
        logistics=logistics_dict(consigneeTelephone="13000000000"),
    )


@pytest.fixture(scope="session")
def pending_group(clean: TicketRecords) -> Group:
    """The clean ticket's group once complete: three stored documents, waiting on the ledger."""
    group, _, _ = transition(clean)
    return group


@pytest.fixture(scope="session")
def ledger_request(clean: TicketRecords) -> LedgerRequest:
    """What the clean ticket sends to the buyer ledger."""
    _, _, emitted = transition(clean)
    (request,) = [item for item in emitted if not isinstance(item, Addressed)]
    assert isinstance(request, LedgerRequest)
    return request


@pytest.fixture(scope="session")
def divert_decision(three_reasons: TicketRecords) -> Decision:
    """The three-reason ticket's DIVERT decision, as the ticket stage emits it."""
    _, _, emitted = transition(three_reasons)
    (decision,) = [item for item in emitted if isinstance(item, Decision)]
    assert isinstance(decision, Decision)
    assert decision.decision == "DIVERT"
    return decision
