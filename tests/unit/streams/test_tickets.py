"""The ticket stage (streams.tickets: apply_document, apply_outcome, apply_timer) as the
pipeline drives it, with the buyer ledger.

:class:`Driver` feeds document dicts as consumer records, timer ticks and the ledger's
settlements to streams.pipeline.SandanPipeline on RocksDB stores in a temporary directory (one
worker owning every partition, or two exchanging their ledger requests and outcomes: see its
docstring), decodes the decisions, rejections and receipts it produces, and reads the groups,
documents and buyer ledgers it committed; after every step it checks that the documents stored
are exactly the ones the groups' tickets hold. Times are the worker's clock (``now_ms``); the
window is 10 s, retention 100 s and the released horizon 1,000 s (the pipeline's settings,
``rules_env``). A few tests call a pure step on a group read from the Driver.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchers import RULES_VERSION, Limits
from schemas.codec import decode_document, encode_json
from schemas.documents import DocType, Document
from schemas.fields import enc_hook
from schemas.keys import murmur2_partition
from schemas.outputs import Decision, Rejection, Source
from schemas.receipts import Addressed, decode_receipt, encode_receipt
from streams.digests import digest
from streams.hops import hop_headers
from streams.intake import Incoming, Origin
from streams.ledger import BuyerLedger
from streams.records import LedgerRequest, Outcome, Record
from streams.records import Output as Produced
from streams.tickets import (
    DocumentReader,
    Group,
    KeyedRejection,
    Rules,
    Ticket,
    Unheld,
    apply_outcome,
    apply_timer,
    document_key,
    is_document_key,
    next_due,
)
from streams.timefmt import iso_ms
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.unit.streams.harness import PARTITIONS, Workers

RULES = Rules(
    window_ms=10_000,
    retention_ms=100_000,
    released_horizon_ms=1_000_000,
    limits=Limits(),
    max_document_bytes=262144,
)
WINDOW = RULES.window_ms
RETENTION = RULES.retention_ms
DECIDED_BY = {  # every decision's record of the rules (the wire form)
    "rulesVersion": RULES_VERSION,
    "windowSeconds": WINDOW / 1000,
    "singleLimit": str(RULES.limits.single_limit),
    "annualLimit": str(RULES.limits.annual_limit),
}
T0 = 1_795_490_400_000  # 2026-11-24T03:20:00.000Z
ORDER_NO = "SO20261124000001"
EBP = "3301980ABC"
OTHER_EBP = "3301980DEF"
TICKET = f"{EBP}:{ORDER_NO}"
G_ORDER = "6F1E7C7A-8B1D-4E7E-9B4A-0C2D7E1F3A01"
G_PAYMENT = "6F1E7C7A-8B1D-4E7E-9B4A-0C2D7E1F3A02"
G_LOGISTICS = "6F1E7C7A-8B1D-4E7E-9B4A-0C2D7E1F3A03"
BUYER = "440305198012262283"
HOME = murmur2_partition(ORDER_NO.encode(), PARTITIONS)  # 1: the example ticket's partition
BUYER_PARTITION = murmur2_partition(BUYER.encode(), PARTITIONS)  # 2: its buyer ledger's
TOPICS = {"order": "cbec.order", "payment": "cbec.payment", "logistics": "cbec.logistics"}
BUILDERS = {"order": order_dict, "payment": payment_dict, "logistics": logistics_dict}

_ENCODER = msgspec.msgpack.Encoder(enc_hook=enc_hook)
_GROUP = msgspec.msgpack.Decoder(Group)
_REQUEST = msgspec.msgpack.Decoder(LedgerRequest)
_LEDGER = msgspec.msgpack.Decoder(BuyerLedger)
_DECISION = msgspec.json.Decoder(Decision)
_REJECTION = msgspec.json.Decoder(Rejection)

Output = Decision | KeyedRejection
_DEFAULT_KEY = ORDER_NO.encode()
KEEP: Any = object()  # the default key: the orderNo, as producers should key


def guid(n: int) -> str:
    """A 36-character guid distinct from the examples'."""
    return f"00000000-0000-4000-8000-{n:012d}"


def at(ms: int) -> str:
    return iso_ms(ms)


# -- the driver ---------------------------------------------------------------------------


def rules_env(rules: Rules) -> dict[str, str]:
    """The settings (environment) a pipeline decides by ``rules`` with; the alerts on only
    with ``rules.sightings`` (off in :data:`RULES`: no test here reads an alert)."""
    return {
        "SANDAN_WINDOW": f"{rules.window_ms / 1000}s",
        "SANDAN_RETENTION": f"{rules.retention_ms / 1000}s",
        "SANDAN_RELEASED_HORIZON": f"{rules.released_horizon_ms / 1000}s",
        "SANDAN_SINGLE_LIMIT": str(rules.limits.single_limit),
        "SANDAN_ANNUAL_LIMIT": str(rules.limits.annual_limit),
        "SANDAN_MAX_DOCUMENT_BYTES": str(rules.max_document_bytes),
        "SANDAN_DOCUMENT_STATE": "inline" if rules.inline_documents else "separate",
        "SANDAN_ALERTS": "on" if rules.sightings else "off",
    }


