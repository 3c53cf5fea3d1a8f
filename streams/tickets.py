"""The ticket stage's state machine: pure, no I/O, no clock (time comes in as ``now_ms``).

State is kept per ``orderNo`` (the partition key) as a :class:`Group` of the tickets sharing it:
normally one, ``{ebpCode}:{orderNo}``, sometimes also the waybill-only ticket ``:{orderNo}`` or a
second platform's ticket. Keeping them together makes waybill placement a local decision.

Each document version is stored once, under its own key (:func:`document_key`); a ticket holds
only a reference to it (:class:`StoredDoc`: guid, appTime, copCode), so a document arriving
writes itself and the small group, never the other documents again. The stage reads a held
document through the :data:`DocumentReader` it is given (when it decides, or places a waybill
change): decoded, from the versions the pipeline wrote or read lately when it has them (a
document decided on soon after it came is not decoded twice). Its :class:`Step` says which
documents to write (:class:`Written`: bytes and decoded document) and delete. A group written
before document-level state holds its documents inline (``StoredDoc.raw``): read as they are,
and never written separately.

A ticket's life (docs/contract.md, "Tickets" and "Where the contract leaves a choice")::

    OPEN ──complete & clean──► PENDING (at the buyer ledger) ──released──► RELEASED
      ▲  └─complete & failing rules, window closed incomplete, ambiguous waybill: DIVERT
      │                                   ▲ review RELEASE
      └──────────────────────────────── not released ◄┘
    OPEN, diverted ──review CONFIRM──► CLOSED (its documents rejected TICKET_CLOSED)
                   ──review REQUEST_CORRECTION──► OPEN, diverted again (the next revision)

Events are applied as steps (``apply_document``, ``apply_outcome``, ``apply_review``,
``apply_timer`` -> :class:`Step`: what to emit, and whether the group changed, so whether the
pipeline writes it). Records reaching a PENDING ticket are parked and replayed when the
ledger's outcome is back. A review (schemas/reviews.py) acts only on the revision it names and
gets one result; a release it asks for passes the buyer's annual limit like any other.

A released ticket is also remembered in compact form (:class:`Released`, in its group) until
``SANDAN_RELEASED_HORIZON`` after its first document, past its own retention: its platform code,
its waybill's ``logisticsCode`` and ``logisticsNo`` (the waybill's own key, unique for six months
in the standard) and digests of the guids seen on it. A document of a released ticket (an order
or payment of its platform, a waybill naming its platform or, naming none, carrying its waybill
number) is rejected before it is placed: ``DUPLICATE`` (appType 1) or ``TICKET_RELEASED`` (2, 3);
it never makes a second ticket. Remembered entries expire on the group's timer like tickets.

Every document applied gets a ``120`` receipt, every one rejected here a ``100``, and every
decision a ``399`` to the sender of each document it decided on (schemas/receipts.py); a
receipt goes back in the format its document came in, so a stored version remembers the
``copCode`` of the XML message it came in.

Every revision the rules decide (diverted here, or sent to the buyer ledger) with an order is
also emitted as a :class:`~streams.records.Sighting` for the alerts (streams/alerts.py), when
``Rules.sightings`` is on.

Each ticket also keeps a compact log of the decisions it got (:class:`Decided`: revision,
decision, reason codes, time; no details, no documents), for lookups (streams/lookup.py): a
decision made here is logged when it is emitted, one made by the buyer ledger when its
outcome comes back; and of the reviews it got (:class:`Reviewed`). They are the last fields
of :class:`Ticket`, with defaults, so a state written before they existed decodes with empty
logs (and an earlier version ignores them).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from enum import IntEnum
from functools import lru_cache
from typing import Literal, NamedTuple, TypeVar, get_args

import msgspec

from matchers import RULES_VERSION, Limits, evaluate
from matchers.limits import dutiable_value
from schemas.codec import decode_document
from schemas.documents import DOC_TYPES, DocType, Document, Logistics, Order, Payment
from schemas.keys import ticket_id
from schemas.outputs import (
    DecidedBy,
    Decision,
    DivertCode,
    DocumentGuids,
    Reason,
    Rejection,
    RejectionCode,
    Source,
)
from schemas.receipts import Addressed, Addressee, concluded, returned, stored
from schemas.reviews import Review, ReviewRefusal, ReviewResult
from streams.digests import digest, holds
from streams.intake import Incoming, Origin, reject
from streams.records import LedgerRequest, Outcome, Sighting
from streams.timefmt import iso_ms

__all__ = (
    "DOCUMENT_KEY_MARK",
    "Decided",
    "DocumentReader",
    "Group",
    "KeyedRejection",
    "Released",
    "Reviewed",
    "Rules",
    "Status",
    "Step",
    "StoredDoc",
    "Ticket",
    "TicketBook",
    "Unheld",
    "Written",
    "apply_document",
    "apply_outcome",
    "apply_review",
    "apply_timer",
    "document_key",
    "is_document_key",
    "next_due",
)


class Status(IntEnum):
    """A ticket's status (stored as its number)."""

    OPEN = 0  # waiting for documents, or decided DIVERT (a change may decide it again)
    PENDING = 1  # at the buyer ledger
    RELEASED = 2
    CLOSED = 3  # a reviewer confirmed its divert: nothing applies to it any more


