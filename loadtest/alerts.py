"""The alert oracle: the pattern alerts a plan must raise, from the plan's records and truth.

Independent of sandan's alert stage (streams/alerts.py): it reads the orders and waybills the
plan sends, keeps those the engine applies (not rejected, by guid; a delete removes), and for
each ticket the plan decides takes its **sighting**: the order it holds and the dutiable value of
every decided revision that held it (a revision's ``missing`` says which documents it had; a
ticket whose order is never applied, like the waybill-only ``:orderNo``, has none). A run's
alert windows are longer than the run (truth.ALERT_WINDOW), so each key's whole run is one
window and what must be alerted on is a matter of counting over all of it:

- a buyer key (the normalised ``buyerIdNumber``) with more than ``consignees`` distinct
  consignee names, or distinct addresses: ``ID_MANY_CONSIGNEES``;
- an address key, and a telephone key, with more than ``buyers`` distinct buyer IDs:
  ``ADDRESS_MANY_IDS``;
- a buyer key with two or more orders within the single limit to one consignee (name and
  address) adding up to more than it: ``SPLIT_ORDERS``.

Values are compared as schemas.alerts normalises them (the contract's definition), and a key is
named by the hex BLAKE2b-16 digest of its normalised value, as an alert's ``keyDigest``. Any
subset of a key's tickets crosses only if all of them do, so every alert a correct engine raises
is on one of these keys; and since an alert mutes its pattern on its key for a window after its
evidence (streams/alerts.py), each of these keys gets exactly one.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal

import msgspec

from loadtest.truth import (
    ALERT_BUYERS,
    ALERT_CONSIGNEES,
    AlertTicket,
    ExpectedAlert,
    ExpectedDecision,
    ExpectedRejection,
    PlannedRecord,
    pattern_key,
)
from matchers.limits import SINGLE_LIMIT
from schemas.alerts import normalised, normalised_telephone

__all__ = (
    "PlannedSighting",
    "crosses",
    "distinct_count",
    "expected_alerts",
    "key_digest",
    "plan_sightings",
    "value_digest",
)

_DIGEST_BYTES = 16
_ZERO = Decimal(0)


class PlannedSighting(msgspec.Struct, frozen=True):
    """A decided ticket as the alert patterns see it: its order's fields as sent, and the
    dutiable value of each decided revision that held the order (the last one final)."""

    ticket: str
    buyer: str
    consignee: str
    address: str
    telephone: str
    values: tuple[Decimal, ...]


class _Order(msgspec.Struct, rename="camel"):
    guid: str
    app_type: str
    app_status: str
    buyer_id_number: str
    consignee: str
    consignee_address: str
    consignee_telephone: str
    goods_value: Decimal
    freight: Decimal


class _Waybill(msgspec.Struct, rename="camel"):
    guid: str
    app_type: str
    app_status: str
    insured_fee: Decimal | None = None


_decode_order = msgspec.json.Decoder(_Order).decode
_decode_waybill = msgspec.json.Decoder(_Waybill).decode


def key_digest(value: str) -> str:
    """The hex digest an alert names a key by (``value`` already normalised)."""
    return hashlib.blake2b(value.encode(), digest_size=_DIGEST_BYTES).hexdigest()


def value_digest(value: str) -> int:
    """A 64-bit digest of a normalised value a pattern counts (AlertTicket.a and .b)."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "big")


def plan_sightings(
    records: Iterable[PlannedRecord],
    decisions: Mapping[str, list[ExpectedDecision]],
    rejections: Iterable[ExpectedRejection],
) -> list[PlannedSighting]:
    """The sighting of every ticket of ``decisions`` decided with an order (``records`` in the
    order they are sent): the last order applied, and a dutiable value per revision holding it.

    No fault of the generator changes an applied order (every later order version is rejected),
    so all of a ticket's revisions carry the same order; one that did would need its values per
    revision here (the contract counts each for the distinct counts, the latest for
    SPLIT_ORDERS)."""
    rejected = {r.guid for r in rejections if r.guid is not None}
    orders: dict[str, _Order | None] = {}
    waybills: dict[str, _Waybill | None] = {}
    for record in records:
        ticket = record.ticket_id
        if ticket is None or ticket not in decisions or record.doc_type == "payment":
            continue
        try:
            if record.doc_type == "order":
                sent = _decode_order(record.value)
                if sent.app_status == "2" and sent.guid not in rejected:
                    orders[ticket] = None if sent.app_type == "3" else sent
            else:
                shipped = _decode_waybill(record.value)
                if shipped.app_status == "2" and shipped.guid not in rejected:
                    waybills[ticket] = None if shipped.app_type == "3" else shipped
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue  # not a document the engine applies
    out: list[PlannedSighting] = []
    for ticket, revisions in decisions.items():
        order = orders.get(ticket)
        if order is None:
            continue
        waybill = waybills.get(ticket)
        insured = (waybill.insured_fee or _ZERO) if waybill is not None else _ZERO
        values = tuple(
            order.goods_value + order.freight + (_ZERO if "logistics" in d.missing else insured)
            for d in revisions
            if "order" not in d.missing
        )
        if values:
            out.append(
                PlannedSighting(
                    ticket,
                    order.buyer_id_number,
                    order.consignee,
                    order.consignee_address,
                    order.consignee_telephone,
                    values,
                )
            )
    return out