class Driver:
    """Feeds records, timer ticks and the ledger's settlements to the pipeline
    (streams.pipeline.SandanPipeline, on RocksDB stores in a temporary directory: see
    tests/unit/streams/harness.py's :class:`Workers`), and reads back what it produced and
    what it committed.

    Everything goes through the pipeline; the Driver only translates. A record is a consumer
    record on ``cbec.{order,payment,logistics}`` partition 0 at offset 1, 2, ..., appended at
    ``now_ms`` and consumed in one committed step at that time (its timers due included); a
    document of an XML message (``origin``) comes as the hop a worker that read the message
    sends its ticket's owner on ``sandan-repartition`` (streams/hops.py: the node's JSON, the
    message's copCode, guid and node in the headers), the one way in for a node at a given
    position without the message's other nodes (a lone worker would have read the message
    itself; reading XML is tests/unit/streams/test_intake.py's and
    test_pipeline_formats.py's). :meth:`tick` is a step without records. The decisions
    (``cbec.release``/``cbec.divert``) and rejections (``cbec.rejected``, with the record's
    key) produced are decoded into :attr:`out`, the receipts (``cbec.receipt``: the sender
    from the key, XML or JSON from the content-type) into :attr:`receipts`, each checked to
    encode to the record's bytes again; the groups, documents and buyer ledgers are read from
    the committed stores (:meth:`group`, :meth:`raw`, :meth:`stored`, :meth:`ledger`,
    :attr:`groups`).

    The buyer ledger: with ``auto_ledger`` one worker owns every partition, so the pipeline
    decides each ledger request in the step that made it (as a lone worker does). Without it
    there are two workers: the buyer's (it owns only ``BUYER_PARTITION``, 2, the partition of
    :data:`BUYER`) and the tickets' (every other partition: the example ticket's ``HOME``, 1,
    ``SO20261124000999``'s 0, the inputs' 0); no worker owns every partition, so each request
    comes out on ``sandan-ledger``, and waits in :attr:`requests` until :meth:`settle` hands
    them, one at a time in order, to the buyer's worker, whose outcome goes back on
    ``sandan-outcomes`` to the ticket's (a remote hop both ways). Any other internal record
    (a hop to a ticket on the other worker: an orderNo of partition 2) is consumed at once.

    ``rules`` are what the pipeline decides by: given to it as settings (:func:`rules_env`:
    SANDAN_WINDOW, SANDAN_RETENTION, SANDAN_RELEASED_HORIZON, the limits, ...) and checked to
    be the Rules it made of them (:attr:`rules`).

    After every call the state is checked: the documents stored (the store's document keys,
    in every partition) are exactly those the groups' tickets hold, each the bytes of a
    document of its kind and guid; the changelog wrote each document version once and deleted
    only what was stored; every group and buyer ledger read from the store encodes back to
    the same bytes; no record was set aside as ``INTERNAL`` and no ledger request was decided
    twice (the pipeline's counts). What the pipeline makes moot is not checked: msgpack round
    trips of ledger requests and outcomes (it encodes, produces and decodes them itself).

    The pipelines come from harness.py's pool: :meth:`close`, or dropping the Driver, gives
    them back, wiped, to the next Driver; they are closed, and their directory removed, at exit.
    """

    def __init__(self, *, auto_ledger: bool = True, rules: Rules = RULES) -> None:
        owned = (
            [set(range(PARTITIONS))]
            if auto_ledger
            else [set(range(PARTITIONS)) - {BUYER_PARTITION}, {BUYER_PARTITION}]
        )
        self.workers = Workers(owned, rules_env(rules), hold_ledger=not auto_ledger)
        self._closed = weakref.finalize(self, self.workers.close)
        self.rules = self.workers.workers[0].pipeline.rules
        assert self.rules == rules, (self.rules, rules)  # the settings say what rules say
        self.auto_ledger = auto_ledger
        self.topics = self.workers.topics
        self.out: list[Output] = []
        self.receipts: list[Addressed] = []  # apart from `out`: tests/unit/schemas/test_receipts.py
        self.offset = 0
        self._documents: set[bytes] = set()  # the document keys the changelog wrote, not deleted

    def close(self) -> None:
        """Give the pipelines back (also when the Driver is dropped)."""
        self._closed()

    # records

    def send(
        self,
        doc_type: str,
        document: dict[str, Any] | bytes,
        now_ms: int,
        key: bytes | None = KEEP,
        origin: Origin | None = None,
    ) -> list[Output]:
        """One record on ``cbec.{doc_type}`` (``origin``: as a node of an XML message); returns
        what it caused (ledger included)."""
        value = document if isinstance(document, bytes) else as_bytes(document)
        self.offset += 1
        key = _DEFAULT_KEY if key is KEEP else key
        topic = TOPICS[doc_type]
        if origin is None:
            record = Record(topic, 0, self.offset, now_ms, key, value)
        else:
            order_no = json.loads(value)["orderNo"].encode()
            source = Source(topic, 0, self.offset, now_ms)
            incoming = Incoming(doc_type, key, value, source, origin)  # type: ignore[arg-type]
            headers = tuple(hop_headers(incoming))
            partition = murmur2_partition(order_no, PARTITIONS)
            hop = self.topics.repartition
            record = Record(hop, partition, self.offset, now_ms, order_no, value, headers)
        return self._take(self.workers.consume(record, now_ms))

    def order(self, now_ms: int, key: bytes | None = KEEP, **overrides: Any) -> list[Output]:
        return self.send("order", order_dict(**overrides), now_ms, key)

    def payment(self, now_ms: int, key: bytes | None = KEEP, **overrides: Any) -> list[Output]:
        return self.send("payment", payment_dict(**overrides), now_ms, key)

    def logistics(self, now_ms: int, key: bytes | None = KEEP, **overrides: Any) -> list[Output]:
        return self.send("logistics", logistics_dict(**overrides), now_ms, key)

    def clean(self, start: int = T0, **overrides: Any) -> list[Output]:
        """The example ticket's three records at start, +1 s, +2 s (overrides on all three)."""
        out = self.order(start, **overrides)
        out += self.payment(start + 1000, **overrides)
        return out + self.logistics(start + 2000, **overrides)

    # timers and the ledger

    def tick(self, now_ms: int) -> list[Output]:
        """A step of every worker at ``now_ms``, without records: the timers due."""
        return self._take(self.workers.tick(now_ms))

    def settle(self, now_ms: int) -> list[Output]:
        """Hand the waiting ledger requests to the buyer's worker, in order, at ``now_ms``;
        return what they caused (the decisions, and what their outcomes replayed)."""
        return self._take(self.workers.settle(now_ms))

    @property
    def requests(self) -> list[bytes]:
        """The ledger requests waiting (``sandan-ledger`` values: msgpack LedgerRequest)."""
        return [output.value or b"" for output in self.workers.held]

    # state (committed)

    def group(self, order_no: str = ORDER_NO) -> Group | None:
        worker, partition = self.workers.owner_of(order_no)
        return worker.pipeline.committed_group(partition, order_no)[0]

    def ticket(self, ebp: str = EBP, order_no: str = ORDER_NO) -> Ticket | None:
        group = self.group(order_no)
        return None if group is None else group.tickets.get(ebp)

    def ledger(self, buyer: str = BUYER) -> BuyerLedger:
        worker, partition = self.workers.owner_of(buyer)
        stored = worker.pipeline.ledger.committed(partition, buyer.encode())
        return BuyerLedger() if stored is None else _LEDGER.decode(stored)

    @property
    def groups(self) -> dict[str, bytes]:
        """Every group's stored value by orderNo, in every partition."""
        return {
            key.decode(): value
            for worker in self.workers.workers
            for partition in sorted(worker.pipeline.partitions)
            for key, value in worker.pipeline.tickets.items(partition)
            if not is_document_key(key)
        }

    def decisions(self) -> list[Decision]:
        return [item for item in self.out if isinstance(item, Decision)]

    def rejections(self) -> list[Rejection]:
        return [item.rejection for item in self.out if isinstance(item, KeyedRejection)]

    def stored(self, order_no: str = ORDER_NO) -> DocumentReader:
        """Reads the group's stored documents, decoded (as the pipeline gives them)."""
        raw = self.raw(order_no)

        def read(kind: DocType, guid: str) -> Document:
            value = raw(guid)
            if not value:
                msg = f"document {guid} of orderNo {order_no!r} is not stored"
                raise LookupError(msg)
            return decode_document(kind, value, len(value))

        return read

    def raw(self, order_no: str = ORDER_NO) -> Callable[[str], bytes]:
        """Reads the group's stored documents' bytes (empty: not stored), as a lookup does."""
        worker, partition = self.workers.owner_of(order_no)
        return worker.pipeline.committed_group(partition, order_no)[1]

    # what the pipeline produced, and the checks

    def _take(self, produced: list[Produced]) -> list[Output]:
        """Decode what the steps produced into :attr:`out` and :attr:`receipts`; check the
        state; return the decisions and rejections."""
        start = len(self.out)
        topics = self.topics
        for output in produced:
            topic, value = output.topic, output.value or b""
            # Each decoded as what encodes to the record's bytes again: nothing lost.
            if topic in (topics.release, topics.divert):
                decision = _DECISION.decode(value)
                assert encode_json(decision) == value
                assert output.key == decision.ticketId.encode()
                assert topic == (
                    topics.release if decision.decision == "RELEASE" else topics.divert
                )
                self.out.append(decision)
            elif topic == topics.rejected:
                rejection = _REJECTION.decode(value)
                assert encode_json(rejection) == value
                self.out.append(KeyedRejection(output.key, rejection))
            elif topic == topics.receipt:
                xml = dict(output.headers or ())["content-type"] == b"application/xml"
                sender = output.key.decode() if output.key is not None else None
                addressed = Addressed(sender, xml, decode_receipt(value, xml=xml))
                assert encode_receipt(addressed) == (output.key, value, output.headers)
                self.receipts.append(addressed)
            elif topic == topics.tickets_changelog:
                self._changelog(output)
            else:  # the internal records the workers exchanged; the buyer ledgers' changelog
                assert topic in (*topics.internal, topics.ledger_changelog), output
        self._check()
        return self.out[start:]

    def _changelog(self, output: Produced) -> None:
        key = output.key or b""
        if not is_document_key(key):
            return
        if output.value is None:
            assert key in self._documents, "a deleted document was stored"
            self._documents.remove(key)
        else:
            assert key not in self._documents, "a document version is written once"
            self._documents.add(key)

    def _check(self) -> None:
        stored: dict[bytes, bytes] = {}
        held: dict[bytes, tuple[DocType, str]] = {}
        for worker in self.workers.workers:
            pipeline = worker.pipeline
            assert pipeline.counts["rejected.INTERNAL"] == 0, "a record was set aside"
            assert pipeline.counts["ledger.replayed"] == 0, "a ledger request came twice"
            for partition in pipeline.partitions:
                for key, value in pipeline.tickets.items(partition):
                    if is_document_key(key):
                        stored[key] = value
                        continue
                    group = _GROUP.decode(value)
                    assert _ENCODER.encode(group) == value  # the state survives the store
                    for ticket in group.tickets.values():
                        for kind in ("order", "payment", "logistics"):
                            doc = getattr(ticket, kind)
                            if doc is not None:
                                held[document_key(group.order_no, doc.guid)] = (kind, doc.guid)
                for _, value in pipeline.ledger.items(partition):
                    assert _ENCODER.encode(_LEDGER.decode(value)) == value
        if self.rules.inline_documents:
            held = {}  # in their groups' values
        assert set(held) == set(stored), "the stored documents are the ones held"
        assert self._documents == set(stored), "the changelog wrote what is stored"
        for key, (kind, guid) in held.items():
            assert decode_document(kind, stored[key], len(stored[key])).guid == guid


