"""sandan's output records: decisions on ``cbec.release``/``cbec.divert``, rejections on
``cbec.rejected``, exactly as docs/contract.md names their fields."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from schemas.documents import DocType

__all__ = (
    "DecidedBy",
    "Decision",
    "DecisionKind",
    "DivertCode",
    "DocumentGuids",
    "Reason",
    "Rejection",
    "RejectionCode",
    "ReviewAction",
    "Source",
)

DecisionKind = Literal["RELEASE", "DIVERT"]
ReviewAction = Literal["RELEASE", "CONFIRM", "REQUEST_CORRECTION"]  # schemas/reviews.py
DivertCode = Literal[
    "AMOUNT_MISMATCH",
    "ORDER_ARITHMETIC",
    "PAYER_MISMATCH",
    "PAYMENT_REFERENCE_MISMATCH",
    "CONSIGNEE_MISMATCH",
    "INVALID_BUYER_ID",
    "SINGLE_LIMIT_EXCEEDED",
    "ANNUAL_LIMIT_EXCEEDED",
    "MISSING_DOCUMENTS",
    "AMBIGUOUS_WAYBILL",
]
RejectionCode = Literal[
    "SCHEMA",
    "STALE",
    "DUPLICATE",
    "UNKNOWN_DOCUMENT",
    "TICKET_RELEASED",
    "TICKET_CLOSED",
    "DRAFT",
    "INTERNAL",
]


class Reason(msgspec.Struct, frozen=True, gc=False):
    """Why a ticket is diverted: a code, a human detail and the values that differ.

    ``fields`` maps a field name to ``[order value, other value]`` (values as strings).
    """

    code: DivertCode
    detail: str
    fields: dict[str, list[str | None]] = msgspec.field(default_factory=dict)


class DocumentGuids(msgspec.Struct, gc=False):
    """The guid of each document version decided on; None where the document is missing."""

    order: str | None = None
    payment: str | None = None
    logistics: str | None = None


class DecidedBy(msgspec.Struct, frozen=True, gc=False):
    """The rule set and the settings a decision was made by (its audit trail)."""

    rulesVersion: str  # noqa: N815 - matchers.RULES_VERSION
    windowSeconds: float  # noqa: N815 - SANDAN_WINDOW
    singleLimit: Decimal  # noqa: N815 - SANDAN_SINGLE_LIMIT, CNY
    annualLimit: Decimal  # noqa: N815 - SANDAN_ANNUAL_LIMIT, CNY


class Decision(msgspec.Struct, kw_only=True, gc=False):
    """One decision on one ticket revision (``cbec.release`` or ``cbec.divert``)."""

    ticketId: str  # noqa: N815
    decision: DecisionKind
    revision: int
    decidedAt: str  # noqa: N815 - ISO-8601 UTC, ms
    orderNo: str  # noqa: N815
    ebpCode: str | None  # noqa: N815
    ebcCode: str | None  # noqa: N815
    payCode: str | None  # noqa: N815
    payTransactionId: str | None  # noqa: N815
    logisticsCode: str | None  # noqa: N815
    logisticsNo: str | None  # noqa: N815
    buyerIdNumber: str | None  # noqa: N815
    buyerName: str | None  # noqa: N815
    acturalPaid: Decimal | None  # noqa: N815
    dutiableValue: Decimal | None  # noqa: N815
    fullTax: bool  # noqa: N815
    documents: DocumentGuids
    firstSeenAt: str  # noqa: N815
    completedAt: str | None  # noqa: N815
    # None only for a ticket evaluated by a sandan before 2026-12 (a rolling upgrade's ledger
    # requests and stored tickets are still read): the field is always in the record.
    decidedBy: DecidedBy | None = None  # noqa: N815
    reasons: list[Reason] | msgspec.UnsetType = msgspec.UNSET
    missing: list[DocType] | msgspec.UnsetType = msgspec.UNSET
    # Only on a decision a review made (schemas/reviews.py): the review, its action, who, why.
    reviewId: str | msgspec.UnsetType = msgspec.UNSET  # noqa: N815
    reviewAction: ReviewAction | msgspec.UnsetType = msgspec.UNSET  # noqa: N815
    reviewedBy: str | msgspec.UnsetType = msgspec.UNSET  # noqa: N815
    reviewNote: str | msgspec.UnsetType = msgspec.UNSET  # noqa: N815


class Source(msgspec.Struct, gc=False):
    """Where a rejected record was read."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class Rejection(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """A record sandan did not accept (``cbec.rejected``); ``raw`` is encoded as base64.

    For a document of an XML message, ``node`` is its node's 1-based position, ``messageGuid``
    the message's guid and ``raw`` the node element alone if the node is invalid, else the
    document's canonical JSON; the whole message stays on its input topic at ``source``.
    """

    code: RejectionCode
    detail: str
    docType: DocType | None  # noqa: N815  # None only for INTERNAL on an internal topic
    guid: str | None = None
    orderNo: str | None = None  # noqa: N815
    ebpCode: str | None = None  # noqa: N815
    payCode: str | None = None  # noqa: N815
    payTransactionId: str | None = None  # noqa: N815
    logisticsCode: str | None = None  # noqa: N815
    logisticsNo: str | None = None  # noqa: N815
    source: Source
    raw: bytes
    node: int | None = None
    messageGuid: str | None = None  # noqa: N815