OPEN, PENDING, RELEASED, CLOSED = Status


class StoredDoc(msgspec.Struct, array_like=True, gc=False):
    """One document version a ticket holds: its guid, appTime, and the copCode of the XML
    message it came in (None: it came as JSON). Its JSON bytes are stored under their own key
    (:func:`document_key`), ``raw`` is empty; a group written before document-level state
    holds them here."""

    guid: str
    app_time: str
    raw: bytes = b""
    cop_code: str | None = None


DOCUMENT_KEY_MARK = b"\xff"  # a byte UTF-8 never holds


def document_key(order_no: str, guid: str) -> bytes:
    """Where a document version of the group ``order_no`` is stored: its group's key (the
    orderNo in UTF-8) and the guid, split by a byte no UTF-8 text holds, so no group's key is
    a document's and no two documents' keys are one."""
    return order_no.encode() + DOCUMENT_KEY_MARK + guid.encode()


def is_document_key(key: bytes) -> bool:
    return DOCUMENT_KEY_MARK in key


DocumentReader = Callable[[DocType, str], Document]
"""A stored document version of the group being applied to, decoded, by its kind and guid."""


class Written(NamedTuple):
    """A document version a step stores: its JSON bytes, and the document they decode to."""

    raw: bytes
    document: Document


class Parked(msgspec.Struct, array_like=True, gc=False):
    """A record that reached a ticket while the ledger decided; replayed afterwards."""

    doc_type: DocType
    key: bytes | None
    raw: bytes
    topic: str
    partition: int
    offset: int
    timestamp: int
    cop_code: str | None = None  # the rest: its Origin when it came in an XML message
    message_guid: str = ""
    node: int = 0


# The buyer ledger's only reason to divert (streams/ledger.py): an outcome carries no codes.
LEDGER_DIVERT_CODES = ("ANNUAL_LIMIT_EXCEEDED",)
MAX_LOGGED_DECISIONS = 100  # a ticket changed without end keeps its latest decisions
MAX_LOGGED_REVIEWS = 100  # and its latest reviews


class Decided(msgspec.Struct, array_like=True, gc=False):
    """One decision a ticket got, as its log keeps it."""

    revision: int
    decision: str  # RELEASE | DIVERT (plain str: a code an older version lacks still decodes)
    reasons: list[str]  # the reason codes of a DIVERT
    at_ms: int  # when the ticket's state took it


class Reviewed(msgspec.Struct, array_like=True, gc=False):
    """One review a ticket got, as its log keeps it (a repeated ``review_id`` is refused)."""

    review_id: str
    action: str  # RELEASE | CONFIRM | REQUEST_CORRECTION
    reviewer: str
    revision: int  # the revision it named
    refused: str  # its refusal code; "" when applied
    at_ms: int


class Ticket(msgspec.Struct, array_like=True, gc=False):
    """One parcel's documents and decision state."""

    first_seen_ms: int
    deadline_ms: int  # the window closes; 0 once it has closed
    expires_ms: int
    order: StoredDoc | None = None
    payment: StoredDoc | None = None
    logistics: StoredDoc | None = None
    guids: list[str] = msgspec.field(default_factory=list)
    revision: int = 0
    status: Status = OPEN
    completed_ms: int | None = None
    parked: list[Parked] = msgspec.field(default_factory=list)
    # Last, with a default: states written before the log existed decode with an empty one.
    decisions: list[Decided] = msgspec.field(default_factory=list)
    reviews: list[Reviewed] = msgspec.field(default_factory=list)

    def complete(self) -> bool:
        return self.order is not None and self.payment is not None and self.logistics is not None

    def missing(self) -> list[DocType]:
        return [kind for kind in DOC_TYPES if getattr(self, kind) is None]

    def empty(self) -> bool:
        return self.order is None and self.payment is None and self.logistics is None

    def addressees(self) -> list[Addressee]:
        """The documents held, for the receipts of a decision on them."""
        return [
            Addressee(kind, doc.guid, doc.cop_code)
            for kind in DOC_TYPES
            if (doc := getattr(self, kind)) is not None
        ]

    def log_decision(self, decision: str, reasons: list[str], at_ms: int) -> None:
        """Add the decision on the current revision to the ticket's log."""
        self.decisions.append(Decided(self.revision, decision, reasons, at_ms))
        if len(self.decisions) > MAX_LOGGED_DECISIONS:
            del self.decisions[:-MAX_LOGGED_DECISIONS]

    def diverted(self) -> Decided | None:
        """The decision on the current revision if it is a divert that left the ticket open."""
        last = self.decisions[-1] if self.decisions else None
        if self.status != OPEN or last is None or last.revision != self.revision:
            return None
        return last if last.decision == "DIVERT" else None

    def log_review(self, review: Review, refused: str, at_ms: int) -> None:
        self.reviews.append(
            Reviewed(
                review.reviewId, review.action, review.reviewer, review.revision, refused, at_ms
            )
        )
        if len(self.reviews) > MAX_LOGGED_REVIEWS:
            del self.reviews[:-MAX_LOGGED_REVIEWS]


