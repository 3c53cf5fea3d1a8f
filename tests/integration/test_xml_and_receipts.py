"""CEB XML messages on the input topics and receipts on ``cbec.receipt``, on the real broker.

One deployment (window 4 s) and one worker for the module. Each test uses its own orderNos and
guids, and asserts the exact records on ``cbec.rejected`` and ``cbec.receipt`` for them.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from schemas.ceb_xml import encode_message
from schemas.codec import decode_document
from schemas.documents import DocType, Document
from tests.factories import as_bytes
from tests.integration.conftest import Deployment
from tests.integration.kafka import Timeout, consume, produce, run
from tests.integration.receipts import receipt
from tests.integration.test_contract import (
    new_guid,
    new_order_no,
    single_item,
    ticket_docs,
    version,
)

WINDOW = "4s"
EBP = "3301980ABC"
PAY_CODE = "4403169D3W"
LOGISTICS_CODE = "31222699S7"
ORDER_AGENT = "3301980AGT"
PAYMENT_AGENT = "4403169AGT"

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def deployment(brokers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment(brokers, tmp_path_factory.mktemp("xml"), SANDAN_WINDOW=WINDOW)
    d.worker().wait_ready()
    yield d
    d.stop()


def doc(kind: str, fields: Doc) -> Document:
    return decode_document(kind, as_bytes(fields))  # type: ignore[arg-type]


def xml(kind: DocType, docs: list[Doc], cop: str, **options: Any) -> bytes:
    return encode_message(kind, [doc(kind, d) for d in docs], cop_code=cop, **options)


def send(d: Deployment, records: list[tuple[str, bytes | None, bytes]]) -> None:
    run(produce(d.brokers, [(d.topic(kind), key, value) for kind, key, value in records]))


def outputs(
    d: Deployment, topic: str, keep: Callable[[dict[str, Any]], bool], count: int, limit: float = 60
) -> list[dict[str, Any]]:
    """The records of ``topic`` that ``keep`` accepts, once there are ``count`` and no more came
    for a moment (bounded by ``limit``)."""
    timeout = Timeout(limit, f"{count} records on {topic}")
    while timeout:
        records = run(consume(d.brokers, [d.topic(topic)], idle=1.5, limit=30))
        values = [
            receipt(r) if topic == "receipt" else json.loads(r.value) | {"key": r.key}
            for r in records
        ]
        kept = [v for v in values if keep(v)]
        if len(kept) >= count:
            return kept
        time.sleep(0.5)
    raise AssertionError("unreachable")


def for_guids(guids: set[str]) -> Callable[[dict[str, Any]], bool]:
    return lambda value: value.get("guid") in guids


# -- XML messages -------------------------------------------------------------------------------


def test_multi_node_messages_in_both_namespace_styles_are_decided_with_xml_receipts(
    deployment: Deployment,
) -> None:
    d = deployment
    tickets = [ticket_docs(new_order_no("X")) for _ in range(3)]
    bad_payment = {**ticket_docs(new_order_no("X"))["payment"], "amountPaid": "123.45"}
    orders = xml("order", [t["order"] for t in tickets], ORDER_AGENT, prefixed=True)
    payments = xml(
        "payment",
        [*(t["payment"] for t in tickets), bad_payment],
        PAYMENT_AGENT,
        prefixed=False,
        declaration=False,
    ).replace(b">123.45<", b">1e3<")  # the fourth node made invalid
    send(
        d,
        [
            ("order", None, orders),
            ("payment", b"any key", payments),
            *(("logistics", None, as_bytes(t["logistics"])) for t in tickets),
        ],
    )
    ids = {f"{EBP}:{t['order']['orderNo']}" for t in tickets}
    released = outputs(d, "release", lambda v: v["ticketId"] in ids, 3)
    assert {v["ticketId"] for v in released} == ids
    (rejection,) = outputs(d, "rejected", for_guids({bad_payment["guid"]}), 1)
    assert rejection["code"] == "SCHEMA"
    assert rejection["node"] == 4 and rejection["docType"] == "payment"
    assert rejection["detail"].startswith("node 4: ") and "`$.amountPaid`" in rejection["detail"]
    assert b"<" in base64.b64decode(rejection["raw"])  # the node element
    assert rejection["source"]["topic"] == d.topic("payment")

    guids = {t[k]["guid"] for t in tickets for k in ("order", "payment", "logistics")}
    guids.add(bad_payment["guid"])
    receipts = outputs(d, "receipt", for_guids(guids), 19)
    got = Counter(
        (r["docType"], r["format"], r["key"], r["returnStatus"], r.get("decision") or r.get("code"))
        for r in receipts
    )
    assert got == Counter(
        {
            ("order", "xml", ORDER_AGENT, "120", None): 3,
            ("order", "xml", ORDER_AGENT, "399", "RELEASE"): 3,
            ("payment", "xml", PAYMENT_AGENT, "120", None): 3,
            ("payment", "xml", PAYMENT_AGENT, "399", "RELEASE"): 3,
            ("payment", "xml", PAYMENT_AGENT, "100", "SCHEMA"): 1,
            ("logistics", "json", LOGISTICS_CODE, "120", None): 3,
            ("logistics", "json", LOGISTICS_CODE, "399", "RELEASE"): 3,
        }
    )
    stored_orders = sorted(
        r["node"] for r in receipts if r["docType"] == "order" and r["returnStatus"] == "120"
    )
    assert stored_orders == [1, 2, 3]


HOSTILE: dict[str, bytes] = {
    "doctype": b'<?xml version="1.0"?><!DOCTYPE x [<!ELEMENT x ANY>]><x/>',
    "xxe": (
        b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<ceb:CEB311Message xmlns:ceb="http://www.chinaport.gov.cn/ceb">&e;</ceb:CEB311Message>'
    ),
    "billion laughs": (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        b"<l>&c;</l>"
    ),
    "not well-formed": b"<ceb:CEB311Message xmlns:ceb='http://www.chinaport.gov.cn/ceb'><ceb:Order>",
    "wrong namespace": b"<CEB311Message xmlns='urn:other' guid='x' version='1.0'/>",
    "deep": (
        b'<ceb:CEB311Message xmlns:ceb="http://www.chinaport.gov.cn/ceb" version="1.0" guid="'
        + b"A" * 36
        + b'">'
        + b"<ceb:Order>" * 300
        + b"</ceb:Order>" * 300
        + b"</ceb:CEB311Message>"
    ),
}


def test_hostile_and_malformed_messages_are_rejected_whole_with_their_bytes(
    deployment: Deployment,
) -> None:
    d = deployment
    marker = new_order_no("H")
    send(d, [("order", f"{marker}:{name}".encode(), value) for name, value in HOSTILE.items()])
    rejected = outputs(
        d, "rejected", lambda v: (v["key"] or b"").startswith(marker.encode()), len(HOSTILE)
    )
    by_name = {v["key"].decode().split(":", 1)[1]: v for v in rejected}
    assert by_name.keys() == HOSTILE.keys()
    for name, value in HOSTILE.items():
        rejection = by_name[name]
        assert rejection["code"] == "SCHEMA", name
        assert base64.b64decode(rejection["raw"]) == value, name
        assert "node" not in rejection, name


def test_a_wrong_root_is_rejected_on_each_topic(deployment: Deployment) -> None:
    d = deployment
    docs = ticket_docs(new_order_no("R"))
    # each topic gets the message meant for the next one
    wrong: dict[str, DocType] = {"order": "payment", "payment": "logistics", "logistics": "order"}
    send(d, [(topic, None, xml(kind, [docs[kind]], ORDER_AGENT)) for topic, kind in wrong.items()])
    marker_topics = {d.topic(t) for t in wrong}
    rejected = outputs(
        d,
        "rejected",
        lambda v: (
            v["source"]["topic"] in marker_topics
            and docs["order"]["orderNo"].encode() in base64.b64decode(v["raw"])
        ),
        3,
    )
    names = {"order": "CEB311Message", "payment": "CEB411Message", "logistics": "CEB511Message"}
    for v in rejected:
        topic = v["source"]["topic"].removeprefix(d.settings.topic_prefix)
        assert v["code"] == "SCHEMA" and names[topic] in v["detail"], v["detail"]


def test_a_100_node_message_is_taken_and_a_101_node_one_is_not(deployment: Deployment) -> None:
    d = deployment
    orders = [ticket_docs(new_order_no("C"))["order"] for _ in range(101)]
    send(
        d,
        [
            ("order", b"hundred", xml("order", orders[:100], ORDER_AGENT)),
            ("order", b"too many", xml("order", orders, ORDER_AGENT)),
        ],
    )
    guids = {o["guid"] for o in orders}
    stored = outputs(
        d, "receipt", lambda r: r.get("guid") in guids and r["returnStatus"] == "120", 100
    )
    assert sorted(r["node"] for r in stored) == list(range(1, 101))
    (whole,) = outputs(d, "rejected", lambda v: v["key"] == b"too many", 1)
    assert whole["code"] == "SCHEMA" and "101" in whole["detail"]
    (returned,) = outputs(
        d, "receipt", lambda r: r["returnStatus"] == "100" and "101" in r["returnInfo"], 1
    )
    assert (returned["format"], returned["key"], returned["code"]) == ("xml", ORDER_AGENT, "SCHEMA")


# -- receipts on every path -------------------------------------------------------------------


def test_every_path_gets_its_receipts_exactly(deployment: Deployment) -> None:
    d = deployment
    released = ticket_docs(new_order_no("P"))
    mismatch = ticket_docs(new_order_no("P"), payment={"amountPaid": "1.00"})
    lonely = ticket_docs(new_order_no("P"))["order"]
    buyer = released["order"]["buyerIdNumber"]
    big = ticket_docs(new_order_no("P"), **single_item("20000.00", buyer))
    over = ticket_docs(new_order_no("P"), **single_item("7000.00", buyer))
    shared_no = new_order_no("P")
    ambiguous = [ticket_docs(shared_no)["order"], ticket_docs(shared_no, ebp="3301980DEF")["order"]]
    waybill = ticket_docs(shared_no)["logistics"]
    bad = {**ticket_docs(new_order_no("P"))["payment"], "amountPaid": "-1"}
    draft = {**ticket_docs(new_order_no("P"))["order"], "appStatus": "1"}
    unknown = version(ticket_docs(new_order_no("P"))["payment"], "2", "20261124120000")

    phase1 = [
        *(("order", t["order"]) for t in (released, mismatch, big)),
        *(("payment", t["payment"]) for t in (released, mismatch, big)),
        *(("logistics", t["logistics"]) for t in (released, mismatch, big)),
        ("order", lonely),
        *(("order", o) for o in ambiguous),
        ("logistics", waybill),
        ("payment", bad),
        ("order", draft),
        ("payment", unknown),
    ]
    send(d, [(k, v["orderNo"].encode(), as_bytes(v)) for k, v in phase1])
    outputs(d, "release", lambda v: v["ticketId"].endswith(big["order"]["orderNo"]), 1)
    duplicate = {**released["order"], "guid": new_guid()}
    after_release = version(released["payment"], "2", "20261124120000")
    stale = version(mismatch["order"], "2", "20200101000000")
    phase2 = [
        ("order", duplicate),
        ("payment", after_release),
        ("order", stale),
        ("payment", mismatch["payment"]),  # an exact redelivery
        *(("order", t["order"]) for t in (over,)),
        ("payment", over["payment"]),
        ("logistics", over["logistics"]),
    ]
    send(d, [(k, v["orderNo"].encode(), as_bytes(v)) for k, v in phase2])

    def both(docs: Any, decision: str) -> dict[tuple[str, str, str | None], int]:
        """A ticket's three documents: stored once, and concluded once with ``decision``."""
        guids = [str(docs[kind]["guid"]) for kind in ("order", "payment", "logistics")]
        return {(g, "120", None): 1 for g in guids} | {(g, "399", decision): 1 for g in guids}

    def g(x: Doc) -> str:
        return str(x["guid"])

    expected: Counter[tuple[str, str, str | None]] = Counter(
        {
            **both(released, "RELEASE"),
            **both(mismatch, "DIVERT AMOUNT_MISMATCH"),
            **both(big, "RELEASE"),
            **both(over, "DIVERT ANNUAL_LIMIT_EXCEEDED"),
            (g(lonely), "120", None): 1,
            (g(lonely), "399", "DIVERT MISSING_DOCUMENTS"): 1,
            (g(ambiguous[0]), "120", None): 1,
            (g(ambiguous[1]), "120", None): 1,
            (g(ambiguous[0]), "399", "DIVERT AMBIGUOUS_WAYBILL"): 1,
            (g(ambiguous[1]), "399", "DIVERT AMBIGUOUS_WAYBILL"): 1,
            (g(ambiguous[0]), "399", "DIVERT MISSING_DOCUMENTS"): 1,  # each window still closes
            (g(ambiguous[1]), "399", "DIVERT MISSING_DOCUMENTS"): 1,
            (g(waybill), "120", None): 1,
            (g(waybill), "399", "DIVERT MISSING_DOCUMENTS"): 1,  # the waybill-only ticket's
            (g(bad), "100", "SCHEMA"): 1,
            (g(draft), "100", "DRAFT"): 1,
            (g(unknown), "100", "UNKNOWN_DOCUMENT"): 1,
            (g(duplicate), "100", "DUPLICATE"): 1,
            (g(after_release), "100", "TICKET_RELEASED"): 1,
            (g(stale), "100", "STALE"): 1,
        }
    )
    guids = {guid for guid, _, _ in expected}
    receipts = outputs(d, "receipt", for_guids(guids), sum(expected.values()), limit=90)

    def what(r: dict[str, Any]) -> str | None:
        if r["returnStatus"] == "399":
            return " ".join([r["decision"], *r.get("reasons", [])])
        return r.get("code")

    assert Counter((r["guid"], r["returnStatus"], what(r)) for r in receipts) == expected
    for r in receipts:
        sender = {
            "order": r.get("ebpCode"),
            "payment": r.get("payCode"),
            "logistics": r.get("logisticsCode"),
        }
        assert r["format"] == "json" and r["key"] == sender[r["docType"]], r
