"""How each kind of slot is planned: the records it sends and the outcomes it expects.

One function per kind (``HANDLERS``), each ``(planner, start)``; loadtest.truth's table says what
each expects and why. They follow docs/contract.md's choices: the order of the input checks (a
change on a released ticket is ``TICKET_RELEASED`` before anything else, so ``STALE`` and
``UNKNOWN_DOCUMENT`` are planned on tickets not yet complete), and waybill placement (a waybill
without ``ebpCode`` joins only an open ticket, so every waybill sent after a release names it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

import msgspec

from loadtest import ids
from loadtest.ids import CENT, ZERO, yuan
from loadtest.truth import ALERT_BUYERS, ALERT_CONSIGNEES, PlannedRecord
from matchers.limits import ANNUAL_LIMIT, SINGLE_LIMIT
from schemas.alerts import normalised
from schemas.codec import decode_document, readable_fields
from schemas.documents import DOC_TYPES, DocType
from schemas.errors import SchemaError

if TYPE_CHECKING:
    from loadtest.generator import Planner, Ticket

__all__ = ("HANDLERS", "RULE_CODES", "Handler")

Handler = Callable[["Planner", float], None]
# Rule faults by modifier, in the order they are applied (the amount last: others reset it).
RULE_CODES = {
    "invalid": "INVALID_BUYER_ID",
    "arith": "ORDER_ARITHMETIC",
    "line": "ORDER_ARITHMETIC",
    "payref": "PAYMENT_REFERENCE_MISMATCH",
    "payer": "PAYER_MISMATCH",
    "consignee": "CONSIGNEE_MISMATCH",
    "amount": "AMOUNT_MISMATCH",
}
_MULTIPLE = ("invalid", "line", "payref", "payer", "consignee", "amount")


def clean(p: Planner, start: float) -> None:
    """Three matching documents: RELEASE."""
    t = p.ticket(start)
    p.spread(t, start)
    p.decide(t.ticket_id, "RELEASE")


def rule_fault(p: Planner, start: float, mods: tuple[str, ...]) -> None:
    """A complete ticket breaking the rules of ``mods`` (RULE_CODES): DIVERT with each code."""
    mods = tuple(sorted(mods, key=list(RULE_CODES).index))
    buyer = p.person(ids.invalid_resident_id(p.rng)) if "invalid" in mods else None
    t = p.ticket(start, buyer=buyer, names_payment=True if "payref" in mods else None)
    for mod in mods:
        if mod != "invalid":
            _BREAKERS[mod](p, t)
    p.spread(t, start)
    p.decide(t.ticket_id, "DIVERT", tuple(RULE_CODES[mod] for mod in mods))


def _break_amount(p: Planner, t: Ticket) -> None:
    payment = t.docs["payment"]
    off = p.rng.choice((CENT, -CENT, Decimal(1), Decimal(-1), -yuan(p.rng, 5, 30)))
    paid = payment["amountPaid"] + off
    payment["amountPaid"] = paid if paid > 0 else payment["amountPaid"] + CENT


def _break_arith(p: Planner, t: Ticket) -> None:
    order = t.docs["order"]
    variant = p.rng.randrange(3)
    if variant == 0 or (variant == 1 and not order["taxTotal"]):
        order["acturalPaid"] += p.rng.choice((CENT, Decimal(1)))
    elif variant == 1:  # the tax left out
        order["acturalPaid"] -= order["taxTotal"]
    else:  # goodsValue is not the sum of the lines; acturalPaid follows goodsValue
        order["goodsValue"] += p.rng.choice((CENT, Decimal(1), Decimal(10)))
        paid = order["goodsValue"] + order["freight"] + order["taxTotal"] - order["discount"]
        order["acturalPaid"] = paid
    t.docs["payment"]["amountPaid"] = order["acturalPaid"]


def _break_line(p: Planner, t: Ticket) -> None:
    line = p.rng.choice(t.docs["order"]["orderList"])
    if p.chance(0.5):
        line["price"] += CENT
    else:  # a wrong line total, summed into goodsValue and paid as such
        line["totalPrice"] += CENT
        p.settle_amounts(t)


def _break_payer(p: Planner, t: Ticket) -> None:
    payment = t.docs["payment"]
    variant = p.rng.randrange(3)
    if variant == 0:  # a relative pays
        other = p.person()
        payment["payerName"], payment["payerIdNumber"] = other.name, other.id_number
    elif variant == 1:
        payment["payerIdNumber"] = p.person().id_number
    else:
        payment["payerName"] = ids.alter_char(p.rng, payment["payerName"])


def _break_payref(p: Planner, t: Ticket) -> None:
    order = t.docs["order"]
    if p.chance(0.6):
        order["payTransactionId"] = ids.alter_digit(p.rng, order["payTransactionId"])
    else:
        other = p.rng.choice([f for f in ids.PAY_FIRMS if f.code != order["payCode"]])
        order["payCode"], order["payName"] = other.code, other.name


def _break_consignee(p: Planner, t: Ticket) -> None:
    waybill, rng = t.docs["logistics"], p.rng
    match rng.randrange(6):
        case 0:
            waybill["consignee"] = ids.alter_char(rng, waybill["consignee"])
        case 1:
            waybill["consigneeAddress"] += " "
        case 2:
            waybill["consigneeTelephone"] = ids.alter_digit(rng, waybill["consigneeTelephone"])
        case 3:
            waybill["consigneeTelephone"] = ids.full_width(waybill["consigneeTelephone"])
        case 4:
            waybill["consigneeAddress"] = ids.full_width(waybill["consigneeAddress"])
        case _:  # province and city left out
            waybill["consigneeAddress"] = waybill["consigneeAddress"].split("市", 1)[1]


_BREAKERS: dict[str, Callable[[Planner, Ticket], None]] = {
    "amount": _break_amount,
    "arith": _break_arith,
    "line": _break_line,
    "payer": _break_payer,
    "payref": _break_payref,
    "consignee": _break_consignee,
}


def _limit_ticket(
    p: Planner,
    start: float,
    dutiable: Decimal,
    *,
    count: int,
    qty: int | None = None,
    buyer: ids.Person | None = None,
) -> Ticket:
    """A ticket of exactly ``dutiable`` in ``count`` lines (freight and insuredFee small), of
    ``buyer`` or a new person."""
    freight = yuan(p.rng, 0, 30) if p.chance(0.5) else ZERO
    insured = yuan(p.rng, 1, 10) if p.chance(0.3) else ZERO
    lines = p.lines(dutiable - freight - insured, count, qty)
    buyer = buyer or p.person()
    return p.ticket(start, buyer=buyer, lines=lines, freight=freight, insured=insured)


def single_limit(p: Planner, start: float) -> None:
    """Dutiable value over 5000 and not one item of qty 1 (or one item over 26000): DIVERT
    SINGLE_LIMIT_EXCEEDED."""
    rng = p.rng
    match rng.randrange(5):
        case 0:  # the first cent over
            t = _limit_ticket(p, start, SINGLE_LIMIT + CENT, count=rng.randint(2, 4))
        case 1:  # one line, quantity 2
            t = _limit_ticket(p, start, 2 * yuan(rng, 2500.01, 6000), count=1, qty=2)
        case 2:  # goods and freight within the limit, the insurance fee takes it over
            lines = p.lines(SINGLE_LIMIT - yuan(rng, 0, 15), rng.randint(2, 4))
            insured = yuan(rng, 20, 60)
            t = p.ticket(start, buyer=p.person(), lines=lines, freight=ZERO, insured=insured)
        case 3:  # one item, but above what the single-item exception allows (26000)
            t = _limit_ticket(p, start, ANNUAL_LIMIT + yuan(rng, 0.01, 9000), count=1, qty=1)
        case _:
            t = _limit_ticket(p, start, yuan(rng, 5000.01, 15000), count=rng.randint(2, 4))
    p.spread(t, start)
    p.decide(t.ticket_id, "DIVERT", ("SINGLE_LIMIT_EXCEEDED",))


def full_tax(p: Planner, start: float) -> None:
    """One item, quantity 1, dutiable 5000.01 to 26000 (both ends): RELEASE with fullTax."""
    edges = (ANNUAL_LIMIT, SINGLE_LIMIT + CENT)
    dutiable = p.rng.choice(edges) if p.chance(0.2) else yuan(p.rng, 5000.01, 20000)
    t = _limit_ticket(p, start, dutiable, count=1, qty=1)
    p.spread(t, start)
    p.decide(t.ticket_id, "RELEASE", full_tax=True)


def annual_limit(p: Planner, start: float) -> None:
    """A new buyer's ticket A (one item, fullTax) released, then ticket B past the year's 26000:
    DIVERT ANNUAL_LIMIT_EXCEEDED; with A + B exactly 26000, B is released."""
    rng, buyer = p.rng, p.person()
    draw = rng.randrange(10)
    if draw < 5:  # noqa: PLR2004 - two single items over 5000
        a = yuan(rng, 18000, 23000)
        b, count = ANNUAL_LIMIT - a + yuan(rng, 0.01, 3000), 1
    elif draw < 8:  # noqa: PLR2004 - B an ordinary basket within the single limit
        a = yuan(rng, 21000.01, 25000)
        b, count = yuan(rng, ANNUAL_LIMIT - a + CENT, SINGLE_LIMIT), rng.randint(2, 4)
    else:  # exactly the annual limit
        a = yuan(rng, 21000, 25000)
        b, count = ANNUAL_LIMIT - a, rng.randint(2, 3)
    first = p.ticket(start, buyer=buyer, lines=p.lines(a, 1, 1), freight=ZERO, insured=ZERO)
    later = p.spread(first, start) + p.settle
    p.decide(first.ticket_id, "RELEASE", full_tax=True)
    second = p.ticket(later, buyer=buyer, lines=p.lines(b, count, 1), freight=ZERO, insured=ZERO)
    p.spread(second, later)
    if a + b > ANNUAL_LIMIT:
        p.decide(second.ticket_id, "DIVERT", ("ANNUAL_LIMIT_EXCEEDED",))
    else:
        p.decide(second.ticket_id, "RELEASE", full_tax=b > SINGLE_LIMIT and count == 1)


_MISSING: tuple[tuple[DocType, ...], ...] = (
    ("logistics",),
    ("payment",),
    ("order",),
    ("order", "payment"),
    ("logistics", "payment"),
)


def missing_document(p: Planner, start: float) -> None:
    """Kinds never sent: DIVERT MISSING_DOCUMENTS when the window closes."""
    missing = p.rng.choices(_MISSING, (45, 33, 10, 8, 4))[0]
    t = p.ticket(start)
    if missing == ("order", "payment") and "ebpCode" not in t.docs["logistics"]:
        t.ticket_id = f":{t.docs['order']['orderNo']}"
    p.spread(t, start, tuple(k for k in DOC_TYPES if k not in missing))
    p.decide(t.ticket_id, "DIVERT", ("MISSING_DOCUMENTS",), missing)


def late_document(p: Planner, start: float) -> None:
    """One kind sent window + settle after the first: DIVERT MISSING_DOCUMENTS, then RELEASE."""
    late = p.rng.choices(DOC_TYPES, (10, 40, 50))[0]
    t = p.ticket(start)
    sent = [p.send_doc(t, k, start + p.uniform(p.max_delay)) for k in DOC_TYPES if k != late]
    first = min(record.at for record in sent)
    p.send_doc(t, late, first + p.window + p.settle + p.uniform(p.max_delay))
    p.decide(t.ticket_id, "DIVERT", ("MISSING_DOCUMENTS",), (late,))
    p.decide(t.ticket_id, "RELEASE")


def duplicate(p: Planner, start: float) -> None:
    """A second appType=1 (new guid, maybe other content) after release: DUPLICATE."""
    t = p.ticket(start)
    at = p.spread(t, start) + p.settle + p.uniform(p.max_delay)
    kind = p.rng.choice(DOC_TYPES)
    doc = p.follow(t, kind, "1", at)
    if p.chance(0.3):
        p.alter(kind, doc)
    p.send(at, kind, doc, t.ticket_id)
    p.reject("DUPLICATE", kind, doc["guid"])
    p.decide(t.ticket_id, "RELEASE")


def redelivery(p: Planner, start: float) -> None:
    """The same records again (same key and bytes), before or after release: nothing."""
    again = DOC_TYPES if p.chance(0.2) else (p.rng.choice(DOC_TYPES),)
    t = p.ticket(start, named=True if "logistics" in again else None)
    sent = [p.send_doc(t, k, start + p.uniform(p.max_delay)) for k in DOC_TYPES]
    done = max(record.at for record in sent)
    for record in sent:
        if record.doc_type in again:
            soon = record.at + p.uniform(p.settle)
            at = soon if p.chance(0.5) else done + p.settle + p.uniform(p.max_delay)
            p.records.append(msgspec.structs.replace(record, at=at))
    p.decide(t.ticket_id, "RELEASE")


def stale_change(p: Planner, start: float) -> None:
    """A change or delete not newer than the stored version, before completion: STALE."""
    kind = p.rng.choice(DOC_TYPES)
    t = p.ticket(start, named=True if kind == "logistics" else None)
    held = p.send_doc(t, kind, start + p.uniform(p.max_delay)).at
    sec = t.app[kind] - (0 if p.chance(0.2) else p.rng.randint(1, 3600))
    doc = p.follow(t, kind, "2" if p.chance(0.8) else "3", held, sec)
    p.alter(kind, doc)
    p.send(held + p.settle, kind, doc, t.ticket_id)
    p.reject("STALE", kind, doc["guid"])
    p.spread(t, held + 2 * p.settle, tuple(k for k in DOC_TYPES if k != kind))
    p.decide(t.ticket_id, "RELEASE")


def change_after_divert(p: Planner, start: float) -> None:
    """A diverted ticket corrected by a change (or a delete and a resend): DIVERT, RELEASE; or
    changed and still wrong: DIVERT twice."""
    draw = p.rng.randrange(20)
    resend, still_wrong = 8 <= draw < 12, draw >= 17  # noqa: PLR2004
    kind: DocType = "logistics" if 12 <= draw < 17 else "payment"  # noqa: PLR2004
    t = p.ticket(start)
    good = copy.deepcopy(t.docs[kind])
    _BREAKERS["consignee" if kind == "logistics" else "amount"](p, t)
    at = p.spread(t, start) + p.settle
    code = "CONSIGNEE_MISMATCH" if kind == "logistics" else "AMOUNT_MISMATCH"
    p.decide(t.ticket_id, "DIVERT", (code,))
    if resend:  # withdraw it, then send it anew
        p.send(at, kind, p.follow(t, kind, "3", at), t.ticket_id)
        at += p.settle
    doc = p.follow(t, kind, "1" if resend else "2", at)
    for field in ("amountPaid", "consignee", "consigneeTelephone", "consigneeAddress"):
        if field in good:
            doc[field] = good[field] + 2 if still_wrong and field == "amountPaid" else good[field]
    p.send(at, kind, doc, t.ticket_id)
    p.decide(t.ticket_id, "DIVERT" if still_wrong else "RELEASE", (code,) if still_wrong else ())


def change_after_release(p: Planner, start: float) -> None:
    """appType=2|3 after release: TICKET_RELEASED."""
    t = p.ticket(start)
    at = p.spread(t, start) + p.settle + p.uniform(p.max_delay)
    kind = p.rng.choice(DOC_TYPES)
    doc = p.follow(t, kind, "2" if p.chance(0.7) else "3", at)
    if doc["appType"] == "2":
        p.alter(kind, doc)
    p.send(at, kind, doc, t.ticket_id)
    p.reject("TICKET_RELEASED", kind, doc["guid"])
    p.decide(t.ticket_id, "RELEASE")


def unknown_document(p: Planner, start: float) -> None:
    """appType=2|3 of a document not held: UNKNOWN_DOCUMENT, alone (no ticket) or on an open
    ticket that then completes and is released."""
    pair: tuple[DocType, DocType] = ("order", "payment")
    held, other = pair if p.chance(0.5) else pair[::-1]
    t = p.ticket(start)
    if p.chance(0.5):  # nothing else of this ticket is ever sent
        doc = p.follow(t, held, p.rng.choice("23"), start)
        p.send(start, held, doc, None)
        p.reject("UNKNOWN_DOCUMENT", held, doc["guid"])
        return
    at = p.send_doc(t, held, start + p.uniform(p.max_delay)).at + p.settle
    doc = p.follow(t, other, p.rng.choice("23"), at)
    p.send(at, other, doc, t.ticket_id)
    p.reject("UNKNOWN_DOCUMENT", other, doc["guid"])
    p.spread(t, at + p.settle, (other, "logistics"))
    p.decide(t.ticket_id, "RELEASE")


def draft(p: Planner, start: float) -> None:
    """appStatus=1 copies, maybe redelivered, maybe alone: DRAFT for each."""
    t = p.ticket(start)
    kind = p.rng.choice(DOC_TYPES)
    alone = p.chance(0.15)
    doc = copy.deepcopy(t.docs[kind])
    doc |= {"guid": ids.guid(p.rng), "appStatus": "1", "appTime": p.stamp(int(start))}
    at = start + p.uniform(p.max_delay)
    record = p.send(at, kind, doc, None if alone else t.ticket_id)
    p.reject("DRAFT", kind, doc["guid"])
    if p.chance(0.3):
        p.records.append(msgspec.structs.replace(record, at=at + p.uniform(p.settle)))
        p.reject("DRAFT", kind, doc["guid"])
    if not alone:
        p.spread(t, start)
        p.decide(t.ticket_id, "RELEASE")


def schema(p: Planner, start: float) -> None:
    """A record that does not decode (beside a clean ticket, or alone): SCHEMA."""
    t = p.ticket(start)
    kind = p.rng.choice(DOC_TYPES)
    doc = copy.deepcopy(t.docs[kind])
    doc |= {"guid": ids.guid(p.rng), "appTime": p.stamp(int(start))}
    while True:  # until a variant applies to this document
        raw = ids.garbage(p.rng, kind, copy.deepcopy(doc))
        try:
            decode_document(kind, raw)
        except SchemaError:
            break
    key = str(doc["orderNo"]).encode() if p.chance(0.8) else None
    p.records.append(PlannedRecord(start + p.uniform(p.max_delay), kind, key, raw, None))
    # The engine reports the guid where the record lets it read one, as schemas.codec does.
    p.reject("SCHEMA", kind, readable_fields(raw).get("guid"))
    if p.chance(0.7):
        p.spread(t, start)
        p.decide(t.ticket_id, "RELEASE")


def ambiguous_waybill(p: Planner, start: float) -> None:
    """Two platforms' order+payment with one orderNo, then a waybill without ebpCode: each DIVERT
    AMBIGUOUS_WAYBILL, then MISSING_DOCUMENTS; the waybill's own ticket MISSING_DOCUMENTS."""
    order_no = p.unique("#############")
    platforms = p.rng.sample(ids.PLATFORMS, 2)
    pair = [p.ticket(start, platform=f, order_no=order_no, named=False) for f in platforms]
    at = max(p.spread(t, start, ("order", "payment")) for t in pair) + p.settle
    lone = f":{order_no}"
    p.send_doc(pair[0], "logistics", at, lone)
    for t in pair:
        p.decide(t.ticket_id, "DIVERT", ("AMBIGUOUS_WAYBILL",), ("logistics",))
        p.decide(t.ticket_id, "DIVERT", ("MISSING_DOCUMENTS",), ("logistics",))
    p.decide(lone, "DIVERT", ("MISSING_DOCUMENTS",), ("order", "payment"))