# -- assertion helpers ----------------------------------------------------------------------


def wire(decision: Decision) -> dict[str, Any]:
    """The decision as its JSON record, reasons reduced to their codes."""
    record: dict[str, Any] = json.loads(encode_json(decision))
    if "reasons" in record:
        record["reasons"] = [reason["code"] for reason in record["reasons"]]
    return record


def reasons(decision: Decision) -> list[dict[str, Any]]:
    return json.loads(encode_json(decision.reasons))  # type: ignore[no-any-return]


def expected(
    *,
    revision: int = 1,
    decided: int = T0 + 2000,
    first: int = T0,
    completed: int | None = T0 + 2000,
    divert: list[str] | None = None,
    missing: list[str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """The example ticket's decision record; ``divert`` (codes) makes it a DIVERT."""
    record: dict[str, Any] = {
        "ticketId": TICKET,
        "decision": "RELEASE" if divert is None else "DIVERT",
        "revision": revision,
        "decidedAt": at(decided),
        "orderNo": ORDER_NO,
        "ebpCode": EBP,
        "ebcCode": "3301960XYZ",
        "payCode": "4403169D3W",
        "payTransactionId": "PAY9FDCC88713814260AE65",
        "logisticsCode": "31222699S7",
        "logisticsNo": "LND69C6ADD64A44B6E",
        "buyerIdNumber": BUYER,
        "buyerName": "王芳张",
        "acturalPaid": "497.50",
        "dutiableValue": "497.50",
        "fullTax": False,
        "documents": {"order": G_ORDER, "payment": G_PAYMENT, "logistics": G_LOGISTICS},
        "firstSeenAt": at(first),
        "completedAt": None if completed is None else at(completed),
        "decidedBy": DECIDED_BY,
    }
    if divert is not None:
        record["reasons"] = divert
        record["missing"] = missing or []
    record.update(fields)
    return record


def codes(outputs: list[Output]) -> list[str]:
    """Each output as ``RELEASE``/``DIVERT``/its rejection code, in order."""
    return [
        item.decision if isinstance(item, Decision) else item.rejection.code for item in outputs
    ]


def only_decision(outputs: list[Output]) -> Decision:
    assert len(outputs) == 1, outputs
    decision = outputs[0]
    assert isinstance(decision, Decision)
    return decision


def only_rejection(outputs: list[Output]) -> Rejection:
    assert len(outputs) == 1, outputs
    item = outputs[0]
    assert isinstance(item, KeyedRejection)
    return item.rejection


def single_item(value: str, freight: str = "10.00") -> dict[str, Any]:
    """Order overrides for one line of qty 1 worth ``value`` (consistent arithmetic)."""
    line = {**order_dict()["orderList"][0], "qty": "1", "price": value, "totalPrice": value}
    paid = str(Decimal(value) + Decimal(freight))
    return {"orderList": [line], "goodsValue": value, "freight": freight, "acturalPaid": paid}


# -- the clean ticket --------------------------------------------------------------------


def test_clean_ticket_is_released_once_with_every_field() -> None:
    driver = Driver()
    assert driver.order(T0) == []
    assert driver.payment(T0 + 1000) == []
    decision = only_decision(driver.logistics(T0 + 2000))
    assert wire(decision) == expected()
    assert decision.decidedAt == "2026-11-24T03:20:02.000Z"
    assert decision.firstSeenAt == "2026-11-24T03:20:00.000Z"
    assert decision.reasons is msgspec.UNSET and decision.missing is msgspec.UNSET
    assert driver.ledger().totals == {2026: Decimal("497.50")}
    ticket = driver.ticket()
    assert ticket is not None and ticket.revision == 1 and ticket.parked == []
    assert driver.tick(T0 + WINDOW) == []  # complete: the window closes without a decision
    assert driver.ticket().deadline_ms == 0  # type: ignore[union-attr]


def test_a_clean_ticket_goes_to_the_buyer_ledger_before_it_is_released() -> None:
    driver = Driver(auto_ledger=False)
    assert driver.clean() == []
    (request,) = (_REQUEST.decode(raw) for raw in driver.requests)
    assert (request.ticket_partition, request.buyer, request.year) == (HOME, BUYER, 2026)
    assert wire(request.decision) == expected()
    assert driver.ticket().status == 1  # type: ignore[union-attr]  # PENDING
    decision = only_decision(driver.settle(T0 + 2500))
    assert wire(decision) == expected(decided=T0 + 2500)  # decided when the ledger decides
    assert driver.ticket().status == 2  # type: ignore[union-attr]  # RELEASED


def test_the_ledger_year_is_the_china_time_year_of_the_order() -> None:
    driver = Driver(auto_ledger=False)
    driver.clean(appTime="20270101003000")  # 2026-12-31T16:30Z in UTC
    (request,) = (_REQUEST.decode(raw) for raw in driver.requests)
    assert request.year == 2027


# -- divert reasons found in the ticket stage ------------------------------------------------

_MISMATCH_CASES: list[tuple[str, dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]] = [
    (
        "AMOUNT_MISMATCH",
        {"payment": {"amountPaid": "497.51"}},
        {"acturalPaid": ["497.50", "497.51"]},
        {},
    ),
    (
        "ORDER_ARITHMETIC",
        {"order": {"acturalPaid": "497.60"}, "payment": {"amountPaid": "497.60"}},
        {"acturalPaid": ["497.60", "497.50"]},
        {"acturalPaid": "497.60"},
    ),
    (
        "PAYER_MISMATCH",
        {"payment": {"payerName": "李四"}},
        {"buyerName": ["王芳张", "李四"]},
        {},
    ),
    (
        "PAYMENT_REFERENCE_MISMATCH",
        {"payment": {"payTransactionId": "PAYOTHER"}},
        {"payTransactionId": ["PAY9FDCC88713814260AE65", "PAYOTHER"]},
        {"payTransactionId": "PAYOTHER"},
    ),
    (
        "CONSIGNEE_MISMATCH",
        {"logistics": {"consigneeTelephone": "13000000000"}},
        {"consigneeTelephone": ["13149827706", "13000000000"]},
        {},
    ),
    (
        "INVALID_BUYER_ID",
        {
            "order": {"buyerIdNumber": "440305198012262284"},
            "payment": {"payerIdNumber": "440305198012262284"},
        },
        {"buyerIdNumber": ["440305198012262284", None]},
        {"buyerIdNumber": "440305198012262284"},
    ),
    (
        "SINGLE_LIMIT_EXCEEDED",
        {
            "order": {
                "orderList": [
                    {
                        **order_dict()["orderList"][0],
                        "qty": "2",
                        "price": "3000",
                        "totalPrice": "6000",
                    }
                ],
                "goodsValue": "6000",
                "acturalPaid": "6010.00",
            },
            "payment": {"amountPaid": "6010.00"},
        },
        {"dutiableValue": ["6010.00", "5000"]},
        {"acturalPaid": "6010.00", "dutiableValue": "6010.00"},
    ),
]


@pytest.mark.parametrize(
    ("code", "overrides", "reason_fields", "record_fields"),
    _MISMATCH_CASES,
    ids=[case[0] for case in _MISMATCH_CASES],
)
def test_each_rule_diverts_the_complete_ticket(
    code: str,
    overrides: dict[str, dict[str, Any]],
    reason_fields: dict[str, Any],
    record_fields: dict[str, Any],
) -> None:
    driver = Driver()
    driver.order(T0, **overrides.get("order", {}))
    driver.payment(T0 + 1000, **overrides.get("payment", {}))
    decision = only_decision(driver.logistics(T0 + 2000, **overrides.get("logistics", {})))
    assert wire(decision) == expected(divert=[code], **record_fields)
    (reason,) = reasons(decision)
    assert reason["fields"] == reason_fields
    assert driver.requests == []  # a diverted ticket never reaches the ledger
    assert driver.ledger().totals == {}
    ticket = driver.ticket()
    assert ticket is not None and ticket.status == 0 and ticket.revision == 1


def test_every_reason_is_reported_not_the_first() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="497.51", payerName="李四", payCode="OTHERPAY")
    decision = only_decision(driver.logistics(T0 + 2000, consignee="王芳", consigneeAddress="x"))
    assert wire(decision) == expected(
        divert=[
            "AMOUNT_MISMATCH",
            "PAYER_MISMATCH",
            "PAYMENT_REFERENCE_MISMATCH",
            "CONSIGNEE_MISMATCH",
        ],
        payCode="OTHERPAY",
    )
    assert reasons(decision)[3]["fields"] == {
        "consignee": ["王芳张", "王芳"],
        "consigneeAddress": ["浙江省杭州市西湖区文三路1号", "x"],
    }


def test_full_tax_single_item_released_and_counted() -> None:
    driver = Driver()
    driver.order(T0, **single_item("6000.00"))
    driver.payment(T0 + 1000, amountPaid="6010.00")
    decision = only_decision(driver.logistics(T0 + 2000))
    assert wire(decision) == expected(acturalPaid="6010.00", dutiableValue="6010.00", fullTax=True)
    assert driver.ledger().totals == {2026: Decimal("6010.00")}


def test_a_single_item_above_the_annual_limit_exceeds_the_single_limit() -> None:
    driver = Driver()
    driver.order(T0, **single_item("25990.01"))
    driver.payment(T0 + 1000, amountPaid="26000.01")
    decision = only_decision(driver.logistics(T0 + 2000))
    assert wire(decision) == expected(
        divert=["SINGLE_LIMIT_EXCEEDED"], acturalPaid="26000.01", dutiableValue="26000.01"
    )
    assert reasons(decision)[0]["fields"] == {"dutiableValue": ["26000.01", "26000"]}


# -- the window ----------------------------------------------------------------------------


def test_the_window_diverts_missing_documents_at_the_deadline_not_before() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000)
    assert driver.tick(T0 + WINDOW - 1) == []
    decision = only_decision(driver.tick(T0 + WINDOW))
    assert wire(decision) == expected(
        divert=["MISSING_DOCUMENTS"],
        missing=["logistics"],
        decided=T0 + WINDOW,
        completed=None,
        logisticsCode=None,
        logisticsNo=None,
        documents={"order": G_ORDER, "payment": G_PAYMENT, "logistics": None},
    )
    assert reasons(decision) == [
        {
            "code": "MISSING_DOCUMENTS",
            "detail": "the window closed without the logistics",
            "fields": {},
        }
    ]
    # it closes once
    assert driver.tick(T0 + WINDOW) == []
    assert driver.tick(T0 + WINDOW + 5000) == []
    # a late document re-decides with the next revision
    late = T0 + WINDOW + 6000
    decision = only_decision(driver.logistics(late))
    assert wire(decision) == expected(revision=2, decided=late, completed=late)


