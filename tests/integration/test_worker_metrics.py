"""A worker's ``GET /metrics`` on the real broker: a known load (JSON and XML, released,
diverted, left open, rejected), the exact values over HTTP; the worker found through its
consumer group's description; the open tickets back after a restore on a fresh data dir.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterable
from typing import Any

from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from schemas.ceb_xml import encode_message
from schemas.codec import decode_document
from schemas.documents import DOC_TYPES, DocType
from streams.metrics import CONTENT_TYPE, WORKER_CLIENT_ID_PREFIX
from tests.factories import as_bytes
from tests.integration.conftest import PARTITIONS, Deployment
from tests.integration.kafka import Timeout, Worker, consume, produce, run
from tests.integration.test_contract import draft, new_guid, new_order_no, ticket_docs

WORKER_ID = "metrics-it"
COP = "3301980AGT"

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(worker: Worker) -> Samples:
    """The worker's /metrics over HTTP: sample name -> sorted labels -> value."""
    url = f"http://127.0.0.1:{worker.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.headers["Content-Type"] == CONTENT_TYPE  # the text format, as the gateway
        text = response.read().decode()
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


def by(found: Samples, name: str, label: str) -> dict[str, float]:
    """The samples of ``name`` that are not 0, by ``label``."""
    return {dict(labels)[label]: v for labels, v in found.get(name, {}).items() if v}


def one(found: Samples, name: str) -> float:
    (value,) = found[name].values()
    return value


def total(found: Samples, name: str) -> float:
    return sum(found.get(name, {}).values())


def xml(kind: DocType, docs: Iterable[dict[str, Any]]) -> bytes:
    documents = [decode_document(kind, as_bytes(d)) for d in docs]
    return encode_message(kind, documents, cop_code=COP)


def records(d: Deployment) -> list[tuple[str, bytes | None, bytes]]:
    """The load: 5 clean tickets and 3 AMOUNT_MISMATCH ones as JSON, 2 clean ones with their
    orders and payments in XML messages (the payments' message with a third, invalid node),
    3 tickets left open (no waybill), a duplicate order of one of them, a draft payment, 4
    records that are not JSON and one XML message that is not well-formed."""
    sent: list[tuple[str, bytes | None, bytes]] = []

    def send(kind: str, doc: dict[str, Any]) -> None:
        sent.append((d.topic(kind), doc["orderNo"].encode(), as_bytes(doc)))

    for n in range(8):
        t = ticket_docs(new_order_no("M"), payment={"amountPaid": "1.00"} if n >= 5 else None)
        send("order", t["order"])
        send("payment", t["payment"])
        send("logistics", t["logistics"])
    in_xml = [ticket_docs(new_order_no("X")) for _ in range(2)]
    bad = ticket_docs(new_order_no("X"), payment={"amountPaid": "123.45"})["payment"]
    payments = xml("payment", [*(t["payment"] for t in in_xml), bad])
    sent.append((d.topic("order"), None, xml("order", (t["order"] for t in in_xml))))
    sent.append((d.topic("payment"), None, payments.replace(b">123.45<", b">1e3<")))
    for t in in_xml:
        send("logistics", t["logistics"])
    left_open = [ticket_docs(new_order_no("O")) for _ in range(3)]
    for t in left_open:
        send("order", t["order"])
        send("payment", t["payment"])
    send("order", {**left_open[0]["order"], "guid": new_guid()})  # appType 1 again: DUPLICATE
    send("payment", draft("payment", new_order_no("D")))
    sent += [(d.topic("order"), None, b"not json {") for _ in range(4)]
    sent.append((d.topic("logistics"), None, b"<ceb:CEB511Message"))
    return sent


DOCUMENTS = {
    ("order", "json"): 16,  # 8 + 3 open + 1 duplicate + 4 not JSON
    ("order", "xml"): 2,
    ("payment", "json"): 12,  # 8 + 3 open + 1 draft
    ("payment", "xml"): 3,
    ("logistics", "json"): 10,
    ("logistics", "xml"): 1,  # rejected whole
}
INPUT_PARTITIONS = len(DOC_TYPES) * PARTITIONS