# A planted pattern's baskets: a few of them to one consignee stay far below the single limit,
# so that they cross no other pattern (SPLIT_ORDERS) than the one planted.
_SMALL_BASKET = Decimal(1200)


class _ShipTo(NamedTuple):
    """Where a ticket goes: the consignee's name, address, telephone and district code."""

    name: str
    address: str
    phone: str
    district: str


def _ship(t: Ticket, to: _ShipTo) -> None:
    """Address the ticket's order and waybill (the same, so it stays clean) to ``to``."""
    order, waybill = t.docs["order"], t.docs["logistics"]
    for doc in (order, waybill):
        doc |= {"consignee": to.name, "consigneeAddress": to.address}
        doc["consigneeTelephone"] = to.phone
    if "consigneeDistrict" in order:
        order["consigneeDistrict"] = to.district


def _released(p: Planner, start: float, buyer: ids.Person, to: _ShipTo) -> None:
    """A clean ticket of ``buyer`` to ``to`` (a small basket): RELEASE."""
    t = p.ticket(start, buyer=buyer, lines=p.basket(_SMALL_BASKET))
    _ship(t, to)
    p.spread(t, start)
    p.decide(t.ticket_id, "RELEASE")


def _someone_new(p: Planner, taken: set[str]) -> _ShipTo:
    """A consignee whose name and address (normalised) are not in ``taken``; adds them."""
    while True:
        name, (district, home) = ids.chinese_name(p.rng), ids.address(p.rng)
        if normalised(name) not in taken and normalised(home) not in taken:
            taken.update((normalised(name), normalised(home)))
            return _ShipTo(name, home, ids.mobile(p.rng), district)