def test_missing_documents_of_an_order_alone_names_both_and_uses_the_order() -> None:
    driver = Driver()
    driver.order(T0)
    decision = only_decision(driver.tick(T0 + WINDOW))
    assert wire(decision) == expected(
        divert=["MISSING_DOCUMENTS"],
        missing=["payment", "logistics"],
        decided=T0 + WINDOW,
        completed=None,
        logisticsCode=None,
        logisticsNo=None,
        documents={"order": G_ORDER, "payment": None, "logistics": None},
    )


def test_missing_documents_of_a_payment_alone_has_no_dutiable_value() -> None:
    driver = Driver()
    driver.payment(T0)
    decision = only_decision(driver.tick(T0 + WINDOW))
    assert wire(decision) == expected(
        divert=["MISSING_DOCUMENTS"],
        missing=["order", "logistics"],
        decided=T0 + WINDOW,
        completed=None,
        ebcCode=None,
        logisticsCode=None,
        logisticsNo=None,
        acturalPaid=None,
        dutiableValue=None,
        documents={"order": None, "payment": G_PAYMENT, "logistics": None},
    )


def test_a_late_document_without_a_timer_first_still_closes_the_window() -> None:
    """The last document arriving after the deadline, before any timer ran, must not hide the
    window: the ticket was not complete when its window closed."""
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000)
    late = T0 + WINDOW + 500
    outputs = driver.logistics(late)
    assert [wire(d) for d in outputs if isinstance(d, Decision)] == [
        expected(
            divert=["MISSING_DOCUMENTS"],
            missing=["logistics"],
            decided=late,
            completed=None,
            logisticsCode=None,
            logisticsNo=None,
            documents={"order": G_ORDER, "payment": G_PAYMENT, "logistics": None},
        ),
        expected(revision=2, decided=late, completed=late),
    ]


def test_the_window_closes_even_when_retention_is_due_in_the_same_timer() -> None:
    driver = Driver()
    driver.order(T0)
    decision = only_decision(driver.tick(T0 + RETENTION))
    assert wire(decision)["reasons"] == ["MISSING_DOCUMENTS"]
    assert driver.group() is None


def test_a_ticket_completed_then_incomplete_is_diverted_when_the_window_closes() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="1")
    assert codes(driver.logistics(T0 + 2000)) == ["DIVERT"]
    withdrawn = payment_dict(guid=guid(1), appType="3", appTime="20261124120000")
    assert driver.send("payment", withdrawn, T0 + 3000) == []
    decision = only_decision(driver.tick(T0 + WINDOW))
    assert wire(decision) == expected(
        revision=2,
        divert=["MISSING_DOCUMENTS"],
        missing=["payment"],
        decided=T0 + WINDOW,
        completed=None,
        documents={"order": G_ORDER, "payment": None, "logistics": G_LOGISTICS},
    )


def test_next_due_is_the_window_then_the_retention() -> None:
    driver = Driver()
    driver.order(T0)
    assert next_due(driver.group()) == T0 + WINDOW  # type: ignore[arg-type]
    driver.tick(T0 + WINDOW)
    assert next_due(driver.group()) == T0 + RETENTION  # type: ignore[arg-type]


def test_a_released_ticket_has_no_window_left_and_its_old_timer_changes_nothing() -> None:
    driver = Driver()
    driver.clean()
    assert next_due(driver.group()) == T0 + RETENTION  # type: ignore[arg-type]
    group = driver.group()
    assert group is not None
    assert not apply_timer(RULES, 0, group, driver.stored(), T0 + WINDOW, T0 + WINDOW).changed


def test_a_timer_that_closes_a_window_reports_the_change() -> None:
    driver = Driver()
    driver.order(T0)
    group = driver.group()
    assert group is not None
    stored = driver.stored()

    def changed(at_ms: int) -> bool:
        return apply_timer(RULES, 0, group, stored, at_ms, at_ms).changed

    assert changed(T0 + WINDOW - 1) is False
    assert changed(T0 + WINDOW) is True
    assert changed(T0 + WINDOW) is False  # closed once
    assert changed(T0 + RETENTION) is True  # forgotten
    assert group.tickets == {}
    assert next_due(Group(ORDER_NO)) is None


# -- retention -----------------------------------------------------------------------------