class Released(msgspec.Struct, array_like=True, gc=False):
    """A released ticket, remembered until ``expires_ms`` (its first document's arrival plus
    the released horizon) by the keys a document resent for it can come with."""

    ebp_code: str
    logistics_code: str  # its waybill's key (the waybill may name no platform)
    logistics_no: str
    expires_ms: int
    guids: bytes = b""  # digests (streams/digests.py) of the guids seen on it: redeliveries

    def owns(self, doc: Document) -> bool:
        """Whether the document is one of this ticket's (of the group's ``orderNo``)."""
        if isinstance(doc, Logistics) and not doc.ebpCode:
            return doc.logisticsNo == self.logistics_no and doc.logisticsCode == self.logistics_code
        return doc.ebpCode == self.ebp_code

    def seen(self, guid_digest: bytes) -> bool:
        """Whether a guid of this digest was seen on it."""
        return holds(self.guids, guid_digest)


class Unheld(msgspec.Struct, array_like=True, gc=False):
    """Guids rejected where no ticket held their document (digests), remembered until
    ``expires_ms``."""

    guids: bytes
    expires_ms: int


class Group(msgspec.Struct, array_like=True, gc=False):
    """The tickets of one ``orderNo``, by platform code (``""`` for the waybill-only ticket),
    the released tickets remembered past their retention, and the guids rejected where no
    ticket held them (:class:`Unheld`): a change or delete of a document no ticket holds, so
    that a redelivery, or the record consumed again after a crash, emits nothing again."""

    order_no: str
    tickets: dict[str, Ticket] = msgspec.field(default_factory=dict)
    released: list[Released] = msgspec.field(default_factory=list)
    # Last, with a default: a group written before it existed decodes without it.
    unheld: Unheld | None = None

    def empty(self) -> bool:
        """Nothing to keep: the group's stored value is deleted."""
        return not self.tickets and not self.released and self.unheld is None


def next_due(group: Group) -> int | None:
    """The earliest time a timer has work on this group: a window closing, a ticket expiring
    or a released ticket forgotten."""
    times = [t.deadline_ms or t.expires_ms for t in group.tickets.values()]
    times += [r.expires_ms for r in group.released]
    if group.unheld is not None:
        times.append(group.unheld.expires_ms)
    return min(times) if times else None


class Rules(NamedTuple):
    """The settings the ticket stage decides by."""

    window_ms: int
    retention_ms: int
    released_horizon_ms: int
    limits: Limits
    max_document_bytes: int
    inline_documents: bool = False  # SANDAN_DOCUMENT_STATE=inline: as earlier versions store
    sightings: bool = False  # a Sighting per decided revision, for the alerts (SANDAN_ALERTS)

    def decided_by(self) -> DecidedBy:
        """What every decision by these rules records of them."""
        return _decided_by(self.window_ms, self.limits)


@lru_cache(maxsize=8)
def _decided_by(window_ms: int, limits: Limits) -> DecidedBy:
    """One instance per rule set: decisions share it (it is frozen)."""
    return DecidedBy(RULES_VERSION, window_ms / 1000, limits.single_limit, limits.annual_limit)


class KeyedRejection(NamedTuple):
    """A rejection and the input record's key (the key of the ``cbec.rejected`` record)."""

    key: bytes | None
    rejection: Rejection


Emit = Decision | KeyedRejection | LedgerRequest | Addressed | ReviewResult | Sighting


class Step(NamedTuple):
    """What applying one event to a group gives (the bytewax shape): what to emit, whether
    the group changed, so whether the pipeline writes it (once per batch), and the document
    versions to write and delete (None), by guid."""

    emits: list[Emit]
    changed: bool
    documents: dict[str, Written | None]


def apply_document(
    rules: Rules,
    partition: int,
    group: Group,
    stored: DocumentReader,
    record: Incoming,
    doc: Document,
    now_ms: int,
) -> Step:
    """A validated document arrived for the group (see :meth:`TicketBook.on_document`);
    ``stored`` reads the group's documents."""
    book = TicketBook(rules, partition, stored)
    return book.step(book.on_document(group, record, doc, now_ms))


def apply_outcome(
    rules: Rules,
    partition: int,
    group: Group,
    stored: DocumentReader,
    outcome: Outcome,
    now_ms: int,
    floor_ms: int,
) -> Step:
    """The buyer ledger's outcome came back; what it replays counts as arriving at ``floor_ms``
    (just after everything applied so far)."""
    book = TicketBook(rules, partition, stored, floor_ms)
    return book.step(book.on_outcome(group, outcome, now_ms))


def apply_review(
    rules: Rules,
    partition: int,
    group: Group,
    stored: DocumentReader,
    review: Review,
    arrived_ms: int,
    now_ms: int,
    floor_ms: int,
) -> Step:
    """A reviewer's action (see :meth:`TicketBook.on_review`)."""
    book = TicketBook(rules, partition, stored, floor_ms)
    return book.step(book.on_review(group, review, arrived_ms, now_ms))


def apply_timer(
    rules: Rules,
    partition: int,
    group: Group,
    stored: DocumentReader,
    until_ms: int,
    now_ms: int,
) -> Step:
    """The group's timer fired: windows closed by ``until_ms`` (arrival time) decide at
    ``now_ms``; tickets past their retention are forgotten."""
    book = TicketBook(rules, partition, stored)
    return book.step(book.on_timer(group, until_ms, now_ms))


_D = TypeVar("_D", Order, Payment, Logistics)