def _written_otherwise(p: Planner, to: _ShipTo) -> _ShipTo:
    """``to`` with its name or address (or both) written in another form, the same normalised."""
    name, address = to.name, to.address
    match p.rng.randrange(3):
        case 0:
            name = ids.name_variant(p.rng, name)
        case 1:
            address = ids.address_variant(p.rng, address)
        case _:
            name, address = ids.name_variant(p.rng, name), ids.address_variant(p.rng, address)
    return to._replace(name=name, address=address)


def alert_id_consignees(p: Planner, start: float) -> None:
    """A new buyer's tickets to ALERT_CONSIGNEES + 1 distinct consignees: other people at other
    addresses, other people at the buyer's address, or the buyer at other addresses; some of
    them again, written otherwise (no new consignee once normalised). Each RELEASE; one
    ID_MANY_CONSIGNEES alert. A near miss: ALERT_CONSIGNEES of them, one at least written two
    ways: no alert."""
    rng, buyer = p.rng, p.person()
    near = p.chance(0.2)
    own = _ShipTo(buyer.name, buyer.address, buyer.phone, buyer.district)
    taken = {normalised(buyer.name), normalised(buyer.address)}
    mode = rng.choice(("people", "names", "addresses"))
    consignees = [own]
    for _ in range(ALERT_CONSIGNEES - 1 if near else ALERT_CONSIGNEES):
        other = _someone_new(p, taken)
        if mode == "names":  # other people at the buyer's address
            other = other._replace(address=own.address, district=own.district)
        elif mode == "addresses":  # the buyer, at other addresses
            other = other._replace(name=own.name)
        consignees.append(other)
    for _ in range(rng.randint(1 if near else 0, 2)):
        consignees.append(_written_otherwise(p, rng.choice(consignees)))
    for to in consignees:
        _released(p, start, buyer, to)


