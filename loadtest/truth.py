"""The load-test plan and its ground truth: what to send when, and what sandan must answer.

A :class:`Plan` is pure data: the records to produce (each with its send time in seconds from the
start of the run), and the outcomes docs/contract.md (with its "choices" section) requires: per
ticket, one :class:`ExpectedDecision` per revision; per rejected record, an
:class:`ExpectedRejection`. :class:`FaultMix` says how often each fault kind is planned:

========================  ===================================================================
amount_mismatch           amountPaid off (0.01, 1, a coupon): DIVERT AMOUNT_MISMATCH
order_arithmetic          acturalPaid off / tax left out / goodsValue != sum of lines (payment
                          follows acturalPaid): DIVERT ORDER_ARITHMETIC
line_total                one line's totalPrice != price x qty: DIVERT ORDER_ARITHMETIC
payer_mismatch            payer another person, another ID or name: DIVERT PAYER_MISMATCH
payment_reference         order's payTransactionId or payCode differs: DIVERT
                          PAYMENT_REFERENCE_MISMATCH
consignee_mismatch        waybill consignee/phone/address differs (a character, trailing space,
                          full-width digits, no province): DIVERT CONSIGNEE_MISMATCH
invalid_buyer_id          wrong check char, impossible date, lower-case x, 15 digits (payer the
                          same): DIVERT INVALID_BUYER_ID
single_limit              dutiable > 5000, not one item of qty 1 (first cent over, qty 2, over by
                          insuredFee), or one item over 26000: DIVERT SINGLE_LIMIT_EXCEEDED
full_tax                  one item, qty 1, dutiable 5000.01..26000: RELEASE with fullTax
annual_limit              new buyer: ticket A (one item, fullTax) released, then ticket B (sent
                          settle after A) past 26000 in the year: DIVERT ANNUAL_LIMIT_EXCEEDED;
                          A + B exactly 26000: RELEASE
multiple                  2-3 rule faults at once: DIVERT with every code
missing_document          kinds never sent: DIVERT MISSING_DOCUMENTS when the window closes
                          (waybill only: ticket ":orderNo", missing order+payment)
late_document             one kind sent window + settle late: DIVERT MISSING_DOCUMENTS, RELEASE
duplicate                 a second appType=1 (new guid) after release: DUPLICATE; released once
redelivery                the same bytes again (one or all three records): nothing
stale_change              appType=2|3 with appTime not newer than the stored one, before the
                          ticket completes: STALE; then RELEASE
change_after_divert       a change (or delete + resend) fixing the fault: DIVERT, then RELEASE;
                          or a change still wrong: DIVERT AMOUNT_MISMATCH twice
change_after_release      appType=2|3 after release: TICKET_RELEASED; released once
unknown_document          appType=2|3 of a document not held, alone (no ticket) or before the
                          ticket completes: UNKNOWN_DOCUMENT
draft                     appStatus=1 copies, sometimes redelivered or alone: DRAFT each time
schema                    garbage (text, GBK, XML, truncated, wrong type, currency 840, too
                          long...): SCHEMA with the guid where readable
ambiguous_waybill         two platforms' order+payment share an orderNo, then a waybill without
                          ebpCode: each DIVERT AMBIGUOUS_WAYBILL (missing logistics), then
                          MISSING_DOCUMENTS; ticket ":orderNo" DIVERT MISSING_DOCUMENTS
alert_id_consignees       a new buyer's clean tickets to ALERT_CONSIGNEES + 1 consignees (names,
                          addresses, or both), some written twice in forms that normalise equal
                          (spaces, full-width, case): each RELEASE, one ID_MANY_CONSIGNEES alert;
                          a near miss (ALERT_CONSIGNEES of them, however written): no alert
alert_address_ids         ALERT_BUYERS + 1 new buyers' clean tickets to one drop point's address,
                          telephone, or both (written in forms that normalise equal): each
                          RELEASE, one ADDRESS_MANY_IDS alert per key; a near miss (ALERT_BUYERS
                          buyers, one of them twice): no alert
alert_split_orders        a new buyer's 2-3 clean orders to one consignee, each within 5000,
                          together above it (the first cent over, each at 5000...): each RELEASE,
                          one SPLIT_ORDERS alert; a near miss (exactly 5000 together, another
                          address, or one order a fullTax single item above 5000): no alert
========================  ===================================================================

Alerts (``cbec.alert``, streams/alerts.py): a run sets every alert window to ``ALERT_WINDOW``,
far longer than itself, so the whole run is one window and a plan's expected alerts follow from
counting alone (loadtest.alerts, the oracle): every key, over all the tickets the plan decides
with an order, whose distinct values cross the pattern's threshold must be alerted on, whatever
slot kind made it cross (a returning buyer's repeated orders, gifts, or a planted pattern).
:class:`ExpectedAlert` holds, per pattern and key, the tickets an alert's evidence may name and
the values the pattern counts of each. An alert mutes its pattern on its key for a window after
its evidence, so each of those keys is alerted on exactly once in a run.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from schemas.documents import DocType

__all__ = (
    "ALERT_BUYERS",
    "ALERT_CONSIGNEES",
    "ALERT_WINDOW",
    "DEFAULT_MIX",
    "AlertTicket",
    "ExpectedAlert",
    "ExpectedDecision",
    "ExpectedRejection",
    "FaultMix",
    "Plan",
    "PlannedRecord",
    "pattern_key",
)

# The alert settings a run gives its workers (SANDAN_ALERT_*) and plans for: the thresholds are
# sandan's defaults; every window is 30 days, longer than any run, so a run is one window.
ALERT_CONSIGNEES = 3  # ID_MANY_CONSIGNEES: more than this many consignees or addresses
ALERT_BUYERS = 5  # ADDRESS_MANY_IDS: more than this many buyer IDs
ALERT_WINDOW = 30 * 86400.0  # seconds


class PlannedRecord(msgspec.Struct, frozen=True):
    """One record to produce: at ``at`` seconds from the start, to the topic of ``doc_type``.

    ``ticket_id`` is the ticket the record belongs to in the ground truth, or None when it belongs
    to no decided ticket (undecodable garbage, a draft or a change of an unknown ticket on its own).
    """

    at: float
    doc_type: DocType
    key: bytes | None
    value: bytes
    ticket_id: str | None


class ExpectedDecision(msgspec.Struct, frozen=True):
    """The decision sandan must make on one ticket revision.

    ``codes`` are the distinct reason codes, sorted (empty for RELEASE); ``missing`` the missing
    document kinds, sorted. ``full_tax`` is the ``fullTax`` flag a RELEASE must carry.
    """

    ticket_id: str
    revision: int
    decision: Literal["RELEASE", "DIVERT"]
    codes: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    full_tax: bool = False


class ExpectedRejection(msgspec.Struct, frozen=True):
    """A record sandan must reject on ``cbec.rejected``; ``guid`` None where it cannot be read."""

    code: str
    doc_type: DocType
    guid: str | None


class AlertTicket(msgspec.Struct, frozen=True, array_like=True):
    """One ticket on an alert key, with what the key's pattern counts of it, each value
    normalised (as schemas.alerts compares) and named by a 64-bit digest (loadtest.alerts): on a
    buyer key ``a`` the consignee's name and ``b`` the address; on an address or telephone key
    ``a`` the buyer ID. ``values``: SPLIT_ORDERS only, the dutiable value of each decided
    revision that held the order, the last one final (a waybill that came late adds its
    insuredFee)."""

    ticket: str
    a: int
    b: int = 0
    values: tuple[Decimal, ...] = ()


class ExpectedAlert(msgspec.Struct, frozen=True, kw_only=True):
    """A pattern's key that must be alerted on, once in a run (see loadtest.verify).

    ``tickets``: every ticket of the plan on the key that the pattern counts (SPLIT_ORDERS: those
    within the single limit), by ticket id; an alert's evidence is some of them. ``planted``: one
    of the tickets is of an ``alert_*`` slot.
    """

    pattern: str
    key_kind: str
    key_digest: str  # hex BLAKE2b-16 of the normalised key, as the alert's keyDigest
    threshold: int  # more than this many distinct values; SPLIT_ORDERS 1
    tickets: tuple[AlertTicket, ...]
    planted: bool = False


def pattern_key(pattern: str, key_kind: str, key_digest: str) -> str:
    """The key of :attr:`Plan.alerts`: one pattern on one key."""
    return f"{pattern}:{key_kind}:{key_digest}"


class Plan(msgspec.Struct):
    """Records sorted by ``at``; decisions by ticket id, revisions ascending; rejections.

    ``tickets`` is the number of tickets that must be decided (``len(decisions)``): a fault may
    involve several tickets (annual limit: 2, ambiguous waybill: 3) or none (a lone garbage record).
    ``kinds`` names the fault kind behind each decided ticket ("clean" for none); ``faults`` counts
    the planned slots per kind. ``alerts``: the keys that must be alerted on (by
    :func:`pattern_key`).
    """

    records: list[PlannedRecord]
    decisions: dict[str, list[ExpectedDecision]]
    rejections: list[ExpectedRejection]
    tickets: int
    kinds: dict[str, str] = {}
    faults: dict[str, int] = {}
    alerts: dict[str, ExpectedAlert] = {}


class FaultMix(msgspec.Struct, frozen=True, kw_only=True):
    """Probability per planned ticket of each fault kind; the rest (``1 - total``) is clean."""

    amount_mismatch: float = 0.0
    order_arithmetic: float = 0.0
    line_total: float = 0.0
    payer_mismatch: float = 0.0
    payment_reference: float = 0.0
    consignee_mismatch: float = 0.0
    invalid_buyer_id: float = 0.0
    single_limit: float = 0.0
    full_tax: float = 0.0
    annual_limit: float = 0.0
    multiple: float = 0.0
    missing_document: float = 0.0
    late_document: float = 0.0
    duplicate: float = 0.0
    redelivery: float = 0.0
    stale_change: float = 0.0
    change_after_divert: float = 0.0
    change_after_release: float = 0.0
    unknown_document: float = 0.0
    draft: float = 0.0
    schema: float = 0.0
    ambiguous_waybill: float = 0.0
    alert_id_consignees: float = 0.0
    alert_address_ids: float = 0.0
    alert_split_orders: float = 0.0

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            if not 0.0 <= getattr(self, name) <= 1.0:
                msg = f"FaultMix.{name} must be a probability in [0, 1]"
                raise ValueError(msg)
        if self.total > 1.0 + 1e-9:
            msg = f"FaultMix probabilities sum to {self.total:.6f}, more than 1"
            raise ValueError(msg)

    @property
    def total(self) -> float:
        """The probability that a planned ticket carries a fault."""
        return float(sum(getattr(self, name) for name in self.__struct_fields__))

    def items(self) -> list[tuple[str, float]]:
        """(kind, probability) in declaration order."""
        return [(name, getattr(self, name)) for name in self.__struct_fields__]

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        """The fault kinds' names."""
        return cls.__struct_fields__

    @classmethod
    def even(cls, share: float = 0.6) -> FaultMix:
        """Every kind equally likely, faults taking ``share`` of all slots: for correctness runs."""
        each = share / len(cls.__struct_fields__)
        return cls(**dict.fromkeys(cls.__struct_fields__, each))


# ~97 % clean; faults skewed as domain.md §6 suggests: late or missing documents first, then
# consignee formatting, amounts and redeliveries/duplicates/stale versions.
DEFAULT_MIX = FaultMix(
    missing_document=0.006,
    late_document=0.004,
    consignee_mismatch=0.004,
    amount_mismatch=0.003,
    redelivery=0.003,
    duplicate=0.002,
    stale_change=0.001,
    schema=0.001,
    payer_mismatch=0.001,
    payment_reference=0.0005,
    order_arithmetic=0.0005,
    line_total=0.0003,
    invalid_buyer_id=0.0005,
    single_limit=0.0005,
    full_tax=0.0005,
    annual_limit=0.0002,
    multiple=0.0002,
    change_after_divert=0.0005,
    change_after_release=0.0005,
    unknown_document=0.0003,
    draft=0.0005,
    ambiguous_waybill=0.0001,
    alert_id_consignees=0.0002,
    alert_address_ids=0.0001,
    alert_split_orders=0.0002,
)