class TicketBook:
    """Applies records, outcomes and timers to one group, collecting what is emitted."""

    def __init__(
        self, rules: Rules, partition: int, stored: DocumentReader, floor_ms: int = 0
    ) -> None:
        """``stored``: reads the documents of the group applied to, as stored before this
        book; ``floor_ms``: the earliest arrival time a ledger request it emits may carry (for
        an outcome, just after everything applied so far: what was parked for it counts as
        arriving after it)."""
        self.rules = rules
        self.partition = partition
        self.floor_ms = floor_ms
        self._at = floor_ms  # the arrival time of what is being applied
        self._stored = stored
        self.emitted: list[Emit] = []
        self.documents: dict[str, Written | None] = {}  # written, and deleted (None)

    def step(self, changed: bool) -> Step:
        return Step(self.emitted, changed, self.documents)

    def _decode(self, stored: StoredDoc | None, kind: DocType, type_: type[_D]) -> _D | None:
        """A held document: inline (an earlier version's state), written by this book, or
        stored."""
        if stored is None:
            return None
        if stored.raw:
            document = decode_document(kind, stored.raw, len(stored.raw))
        else:
            written = self.documents.get(stored.guid)
            document = written.document if written else self._stored(kind, stored.guid)
        assert isinstance(document, type_)  # noqa: S101 - stored documents were validated
        return document

    def _decode_all(self, ticket: Ticket) -> tuple[Order, Payment, Logistics]:
        order = self._decode(ticket.order, "order", Order)
        payment = self._decode(ticket.payment, "payment", Payment)
        logistics = self._decode(ticket.logistics, "logistics", Logistics)
        assert order and payment and logistics  # noqa: S101 - called on complete tickets
        return order, payment, logistics

    def _waybill_no(self, ticket: Ticket) -> str | None:
        logistics = self._decode(ticket.logistics, "logistics", Logistics)
        return logistics.logisticsNo if logistics else None

    def _drop(self, stored: StoredDoc | None) -> None:
        """A held document version is replaced, deleted or forgotten: its key goes too (one
        this book wrote is not written at all)."""
        if stored is None or stored.raw:
            return
        if self.documents.get(stored.guid) is not None:
            del self.documents[stored.guid]
        else:
            self.documents[stored.guid] = None

    # -- documents ------------------------------------------------------------------------

    def on_document(self, group: Group, record: Incoming, doc: Document, now_ms: int) -> bool:
        """Apply one validated document (not a draft) to its group; return whether the group
        changed (an exact redelivery changes nothing, so nothing is written).

        The record's timestamp is when it arrived: a ticket's window starts at its first
        document's arrival, and windows that closed before this record arrived close first.
        """
        arrived_ms = min(record.source.timestamp, now_ms) if record.source.timestamp > 0 else now_ms
        self._at = max(arrived_ms, self.floor_ms)
        changed = self.on_timer(group, arrived_ms, now_ms)
        if any(doc.guid in t.guids for t in group.tickets.values()):
            return changed  # an exact redelivery: nothing happens, nothing is emitted
        if group.unheld is not None and holds(group.unheld.guids, digest(doc.guid)):
            return changed  # rejected before, when no ticket held its document
        if group.released:
            seen = digest(doc.guid)
            if any(entry.seen(seen) for entry in group.released):
                return changed  # an exact redelivery, after the ticket was forgotten too
            entry = next((entry for entry in group.released if entry.owns(doc)), None)
            if entry is not None:  # a released ticket's: rejected, and its guid remembered
                self._refuse_released(group, entry, seen, record, doc, now_ms)
                return True
        ebp = self._place(group, doc)
        ambiguous = self._ambiguous(group, doc) if ebp == "" else []
        for other in ambiguous:
            reason = Reason(
                "AMBIGUOUS_WAYBILL",
                f"{len(_open_platform_tickets(group))} platforms' tickets share the waybill's "
                "orderNo",
                {"orderNo": [doc.orderNo, doc.orderNo]},
            )
            self._decide_divert(group, other, group.tickets[other], [reason], now_ms)
        ticket = group.tickets.get(ebp)
        if ticket is None:
            if doc.appType != "1":
                self._reject(
                    record,
                    doc,
                    "UNKNOWN_DOCUMENT",
                    f"no {record.doc_type} to change or delete",
                    ticket_id(ebp, group.order_no),
                    now_ms,
                )
                # No ticket remembers its guid: the group does, for the retention.
                expires_ms = arrived_ms + self.rules.retention_ms
                held = group.unheld.guids if group.unheld is not None else b""
                group.unheld = Unheld(held + digest(doc.guid), expires_ms)
                return True
            ticket = self._new_ticket(arrived_ms)
            group.tickets[ebp] = ticket
        if ticket.status == PENDING:
            ticket.parked.append(_park(record))
            return True
        self._apply(group, ebp, ticket, record, doc, now_ms)
        return True

    def _refuse_released(
        self,
        group: Group,
        entry: Released,
        seen: bytes,
        record: Incoming,
        doc: Document,
        now_ms: int,
    ) -> None:
        """Reject a document of the released ticket ``entry`` and remember its guid."""
        entry.guids += seen
        tid = ticket_id(entry.ebp_code, group.order_no)
        kind = record.doc_type
        if doc.appType != "1":
            detail = f"ticket {tid} is released; only customs' cancel or return apply"
            self._reject(record, doc, "TICKET_RELEASED", detail, tid, now_ms)
        elif isinstance(doc, Logistics) and not doc.ebpCode:
            detail = (
                f"ticket {tid} was released with waybill {entry.logistics_code} "
                f"{entry.logistics_no}: a new one (appType 1) is a duplicate"
            )
            self._reject(record, doc, "DUPLICATE", detail, tid, now_ms)
        else:
            detail = (
                f"ticket {tid} was released with its {kind}: a new one (appType 1) is a duplicate"
            )
            self._reject(record, doc, "DUPLICATE", detail, tid, now_ms)

    def _place(self, group: Group, doc: Document) -> str:
        """The platform code of the ticket this document belongs to (``""``: the waybill-only
        ticket ``:{orderNo}``). Placing decides nothing: see :meth:`_ambiguous`."""
        if not isinstance(doc, Logistics):
            return doc.ebpCode
        if doc.ebpCode:
            return doc.ebpCode
        if doc.appType != "1":  # a change or delete goes to the ticket holding a waybill
            holders = [ebp for ebp, t in group.tickets.items() if t.logistics is not None]
            same_no = [
                ebp for ebp in holders if self._waybill_no(group.tickets[ebp]) == doc.logisticsNo
            ]
            return (same_no or holders or [""])[0]
        open_platform = _open_platform_tickets(group)
        return open_platform[0] if len(open_platform) == 1 else ""

    @staticmethod
    def _ambiguous(group: Group, doc: Document) -> list[str]:
        """The platform tickets a new waybill naming no platform cannot choose between (each
        then diverted ``AMBIGUOUS_WAYBILL`` while open); none when a waybill already waits
        (this one is then a DUPLICATE)."""
        if not isinstance(doc, Logistics) or doc.ebpCode or doc.appType != "1":
            return []
        open_platform = _open_platform_tickets(group)
        waiting = group.tickets.get("")
        if len(open_platform) < 2 or (waiting is not None and waiting.logistics is not None):  # noqa: PLR2004
            return []
        return [ebp for ebp in open_platform if group.tickets[ebp].status == OPEN]

    def _apply(
        self, group: Group, ebp: str, ticket: Ticket, record: Incoming, doc: Document, now_ms: int
    ) -> None:
        kind = record.doc_type
        held: StoredDoc | None = getattr(ticket, kind)
        ticket.guids.append(doc.guid)  # seen, applied or rejected: a redelivery emits nothing
        problem = self._refusal(ticket, held, doc, kind)
        tid = ticket_id(ebp, group.order_no)
        if problem is not None:
            self._reject(record, doc, *problem, tid, now_ms)
            return
        origin = record.origin
        cop_code = origin.cop_code if origin else None
        self.emitted.append(
            stored(
                doc,
                ticket=tid,
                cop_code=cop_code,
                node=origin.node if origin else None,
                now_ms=now_ms,
            )
        )
        was_complete = ticket.complete()
        self._drop(held)
        version = None
        if doc.appType != "3" and self.rules.inline_documents:
            version = StoredDoc(doc.guid, doc.appTime, record.value or b"", cop_code)
        elif doc.appType != "3":
            version = StoredDoc(doc.guid, doc.appTime, cop_code=cop_code)
            self.documents[doc.guid] = Written(record.value or b"", doc)
        setattr(ticket, kind, version)
        if kind != "logistics" and ticket.logistics is None:
            self._adopt_waybill(group, ebp, ticket)
        if ticket.complete() and (not was_complete or doc.appType == "2"):
            if not was_complete:
                ticket.completed_ms = now_ms
            self._decide_complete(group, ebp, ticket, now_ms)

    @staticmethod
    def _refusal(
        ticket: Ticket, held: StoredDoc | None, doc: Document, kind: DocType
    ) -> tuple[RejectionCode, str] | None:
        """Why the ticket refuses the document (checks 5 to 8 of the contract), if it does."""
        if ticket.status == CLOSED:
            return "TICKET_CLOSED", "the ticket was closed by a review (CONFIRM): nothing applies"
        if doc.appType == "1":
            if held is not None:
                return "DUPLICATE", f"the ticket already holds a {kind} (appType 1)"
            return None
        if ticket.status == RELEASED:
            return "TICKET_RELEASED", "the ticket is released; only customs' cancel or return apply"
        if held is None:
            return "UNKNOWN_DOCUMENT", f"no {kind} to change or delete"
        if doc.appTime <= held.app_time:
            return "STALE", f"appTime {doc.appTime} is not newer than the stored {held.app_time}"
        return None

    def _adopt_waybill(self, group: Group, ebp: str, ticket: Ticket) -> None:
        """Move a waiting waybill from ``:{orderNo}`` into the only platform ticket needing one."""
        waiting = group.tickets.get("")
        if waiting is None or waiting.logistics is None or not ebp:
            return
        if len(_open_platform_tickets(group)) != 1:
            return
        ticket.logistics = waiting.logistics
        ticket.guids.append(waiting.logistics.guid)
        waiting.logistics = None
        if waiting.empty():
            del group.tickets[""]

    def _new_ticket(self, arrived_ms: int) -> Ticket:
        return Ticket(
            first_seen_ms=arrived_ms,
            deadline_ms=arrived_ms + self.rules.window_ms,
            expires_ms=arrived_ms + self.rules.retention_ms,
        )

    # -- decisions ------------------------------------------------------------------------

    def _decide_complete(self, group: Group, ebp: str, ticket: Ticket, now_ms: int) -> None:
        order, payment, logistics = self._decode_all(ticket)
        evaluation = evaluate(order, payment, logistics, self.rules.limits)
        ticket.revision += 1
        decision = self._decision(group, ebp, ticket, now_ms, order, payment, logistics)
        decision.dutiableValue = evaluation.dutiable_value
        decision.fullTax = evaluation.full_tax
        self._sight(decision, ticket, order)
        if evaluation.reasons:
            decision.decision = "DIVERT"
            decision.reasons = evaluation.reasons
            decision.missing = []
            self._emit_decision(decision, ticket, now_ms)
            return
        self._request_release(ticket, order, decision)

    def _request_release(self, ticket: Ticket, order: Order, decision: Decision) -> None:
        """Send the ticket's release to the buyer ledger, which decides it (streams/ledger.py)."""
        ticket.status = PENDING
        self.emitted.append(
            LedgerRequest(
                self.partition,
                order.buyerIdNumber,
                int(order.appTime[:4]),
                decision,
                ticket.addressees(),
                self._at,
            )
        )

    def _decide_divert(
        self,
        group: Group,
        ebp: str,
        ticket: Ticket,
        reasons: list[Reason],
        now_ms: int,
        review: Review | None = None,
    ) -> None:
        order = self._decode(ticket.order, "order", Order)
        payment = self._decode(ticket.payment, "payment", Payment)
        logistics = self._decode(ticket.logistics, "logistics", Logistics)
        ticket.revision += 1
        decision = self._decision(group, ebp, ticket, now_ms, order, payment, logistics)
        if order is not None:
            decision.dutiableValue = _dutiable(order, logistics)
            self._sight(decision, ticket, order)
        decision.decision = "DIVERT"
        decision.reasons = reasons
        decision.missing = ticket.missing()
        if review is not None:
            _mark_reviewed(decision, review)
        self._emit_decision(decision, ticket, now_ms)

    def _sight(self, decision: Decision, ticket: Ticket, order: Order) -> None:
        """The revision is decided (here, or by the buyer ledger it goes to): its sighting
        for the alerts (streams/alerts.py), when they are on."""
        if self.rules.sightings:
            self.emitted.append(
                Sighting(
                    decision.ticketId,
                    ticket.first_seen_ms,
                    order.buyerIdNumber,
                    order.consignee,
                    order.consigneeAddress,
                    order.consigneeTelephone,
                    decision.dutiableValue or Decimal(0),
                )
            )

    def _emit_decision(self, decision: Decision, ticket: Ticket, now_ms: int) -> None:
        codes: list[str] = [reason.code for reason in decision.reasons or ()]
        ticket.log_decision(decision.decision, codes, now_ms)
        self.emitted.append(decision)
        self.emitted.extend(concluded(decision, ticket.addressees(), now_ms))

    def _decision(
        self,
        group: Group,
        ebp: str,
        ticket: Ticket,
        now_ms: int,
        order: Order | None,
        payment: Payment | None,
        logistics: Logistics | None,
    ) -> Decision:
        order_no = group.order_no
        return Decision(
            ticketId=ticket_id(ebp, order_no),
            decision="RELEASE",
            revision=ticket.revision,
            decidedAt=iso_ms(now_ms),
            orderNo=order_no,
            ebpCode=ebp or None,
            ebcCode=order.ebcCode if order else None,
            payCode=payment.payCode if payment else (order.payCode if order else None),
            payTransactionId=(
                payment.payTransactionId if payment else (order.payTransactionId if order else None)
            ),
            logisticsCode=logistics.logisticsCode if logistics else None,
            logisticsNo=logistics.logisticsNo if logistics else None,
            buyerIdNumber=order.buyerIdNumber
            if order
            else (payment.payerIdNumber if payment else None),
            buyerName=order.buyerName if order else (payment.payerName if payment else None),
            acturalPaid=order.acturalPaid if order else None,
            dutiableValue=None,
            fullTax=False,
            documents=DocumentGuids(
                order=ticket.order.guid if ticket.order else None,
                payment=ticket.payment.guid if ticket.payment else None,
                logistics=ticket.logistics.guid if ticket.logistics else None,
            ),
            firstSeenAt=iso_ms(ticket.first_seen_ms),
            completedAt=iso_ms(ticket.completed_ms)
            if ticket.complete() and ticket.completed_ms
            else None,
            decidedBy=self.rules.decided_by(),
        )

    # -- the ledger's outcome and timers ----------------------------------------------------

    def on_outcome(self, group: Group, outcome: Outcome, now_ms: int) -> bool:
        """The ledger decided a ticket revision: settle it and replay what was parked. Return
        whether the group changed (an outcome for a revision no longer pending does not)."""
        ticket = group.tickets.get(outcome.ebp_code)
        if ticket is None or ticket.status != PENDING or ticket.revision != outcome.revision:
            return False
        ticket.status = RELEASED if outcome.released else OPEN
        codes: list[str] = [] if outcome.released else list(LEDGER_DIVERT_CODES)
        if not outcome.released:  # a release by review the ledger refused: logged so
            asked = ("RELEASE", "", outcome.revision - 1)
            for review in reversed(ticket.reviews):
                if (review.action, review.refused, review.revision) == asked:
                    review.refused = LEDGER_DIVERT_CODES[0]
                    break
        ticket.log_decision("RELEASE" if outcome.released else "DIVERT", codes, now_ms)
        if outcome.released:
            ticket.deadline_ms = 0  # a released ticket's window has nothing left to close
            group.released.append(self._remembered(outcome.ebp_code, ticket))
        parked, ticket.parked = ticket.parked, []
        for record in parked:
            origin = (
                Origin(record.cop_code, record.message_guid, record.node)
                if record.cop_code is not None
                else None
            )
            incoming = Incoming(record.doc_type, record.key, record.raw, _source(record), origin)
            doc = decode_document(record.doc_type, record.raw, self.rules.max_document_bytes)
            self.on_document(group, incoming, doc, now_ms)
        return True

    def _remembered(self, ebp: str, ticket: Ticket) -> Released:
        logistics = self._decode(ticket.logistics, "logistics", Logistics)
        assert logistics is not None  # noqa: S101 - a released ticket is complete
        return Released(
            ebp,
            logistics.logisticsCode,
            logistics.logisticsNo,
            ticket.first_seen_ms + self.rules.released_horizon_ms,
            b"".join(digest(guid) for guid in ticket.guids),
        )

    def on_timer(self, group: Group, until_ms: int, now_ms: int | None = None) -> bool:
        """Close the windows that closed by ``until_ms`` (arrival time: every record that
        arrived before it has been applied), and forget tickets past their retention and
        released tickets past the horizon; the decisions are made at ``now_ms`` (default
        ``until_ms``). Return whether the group changed (a timer left stale by a restore
        changes nothing)."""
        now_ms = until_ms if now_ms is None else now_ms
        changed = False
        for ebp, ticket in list(group.tickets.items()):
            if ticket.deadline_ms and ticket.deadline_ms <= until_ms:
                ticket.deadline_ms = 0
                changed = True
                if not ticket.complete() and ticket.status == OPEN:
                    missing = ticket.missing()
                    reason = Reason(
                        "MISSING_DOCUMENTS",
                        f"the window closed without the {', '.join(missing)}",
                    )
                    self._decide_divert(group, ebp, ticket, [reason], now_ms)
            if ticket.expires_ms <= until_ms:  # after its window's decision, if both are due
                for kind in DOC_TYPES:
                    self._drop(getattr(ticket, kind))
                del group.tickets[ebp]
                changed = True
        if any(entry.expires_ms <= until_ms for entry in group.released):
            group.released = [entry for entry in group.released if entry.expires_ms > until_ms]
            changed = True
        if group.unheld is not None and group.unheld.expires_ms <= until_ms:
            group.unheld = None
            changed = True
        return changed

    # -- reviews --------------------------------------------------------------------------

    def on_review(self, group: Group, review: Review, arrived_ms: int, now_ms: int) -> bool:
        """Apply one reviewer's action (docs/contract.md, "Reviews"): emit its result and the
        decision it makes, or, for a RELEASE, the ledger request that makes it (the ledger
        gives that result). ``arrived_ms``: when the review arrived. Return whether the group
        changed (a review of no ticket, or a repeated one, changes nothing)."""
        self._at = max(arrived_ms, self.floor_ms)
        tid = review.ticketId
        ebp = review.ebp_code
        ticket = group.tickets.get(ebp)
        if ticket is None and any(entry.ebp_code == ebp for entry in group.released):
            detail = f"ticket {tid} was released; only customs' cancel or return apply"
            self._review_result(review, now_ms, detail, "TICKET_RELEASED")
            return False
        if ticket is None:
            detail = f"no ticket {tid}: never seen, or forgotten after its retention"
            self._review_result(review, now_ms, detail, "UNKNOWN_TICKET")
            return False
        if ticket.status == RELEASED:  # settled: nothing about it changes, not even its log
            detail = (
                f"ticket {tid} is released (revision {ticket.revision}); only customs' cancel "
                "or return apply"
            )
            self._review_result(review, now_ms, detail, "TICKET_RELEASED")
            return False
        done = next((r for r in ticket.reviews if r.review_id == review.reviewId), None)
        if done is not None:
            detail = (
                f"review {review.reviewId} ({done.action} of revision {done.revision} by "
                f"{done.reviewer}) was handled at {iso_ms(done.at_ms)}; that result stands"
            )
            self._review_result(review, now_ms, detail, "DUPLICATE_REVIEW")
            return False
        refusal = self._review_refusal(ticket, review)
        if refusal is not None:
            code, detail = refusal
            ticket.log_review(review, code, now_ms)
            self._review_result(review, now_ms, detail, code)
            return True
        ticket.log_review(review, "", now_ms)
        if review.action == "RELEASE":
            self._release_by_review(group, ebp, ticket, review, now_ms)
        else:
            self._divert_by_review(group, ebp, ticket, review, now_ms)
        return True

    @staticmethod
    def _review_refusal(ticket: Ticket, review: Review) -> tuple[ReviewRefusal, str] | None:
        """Why the open, pending or closed ticket refuses the review, if it does (in the
        contract's order)."""
        tid, revision = review.ticketId, ticket.revision
        if ticket.status == CLOSED:
            closer = next((r for r in reversed(ticket.reviews) if r.action == "CONFIRM"), None)
            by = f" by {closer.reviewer} (review {closer.review_id})" if closer else ""
            return "TICKET_CLOSED", f"ticket {tid} was closed{by}: its divert stands"
        if review.revision != revision and revision > 0:  # (revision 0: not decided yet)
            return "STALE_REVISION", (
                f"the review names revision {review.revision}, but ticket {tid} is at revision "
                f"{revision} ({_describe(ticket)}): look at it again"
            )
        if ticket.diverted() is None:
            return "NOT_DIVERTED", (
                f"revision {revision} of ticket {tid} is not a divert ({_describe(ticket)})"
            )
        if review.action == "RELEASE" and not ticket.complete():
            return "INCOMPLETE_TICKET", (
                f"ticket {tid} has no {', '.join(ticket.missing())}: a release needs all three "
                "documents (request a correction instead)"
            )
        return None

    def _release_by_review(
        self, group: Group, ebp: str, ticket: Ticket, review: Review, now_ms: int
    ) -> None:
        """Override the divert: the release still goes through the buyer ledger."""
        order, payment, logistics = self._decode_all(ticket)
        evaluation = evaluate(order, payment, logistics, self.rules.limits)
        ticket.revision += 1
        decision = self._decision(group, ebp, ticket, now_ms, order, payment, logistics)
        decision.dutiableValue = evaluation.dutiable_value
        decision.fullTax = evaluation.full_tax
        self._sight(decision, ticket, order)
        _mark_reviewed(decision, review)
        self._request_release(ticket, order, decision)

    def _divert_by_review(
        self, group: Group, ebp: str, ticket: Ticket, review: Review, now_ms: int
    ) -> None:
        """CONFIRM (the divert stands, the ticket closes) or REQUEST_CORRECTION (it stays
        open for corrected documents): a new divert carrying the reviewed one's reasons."""
        diverted = ticket.diverted()
        assert diverted is not None  # noqa: S101 - _review_refusal checked it
        why = (
            "the divert stands"
            if review.action == "CONFIRM"
            else "corrected documents are requested"
        )
        reasons = [
            Reason(_divert_code(code), f"{code} on revision {diverted.revision}: {why}")
            for code in diverted.reasons
        ]
        self._decide_divert(group, ebp, ticket, reasons, now_ms, review)
        if review.action == "CONFIRM":
            ticket.status = CLOSED
            ticket.deadline_ms = 0  # a closed ticket's window has nothing left to close
        self._review_result(review, now_ms, why, None, "DIVERT", ticket.revision)

    def _review_result(
        self,
        review: Review,
        now_ms: int,
        detail: str,
        code: ReviewRefusal | None,
        decision: Literal["RELEASE", "DIVERT"] | None = None,
        decision_revision: int | None = None,
    ) -> None:
        self.emitted.append(
            ReviewResult.of(review, iso_ms(now_ms), detail, code, decision, decision_revision)
        )

    def _reject(
        self,
        record: Incoming,
        doc: Document,
        code: RejectionCode,
        detail: str,
        ticket: str,
        now_ms: int,
    ) -> None:
        rejection = reject(record, doc, code, detail)
        self.emitted.append(KeyedRejection(record.key, rejection))
        origin = record.origin
        self.emitted.append(
            returned(
                rejection,
                cop_code=origin.cop_code if origin else None,
                xml=origin is not None,
                ticket=ticket,
                now_ms=now_ms,
            )
        )