def alert_address_ids(p: Planner, start: float) -> None:
    """ALERT_BUYERS + 1 new buyers' tickets to one parcel station: its address, its (virtual)
    telephone, or both, written in forms that normalise equal; each buyer's own name. Each
    RELEASE; one ADDRESS_MANY_IDS alert per key shared. A near miss: ALERT_BUYERS buyers, one of
    them twice: no alert."""
    rng = p.rng
    near = p.chance(0.2)
    district, station = p.parcel_station()
    phone = p.virtual_mobile()
    shared = rng.choice(("address", "telephone", "both"))
    buyers = [p.person() for _ in range(ALERT_BUYERS if near else ALERT_BUYERS + 1)]
    if near:
        buyers.append(rng.choice(buyers))
    for buyer in buyers:
        to = _ShipTo(buyer.name, buyer.address, buyer.phone, buyer.district)
        if shared != "telephone":
            written = ids.address_variant(rng, station) if p.chance(0.4) else station
            to = to._replace(address=written, district=district)
        if shared != "address":
            to = to._replace(phone=ids.telephone_variant(rng, phone) if p.chance(0.4) else phone)
        _released(p, start, buyer, to)


def _split_values(p: Planner, orders: int, total: Decimal | None) -> list[Decimal]:
    """``orders`` dutiable values, each within the single limit (and at least 200): adding up
    to ``total`` (at most the limit and a cent), or (None) each drawn high enough that together
    they pass the limit."""
    if total is None:
        low = SINGLE_LIMIT / orders + 100
        return [yuan(p.rng, low, SINGLE_LIMIT) for _ in range(orders)]
    least = 20_000  # cents
    spare = int(total * 100) - least * orders
    cuts = sorted(p.rng.randint(0, spare) for _ in range(orders - 1))
    shares = [b - a for a, b in zip([0, *cuts], [*cuts, spare], strict=True)]
    return [Decimal(least + share).scaleb(-2) for share in shares]