def test_retention_forgets_the_ticket_and_a_later_record_starts_a_new_one() -> None:
    """A ticket not released (here diverted) is forgotten whole: see
    tests/unit/streams/test_released.py for what is kept of a released one."""
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="1")
    assert codes(driver.logistics(T0 + 2000)) == ["DIVERT"]
    assert driver.tick(T0 + RETENTION - 1) == []
    assert driver.group() is not None
    assert driver.tick(T0 + RETENTION) == []
    assert driver.group() is None
    later = T0 + RETENTION + 1000
    change = order_dict(guid=guid(1), appType="2", appTime="20261124120000")
    assert codes(driver.send("order", change, later)) == ["UNKNOWN_DOCUMENT"]
    # the same records again (the payment fixed) make a new ticket, decided from revision 1
    assert codes(driver.clean(later)) == ["RELEASE"]
    assert wire(driver.decisions()[-1]) == expected(
        decided=later + 2000, first=later, completed=later + 2000
    )


def test_a_record_after_retention_starts_a_new_ticket_even_before_a_timer() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="1")
    assert codes(driver.logistics(T0 + 2000)) == ["DIVERT"]
    later = T0 + RETENTION + 1
    assert driver.order(later, guid=guid(1)) == []  # not DUPLICATE: the old ticket is forgotten
    ticket = driver.ticket()
    assert ticket is not None and ticket.first_seen_ms == later and ticket.revision == 0


# -- rejections ---------------------------------------------------------------------------


def test_a_draft_is_rejected_every_time_and_leaves_no_state() -> None:
    driver = Driver()
    draft = order_dict(appStatus="1")
    for _ in range(2):
        rejection = only_rejection(driver.send("order", draft, T0))
        assert (rejection.code, rejection.docType, rejection.guid) == ("DRAFT", "order", G_ORDER)
    assert driver.group() is None
    assert driver.order(T0 + 1) == []  # the declared version is accepted afterwards


def test_an_undecodable_record_is_rejected_schema_with_its_bytes_and_key() -> None:
    driver = Driver()
    item = driver.send("payment", b'{"guid": 1}', T0, key=b"k")
    rejection = only_rejection(item)
    assert rejection.code == "SCHEMA"
    assert rejection.raw == b'{"guid": 1}'
    assert item[0].key == b"k"  # type: ignore[union-attr]


def test_duplicate_new_document() -> None:
    driver = Driver()
    driver.order(T0)
    value = as_bytes(order_dict(guid=guid(1)))
    item = driver.send("order", value, T0 + 1000, key=b"any key")
    rejection = only_rejection(item)
    assert item[0].key == b"any key"  # type: ignore[union-attr]
    assert (rejection.code, rejection.docType, rejection.guid) == ("DUPLICATE", "order", guid(1))
    assert (rejection.orderNo, rejection.ebpCode) == (ORDER_NO, EBP)
    assert rejection.source == Source("cbec.order", 0, 2, T0 + 1000)
    assert rejection.raw == value
    assert driver.ticket().order.guid == G_ORDER  # type: ignore[union-attr]


@pytest.mark.parametrize("app_type", ["2", "3"])
@pytest.mark.parametrize("kind", ["order", "payment", "logistics"])
def test_change_or_delete_of_an_unknown_document(kind: str, app_type: str) -> None:
    driver = Driver()
    record = BUILDERS[kind](guid=guid(1), appType=app_type, appTime="20261124120000")
    # no ticket at all
    assert codes(driver.send(kind, record, T0)) == ["UNKNOWN_DOCUMENT"]
    group = driver.group()
    assert group is not None
    assert group.tickets == {}
    assert group.unheld == Unheld(digest(guid(1)), T0 + RULES.retention_ms)  # its guid only
    # a ticket without that document
    other = "payment" if kind == "order" else "order"
    driver.send(other, BUILDERS[other](), T0 + 1000)
    record = BUILDERS[kind](guid=guid(2), appType=app_type, appTime="20261124120000")
    rejection = only_rejection(driver.send(kind, record, T0 + 2000))
    assert (rejection.code, rejection.docType, rejection.guid) == (
        "UNKNOWN_DOCUMENT",
        kind,
        guid(2),
    )


@pytest.mark.parametrize("app_type", ["2", "3"])
@pytest.mark.parametrize("kind", ["order", "payment", "logistics"])
def test_change_or_delete_after_release(kind: str, app_type: str) -> None:
    driver = Driver()
    driver.clean()
    record = BUILDERS[kind](guid=guid(1), appType=app_type, appTime="20261124120000")
    rejection = only_rejection(driver.send(kind, record, T0 + 3000))
    assert (rejection.code, rejection.docType, rejection.guid) == (
        "TICKET_RELEASED",
        kind,
        guid(1),
    )
    # checks in the contract's order: a stale change of a released ticket is TICKET_RELEASED
    stale = BUILDERS[kind](guid=guid(2), appType=app_type, appTime="20200101000000")
    assert codes(driver.send(kind, stale, T0 + 3000)) == ["TICKET_RELEASED"]
    # and a new version of a held document is DUPLICATE (a waybill names its platform to reach
    # the released ticket: without it, it would wait in the waybill-only ticket)
    again = BUILDERS[kind](guid=guid(3), ebpCode=EBP)
    assert codes(driver.send(kind, again, T0 + 3000)) == ["DUPLICATE"]
    assert len(driver.decisions()) == 1


@pytest.mark.parametrize("app_type", ["2", "3"])
@pytest.mark.parametrize(
    ("kind", "stored_time", "older"),
    [
        ("order", "20261124111500", "20261124111459"),
        ("payment", "20261124111502", "20261124111501"),
        ("logistics", "20261124112130", "20261124112129"),
    ],
)
def test_stale_for_an_older_or_equal_app_time(
    kind: str, stored_time: str, older: str, app_type: str
) -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="1")
    driver.logistics(T0 + 2000)
    for n, app_time in enumerate((older, stored_time), start=1):
        record = BUILDERS[kind](guid=guid(n), appType=app_type, appTime=app_time)
        rejection = only_rejection(driver.send(kind, record, T0 + 3000))
        assert (rejection.code, rejection.guid) == ("STALE", guid(n))
        assert app_time in rejection.detail
    assert len(driver.decisions()) == 1


def test_an_exact_redelivery_emits_nothing_at_any_stage() -> None:
    driver = Driver()
    order = order_dict()
    driver.send("order", order, T0)
    assert driver.send("order", order, T0 + 1) == []
    driver.payment(T0 + 1000, amountPaid="1")
    assert driver.payment(T0 + 1001, amountPaid="1") == []
    assert codes(driver.logistics(T0 + 2000)) == ["DIVERT"]
    for kind in ("order", "payment", "logistics"):
        assert driver.send(kind, BUILDERS[kind](), T0 + 2500) == []
    change = payment_dict(guid=guid(1), appType="2", appTime="20261124120000")
    assert codes(driver.send("payment", change, T0 + 3000)) == ["RELEASE"]
    assert driver.send("payment", change, T0 + 3001) == []
    for kind in ("order", "payment", "logistics"):
        assert driver.send(kind, BUILDERS[kind](), T0 + 4000) == []
    assert codes(driver.out) == ["DIVERT", "RELEASE"]


def test_a_redelivered_rejected_record_emits_nothing_the_second_time() -> None:
    """Only drafts are stateless (rejected again); any other record's guid is seen on its ticket,
    or, rejected where no ticket held its document, on its orderNo for the retention (a record
    consumed again after a crash is such a redelivery)."""
    driver = Driver()
    unknown = payment_dict(guid=guid(1), appType="2", appTime="20261124120000")
    assert codes(driver.send("payment", unknown, T0)) == ["UNKNOWN_DOCUMENT"]
    assert driver.send("payment", unknown, T0) == []
    driver.order(T0)
    assert driver.send("payment", unknown, T0 + 1) == []
    assert driver.send("payment", unknown, T0 + 2) == []
    stale = order_dict(guid=guid(2), appType="2", appTime="20261124111500")
    duplicate = order_dict(guid=guid(3))
    for record, code in ((stale, "STALE"), (duplicate, "DUPLICATE")):
        assert codes(driver.send("order", record, T0 + 3)) == [code]
        assert driver.send("order", record, T0 + 4) == []
    driver.payment(T0 + 5)
    driver.logistics(T0 + 6)
    released = order_dict(guid=guid(4), appType="3", appTime="20261124120000")
    assert codes(driver.send("order", released, T0 + 7)) == ["TICKET_RELEASED"]
    assert driver.send("order", released, T0 + 8) == []
    expected = ["UNKNOWN_DOCUMENT", "STALE", "DUPLICATE", "RELEASE", "TICKET_RELEASED"]
    assert codes(driver.out) == expected