def test_a_known_load_gives_exact_metrics(deploy: Any) -> None:
    d = deploy(SANDAN_WINDOW="30m")
    worker = d.worker("w1", SANDAN_WORKER_ID=WORKER_ID)
    worker.wait_ready()
    run(produce(d.brokers, records(d)))

    timeout = Timeout(45, "the load to be decided and the lag to reach 0")
    while timeout:
        found = scrape(worker)
        lag = found.get("sandan_consumer_lag_records", {})
        if (
            total(found, "sandan_decisions_total") >= 10
            and total(found, "sandan_rejections_total") >= 8
            and total(found, "sandan_documents_total") >= sum(DOCUMENTS.values())
            and len(lag) == INPUT_PARTITIONS
            and not any(lag.values())
        ):
            break
        time.sleep(0.3)
    time.sleep(1.5)  # anything counted twice would show now
    found = scrape(worker)

    documents = {
        (dict(labels)["doc_type"], dict(labels)["format"]): v
        for labels, v in found["sandan_documents_total"].items()
        if v
    }
    assert documents == DOCUMENTS
    assert by(found, "sandan_decisions_total", "decision") == {"RELEASE": 7, "DIVERT": 3}
    assert by(found, "sandan_divert_reasons_total", "code") == {"AMOUNT_MISMATCH": 3}
    assert by(found, "sandan_rejections_total", "code") == {"SCHEMA": 6, "DUPLICATE": 1, "DRAFT": 1}
    # 120: 36 documents stored; 399: 3 documents a decision; 100: each rejection
    assert by(found, "sandan_receipts_total", "status") == {"120": 36, "399": 30, "100": 8}
    assert by(found, "sandan_ledger_operations_total", "result") == {"reserved": 7}
    # the 10 decided tickets' buyers are 10 and ship to one address and telephone: one each
    assert by(found, "sandan_alerts_total", "pattern") == {"ADDRESS_MANY_IDS": 2}
    assert one(found, "sandan_open_tickets") == 3
    assert one(found, "sandan_open_tickets_closing_within_1h") == 3  # 30 min windows
    assert one(found, "sandan_decision_latency_seconds_count") == 10
    assert 0 < one(found, "sandan_decision_latency_seconds_sum") < 10 * 45
    # the documents the ticket stage applied (valid, not drafts), one record each here
    assert one(found, "sandan_batch_records_sum") == 37
    assert by(found, "sandan_transactions_total", "result")["committed"] >= 1
    assert "aborted" not in by(found, "sandan_transactions_total", "result")
    lag = found["sandan_consumer_lag_records"]
    assert {dict(labels)["topic"] for labels in lag} == {d.topic(k) for k in DOC_TYPES}
    assert {dict(labels)["partition"] for labels in lag} == {str(p) for p in range(PARTITIONS)}
    assert set(lag.values()) == {0}
    assert one(found, "sandan_assigned_partitions") == PARTITIONS
    assert one(found, "sandan_restore_duration_seconds_count") == 1
    assert one(found, "sandan_restored_records_total") == 0
    url = f"http://127.0.0.1:{worker.web_port}"
    assert found["sandan_worker_info"] == {(("url", url), ("worker_id", WORKER_ID)): 1}
    assert one(found, "process_cpu_seconds_total") > 0
    assert one(found, "process_resident_memory_bytes") > 0

    # The group's description names the worker, its URL and its partitions.
    group = d.settings.topic("sandan")
    admin = AdminClient({"bootstrap.servers": d.brokers})
    description = admin.describe_consumer_groups([group])[group].result(timeout=30)
    (member,) = description.members
    assert member.client_id == f"{WORKER_CLIENT_ID_PREFIX}{url}"
    owned = {(tp.topic, tp.partition) for tp in member.assignment.topic_partitions}
    assert {(d.topic("order"), p) for p in range(PARTITIONS)} <= owned
    advertised = member.client_id.removeprefix(WORKER_CLIENT_ID_PREFIX)
    assert advertised.startswith("http://")
    with urllib.request.urlopen(f"{advertised}/metrics", timeout=5) as response:  # noqa: S310
        assert response.status == 200

    # The same worker on a fresh data dir restores the state: the open tickets come back.
    worker.stop()
    changelogs = [d.topic(f"sandan-{stage}-changelog") for stage in ("tickets", "ledger", "alerts")]
    written = len(run(consume(d.brokers, changelogs, idle=1.5)))
    again = d.worker("w2", SANDAN_WORKER_ID=WORKER_ID)
    again.wait_ready()
    found = scrape(again)
    assert one(found, "sandan_restored_records_total") == written > 0
    assert one(found, "sandan_restore_duration_seconds_count") == 1
    assert one(found, "sandan_open_tickets") == 3
    assert one(found, "sandan_open_tickets_closing_within_1h") == 3
    assert total(found, "sandan_documents_total") == 0  # nothing taken in twice
    assert total(found, "sandan_decisions_total") == 0