def alert_split_orders(p: Planner, start: float) -> None:
    """A new buyer's 2-3 orders to one consignee (the buyer or another person, now and then
    written otherwise), each within the single limit and together above it: the first cent
    over, each at the limit, or more. Each RELEASE; one SPLIT_ORDERS alert. A near miss: exactly
    the limit together, the second order to another address, or the other order a single item
    above the limit (RELEASE fullTax, not within it): no alert."""
    rng, buyer = p.rng, p.person()
    to = _ShipTo(buyer.name, buyer.address, buyer.phone, buyer.district)
    if p.chance(0.3):
        to = _someone_new(p, {normalised(buyer.name), normalised(buyer.address)})
    orders = rng.choice((2, 2, 3))
    draw = rng.randrange(20)
    single: Decimal | None = None  # near miss: an order above the limit, one item
    consignees = [to] * orders
    if draw < 5:  # noqa: PLR2004 - the first cent over
        values = _split_values(p, orders, SINGLE_LIMIT + CENT)
    elif draw < 8:  # noqa: PLR2004 - each exactly at the limit
        values = [SINGLE_LIMIT] * orders
    elif draw < 16:  # noqa: PLR2004
        values = _split_values(p, orders, None)
    elif draw < 18:  # noqa: PLR2004 - near miss: exactly the limit together
        values = _split_values(p, orders, SINGLE_LIMIT)
    elif draw < 19:  # noqa: PLR2004 - near miss: another address
        values, orders = _split_values(p, 2, None), 2
        other = _someone_new(p, {normalised(to.address)})
        consignees = [to, to._replace(address=other.address, district=other.district)]
    else:  # near miss: one order is one item above the limit (fullTax), so not within it
        values, orders = [yuan(rng, 100, 4000)], 2
        single = yuan(rng, 5000.01, 9000)
    for i in range(orders):
        ship = consignees[i]
        if i and p.chance(0.3):
            ship = _written_otherwise(p, ship)
        if single is not None and i == orders - 1:
            t = _limit_ticket(p, start, single, count=1, qty=1, buyer=buyer)
        else:
            t = _limit_ticket(p, start, values[i], count=rng.randint(1, 4), buyer=buyer)
        _ship(t, ship)
        p.spread(t, start)
        p.decide(t.ticket_id, "RELEASE", full_tax=single is not None and i == orders - 1)