def test_a_guid_rejected_where_no_ticket_held_it_is_forgotten_after_the_retention() -> None:
    driver = Driver()
    unknown = payment_dict(guid=guid(1), appType="3", appTime="20261124120000")
    assert codes(driver.send("payment", unknown, T0)) == ["UNKNOWN_DOCUMENT"]
    retention = RULES.retention_ms
    assert driver.send("payment", unknown, T0 + retention - 1) == []
    driver.tick(T0 + retention)
    assert driver.groups == {}  # nothing left to keep
    assert codes(driver.send("payment", unknown, T0 + retention + 1)) == ["UNKNOWN_DOCUMENT"]


# -- changes, deletes, re-decisions -----------------------------------------------------------


def test_a_change_after_a_divert_releases_with_revision_two() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="497.51")
    assert wire(only_decision(driver.logistics(T0 + 2000))) == expected(divert=["AMOUNT_MISMATCH"])
    change = payment_dict(guid=guid(1), appType="2", appTime="20261124120000")
    decision = only_decision(driver.send("payment", change, T0 + 5000))
    assert wire(decision) == expected(
        revision=2,
        decided=T0 + 5000,
        documents={"order": G_ORDER, "payment": guid(1), "logistics": G_LOGISTICS},
    )


def test_a_change_that_keeps_failing_diverts_again() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="497.51")
    driver.logistics(T0 + 2000)
    change = payment_dict(guid=guid(1), appType="2", appTime="20261124120000", amountPaid="497.52")
    decision = only_decision(driver.send("payment", change, T0 + 5000))
    assert wire(decision) == expected(
        revision=2,
        decided=T0 + 5000,
        divert=["AMOUNT_MISMATCH"],
        documents={"order": G_ORDER, "payment": guid(1), "logistics": G_LOGISTICS},
    )


def test_delete_decides_nothing_and_a_new_version_re_decides() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="497.51")
    driver.logistics(T0 + 2000)
    delete = payment_dict(guid=guid(1), appType="3", appTime="20261124120000")
    assert driver.send("payment", delete, T0 + 3000) == []
    assert driver.ticket().payment is None  # type: ignore[union-attr]
    # a change of the withdrawn document is unknown
    change = payment_dict(guid=guid(2), appType="2", appTime="20261124130000")
    assert codes(driver.send("payment", change, T0 + 3500)) == ["UNKNOWN_DOCUMENT"]
    # sent again with appType 1 (any appTime): the ticket is complete again and re-decided
    decision = only_decision(driver.payment(T0 + 4000, guid=guid(3)))
    assert wire(decision) == expected(
        revision=2,
        decided=T0 + 4000,
        completed=T0 + 4000,
        documents={"order": G_ORDER, "payment": guid(3), "logistics": G_LOGISTICS},
    )


def test_a_change_to_an_incomplete_ticket_decides_nothing() -> None:
    driver = Driver()
    driver.order(T0)
    change = order_dict(guid=guid(1), appType="2", appTime="20261124120000", buyerName="李四")
    assert driver.send("order", change, T0 + 1000) == []
    assert driver.payment(T0 + 2000, payerName="李四") == []
    decision = only_decision(driver.logistics(T0 + 3000))
    assert wire(decision) == expected(
        decided=T0 + 3000,
        completed=T0 + 3000,
        buyerName="李四",
        documents={"order": guid(1), "payment": G_PAYMENT, "logistics": G_LOGISTICS},
    )


def test_a_delete_of_a_waybill_without_platform_code_finds_its_ticket() -> None:
    driver = Driver()
    driver.order(T0)
    driver.payment(T0 + 1000, amountPaid="1")
    driver.logistics(T0 + 2000)
    delete = logistics_dict(guid=guid(1), appType="3", appTime="20261124120000")
    assert driver.send("logistics", delete, T0 + 3000) == []
    assert driver.ticket().logistics is None  # type: ignore[union-attr]
    assert driver.group().tickets.keys() == {EBP}  # type: ignore[union-attr]


# -- waybill placement ---------------------------------------------------------------------


def test_a_waybill_only_ticket_is_diverted_and_later_adopted() -> None:
    driver = Driver()
    assert driver.logistics(T0) == []
    assert driver.group().tickets.keys() == {""}  # type: ignore[union-attr]
    decision = only_decision(driver.tick(T0 + WINDOW))
    assert wire(decision) == {
        "ticketId": f":{ORDER_NO}",
        "decision": "DIVERT",
        "revision": 1,
        "decidedAt": at(T0 + WINDOW),
        "orderNo": ORDER_NO,
        "ebpCode": None,
        "ebcCode": None,
        "payCode": None,
        "payTransactionId": None,
        "logisticsCode": "31222699S7",
        "logisticsNo": "LND69C6ADD64A44B6E",
        "buyerIdNumber": None,
        "buyerName": None,
        "acturalPaid": None,
        "dutiableValue": None,
        "fullTax": False,
        "documents": {"order": None, "payment": None, "logistics": G_LOGISTICS},
        "firstSeenAt": at(T0),
        "completedAt": None,
        "decidedBy": DECIDED_BY,
        "reasons": ["MISSING_DOCUMENTS"],
        "missing": ["order", "payment"],
    }
    start = T0 + WINDOW + 1000
    assert driver.order(start) == []  # adopts the waiting waybill
    assert driver.group().tickets.keys() == {EBP}  # type: ignore[union-attr]
    decision = only_decision(driver.payment(start + 1000))
    assert wire(decision) == expected(decided=start + 1000, first=start, completed=start + 1000)
    assert driver.tick(start + WINDOW) == []  # the adopted waybill's old window is gone


def test_a_waiting_waybill_is_adopted_by_a_payment_arriving_first() -> None:
    driver = Driver()
    driver.logistics(T0)
    assert driver.payment(T0 + 1000) == []
    ticket = driver.ticket()
    assert ticket is not None and ticket.logistics is not None
    assert wire(only_decision(driver.order(T0 + 2000))) == expected(first=T0 + 1000)
    # and a redelivery of the moved waybill is still recognised
    assert driver.logistics(T0 + 3000) == []


def test_a_waybill_naming_its_platform_joins_directly() -> None:
    driver = Driver()
    assert driver.logistics(T0, ebpCode=EBP) == []
    assert driver.group().tickets.keys() == {EBP}  # type: ignore[union-attr]
    driver.order(T0 + 1000)
    decision = only_decision(driver.payment(T0 + 2000))
    assert wire(decision) == expected()


def test_a_waybill_naming_its_platform_is_never_ambiguous() -> None:
    driver = Driver()
    driver.order(T0)
    driver.order(T0 + 1, ebpCode=OTHER_EBP, guid=guid(1))
    driver.payment(T0 + 1000)
    decision = only_decision(driver.logistics(T0 + 2000, ebpCode=EBP))
    assert wire(decision) == expected()