def _mark_reviewed(decision: Decision, review: Review) -> None:
    decision.reviewId, decision.reviewAction = review.reviewId, review.action
    decision.reviewedBy, decision.reviewNote = review.reviewer, review.note


def _divert_code(code: str) -> DivertCode:
    assert code in get_args(DivertCode)  # noqa: S101 - logged from a Reason's code
    return code  # type: ignore[return-value]


def _describe(ticket: Ticket) -> str:
    """A ticket's state, for a reviewer: its current revision's decision or where it is."""
    if ticket.status == PENDING:
        return "at the buyer ledger"
    last = ticket.decisions[-1] if ticket.decisions else None
    if last is None or last.revision != ticket.revision:
        return "open, not decided yet"
    codes = f" {', '.join(last.reasons)}" if last.reasons else ""
    return f"{last.decision}{codes}"


def _park(record: Incoming) -> Parked:
    source, origin = record.source, record.origin
    parked = Parked(
        record.doc_type,
        record.key,
        record.value or b"",
        source.topic,
        source.partition,
        source.offset,
        source.timestamp,
    )
    if origin is not None:
        parked.cop_code, parked.message_guid = origin.cop_code, origin.message_guid
        parked.node = origin.node
    return parked


def _source(record: Parked) -> Source:
    return Source(record.topic, record.partition, record.offset, record.timestamp)


def _open_platform_tickets(group: Group) -> list[str]:
    """The platform codes of the group's tickets not released (a waybill may still join)."""
    return [ebp for ebp, t in group.tickets.items() if ebp and t.status != RELEASED]


def _dutiable(order: Order, logistics: Logistics | None) -> Decimal:
    if logistics is not None:
        return dutiable_value(order, logistics)
    return order.goodsValue + order.freight  # a missing waybill counts insuredFee 0
