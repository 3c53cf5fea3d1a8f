"""Firms declaring through the gateway, end to end on a broker of the test's own: a worker
decides what the gateway accepted, across a broker outage, and each firm reads its own receipts
through the gateway with a cursor that survives a gateway restart."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.keys import add_key
from schemas.ceb_xml import encode_message
from schemas.codec import decode_document
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.integration.conftest import Deployment
from tests.integration.gateway_process import GatewayProcess
from tests.integration.kafka import Timeout, consume, run, running_broker
from tests.integration.test_gateway import broker_script

PLATFORM, PAYER, CARRIER = "3301980ABC", "4403169D3W", "31222699S7"
PAYER_AGENT = "4403169AGT"  # the copCode of the payment firm's XML messages
JSON, XML = "application/json", "application/xml"


def guid() -> str:
    return str(uuid.uuid4()).upper()


def ticket(order_no: str) -> dict[str, dict[str, Any]]:
    return {
        "order": order_dict(orderNo=order_no, guid=guid()),
        "payment": payment_dict(orderNo=order_no, guid=guid()),
        "logistics": logistics_dict(orderNo=order_no, guid=guid()),
    }


class Firms:
    """The three firms' keys and how each declares: the platform and the carrier as JSON, the
    payment firm as CEB411 XML messages."""

    def __init__(self, keys: Path) -> None:
        self.key = {
            "order": add_key(keys, "platform", [PLATFORM]),
            "payment": add_key(keys, "payer", [PAYER, PAYER_AGENT]),
            "logistics": add_key(keys, "carrier", [CARRIER]),
        }

    def declare(self, gateway: GatewayProcess, docs: dict[str, dict[str, Any]]) -> list[int]:
        """POST each document once; the statuses."""
        statuses = []
        for kind, doc in docs.items():
            if kind == "payment":
                payment = decode_document("payment", as_bytes(doc))
                body = encode_message("payment", [payment], cop_code=PAYER_AGENT)
                reply = gateway.post("/v1/messages", body, self.key[kind], XML)
            else:
                route = "/v1/orders" if kind == "order" else "/v1/waybills"
                reply = gateway.post(route, as_bytes(doc), self.key[kind], JSON)
            statuses.append(reply.status)
        return statuses

    def declare_until_accepted(self, gateway: GatewayProcess, docs: dict[str, Any]) -> None:
        """What a firm's client does: send again after a 503 (safe: same guids)."""
        timeout = Timeout(90, "the gateway to accept the documents")
        while timeout:
            statuses = self.declare(gateway, docs)
            assert set(statuses) <= {202, 503}, statuses
            if statuses == [202, 202, 202]:
                return
            time.sleep(1)

    def receipts(self, gateway: GatewayProcess, kind: str, cursor: str | None) -> Any:
        query = "/v1/receipts?limit=2" + (f"&cursor={cursor}" if cursor else "")
        reply = gateway.get(query, self.key[kind])
        assert reply.status == 200, reply.body
        return reply.json()


def _status(receipt: dict[str, Any]) -> tuple[str, str, str | None]:
    """(guid, returnStatus, decision) of a receipt as the gateway returns it."""
    body = receipt["receipt"]
    if receipt["contentType"] == "application/json":
        return body["guid"], body["returnStatus"], body.get("decision")
    node = etree.fromstring(body.encode())[0]
    fields = {child.tag.rpartition("}")[2]: child.text for child in node}
    return fields["guid"], fields["returnStatus"], fields.get("decision")


@pytest.mark.timeout(300)
def test_declared_through_the_gateway_decided_across_an_outage_receipts_by_cursor(
    tmp_path: Path,
) -> None:
    with running_broker() as address:
        port = address.rsplit(":", 1)[1]
        d = Deployment(address, tmp_path, SANDAN_WINDOW="1h")
        keys = tmp_path / "keys.json"
        firms = Firms(keys)
        env = {**d.env_settings, "SANDAN_GATEWAY_ACK_TIMEOUT": "3s"}
        gateway = GatewayProcess(env, keys, tmp_path / "gateway.log").start()
        worker = d.worker()
        worker.wait_ready()
        try:
            before, during = ticket("SO-E2E-1"), ticket("SO-E2E-2")
            assert firms.declare(gateway, before) == [202, 202, 202]
            broker_script("stop", port)
            assert firms.declare(gateway, during) == [503, 503, 503]
            broker_script("start", port)
            gateway.wait_health(200, seconds=60)
            if not worker.alive():  # a worker exits for a restart when its broker goes away
                worker = d.worker()
            worker.wait_ready(120)
            firms.declare_until_accepted(gateway, during)

            timeout = Timeout(120, "both tickets to be released")
            while timeout:
                released = run(consume(address, [d.topic("release")], count=2, idle=1, limit=20))
                if len(released) >= 2:
                    break
            released = run(consume(address, [d.topic("release")], idle=2, limit=20))
            assert sorted(json.loads(r.value)["ticketId"] for r in released) == [
                f"{PLATFORM}:SO-E2E-1",
                f"{PLATFORM}:SO-E2E-2",
            ]

            # Each firm pages through its own receipts, two at a time; the gateway restarts
            # after the first page and the cursor goes on.
            got: dict[str, list[Any]] = {kind: [] for kind in firms.key}
            cursors: dict[str, str | None] = dict.fromkeys(firms.key)
            for kind in firms.key:
                page = firms.receipts(gateway, kind, None)
                got[kind] += page["receipts"]
                cursors[kind] = page["cursor"]
            gateway.stop()
            gateway = GatewayProcess(env, keys, tmp_path / "gateway-2.log").start()
            for kind in firms.key:
                for _ in range(10):
                    page = firms.receipts(gateway, kind, cursors[kind])
                    got[kind] += page["receipts"]
                    cursors[kind] = page["cursor"]
                    if not page["receipts"]:
                        break
            for kind in firms.key:
                expected = {
                    (docs[kind]["guid"], status, decision)
                    for docs in (before, during)
                    for status, decision in (("120", None), ("399", "RELEASE"))
                }
                statuses = [_status(r) for r in got[kind]]
                assert sorted(statuses, key=str) == sorted(expected, key=str), kind
                formats = {r["contentType"] for r in got[kind]}
                assert formats == {XML if kind == "payment" else JSON}, kind
        finally:
            gateway.stop()
            d.stop()