def _rule(*mods: str) -> Handler:
    def handler(p: Planner, start: float) -> None:
        rule_fault(p, start, mods)

    return handler


def multiple(p: Planner, start: float) -> None:
    """Two or three rule faults at once: DIVERT with every code."""
    rule_fault(p, start, tuple(p.rng.sample(_MULTIPLE, p.rng.choice((2, 2, 3)))))


HANDLERS: dict[str, Handler] = {
    "clean": clean,
    "amount_mismatch": _rule("amount"),
    "order_arithmetic": _rule("arith"),
    "line_total": _rule("line"),
    "payer_mismatch": _rule("payer"),
    "payment_reference": _rule("payref"),
    "consignee_mismatch": _rule("consignee"),
    "invalid_buyer_id": _rule("invalid"),
    "single_limit": single_limit,
    "full_tax": full_tax,
    "annual_limit": annual_limit,
    "multiple": multiple,
    "missing_document": missing_document,
    "late_document": late_document,
    "duplicate": duplicate,
    "redelivery": redelivery,
    "stale_change": stale_change,
    "change_after_divert": change_after_divert,
    "change_after_release": change_after_release,
    "unknown_document": unknown_document,
    "draft": draft,
    "schema": schema,
    "ambiguous_waybill": ambiguous_waybill,
    "alert_id_consignees": alert_id_consignees,
    "alert_address_ids": alert_address_ids,
    "alert_split_orders": alert_split_orders,
}