def test_two_open_platform_tickets_make_a_waybill_ambiguous() -> None:
    driver = Driver()
    driver.order(T0)
    driver.order(T0 + 1, ebpCode=OTHER_EBP, guid=guid(1))
    outputs = driver.logistics(T0 + 2)
    assert [wire(d) for d in outputs] == [  # type: ignore[arg-type]
        {
            **expected(
                divert=["AMBIGUOUS_WAYBILL"],
                missing=["payment", "logistics"],
                decided=T0 + 2,
                completed=None,
                logisticsCode=None,
                logisticsNo=None,
                documents={"order": order_guid, "payment": None, "logistics": None},
            ),
            "ticketId": f"{ebp}:{ORDER_NO}",
            "ebpCode": ebp,
            "firstSeenAt": at(first),
        }
        for ebp, order_guid, first in ((EBP, G_ORDER, T0), (OTHER_EBP, guid(1), T0 + 1))
    ]
    assert reasons(outputs[0])[0]["fields"] == {"orderNo": [ORDER_NO, ORDER_NO]}  # type: ignore[arg-type]
    group = driver.group()
    assert group is not None and group.tickets.keys() == {EBP, OTHER_EBP, ""}
    assert group.tickets[""].logistics.guid == G_LOGISTICS  # type: ignore[union-attr]
    # the waybill is not adopted while two platforms are open: no decision on completion
    assert driver.payment(T0 + 3) == []
    # each window still closes: revision 2 for the platforms, 1 for the waybill-only ticket
    closing = driver.tick(T0 + WINDOW + 2)
    assert [(d.ticketId, d.revision, d.missing) for d in closing] == [  # type: ignore[union-attr]
        (TICKET, 2, ["logistics"]),
        (f"{OTHER_EBP}:{ORDER_NO}", 2, ["payment", "logistics"]),
        (f":{ORDER_NO}", 1, ["order", "payment"]),
    ]
    # a waybill naming the platform completes its ticket
    decision = only_decision(driver.logistics(T0 + WINDOW + 10, ebpCode=EBP, guid=guid(2)))
    assert wire(decision) == expected(
        revision=3,
        decided=T0 + WINDOW + 10,
        completed=T0 + WINDOW + 10,
        documents={"order": G_ORDER, "payment": G_PAYMENT, "logistics": guid(2)},
    )


def test_a_duplicate_waybill_for_ambiguous_tickets_is_only_rejected() -> None:
    """A second waybill (new guid) that cannot be placed is DUPLICATE in ``:{orderNo}``; a
    rejected record decides nothing."""
    driver = Driver()
    driver.order(T0)
    driver.order(T0 + 1, ebpCode=OTHER_EBP, guid=guid(1))
    assert codes(driver.logistics(T0 + 2)) == ["DIVERT", "DIVERT"]
    rejection = only_rejection(driver.logistics(T0 + 3, guid=guid(2)))
    assert (rejection.code, rejection.guid) == ("DUPLICATE", guid(2))
    assert driver.ticket().revision == 1  # type: ignore[union-attr]


def test_a_waybill_change_without_platform_code_goes_to_the_ticket_holding_its_number() -> None:
    driver = Driver()
    driver.order(T0)
    driver.order(T0 + 1, ebpCode=OTHER_EBP, guid=guid(1))
    driver.logistics(T0 + 2, ebpCode=EBP)
    driver.logistics(T0 + 3, ebpCode=OTHER_EBP, guid=guid(2), logisticsNo="LN2")
    change = logistics_dict(
        guid=guid(3), appType="2", appTime="20261124120000", logisticsNo="LN2", weight="2"
    )
    assert driver.send("logistics", change, T0 + 4) == []
    assert driver.ticket(OTHER_EBP).logistics.guid == guid(3)  # type: ignore[union-attr]
    assert driver.ticket().logistics.guid == G_LOGISTICS  # type: ignore[union-attr]


def test_another_waybill_after_release_waits_in_the_waybill_only_ticket() -> None:
    """Not the released ticket's waybill (another logisticsNo, no platform named): it may be
    another platform's; the released ticket's own waybill resent is rejected
    (tests/unit/streams/test_released.py)."""
    driver = Driver()
    driver.clean()
    assert driver.logistics(T0 + 3000, guid=guid(1), logisticsNo="LN20261124OTHER") == []
    assert driver.group().tickets.keys() == {EBP, ""}  # type: ignore[union-attr]
    decision = only_decision(driver.tick(T0 + 3000 + WINDOW))
    assert (decision.ticketId, decision.missing) == (f":{ORDER_NO}", ["order", "payment"])


# -- records parked while the ledger decides -------------------------------------------------


def test_a_change_parked_while_pending_is_rejected_after_release() -> None:
    driver = Driver(auto_ledger=False)
    driver.clean()
    change = payment_dict(guid=guid(1), appType="2", appTime="20261124120000")
    assert driver.send("payment", change, T0 + 3000, key=b"parked") == []
    assert driver.send("payment", change, T0 + 3000, key=b"again") == []  # parked too
    assert driver.logistics(T0 + 3001) == []  # a redelivery is not even parked
    assert driver.tick(T0 + WINDOW) == []  # the window of a pending (complete) ticket
    ticket = driver.ticket()
    assert ticket is not None and len(ticket.parked) == 2 and ticket.status == 1
    outputs = driver.settle(T0 + WINDOW + 1)
    assert codes(outputs) == ["RELEASE", "TICKET_RELEASED"]  # the redelivery: nothing
    assert wire(outputs[0]) == expected(decided=T0 + WINDOW + 1)  # type: ignore[arg-type]
    parked = outputs[1]
    assert isinstance(parked, KeyedRejection) and parked.key == b"parked"
    assert parked.rejection.guid == guid(1)
    assert parked.rejection.source == Source("cbec.payment", 0, 4, T0 + 3000)
    assert parked.rejection.raw == as_bytes(change)
    assert driver.ticket().parked == []  # type: ignore[union-attr]


def _release_big_ticket(driver: Driver, value: str) -> None:
    """Release another ticket of the same buyer worth ``value`` (a single item, freight 0)."""
    order_no = "SO20261124000999"
    driver.order(T0 - 5000, orderNo=order_no, guid=guid(900), **single_item(value, "0"))
    driver.payment(T0 - 5000, orderNo=order_no, guid=guid(901), amountPaid=value)
    driver.logistics(T0 - 5000, orderNo=order_no, guid=guid(902))
    driver.settle(T0 - 5000)
    assert codes(driver.out) == ["RELEASE"]


def test_records_parked_before_an_annual_divert_are_applied_and_re_decided() -> None:
    driver = Driver(auto_ledger=False)
    _release_big_ticket(driver, "25600.00")
    driver.out.clear()
    driver.clean()
    # while the ledger decides: a smaller order, then the matching payment
    small = single_item("89.50")
    order_change = order_dict(guid=guid(1), appType="2", appTime="20261124120000", **small)
    payment_change = payment_dict(
        guid=guid(2), appType="2", appTime="20261124120000", amountPaid="99.50"
    )
    assert driver.send("order", order_change, T0 + 3000) == []
    assert driver.send("payment", payment_change, T0 + 3001) == []
    outputs = driver.settle(T0 + 4000)
    assert [wire(d) for d in outputs] == [  # type: ignore[arg-type]
        expected(decided=T0 + 4000, divert=["ANNUAL_LIMIT_EXCEEDED"]),
        expected(  # the parked order change: its payment still says 497.50
            revision=2,
            decided=T0 + 4000,
            divert=["AMOUNT_MISMATCH"],
            acturalPaid="99.50",
            dutiableValue="99.50",
            documents={"order": guid(1), "payment": G_PAYMENT, "logistics": G_LOGISTICS},
        ),
        expected(  # the parked payment change made it clean: the ledger releases it
            revision=3,
            decided=T0 + 4000,
            acturalPaid="99.50",
            dutiableValue="99.50",
            documents={"order": guid(1), "payment": guid(2), "logistics": G_LOGISTICS},
        ),
    ]
    assert reasons(outputs[0])[0]["fields"] == {  # type: ignore[arg-type]
        "dutiableValue": ["497.50", "25600.00"]
    }
    assert driver.ledger().totals == {2026: Decimal("25699.50")}


def test_an_outcome_for_another_revision_or_ticket_is_ignored() -> None:
    driver = Driver(auto_ledger=False)
    driver.clean()
    before = driver.groups[ORDER_NO]
    for n, outcome in enumerate(
        (Outcome(ORDER_NO, EBP, 2, released=True), Outcome(ORDER_NO, OTHER_EBP, 1, released=True))
    ):
        group = driver.group()
        assert group is not None
        step = apply_outcome(RULES, 0, group, driver.stored(), outcome, T0 + 3000, 0)
        assert (step.emits, step.changed, step.documents) == ([], False, {})
        assert _ENCODER.encode(group) == before
        # and on the outcomes topic, to the ticket's worker: nothing produced, nothing written
        value = _ENCODER.encode(outcome)
        record = Record(driver.topics.outcomes, HOME, n, T0 + 3000, ORDER_NO.encode(), value)
        assert driver.workers.consume(record, T0 + 3000) == []
        assert driver.groups[ORDER_NO] == before
    assert driver.requests  # still pending at the ledger


