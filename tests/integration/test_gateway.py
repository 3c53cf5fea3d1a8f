"""``sandan gateway`` on the real broker, over real HTTP sockets: what a 202 promises is on the
topic byte for byte, a refused request produces nothing, keys reload while it runs, receipts
page with a cursor that survives a restart, and a broker outage gives 503s, then recovery."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from gateway.cursor import decode_cursor
from gateway.keys import add_key
from schemas.ceb_xml import encode_message
from schemas.keys import murmur2_partition
from tests.factories import as_bytes, logistics_dict, order, order_dict, payment_dict
from tests.integration.conftest import PARTITIONS, Deployment
from tests.integration.gateway_process import GatewayProcess, Reply
from tests.integration.kafka import BROKER_SCRIPT, Timeout, consume, run, running_broker

JSON = "application/json"
XML = "application/xml"
PLATFORM, PAYER, CARRIER = "3301980ABC", "4403169D3W", "31222699S7"


def guid() -> str:
    return str(uuid.uuid4()).upper()


class Gateways:
    """Keys and gateway processes of one deployment."""

    def __init__(self, deployment: Deployment, tmp: Path) -> None:
        self.deployment = deployment
        self.tmp = tmp
        self.keys_path = tmp / "keys.json"
        self.keys = {
            "platform": add_key(self.keys_path, "platform", [PLATFORM]),
            "payer": add_key(self.keys_path, "payer", [PAYER]),
            "carrier": add_key(self.keys_path, "carrier", [CARRIER]),
        }
        self.processes: list[GatewayProcess] = []

    def start(self, *, healthy: bool = True, **settings: str) -> GatewayProcess:
        env = {**self.deployment.env_settings, **settings}
        log = self.tmp / f"gateway-{len(self.processes)}.log"
        process = GatewayProcess(env, self.keys_path, log).start(healthy=healthy)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


@pytest.fixture
def gateways(deploy: Callable[..., Deployment], tmp_path: Path) -> Iterator[Gateways]:
    made = Gateways(deploy(), tmp_path)
    yield made
    made.stop()


def records_at(brokers: str, topic: str, count: int) -> dict[tuple[int, int], Any]:
    """The committed records of a topic by (partition, offset)."""
    records = run(consume(brokers, [topic], count=count, idle=2.0, limit=30))
    return {(record.partition, record.offset): record for record in records}


# -- produce ---------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_accepted_documents_are_on_their_topics_exactly(gateways: Gateways) -> None:
    deployment, keys = gateways.deployment, gateways.keys
    gateway = gateways.start()
    brokers = deployment.brokers

    one = as_bytes(order_dict(guid=guid(), orderNo="SO-ONE"))
    reply = gateway.post("/v1/orders", one, keys["platform"], JSON)
    assert reply.status == 202, reply.body
    (entry,) = reply.json()["accepted"]
    assert entry["guid"] == json.loads(one)["guid"]
    assert entry["topic"] == deployment.topic("order")
    assert entry["partition"] == murmur2_partition(b"SO-ONE", PARTITIONS)

    payments = [
        as_bytes(payment_dict(guid=guid(), orderNo=f"SO-{n:03d}", payTransactionId=f"T{n}"))
        for n in range(100)
    ]
    reply = gateway.post("/v1/payments", b"[" + b",\n".join(payments) + b"]", keys["payer"], JSON)
    assert reply.status == 202, reply.body
    accepted = reply.json()["accepted"]
    assert len(accepted) == 100

    nodes = [order(guid=guid(), orderNo=f"XO-{n}") for n in range(3)]
    xml = encode_message("order", nodes, cop_code=PLATFORM)
    reply = gateway.post("/v1/messages", xml, keys["platform"], XML)
    assert reply.status == 202, reply.body
    xml_entries = reply.json()["accepted"]
    assert [e["guid"] for e in xml_entries] == [node.guid for node in nodes]
    assert len({(e["partition"], e["offset"], e["messageGuid"]) for e in xml_entries}) == 1

    orders = records_at(brokers, deployment.topic("order"), 2)
    assert len(orders) == 2  # the JSON order and the one XML message
    record = orders[entry["partition"], entry["offset"]]
    assert (record.key, record.value) == (b"SO-ONE", one)
    assert dict(record.headers)["content-type"] == b"application/json"
    first = xml_entries[0]
    record = orders[first["partition"], first["offset"]]
    assert (record.key, record.value) == (b"XO-0", xml)
    assert first["partition"] == murmur2_partition(b"XO-0", PARTITIONS)
    assert dict(record.headers)["content-type"] == b"application/xml"

    on_topic = records_at(brokers, deployment.topic("payment"), 100)
    assert len(on_topic) == 100
    for sent, position in zip(payments, accepted, strict=True):
        assert position["topic"] == deployment.topic("payment")
        record = on_topic[position["partition"], position["offset"]]
        order_no = json.loads(sent)["orderNo"]
        assert (record.key, record.value) == (order_no.encode(), sent)
        assert position["guid"] == json.loads(sent)["guid"]
        assert position["partition"] == murmur2_partition(order_no.encode(), PARTITIONS)

    metrics = gateway.get("/metrics").body.decode().splitlines()
    documents = 'sandan_gateway_documents_total{{format="{}",topic="{}"}} {}'
    assert documents.format("json", deployment.topic("payment"), 100.0) in metrics
    assert documents.format("json", deployment.topic("order"), 1.0) in metrics
    assert documents.format("xml", deployment.topic("order"), 3.0) in metrics


@pytest.mark.timeout(120)
def test_refused_requests_produce_nothing(gateways: Gateways) -> None:
    deployment, keys = gateways.deployment, gateways.keys
    gateway = gateways.start(SANDAN_MAX_MESSAGE_BYTES="200000")
    good = order_dict(guid=guid(), orderNo="SO-GOOD")
    bad = order_dict(guid=guid(), orderNo="X" * 61, buyerIdType="2")
    body = b"[" + as_bytes(good) + b"," + as_bytes(bad) + b"," + b'"text"' + b"]"
    reply = gateway.post("/v1/orders", body, keys["platform"], JSON)
    assert reply.status == 400
    assert reply.json() == {
        "error": "invalid documents",
        "detail": "2 of 3 documents do not validate; nothing was accepted",
        "documents": [
            {
                "index": 1,
                "field": "orderNo",
                "expected": "Expected `str` of length <= 60",
                "detail": "Expected `str` of length <= 60 - at `$.orderNo`",
            },
            {
                "index": 2,
                "field": None,
                "expected": "Expected `object`, got `str`",
                "detail": "Expected `object`, got `str`",
            },
        ],
    }

    document = as_bytes(good)
    reply = gateway.post("/v1/orders", document, None, JSON)
    assert (reply.status, reply.headers["WWW-Authenticate"]) == (401, 'Bearer realm="sandan"')
    assert reply.json()["error"] == "unauthorized"
    reply = gateway.post("/v1/orders", document, "not-a-key", JSON)
    assert (reply.status, reply.json()["detail"]) == (401, "unknown key")

    reply = gateway.post("/v1/orders", document, keys["payer"], JSON)
    assert reply.status == 403
    assert reply.json()["documents"] == [
        {"index": 0, "codes": {"ebpCode": PLATFORM, "ebcCode": "3301960XYZ"}}
    ]
    xml = encode_message("order", [order(guid=guid())], cop_code=PAYER)
    reply = gateway.post("/v1/messages", xml, keys["platform"], XML)
    assert reply.status == 403
    assert reply.json()["documents"][0]["codes"]["copCode"] == PAYER

    reply = gateway.post("/v1/orders", b"[" + b" " * 200_000 + b"]", keys["platform"], JSON)
    assert (reply.status, reply.json()["error"]) == (413, "payload too large")
    reply = gateway.post("/v1/orders", document, keys["platform"], "text/plain")
    assert (reply.status, reply.json()["error"]) == (415, "unsupported media type")
    reply = gateway.post("/v1/waybills", as_bytes(logistics_dict()), keys["carrier"], XML)
    assert reply.status == 415

    reply = gateway.get("/v1/nothing/here")
    assert (reply.status, reply.json()) == (
        404,
        {"error": "not found", "detail": "no such route; see /openapi.json"},
    )
    reply = gateway.get("/v1/orders")
    assert (reply.status, reply.headers["Allow"]) == (405, "POST")
    assert reply.json()["error"] == "method not allowed"

    records = run(
        consume(
            deployment.brokers,
            [deployment.topic(t) for t in ("order", "payment", "logistics")],
            idle=2.0,
        )
    )
    assert records == []

    document_routes = {"/v1/orders", "/v1/payments", "/v1/waybills", "/v1/messages"}
    spec = gateway.get("/openapi.json").json()
    assert spec["openapi"] == "3.1.0"
    assert set(spec["paths"]) == document_routes | {
        "/v1/receipts",
        "/v1/tickets/{ticketId}/review",
        "/healthz",
        "/openapi.json",
        "/metrics",
    }
    assert {"Order", "Payment", "Logistics"} <= set(spec["components"]["schemas"])

    metrics = gateway.get("/metrics").body.decode().splitlines()
    for line in [
        'sandan_gateway_requests_total{method="POST",route="/v1/orders",status="400"} 1.0',
        'sandan_gateway_requests_total{method="POST",route="/v1/orders",status="401"} 2.0',
        'sandan_gateway_requests_total{method="POST",route="/v1/orders",status="403"} 1.0',
        'sandan_gateway_requests_total{method="POST",route="/v1/messages",status="403"} 1.0',
        'sandan_gateway_requests_total{method="POST",route="/v1/orders",status="413"} 1.0',
        'sandan_gateway_requests_total{method="POST",route="/v1/orders",status="415"} 1.0',
        'sandan_gateway_requests_total{method="POST",route="/v1/waybills",status="415"} 1.0',
        'sandan_gateway_requests_total{method="GET",route="unmatched",status="404"} 1.0',
        'sandan_gateway_requests_total{method="GET",route="/v1/orders",status="405"} 1.0',
        'sandan_gateway_requests_total{method="GET",route="/openapi.json",status="200"} 1.0',
        'sandan_gateway_request_duration_seconds_count{route="/v1/orders"} 7.0',
    ]:
        assert line in metrics, line
    assert not any("nothing/here" in line for line in metrics)


@pytest.mark.timeout(90)
def test_keys_file_changes_apply_while_running(gateways: Gateways) -> None:
    gateway = gateways.start()
    document = as_bytes(logistics_dict(guid=guid(), logisticsCode="NEWCARRIER"))
    new_key = add_key(gateways.keys_path, "new carrier", ["NEWCARRIER"])
    timeout = Timeout(10, "the new key to be accepted")
    while timeout:
        reply = gateway.post("/v1/waybills", document, new_key, JSON)
        if reply.status == 202:
            break
        assert reply.status == 401
        time.sleep(0.2)

    # Remove the platform's key: its next request is 401. A broken file keeps the keys.
    content = json.loads(gateways.keys_path.read_text())
    content["keys"] = [k for k in content["keys"] if k["name"] != "platform"]
    gateways.keys_path.write_text("{ not json")
    time.sleep(2.5)
    assert gateway.post("/v1/waybills", document, new_key, JSON).status == 202
    gateways.keys_path.write_text(json.dumps(content))
    timeout = Timeout(10, "the removed key to be refused")
    order_document = as_bytes(order_dict(guid=guid()))
    while timeout:
        reply = gateway.post("/v1/orders", order_document, gateways.keys["platform"], JSON)
        if reply.status == 401:
            break
        assert reply.status == 202
        time.sleep(0.2)
    log = gateway.log_path.read_text()
    assert "keeping the previous keys" in log
    assert all(key not in log for key in [*gateways.keys.values(), new_key])


# -- receipts --------------------------------------------------------------------------------


async def produce_receipts(
    brokers: str,
    topic: str,
    receipts: list[tuple[str, bytes, str]],
    *,
    transaction: str | None = None,
    abort: bool = False,
) -> None:
    """(code, value, content type) records on the receipt topic, in a transaction (as the
    workers write them, with the workers' client) or plain."""

    def send() -> None:
        config = {"bootstrap.servers": brokers, "partitioner": "murmur2_random"}  # as Java
        if transaction:
            config["transactional.id"] = transaction
        producer = Producer(config)
        if transaction:
            producer.init_transactions(30)
            producer.begin_transaction()
        for code, value, content_type in receipts:
            headers: list[tuple[str, str | bytes | None]] = [
                ("content-type", content_type.encode())
            ]
            producer.produce(topic, value, code.encode(), headers=headers)
        if not transaction:
            assert producer.flush(30) == 0
        elif abort:
            producer.abort_transaction(30)
        else:
            producer.commit_transaction(30)

    await asyncio.to_thread(send)


def page(
    gateway: GatewayProcess, key: str, cursor: str | None, **query: Any
) -> tuple[list[Any], str]:
    params = "&".join(
        f"{k}={v}" for k, v in {**query, **({"cursor": cursor} if cursor else {})}.items()
    )
    reply = gateway.get(f"/v1/receipts?{params}", key)
    assert reply.status == 200, reply.body
    body = reply.json()
    return body["receipts"], body["cursor"]


def receipt(n: int) -> bytes:
    return json.dumps({"returnStatus": "120", "n": n}).encode()


@pytest.mark.timeout(150)
def test_receipts_page_long_poll_and_survive_a_restart(gateways: Gateways) -> None:
    deployment, keys = gateways.deployment, gateways.keys
    brokers, topic = deployment.brokers, deployment.topic("receipt")
    gateway = gateways.start()
    xml_receipt = b'<?xml version="1.0" encoding="UTF-8"?><ceb:CEB412Message xmlns:ceb="http://www.chinaport.gov.cn/ceb"/>'
    run(
        produce_receipts(brokers, topic, [(PAYER, receipt(0), JSON), (CARRIER, receipt(100), JSON)])
    )
    run(
        produce_receipts(
            brokers,
            topic,
            [(PAYER, receipt(1), JSON), (PAYER, xml_receipt, XML), (CARRIER, receipt(101), JSON)],
            transaction=f"receipts-{uuid.uuid4().hex}",
        )
    )
    run(
        produce_receipts(
            brokers,
            topic,
            [(PAYER, receipt(-1), JSON)],
            transaction=f"aborted-{uuid.uuid4().hex}",
            abort=True,
        )
    )
    run(produce_receipts(brokers, topic, [(PAYER, receipt(3), JSON)]))

    seen: list[Any] = []
    cursor = None
    for _ in range(3):
        receipts, cursor = page(gateway, keys["payer"], cursor, limit=2)
        seen.extend(receipts)
    assert seen == [
        {"contentType": JSON, "receipt": {"returnStatus": "120", "n": 0}},
        {"contentType": JSON, "receipt": {"returnStatus": "120", "n": 1}},
        {"contentType": XML, "receipt": xml_receipt.decode()},
        {"contentType": JSON, "receipt": {"returnStatus": "120", "n": 3}},
    ]
    assert cursor is not None
    assert set(decode_cursor(cursor)) == {murmur2_partition(PAYER.encode(), PARTITIONS)}
    assert page(gateway, keys["payer"], cursor) == ([], cursor)  # nothing new, same cursor

    theirs, _ = page(gateway, keys["carrier"], None)
    assert [r["receipt"]["n"] for r in theirs] == [100, 101]
    assert page(gateway, keys["platform"], None)[0] == []

    # A long-poll returns as soon as a receipt of the caller's is committed.
    result: dict[str, Any] = {}

    def long_poll() -> None:
        started = time.monotonic()
        result["page"] = page(gateway, keys["payer"], cursor, wait=5)
        result["seconds"] = time.monotonic() - started

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(1.0)
    run(produce_receipts(brokers, topic, [(CARRIER, receipt(102), JSON)]))  # someone else's
    time.sleep(0.5)
    assert poller.is_alive()
    run(produce_receipts(brokers, topic, [(PAYER, receipt(4), JSON)]))
    poller.join(timeout=10)
    receipts, cursor = result["page"]
    assert [r["receipt"]["n"] for r in receipts] == [4]
    assert 1.4 <= result["seconds"] < 3.5

    # A long-poll with nothing new waits its time, and answers the same cursor.
    started = time.monotonic()
    assert page(gateway, keys["payer"], cursor, wait=1) == ([], cursor)
    assert 0.9 <= time.monotonic() - started < 3

    # The cursor works on another gateway process, after this one stopped.
    assert gateway.stop() == 0
    run(produce_receipts(brokers, topic, [(PAYER, receipt(5), JSON)]))
    second = gateways.start()
    receipts, _ = page(second, keys["payer"], cursor)
    assert [r["receipt"]["n"] for r in receipts] == [5]


# -- the broker goes away -------------------------------------------------------------------


def broker_script(command: str, port: str) -> None:
    env = {**os.environ, "SANDAN_KAFKA_PORT": port}
    subprocess.run(["bash", str(BROKER_SCRIPT), command], env=env, check=True, timeout=180)


@pytest.mark.timeout(240)
def test_broker_outage_gives_503s_then_recovers(tmp_path: Path) -> None:
    with running_broker() as address:
        port = address.rsplit(":", 1)[1]
        deployment = Deployment(address, tmp_path)
        gateways = Gateways(deployment, tmp_path)
        try:
            gateway = gateways.start(SANDAN_GATEWAY_ACK_TIMEOUT="3s")
            key = gateways.keys["platform"]
            acked: dict[str, Any] = {}
            refused: list[str] = []

            def post(n: int) -> Reply:
                document = order_dict(guid=guid(), orderNo=f"SO-DOWN-{n}")
                started = time.monotonic()
                reply = gateway.post("/v1/orders", as_bytes(document), key, JSON)
                reply.headers["elapsed"] = str(time.monotonic() - started)
                if reply.status == 202:
                    acked[document["guid"]] = reply.json()["accepted"][0]
                else:
                    refused.append(document["guid"])
                return reply

            assert post(0).status == 202
            broker_script("stop", port)
            reply = post(1)
            assert reply.status == 503
            assert float(reply.headers["elapsed"]) < 3 + 2
            assert int(reply.headers["Retry-After"]) >= 1
            assert reply.json()["retrySafe"] is True
            health = gateway.wait_health(503, seconds=10)
            assert health.json()["broker"] == "unreachable"

            # A gateway started while the broker is down serves 503s and /healthz.
            gateway.stop()
            gateway = gateways.start(healthy=False, SANDAN_GATEWAY_ACK_TIMEOUT="3s")
            assert gateway.get("/healthz").status == 503
            reply = post(2)
            assert (reply.status, reply.json()["error"]) == (503, "unavailable")

            broker_script("start", port)
            gateway.wait_health(200, seconds=60)
            assert post(3).status == 202
            assert post(4).status == 202
        finally:
            gateways.stop()

        records = run(consume(address, [deployment.topic("order")], idle=3.0, limit=30))
        by_guid: dict[str, list[Any]] = {}
        for record in records:
            by_guid.setdefault(json.loads(record.value)["guid"], []).append(record)
        for document_guid, position in acked.items():
            (record,) = by_guid[document_guid]  # exactly once
            assert (record.partition, record.offset) == (position["partition"], position["offset"])
        for document_guid in refused:
            assert len(by_guid.get(document_guid, [])) <= 1
        assert len(acked) == 3
