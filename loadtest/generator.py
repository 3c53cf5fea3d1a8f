"""The load-test plan generator: realistic tickets, the faults of a FaultMix, and their truth.

``generate(seed, tickets, rate=..., window=...)`` is pure and reproducible: the same arguments
give the same records, byte for byte (one ``random.Random(seed)`` draws everything). Slot ``i``
starts at ``i / rate`` seconds (all at 0 when ``rate`` is None); a ticket's three documents go out
in random order within ``max_delay``. A record whose outcome depends on another having been
processed is sent at least ``settle`` seconds after it, and a record that must beat a ticket's
window is sent at least ``settle`` before the window closes. loadtest.truth lists the fault
kinds and their expected outcomes; loadtest.faults plans each kind.

A long run is planned in chunks (``chunk=0, 1, ...`` with distinct seeds): every serial number of
chunk ``k`` (orderNo, payTransactionId, logisticsNo) starts with ``C{k}-`` and every resident ID it
draws has the sequence number ``1 + k % 999``, so the chunks of one run (below 999 of them) never
share a ticket or a buyer.

Clean tickets are released: the amounts add up exactly, the resident IDs are valid, the dutiable
value stays within 5000 and a returning buyer's planned tickets within 15000 a year.

The plan also says which pattern alerts the run must raise (``Plan.alerts``, loadtest.alerts):
returning buyers cross the patterns now and then on their own (gifts to many people, orders to
themselves adding up past 5000 in a run that is one alert window), and the ``alert_*`` kinds
plant each pattern, and near misses of it, on new buyers, drop points and virtual numbers.
"""

from __future__ import annotations

import bisect
import copy
import itertools
import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from operator import attrgetter
from typing import Literal

import msgspec

from loadtest import ids
from loadtest.alerts import expected_alerts, plan_sightings
from loadtest.faults import HANDLERS
from loadtest.ids import CENT, ZERO, Doc, chance, yuan
from loadtest.truth import (
    DEFAULT_MIX,
    ExpectedDecision,
    ExpectedRejection,
    FaultMix,
    Plan,
    PlannedRecord,
)
from schemas.documents import DOC_TYPES, DocType

__all__ = (
    "DEFAULT_MIX",
    "FaultMix",
    "Planner",
    "Ticket",
    "documents",
    "generate",
    "lines_for_total",
    "order_line",
    "settle_amounts",
    "shopping_lines",
)

_CLEAN_CAP = Decimal(4400)  # a clean basket; with freight and insuredFee it stays under 5000
_POOL_CAP = Decimal(10000)  # a returning buyer is replaced past this (with a ticket: < 15000)
_PRICEY = 1000  # yuan: goods from this unit price up are for the high-value faults only
_EXPENSIVE = tuple(g for g in ids.GOODS if g.low >= _PRICEY)
_EVERYDAY = tuple(g for g in ids.GOODS if g.low < _PRICEY)
_CHINA = timezone(timedelta(hours=8))
_ENCODERS = (msgspec.json.Encoder(), msgspec.json.Encoder(decimal_format="number"))
_OTHER_KEY = {"order": "guid", "payment": "payTransactionId", "logistics": "logisticsNo"}


def order_line(rng: random.Random, gnum: int, goods: ids.Goods, qty: int, price: Decimal) -> Doc:
    """One OrderList line; ``totalPrice`` = ``price`` x ``qty`` exactly (price 0: a gift)."""
    line: Doc = {"gnum": gnum, "itemNo": f"SKU{ids.GOODS.index(goods):04d}{goods.country}"}
    line |= {"itemName": goods.name if price else f"赠品 {goods.name}", "gmodel": goods.model}
    if chance(rng, 0.5):
        prefix = rng.choice(("45", "49", "88", "40", "30", "93"))
        line["barCode"] = f"{prefix}{rng.randrange(10**11):011d}"
    line |= {"unit": goods.unit, "qty": Decimal(qty), "price": price, "totalPrice": price * qty}
    return line | {"currency": "142", "country": goods.country}