def distinct_count(pattern: str, tickets: Sequence[AlertTicket]) -> int:
    """What an alert of ``pattern`` over ``tickets`` counts: distinct consignees or addresses
    (the larger), distinct buyers, or (SPLIT_ORDERS) orders."""
    if pattern == "ID_MANY_CONSIGNEES":
        return max(len({t.a for t in tickets}), len({t.b for t in tickets}))
    if pattern == "ADDRESS_MANY_IDS":
        return len({t.a for t in tickets})
    return len(tickets)


def _final(ticket: AlertTicket) -> Decimal:
    return ticket.values[-1]


def crosses(
    pattern: str,
    tickets: Sequence[AlertTicket],
    threshold: int,
    limit: Decimal = SINGLE_LIMIT,
    value: Callable[[AlertTicket], Decimal] = _final,
) -> bool:
    """Whether ``tickets`` (all of one key) cross the pattern's threshold together: for
    SPLIT_ORDERS, whether two or more of them to one consignee add up to more than ``limit``
    (each ticket's ``value``: by default its final one)."""
    if pattern != "SPLIT_ORDERS":
        return distinct_count(pattern, tickets) > threshold
    groups: defaultdict[tuple[int, int], list[Decimal]] = defaultdict(list)
    for ticket in tickets:
        groups[ticket.a, ticket.b].append(value(ticket))
    return any(len(values) > 1 and sum(values, _ZERO) > limit for values in groups.values())


def expected_alerts(
    sightings: Iterable[PlannedSighting],
    kinds: Mapping[str, str],
    *,
    consignees: int = ALERT_CONSIGNEES,
    buyers: int = ALERT_BUYERS,
    limit: Decimal = SINGLE_LIMIT,
) -> dict[str, ExpectedAlert]:
    """The keys a whole-run window must alert on, by truth.pattern_key (``kinds``: each
    ticket's slot kind, to mark the planted keys)."""
    by_buyer: defaultdict[str, list[AlertTicket]] = defaultdict(list)
    by_address: defaultdict[str, list[AlertTicket]] = defaultdict(list)
    by_telephone: defaultdict[str, list[AlertTicket]] = defaultdict(list)
    for s in sightings:
        buyer, address = normalised(s.buyer), normalised(s.address)
        telephone = normalised_telephone(s.telephone)
        buyer_digest = value_digest(buyer)
        if buyer:
            name = value_digest(normalised(s.consignee))
            by_buyer[buyer].append(AlertTicket(s.ticket, name, value_digest(address), s.values))
        if address:
            by_address[address].append(AlertTicket(s.ticket, buyer_digest))
        if telephone:
            by_telephone[telephone].append(AlertTicket(s.ticket, buyer_digest))
    out: dict[str, ExpectedAlert] = {}

    def expect(pattern: str, kind: str, key: str, tickets: list[AlertTicket]) -> None:
        digest = key_digest(key)
        planted = any(kinds.get(t.ticket, "").startswith("alert_") for t in tickets)
        threshold = {"ID_MANY_CONSIGNEES": consignees, "ADDRESS_MANY_IDS": buyers}.get(pattern, 1)
        out[pattern_key(pattern, kind, digest)] = ExpectedAlert(
            pattern=pattern,
            key_kind=kind,
            key_digest=digest,
            threshold=threshold,
            tickets=tuple(sorted(tickets, key=lambda t: t.ticket)),
            planted=planted,
        )

    for key, tickets in by_buyer.items():
        if crosses("ID_MANY_CONSIGNEES", tickets, consignees):
            counted = [AlertTicket(t.ticket, t.a, t.b) for t in tickets]
            expect("ID_MANY_CONSIGNEES", "buyerIdNumber", key, counted)
        within = [t for t in tickets if _final(t) <= limit]
        if crosses("SPLIT_ORDERS", within, 1, limit):
            expect("SPLIT_ORDERS", "buyerIdNumber", key, within)
    for kind, keys in (("consigneeAddress", by_address), ("consigneeTelephone", by_telephone)):
        for key, tickets in keys.items():
            if crosses("ADDRESS_MANY_IDS", tickets, buyers):
                expect("ADDRESS_MANY_IDS", kind, key, tickets)
    return out
