"""Lookups (pure): a stored :class:`~streams.tickets.Group` or
:class:`~streams.ledger.BuyerLedger` as the answer of ``GET /v1/tickets/{id}`` or
``GET /v1/buyers/{id}/quota`` (docs/contract.md, "Lookup"), personal data masked.

A ticket's status, from its state::

    held, OPEN, revision 0            open       waiting for its documents
    held, OPEN, revision > 0          diverted   every decision that leaves a ticket open is
                                                 a DIVERT; a change may still re-decide it
    held, PENDING                     pending    at the buyer ledger
    held, RELEASED                    released
    held, CLOSED                      closed     a reviewer confirmed its divert (CONFIRM)
    not held, in the group's Released forgotten  its documents are gone, its release is
                                                 remembered (until the released horizon)
    neither                           unknown    (no answer: a 404)

Personal data (the values of ``schemas.documents.PERSONAL_FIELDS``) is masked by kind:
identity and phone numbers keep their last 4 characters (when at least 8 long, else nothing),
names their first character, addresses their first 3 (when longer than 6), any other personal
field all of it; free-text remarks are masked as the logs are (:func:`streams.logmask.mask`).
The buyer id in a quota answer is masked as an identity number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import msgspec

from schemas.codec import decode_document
from schemas.documents import DOC_TYPES, PERSONAL_FIELDS, DocType
from schemas.errors import SchemaError
from schemas.fields import enc_hook
from schemas.keys import split_ticket_id, ticket_id
from streams.digests import DIGEST_BYTES
from streams.ledger import BuyerLedger
from streams.logmask import mask
from streams.tickets import (
    CLOSED,
    OPEN,
    PENDING,
    RELEASED,
    Group,
    StoredDoc,
    Ticket,
)
from streams.timefmt import iso_ms

__all__ = (
    "BadLookupError",
    "DecisionEntry",
    "DocumentVersion",
    "QuotaAnswer",
    "Remembered",
    "ReviewEntry",
    "TicketAnswer",
    "TicketStatus",
    "china_year",
    "mask_buyer",
    "mask_field",
    "parse_buyer",
    "parse_ticket_id",
    "parse_year",
    "quota_answer",
    "ticket_answer",
)

TicketStatus = Literal["open", "pending", "released", "diverted", "closed", "forgotten"]

MAX_BUYER_ID = 60
_YEAR = re.compile("[0-9]{4}")  # ASCII digits only: \d takes full-width ones too
_CHINA = timedelta(hours=8)
_HEADER_FIELDS = ("guid", "appType", "appTime", "appStatus")

# How each personal field is masked; a personal field missing here is masked whole.
_NUMBERS = ("buyerIdNumber", "payerIdNumber", "buyerRegNo")
_PHONES = ("buyerTelephone", "consigneeTelephone", "telephone")
_NAMES = ("buyerName", "payerName", "consignee")
_ADDRESSES = ("consigneeAddress",)
_FREE_TEXT = frozenset({"note", "goodsInfo", "itemDescribe"})  # remarks: masked as logs are
_KEEP_TAIL, _SHORTEST_WITH_TAIL = 4, 8
_KEEP_HEAD, _SHORTEST_WITH_HEAD = 3, 7


class BadLookupError(ValueError):
    """A malformed ticket id, buyer id or year (a 400); the message says what is wrong."""


# -- answers ------------------------------------------------------------------------------------


class DocumentVersion(msgspec.Struct, kw_only=True):
    """One version of a document the ticket's state holds: applied (``stored``), or ``parked``
    while the ticket is at the buyer ledger (applied once the ledger's outcome is back)."""

    guid: str
    appType: str  # noqa: N815 - the standard's spelling
    appTime: str  # noqa: N815
    appStatus: str  # noqa: N815
    format: Literal["json", "xml"]
    copCode: str | None  # noqa: N815 - the XML message's sender (BaseTransfer), null for JSON
    state: Literal["stored", "parked"]
    fields: dict[str, Any]  # the document's other fields, personal data masked


class DecisionEntry(msgspec.Struct):
    """One decision the ticket got (its reasons as codes)."""

    revision: int
    decision: str  # RELEASE | DIVERT
    reasons: list[str]
    decidedAt: str  # noqa: N815 - ISO-8601 UTC, ms: when the ticket's state took it


class ReviewEntry(msgspec.Struct):
    """One review the ticket got (docs/contract.md, "Reviews"); a repeated reviewId is not
    logged again."""

    reviewId: str  # noqa: N815
    action: str  # RELEASE | CONFIRM | REQUEST_CORRECTION
    reviewer: str
    revision: int  # the revision it named
    result: Literal["APPLIED", "REFUSED"]
    code: str | None  # the refusal's code
    at: str  # ISO-8601 UTC, ms: when the ticket's state took it


class Remembered(msgspec.Struct):
    """What the state remembers of a released ticket, past its documents' retention."""

    logisticsCode: str  # noqa: N815
    logisticsNo: str  # noqa: N815
    until: str  # ISO-8601 UTC: forgotten then (the released horizon)
    guidsSeen: int  # noqa: N815 - guids kept as exact redeliveries (digests)


class TicketAnswer(msgspec.Struct, kw_only=True):
    """``GET /v1/tickets/{id}`` (every field is always present; a forgotten ticket has only
    its id, status, memory and partition)."""

    ticketId: str  # noqa: N815
    status: TicketStatus
    revision: int | None = None  # null: forgotten (the memory keeps no revision)
    firstSeenAt: str | None = None  # noqa: N815
    completedAt: str | None = None  # noqa: N815
    windowClosesAt: str | None = None  # noqa: N815 - null once the window has closed
    expiresAt: str | None = None  # noqa: N815 - when its documents are forgotten (retention)
    missing: list[str] = msgspec.field(default_factory=list)
    documents: dict[str, list[DocumentVersion]] = msgspec.field(  # each kind, [] when none
        default_factory=lambda: {kind: [] for kind in DOC_TYPES}
    )
    decisions: list[DecisionEntry] = msgspec.field(default_factory=list)
    reviews: list[ReviewEntry] = msgspec.field(default_factory=list)
    remembered: Remembered | None = None  # released and forgotten tickets
    partition: int
    servedBy: str  # noqa: N815 - the URL of the worker that answered (the owner)


class QuotaAnswer(msgspec.Struct, kw_only=True):
    """``GET /v1/buyers/{id}/quota``: amounts as decimal strings, CNY."""

    buyer: str  # masked
    year: int
    annualLimit: Decimal  # noqa: N815
    released: Decimal  # the dutiable value released for the buyer that year
    remaining: Decimal  # annualLimit - released, at least 0
    releasedTickets: int | None  # noqa: N815 - null: the ledger keeps totals, not counts
    partition: int
    servedBy: str  # noqa: N815


# -- parsing ------------------------------------------------------------------------------------


def parse_ticket_id(text: str) -> tuple[str, str]:
    """(platform code, order number) of ``{ebpCode}:{orderNo}`` (``:{orderNo}`` for a
    waybill-only ticket); raise :class:`BadLookupError`."""
    try:
        return split_ticket_id(text)
    except ValueError as exc:
        raise BadLookupError(str(exc)) from None


def parse_buyer(text: str) -> str:
    """A buyer id (``buyerIdNumber``: 1 to 60 characters); raise :class:`BadLookupError`
    (its message never holds the id)."""
    if not text or len(text) > MAX_BUYER_ID or text != text.strip():
        msg = f"not a buyer id: expected 1 to {MAX_BUYER_ID} characters (buyerIdNumber)"
        raise BadLookupError(msg)
    return text


def china_year(now_ms: int) -> int:
    """The calendar year at ``now_ms`` in China time (UTC+8), as the ledger counts years."""
    return (datetime.fromtimestamp(now_ms / 1000, UTC) + _CHINA).year


def parse_year(text: str | None, now_ms: int) -> int:
    """The ``year`` query parameter (four digits), by default the current year in China time;
    raise :class:`BadLookupError`."""
    if text is None:
        return china_year(now_ms)
    if not _YEAR.fullmatch(text) or text.startswith("0"):
        msg = f"not a year: {text[:20]!r} (expected YYYY)"
        raise BadLookupError(msg)
    return int(text)


# -- masking ------------------------------------------------------------------------------------


def _tail(value: str) -> str:
    if len(value) < _SHORTEST_WITH_TAIL:
        return "*" * len(value)
    return "*" * (len(value) - _KEEP_TAIL) + value[-_KEEP_TAIL:]


def _name(value: str) -> str:
    return value[:1] + "*" if len(value) > 1 else "*"


def _address(value: str) -> str:
    return value[:_KEEP_HEAD] + "***" if len(value) >= _SHORTEST_WITH_HEAD else "***"


_MASKS = {
    **dict.fromkeys(_NUMBERS, _tail),
    **dict.fromkeys(_PHONES, _tail),
    **dict.fromkeys(_NAMES, _name),
    **dict.fromkeys(_ADDRESSES, _address),
}
_PERSONAL = frozenset(PERSONAL_FIELDS)


def mask_field(name: str, value: Any) -> Any:
    """``value`` of the field ``name`` as a lookup shows it."""
    if not isinstance(value, str):
        return value
    if name in _PERSONAL:
        return _MASKS.get(name, lambda _: "***")(value)
    if name in _FREE_TEXT:
        return mask(value)
    return value


def mask_buyer(buyer: str) -> str:
    """A buyer id as answers and errors show it."""
    return _tail(buyer)


def _masked(fields: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, list):  # orderList: its lines
            shown[name] = [_masked(v) if isinstance(v, dict) else v for v in value]
        else:
            shown[name] = mask_field(name, value)
    return shown


# -- tickets ------------------------------------------------------------------------------------


def _version(
    kind: DocType, raw: bytes, cop_code: str | None, state: Literal["stored", "parked"]
) -> DocumentVersion:
    try:
        document = decode_document(kind, raw, len(raw))
        fields: dict[str, Any] = msgspec.to_builtins(document, enc_hook=enc_hook)
    except SchemaError:  # cannot happen: what the state holds was validated
        fields = {}
    header = {name: str(fields.pop(name, "")) for name in _HEADER_FIELDS}
    return DocumentVersion(
        guid=header["guid"],
        appType=header["appType"],
        appTime=header["appTime"],
        appStatus=header["appStatus"],
        format="json" if cop_code is None else "xml",
        copCode=cop_code,
        state=state,
        fields=_masked(fields),
    )


def _documents(ticket: Ticket, read: Callable[[str], bytes]) -> dict[str, list[DocumentVersion]]:
    documents: dict[str, list[DocumentVersion]] = {kind: [] for kind in DOC_TYPES}
    for kind in DOC_TYPES:
        stored: StoredDoc | None = getattr(ticket, kind)
        if stored is not None:
            raw = stored.raw or read(stored.guid)
            documents[kind].append(_version(kind, raw, stored.cop_code, "stored"))
    for parked in ticket.parked:
        documents[parked.doc_type].append(
            _version(parked.doc_type, parked.raw, parked.cop_code, "parked")
        )
    return documents


def _status(ticket: Ticket) -> TicketStatus:
    if ticket.status == RELEASED:
        return "released"
    if ticket.status == PENDING:
        return "pending"
    if ticket.status == CLOSED:
        return "closed"
    return "diverted" if ticket.status == OPEN and ticket.revision > 0 else "open"


def ticket_answer(
    group: Group | None,
    read: Callable[[str], bytes],
    ebp: str,
    order_no: str,
    partition: int,
    served_by: str,
) -> TicketAnswer | None:
    """The ticket ``{ebp}:{order_no}`` as its group (None: nothing stored) holds it, its
    documents' bytes as ``read`` gives them by guid; None when the group neither holds it nor
    remembers it as released (unknown)."""
    tid = ticket_id(ebp, order_no)
    ticket = group.tickets.get(ebp) if group is not None else None
    entry = None
    if group is not None and ebp:  # a waybill-only ticket is never released
        entry = next((r for r in group.released if r.ebp_code == ebp), None)
    remembered = (
        Remembered(
            entry.logistics_code,
            entry.logistics_no,
            iso_ms(entry.expires_ms),
            len(entry.guids) // DIGEST_BYTES,
        )
        if entry is not None
        else None
    )
    if ticket is None:
        if remembered is None:
            return None
        return TicketAnswer(
            ticketId=tid,
            status="forgotten",
            remembered=remembered,
            partition=partition,
            servedBy=served_by,
        )
    return TicketAnswer(
        ticketId=tid,
        status=_status(ticket),
        revision=ticket.revision,
        firstSeenAt=iso_ms(ticket.first_seen_ms),
        completedAt=iso_ms(ticket.completed_ms) if ticket.completed_ms else None,
        windowClosesAt=iso_ms(ticket.deadline_ms) if ticket.deadline_ms else None,
        expiresAt=iso_ms(ticket.expires_ms),
        missing=list(ticket.missing()),
        documents=_documents(ticket, read),
        decisions=[
            DecisionEntry(d.revision, d.decision, list(d.reasons), iso_ms(d.at_ms))
            for d in ticket.decisions
        ],
        reviews=[
            ReviewEntry(
                r.review_id,
                r.action,
                r.reviewer,
                r.revision,
                "REFUSED" if r.refused else "APPLIED",
                r.refused or None,
                iso_ms(r.at_ms),
            )
            for r in ticket.reviews
        ],
        remembered=remembered if ticket.status == RELEASED else None,
        partition=partition,
        servedBy=served_by,
    )


# -- buyers -------------------------------------------------------------------------------------


def quota_answer(
    ledger: BuyerLedger | None,
    buyer: str,
    year: int,
    annual_limit: Decimal,
    partition: int,
    served_by: str,
) -> QuotaAnswer | None:
    """The buyer's quota in ``year``; None when the ledger does not know the buyer."""
    if ledger is None:
        return None
    released = ledger.totals.get(year, Decimal(0))
    return QuotaAnswer(
        buyer=mask_buyer(buyer),
        year=year,
        annualLimit=annual_limit,
        released=released,
        remaining=max(annual_limit - released, Decimal(0)),
        releasedTickets=None,
        partition=partition,
        servedBy=served_by,
    )