def shopping_lines(rng: random.Random, cap: Decimal) -> list[Doc]:
    """A realistic basket of 1-5 everyday goods (now and then a free gift) worth at most ``cap``."""
    lines: list[Doc] = []
    total = ZERO
    for _ in range(rng.choices((1, 2, 3, 4, 5), (40, 28, 17, 10, 5))[0]):
        goods = rng.choice(_EVERYDAY)
        qty = rng.choices((1, 2, 3), (75, 18, 7))[0]
        price = ZERO if lines and chance(rng, 0.03) else yuan(rng, goods.low, goods.high)
        if total + price * qty <= cap:
            lines.append(order_line(rng, len(lines) + 1, goods, qty, price))
            total += price * qty
    return lines or [order_line(rng, 1, _EVERYDAY[0], 1, yuan(rng, 49, 99))]


def lines_for_total(
    rng: random.Random, total: Decimal, count: int, qty: int | None = None
) -> list[Doc]:
    """``count`` lines worth exactly ``total``, each of quantity ``qty`` (None: 1, or 2 where
    that divides). With ``qty`` above 1 the total must divide evenly."""
    cents = int(total * 100)
    weights = [rng.random() + 0.3 for _ in range(count)]
    parts = [int(cents * w / sum(weights)) for w in weights]
    parts[-1] += cents - sum(parts)
    lines = []
    for gnum, part in enumerate(parts, 1):
        goods = rng.choice(_EXPENSIVE if part >= _PRICEY * 300 else _EVERYDAY)
        n = qty or (2 if part % 2 == 0 and chance(rng, 0.3) else 1)
        lines.append(order_line(rng, gnum, goods, n, Decimal(part // n).scaleb(-2)))
    return lines


def settle_amounts(order: Doc, payment: Doc) -> None:
    """Make the order add up (goodsValue, acturalPaid) and the payment pay exactly acturalPaid."""
    order["goodsValue"] = sum((line["totalPrice"] for line in order["orderList"]), ZERO)
    paid = order["goodsValue"] + order["freight"] + order["taxTotal"] - order["discount"]
    order["acturalPaid"] = payment["amountPaid"] = paid


def documents(
    rng: random.Random,
    *,
    buyer: ids.Person,
    platform: ids.Firm,
    order_no: str,
    pay: ids.Firm,
    pay_tx: str,
    carrier: ids.Firm,
    waybill_no: str,
    lines: list[Doc],
    freight: Decimal,
    insured: Decimal,
    names_payment: bool,
    named: bool,
) -> tuple[Doc, Doc, Doc]:
    """A clean ticket's order, payment and waybill (guid, appTime and payTime left empty).

    The order names the payment (``payCode``, ``payTransactionId``) if ``names_payment``; the
    waybill names the platform (``ebpCode``) if ``named``.
    """
    shop = rng.choice(ids.SHOPS) if chance(rng, 0.8) else (platform.code, platform.name)
    goods = sum((line["totalPrice"] for line in lines), ZERO)
    discount = min(yuan(rng, 3, 50), (goods / 2).quantize(CENT)) if chance(rng, 0.25) else ZERO
    tax = ((goods + freight) * Decimal("0.091")).quantize(CENT) if chance(rng, 0.7) else ZERO
    consignee, phone, home, district = buyer.name, buyer.phone, buyer.address, buyer.district
    if chance(rng, 0.2):  # a gift to a relative or a friend
        consignee, phone = ids.chinese_name(rng), ids.mobile(rng)
        if chance(rng, 0.5):
            district, home = ids.address(rng)
    header = {"guid": "", "appType": "1", "appTime": "", "appStatus": "2"}
    order: Doc = header | {"orderType": "I", "orderNo": order_no, "ebpCode": platform.code}
    order |= {"ebpName": platform.name, "ebcCode": shop[0], "ebcName": shop[1]}
    order |= {"goodsValue": goods, "freight": freight, "discount": discount, "taxTotal": tax}
    order |= {"acturalPaid": ZERO, "currency": "142", "buyerRegNo": buyer.reg_no}
    order |= {"buyerName": buyer.name, "buyerTelephone": buyer.phone, "buyerIdType": "1"}
    order["buyerIdNumber"] = buyer.id_number
    if names_payment:
        order |= {"payCode": pay.code, "payName": pay.name, "payTransactionId": pay_tx}
    order |= {"consignee": consignee, "consigneeTelephone": phone, "consigneeAddress": home}
    if chance(rng, 0.7):
        order["consigneeDistrict"] = district
    order["orderList"] = lines
    payment: Doc = header | {"payCode": pay.code, "payName": pay.name, "payTransactionId": pay_tx}
    payment |= {"orderNo": order_no, "ebpCode": platform.code, "ebpName": platform.name}
    payment |= {"payerIdType": "1", "payerIdNumber": buyer.id_number, "payerName": buyer.name}
    if chance(rng, 0.8):
        payment["telephone"] = buyer.phone
    payment |= {"amountPaid": ZERO, "currency": "142", "payTime": ""}
    waybill: Doc = header | {"logisticsCode": carrier.code, "logisticsName": carrier.name}
    waybill["logisticsNo"] = waybill_no
    if chance(rng, 0.3):
        waybill["billNo"] = f"{rng.choice(('112', '160', '880', '999'))}-{rng.randrange(10**8):08d}"
    waybill["orderNo"] = order_no
    if named:
        waybill["ebpCode"] = platform.code
    waybill |= {"freight": freight if chance(rng, 0.7) else ZERO, "insuredFee": insured}
    weight = Decimal(rng.randint(150, 6000)).scaleb(-3)
    waybill |= {"currency": "142", "weight": weight, "packNo": 1}
    if chance(rng, 0.6):
        info = ";".join(f"{line['itemName']}*{line['qty']}" for line in lines)
        waybill["goodsInfo"] = info[:200]
    waybill |= {"consignee": consignee, "consigneeAddress": home, "consigneeTelephone": phone}
    settle_amounts(order, payment)
    return order, payment, waybill


class Ticket(msgspec.Struct):
    """One ticket's documents while it is planned (JSON objects, amounts as Decimal).

    ``app`` holds the appTime of each document version sent, in seconds from the plan's base time.
    """

    ticket_id: str
    buyer: ids.Person
    docs: dict[str, Doc]
    app: dict[str, int] = {}

    @property
    def dutiable(self) -> Decimal:
        """goodsValue + order freight + waybill insuredFee."""
        order = self.docs["order"]
        value: Decimal = (
            order["goodsValue"] + order["freight"] + self.docs["logistics"]["insuredFee"]
        )
        return value


class Planner:
    """Plans slots one by one into records and expected outcomes (one per :func:`generate`)."""

    def __init__(
        self,
        rng: random.Random,
        *,
        window: float,
        max_delay: float,
        settle: float,
        pool: int,
        chunk: int | None = None,
    ) -> None:
        self.rng = rng
        self.chunk = chunk
        self._serial_prefix = "" if chunk is None else f"C{chunk}-"
        self.window, self.max_delay, self.settle = window, max_delay, settle
        offset = timedelta(days=rng.randrange(170), seconds=rng.randrange(36_000))
        self.base = datetime(2026, 1, 5, 8, tzinfo=_CHINA) + offset  # stays inside one year
        self.records: list[PlannedRecord] = []
        self.decisions: dict[str, list[ExpectedDecision]] = {}
        self.rejections: list[ExpectedRejection] = []
        self.kinds: dict[str, str] = {}
        self.faults: Counter[str] = Counter()
        self.kind = "clean"
        self._used: set[str] = set()
        self._pool: list[ids.Person | None] = [None] * pool
        self._spent: dict[tuple[str, int], Decimal] = {}
        self._stamps: dict[int, str] = {}

    # -- building blocks -------------------------------------------------------------------------

    def chance(self, probability: float) -> bool:
        """True with the given probability."""
        return chance(self.rng, probability)

    def uniform(self, high: float) -> float:
        """A delay in [0, high]."""
        return self.rng.uniform(0.0, high)

    def stamp(self, sec: int) -> str:
        """``YYYYMMDDhhmmss`` (China time) ``sec`` seconds after the base time."""
        text = self._stamps.get(sec)
        if text is None:
            text = self._stamps[sec] = f"{self.base + timedelta(seconds=sec):%Y%m%d%H%M%S}"
        return text

    def unique(self, pattern: str) -> str:
        """A serial number after ``pattern`` (see ids.serial) not used before in this plan."""
        day = self.base.date()
        while (value := self._serial_prefix + ids.serial(self.rng, pattern, day)) in self._used:
            pass
        self._used.add(value)
        return value

    def person(self, id_number: str | None = None) -> ids.Person:
        """A new person, with a valid resident ID of their own unless ``id_number`` is given."""
        while id_number is None or id_number in self._used:
            id_number = ids.resident_id(self.rng)
            if self.chunk is not None:  # the chunk's own sequence number: unique across chunks
                body = f"{id_number[:14]}{1 + self.chunk % 999:03d}"
                id_number = body + ids.check_char(body)
        self._used.add(id_number)
        return ids.person(self.rng, id_number)

    def pool_buyer(self, start: float) -> ids.Person:
        """A returning buyer (some buy often), replaced once near the planned yearly total."""
        i = int(len(self._pool) * self.rng.random() ** 2)
        buyer = self._pool[i]
        year = (self.base + timedelta(seconds=start)).year
        if buyer is None or self._spent.get((buyer.id_number, year), ZERO) > _POOL_CAP:
            buyer = self._pool[i] = self.person()
        return buyer

    def ticket(
        self,
        start: float,
        *,
        buyer: ids.Person | None = None,
        lines: list[Doc] | None = None,
        freight: Decimal | None = None,
        insured: Decimal | None = None,
        platform: ids.Firm | None = None,
        order_no: str | None = None,
        named: bool | None = None,
        names_payment: bool | None = None,
    ) -> Ticket:
        """A clean ticket starting at ``start``; anything not given is drawn."""
        rng = self.rng
        buyer = buyer or self.pool_buyer(start)
        platform = platform or rng.choice(ids.PLATFORMS)
        pay, carrier = rng.choice(ids.PAY_FIRMS), rng.choice(ids.LOGISTICS_FIRMS)
        if freight is None:
            freight = yuan(rng, 5, 30) if self.chance(0.4) else ZERO
        if insured is None:
            insured = yuan(rng, 1, 10) if self.chance(0.2) else ZERO
        order, payment, waybill = documents(
            rng,
            buyer=buyer,
            platform=platform,
            order_no=order_no or self.unique(platform.pattern),
            pay=pay,
            pay_tx=self.unique(pay.pattern),
            carrier=carrier,
            waybill_no=self.unique(carrier.pattern),
            lines=lines or shopping_lines(rng, _CLEAN_CAP),
            freight=freight,
            insured=insured,
            names_payment=self.chance(0.85) if names_payment is None else names_payment,
            named=self.chance(0.1) if named is None else named,
        )
        for doc in (order, payment, waybill):
            doc["guid"] = ids.guid(rng)
        payment["payTime"] = self.stamp(int(start) - rng.randint(3, 900))
        docs = {"order": order, "payment": payment, "logistics": waybill}
        ticket = Ticket(f"{platform.code}:{order['orderNo']}", buyer, docs)
        # Every ticket counts toward its buyer's planned year, released or not: a safe margin.
        key = (buyer.id_number, (self.base + timedelta(seconds=start)).year)
        self._spent[key] = self._spent.get(key, ZERO) + ticket.dutiable
        return ticket

    def basket(self, cap: Decimal) -> list[Doc]:
        """A realistic basket worth at most ``cap`` (see :func:`shopping_lines`)."""
        return shopping_lines(self.rng, cap)

    def parcel_station(self) -> tuple[str, str]:
        """A district code and the address of a parcel station not used before in this run."""
        return ids.parcel_station(self.rng, self.unique("######"))

    def virtual_mobile(self) -> str:
        """A virtual operator's number (ids.VIRTUAL_PREFIXES) not used before in this run: its
        middle digits are the chunk's number."""
        while True:
            middle = self.rng.randrange(1000) if self.chunk is None else self.chunk % 1000
            number = f"{self.rng.choice(ids.VIRTUAL_PREFIXES)}{middle:03d}"
            number += f"{self.rng.randrange(10**5):05d}"
            if number not in self._used:
                self._used.add(number)
                return number

    def lines(self, total: Decimal, count: int, qty: int | None = None) -> list[Doc]:
        """``count`` lines worth exactly ``total`` (see :func:`lines_for_total`)."""
        return lines_for_total(self.rng, total, count, qty)

    def settle_amounts(self, t: Ticket) -> None:
        """Make the ticket's order add up and its payment pay it (see :func:`settle_amounts`)."""
        settle_amounts(t.docs["order"], t.docs["payment"])

    def send(self, at: float, kind: DocType, doc: Doc, ticket_id: str | None) -> PlannedRecord:
        """Plan one record; keyed by orderNo mostly, by another field or not at all sometimes."""
        draw = self.rng.random()
        key: bytes | None = None
        if draw < 0.85:  # noqa: PLR2004 - the contract's advice, mostly followed
            key = str(doc["orderNo"]).encode()
        elif draw < 0.95:  # noqa: PLR2004
            key = str(doc[_OTHER_KEY[kind]]).encode()
        value = _ENCODERS[1 if self.chance(0.1) else 0].encode(doc)
        record = PlannedRecord(at, kind, key, value, ticket_id)
        self.records.append(record)
        return record

    def send_doc(self, t: Ticket, kind: DocType, at: float, ticket_id: str = "") -> PlannedRecord:
        """Send the ticket's stored ``kind`` document at ``at``, its appTime then."""
        t.app[kind] = int(at) + self.rng.randint(0, 2)
        t.docs[kind]["appTime"] = self.stamp(t.app[kind])
        return self.send(at, kind, t.docs[kind], ticket_id or t.ticket_id)

    def spread(self, t: Ticket, start: float, kinds: tuple[DocType, ...] = DOC_TYPES) -> float:
        """Send ``kinds`` of the ticket in random order within max_delay; return the last time."""
        return max(self.send_doc(t, k, start + self.uniform(self.max_delay)).at for k in kinds)

    def follow(
        self, t: Ticket, kind: DocType, app_type: str, at: float, sec: int | None = None
    ) -> Doc:
        """A new version (new guid) of a document, newer than the stored one unless ``sec`` is
        given; a waybill names ``ebpCode`` so that it reaches the ticket even once released."""
        doc = copy.deepcopy(t.docs[kind])
        if sec is None:
            sec = max(t.app.get(kind, 0) + 1, int(at) + self.rng.randint(0, 2))
        doc |= {"guid": ids.guid(self.rng), "appType": app_type, "appTime": self.stamp(sec)}
        if kind == "logistics":
            doc["ebpCode"] = t.docs["order"]["ebpCode"]
        return doc

    def alter(self, kind: DocType, doc: Doc) -> None:
        """Change a document's content, so that applying it would show."""
        if kind == "payment":
            doc["amountPaid"] += 1
        elif kind == "order":
            doc["consigneeTelephone"] = ids.alter_digit(self.rng, doc["consigneeTelephone"])
        else:
            doc["consigneeAddress"] = ids.alter_digit(self.rng, doc["consigneeAddress"])

    def decide(
        self,
        ticket_id: str,
        decision: Literal["RELEASE", "DIVERT"],
        codes: tuple[str, ...] = (),
        missing: tuple[str, ...] = (),
        *,
        full_tax: bool = False,
    ) -> None:
        """Expect the ticket's next revision to be decided so."""
        revisions = self.decisions.setdefault(ticket_id, [])
        codes, missing = tuple(sorted(set(codes))), tuple(sorted(missing))
        revision = len(revisions) + 1
        revisions.append(
            ExpectedDecision(ticket_id, revision, decision, codes, missing, full_tax=full_tax)
        )
        self.kinds.setdefault(ticket_id, self.kind)

    def reject(self, code: str, kind: DocType, guid: str | None) -> None:
        """Expect one rejection."""
        self.rejections.append(ExpectedRejection(code, kind, guid))

    def plan(self) -> Plan:
        """The plan so far, records sorted by time (ties keep their planned order), with the
        alerts it must raise (loadtest.alerts)."""
        records = sorted(self.records, key=attrgetter("at"))
        sightings = plan_sightings(records, self.decisions, self.rejections)
        return Plan(
            records,
            self.decisions,
            self.rejections,
            len(self.decisions),
            self.kinds,
            dict(self.faults),
            expected_alerts(sightings, self.kinds),
        )

    # -- slots -----------------------------------------------------------------------------------

    def slot(self, kind: str, start: float) -> None:
        """Plan one slot of the given kind ("clean" or a FaultMix field) starting at ``start``."""
        self.kind = kind
        self.faults[kind] += 1
        HANDLERS[kind](self, start)


def generate(
    seed: int,
    tickets: int,
    *,
    rate: float | None = None,
    window: float,
    max_delay: float = 1.0,
    settle: float = 3.0,
    faults: FaultMix = DEFAULT_MIX,
    chunk: int | None = None,
) -> Plan:
    """Plan ``tickets`` slots (each a ticket, or the few tickets or records of a fault).

    ``rate``: slots per second (slot ``i`` starts at ``i / rate``), None for all at 0.
    ``window``: the engine's SANDAN_WINDOW in seconds; it must leave room for the faults acting
    inside it: at least ``max_delay + 3 * settle``. ``max_delay``: the spread of one ticket's
    documents. ``settle``: the least time between a record and one whose outcome depends on it.
    ``chunk``: this plan's number among the chunks of one run (see the module's docstring); None
    for a plan on its own.
    """
    if tickets < 0 or (rate is not None and rate <= 0) or max_delay < 0 or settle <= 0:
        msg = "need tickets >= 0, rate > 0 or None, max_delay >= 0 and settle > 0"
        raise ValueError(msg)
    if chunk is not None and chunk < 0:
        msg = "need chunk >= 0 or None"
        raise ValueError(msg)
    if window < max_delay + 3 * settle:
        msg = f"window {window}s is shorter than max_delay + 3 * settle = {max_delay + 3 * settle}s"
        raise ValueError(msg)
    rng = random.Random(seed)
    planner = Planner(
        rng,
        window=window,
        max_delay=max_delay,
        settle=settle,
        pool=max(8, tickets // 3),
        chunk=chunk,
    )
    names = ["clean", *FaultMix.kinds()]
    weights = [max(0.0, 1.0 - faults.total), *(p for _, p in faults.items())]
    cumulative = list(itertools.accumulate(weights))
    for i in range(tickets):
        pick = bisect.bisect_right(cumulative, rng.random() * cumulative[-1])
        planner.slot(names[min(pick, len(names) - 1)], i / rate if rate else 0.0)
    return planner.plan()