# -- the annual limit across tickets -----------------------------------------------------------


def _buyer_ticket(driver: Driver, n: int, value: str, app_time: str = "20261124111500") -> Output:
    order_no = f"SO2026112400{n:04d}"
    driver.order(
        T0 + n, orderNo=order_no, guid=guid(10 * n), appTime=app_time, **single_item(value)
    )
    paid = str(Decimal(value) + Decimal("10.00"))
    driver.payment(T0 + n, orderNo=order_no, guid=guid(10 * n + 1), amountPaid=paid)
    outputs = driver.logistics(T0 + n, orderNo=order_no, guid=guid(10 * n + 2))
    assert len(outputs) == 1
    return outputs[0]


def test_annual_limit_counts_released_tickets_of_a_buyer_per_year() -> None:
    driver = Driver()
    first = _buyer_ticket(driver, 1, "19990.00")  # 20000.00, full tax
    assert isinstance(first, Decision) and first.decision == "RELEASE" and first.fullTax
    assert codes([_buyer_ticket(driver, 2, "3990.00")]) == ["RELEASE"]  # 24000.00
    over = _buyer_ticket(driver, 3, "1990.01")  # 26000.01 in all
    assert isinstance(over, Decision)
    assert wire(over)["reasons"] == ["ANNUAL_LIMIT_EXCEEDED"]
    assert (over.revision, over.missing, over.dutiableValue) == (1, [], Decimal("2000.01"))
    assert reasons(over)[0]["fields"] == {"dutiableValue": ["2000.01", "24000.00"]}
    # diverted tickets do not count; exactly the limit is allowed
    assert codes([_buyer_ticket(driver, 4, "1990.00")]) == ["RELEASE"]
    assert driver.ledger().totals == {2026: Decimal("26000.00")}
    # another calendar year has its own total
    assert codes([_buyer_ticket(driver, 5, "1990.00", "20270101003000")]) == ["RELEASE"]
    assert driver.ledger().totals == {2026: Decimal("26000.00"), 2027: Decimal("2000.00")}


# -- the state ------------------------------------------------------------------------------


def test_a_group_with_every_kind_of_state_survives_msgpack() -> None:
    driver = Driver(auto_ledger=False)
    driver.order(T0)
    driver.order(T0 + 1, ebpCode=OTHER_EBP, guid=guid(1))
    driver.logistics(T0 + 2)  # ambiguous: waits in the waybill-only ticket
    driver.payment(T0 + 3)
    driver.logistics(T0 + 4, ebpCode=EBP, guid=guid(2))  # pending at the ledger
    driver.send("order", order_dict(guid=guid(3), appType="3", appTime="20261124120000"), T0 + 5)
    group = driver.group()
    assert group is not None and group.tickets.keys() == {EBP, OTHER_EBP, ""}
    assert len(group.tickets[EBP].parked) == 1
    assert _GROUP.decode(_ENCODER.encode(group)) == group


# -- properties ---------------------------------------------------------------------------

_CLEAN = {kind: as_bytes(BUILDERS[kind]()) for kind in ("order", "payment", "logistics")}
_KINDS = ("order", "payment", "logistics")


@settings(max_examples=150, deadline=None)
@given(
    sequence=st.lists(st.sampled_from(_KINDS), min_size=3, max_size=9).filter(
        lambda s: set(s) == set(_KINDS)
    ),
    gaps=st.lists(st.integers(0, 1000), min_size=9, max_size=9),  # within the window
    keys=st.lists(st.sampled_from([None, b"", b"x", b"SO20261124000002"]), min_size=9, max_size=9),
    settle_after=st.lists(st.booleans(), min_size=9, max_size=9),
)
def test_a_clean_ticket_in_any_order_is_released_once(
    sequence: list[str], gaps: list[int], keys: list[bytes | None], settle_after: list[bool]
) -> None:
    driver = Driver(auto_ledger=False)
    now = T0
    seen: set[str] = set()
    first = completed = None
    for kind, gap, key, settle_now in zip(sequence, gaps, keys, settle_after, strict=False):
        now += gap
        driver.send(kind, _CLEAN[kind], now, key=key)
        seen.add(kind)
        if first is None and kind != "logistics":  # a waybill first waits in ":{orderNo}"
            first = now
        if completed is None and len(seen) == 3:
            completed = now
        if settle_now:
            driver.settle(now)
    driver.settle(now)
    assert driver.rejections() == []
    decision = only_decision(driver.out)
    assert decision.decision == "RELEASE" and decision.revision == 1
    assert decision.completedAt == at(completed)  # type: ignore[arg-type]
    assert decision.firstSeenAt == at(first)  # type: ignore[arg-type]
    assert decision.documents.logistics == G_LOGISTICS
    assert driver.group().tickets.keys() == {EBP}  # type: ignore[union-attr]


_VARIANTS: dict[str, list[dict[str, Any]]] = {
    "order": [{}, {"buyerName": "李四"}, {"ebpCode": OTHER_EBP}],
    "payment": [{}, {"amountPaid": "497.51"}, {"ebpCode": OTHER_EBP}],
    "logistics": [{}, {"ebpCode": EBP}, {"consignee": "王芳"}, {"ebpCode": OTHER_EBP}],
}
_TIMES = ("20261124100000", "20261124110000", "20261124120000", "20261124130000")

_record = st.tuples(
    st.sampled_from(_KINDS),
    st.integers(0, 3),  # variant (modulo the kind's)
    st.sampled_from(["1", "1", "2", "3"]),
    st.integers(0, len(_TIMES) - 1),
)
_step = st.one_of(
    _record.map(lambda r: ("record", r)),
    st.just(("settle", None)),
    st.just(("tick", None)),
)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(_step, min_size=1, max_size=30),
    gaps=st.lists(st.integers(0, 3000), min_size=30, max_size=30),
)
def test_any_record_sequence_counts_revisions_and_releases_at_most_once(
    steps: list[tuple[str, Any]], gaps: list[int]
) -> None:
    driver = Driver(auto_ledger=False)
    now = T0
    for (action, record), gap in zip(steps, gaps, strict=False):
        now += gap  # at most 90 s: within retention, so ticket ids are not reused
        if action == "settle":
            driver.settle(now)
        elif action == "tick":
            driver.tick(now)
        else:
            kind, variant, app_type, time_index = record
            variant %= len(_VARIANTS[kind])
            ident = _KINDS.index(kind) * 1000 + variant * 100 + int(app_type) * 10 + time_index
            document = BUILDERS[kind](
                guid=guid(ident),
                appType=app_type,
                appTime=_TIMES[time_index],
                **_VARIANTS[kind][variant],
            )
            driver.send(kind, document, now)
    driver.settle(now)
    driver.tick(now + WINDOW)
    driver.settle(now + WINDOW)
    revisions: dict[str, list[int]] = {}
    released: dict[str, int] = {}
    for item in driver.out:
        if isinstance(item, Decision):
            assert released.get(item.ticketId, 0) == 0, "a decision after the release"
            revisions.setdefault(item.ticketId, []).append(item.revision)
            if item.decision == "RELEASE":
                released[item.ticketId] = 1
                assert item.reasons is msgspec.UNSET and item.completedAt is not None
                assert None not in (item.documents.order, item.documents.payment)
                assert item.documents.logistics is not None
            else:
                assert item.reasons
                complete = item.completedAt is not None
                assert (item.missing == []) == complete, item
        else:
            assert item.rejection.code in {
                "STALE",
                "DUPLICATE",
                "UNKNOWN_DOCUMENT",
                "TICKET_RELEASED",
            }
    for ticket_revisions in revisions.values():
        assert ticket_revisions == list(range(1, len(ticket_revisions) + 1))
    assert driver.requests == []
    group = driver.group()
    if group is not None:
        assert all(ticket.status != 1 and not ticket.parked for ticket in group.tickets.values())
