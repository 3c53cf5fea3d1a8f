"""``POST /v1/tickets/{ticketId}/review`` on the real broker, through a real gateway process to a
real worker: each action answered with its result, the decision it made on the output topics
(reviewed by the key's name), the refusals' statuses, and requests the gateway refuses leave
nothing on ``cbec.review``. One broker, one worker and one gateway for the file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from gateway.keys import add_key
from schemas.keys import murmur2_partition
from tests.integration.conftest import PARTITIONS, Deployment
from tests.integration.gateway_process import GatewayProcess, Reply
from tests.integration.kafka import consume, run
from tests.integration.test_contract import EBP, decisions_of, new_order_no, outputs
from tests.integration.test_reviews import diverted

JSON = "application/json"
OFFICER = "officer-7"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class Reviewing:
    deployment: Deployment
    gateway: GatewayProcess
    keys: dict[str, str]

    def review(self, ticket: str, key: str | None = "officer", **body: Any) -> Reply:
        path = f"/v1/tickets/{quote(ticket, safe='')}/review"
        data = json.dumps(body).encode()
        return self.gateway.post(path, data, None if key is None else self.keys[key], JSON)


@pytest.fixture(scope="module")
def reviewing(brokers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reviewing]:
    tmp = tmp_path_factory.mktemp("gateway-review")
    # A generous wait: a slow machine must not turn a 200 into a 202.
    d = Deployment(brokers, tmp, SANDAN_GATEWAY_REVIEW_WAIT="20s")
    keys_path = tmp / "keys.json"
    keys = {
        "officer": add_key(keys_path, OFFICER, [], roles=["reviewer"]),
        "platform": add_key(keys_path, "platform", [EBP]),
    }
    gateway = GatewayProcess(d.env_settings, keys_path, tmp / "gateway.log")
    try:
        d.worker("w1").wait_ready(90)
        gateway.start()
        yield Reviewing(d, gateway, keys)
    finally:
        gateway.stop()
        d.stop()


def result_of(reply: Reply) -> dict[str, Any]:
    """The ReviewResult body, its ``at`` checked and left out."""
    body: dict[str, Any] = reply.json()
    assert ISO_MS.fullmatch(body.pop("at")), body
    return body


@pytest.mark.timeout(180)
def test_a_release_is_applied_as_the_key_and_a_released_ticket_refuses(
    reviewing: Reviewing,
) -> None:
    d = reviewing.deployment
    order_no, ticket, _ = diverted(d, "GR")
    review_id = f"G-{order_no}"
    reply = reviewing.review(
        ticket, reviewId=review_id, revision=1, action="RELEASE", note="paid in full, checked"
    )
    assert reply.status == 200, reply.body
    assert result_of(reply) == {
        "reviewId": review_id,
        "ticketId": ticket,
        "revision": 1,
        "action": "RELEASE",
        "reviewer": OFFICER,
        "result": "APPLIED",
        "code": None,
        "detail": "released",
        "decision": "RELEASE",
        "decisionRevision": 2,
    }
    decided = decisions_of(outputs(d, {order_no}, 2))
    assert [(o.kind, o.value["revision"]) for o in decided] == [("divert", 1), ("release", 2)]
    release = decided[1].value
    assert {k: release[k] for k in ("reviewId", "reviewAction", "reviewedBy", "reviewNote")} == {
        "reviewId": review_id,
        "reviewAction": "RELEASE",
        "reviewedBy": OFFICER,
        "reviewNote": "paid in full, checked",
    }

    reply = reviewing.review(ticket, revision=2, action="CONFIRM", note="too late")
    assert reply.status == 409, reply.body
    refused = result_of(reply)
    assert refused["reviewId"] != review_id  # a fresh uuid4
    assert {k: refused[k] for k in ("result", "code", "decision", "decisionRevision")} == {
        "result": "REFUSED",
        "code": "TICKET_RELEASED",
        "decision": None,
        "decisionRevision": None,
    }
    assert refused["detail"] == (
        f"ticket {ticket} is released (revision 2); only customs' cancel or return apply"
    )


@pytest.mark.timeout(120)
def test_confirm_and_request_correction_then_a_stale_revision(reviewing: Reviewing) -> None:
    d = reviewing.deployment
    _, closed, _ = diverted(d, "GC")
    _, corrected, _ = diverted(d, "GQ")
    for ticket, action, detail in [
        (closed, "CONFIRM", "the divert stands"),
        (corrected, "REQUEST_CORRECTION", "corrected documents are requested"),
    ]:
        reply = reviewing.review(ticket, revision=1, action=action, note="called the payer")
        assert reply.status == 200, reply.body
        body = result_of(reply)
        assert {k: body[k] for k in body if k != "reviewId"} == {
            "ticketId": ticket,
            "revision": 1,
            "action": action,
            "reviewer": OFFICER,
            "result": "APPLIED",
            "code": None,
            "detail": detail,
            "decision": "DIVERT",
            "decisionRevision": 2,
        }
    reply = reviewing.review(corrected, revision=1, action="RELEASE", note="looked at rev 1")
    assert reply.status == 409, reply.body
    body = result_of(reply)
    assert (body["result"], body["code"], body["detail"]) == (
        "REFUSED",
        "STALE_REVISION",
        f"the review names revision 1, but ticket {corrected} is at revision 2 "
        "(DIVERT AMOUNT_MISMATCH): look at it again",
    )


@pytest.mark.timeout(120)
def test_a_review_of_no_ticket_is_404(reviewing: Reviewing) -> None:
    ticket = f"{EBP}:{new_order_no('GU')}"
    reply = reviewing.review(ticket, reviewId="G-unknown", revision=1, action="CONFIRM", note="?")
    assert reply.status == 404, reply.body
    assert result_of(reply) == {
        "reviewId": "G-unknown",
        "ticketId": ticket,
        "revision": 1,
        "action": "CONFIRM",
        "reviewer": OFFICER,
        "result": "REFUSED",
        "code": "UNKNOWN_TICKET",
        "detail": f"no ticket {ticket}: never seen, or forgotten after its retention",
        "decision": None,
        "decisionRevision": None,
    }


@pytest.mark.timeout(120)
def test_refused_requests_put_nothing_on_the_review_topic(reviewing: Reviewing) -> None:
    d = reviewing.deployment
    order_no, ticket, _ = diverted(d, "GF")
    good: dict[str, Any] = {"revision": 1, "action": "CONFIRM", "note": "the divert stands"}
    refused = {
        "no key": reviewing.review(ticket, key=None, reviewId=f"N-{order_no}", **good),
        "declarer": reviewing.review(ticket, key="platform", reviewId=f"D-{order_no}", **good),
        "bad action": reviewing.review(
            ticket, reviewId=f"A-{order_no}", revision=1, action="APPROVE", note="x"
        ),
    }
    assert {name: (reply.status, reply.json()) for name, reply in refused.items()} == {
        "no key": (
            401,
            {
                "error": "unauthorized",
                "detail": "no key: send the header Authorization: Bearer <key>",
            },
        ),
        "declarer": (
            403,
            {
                "error": "forbidden",
                "detail": "the key 'platform' does not have the role reviewer to act on tickets",
            },
        ),
        "bad action": (
            400,
            {"error": "invalid review", "detail": "Invalid enum value 'APPROVE' - at `$.action`"},
        ),
    }
    # The ticket is still at the revision reviewed: the refused requests did nothing.
    reply = reviewing.review(ticket, reviewId=f"OK-{order_no}", **good)
    assert (reply.status, reply.json()["result"]) == (200, "APPLIED")
    on_topic = run(consume(d.brokers, [d.topic("review")], idle=2.0, limit=30))
    ids = {json.loads(record.value)["reviewId"] for record in on_topic}
    assert f"OK-{order_no}" in ids
    assert not ids & {f"{tag}-{order_no}" for tag in ("N", "D", "A")}
    (record,) = [r for r in on_topic if json.loads(r.value)["reviewId"] == f"OK-{order_no}"]
    assert (record.key, record.partition) == (
        order_no.encode(),
        murmur2_partition(order_no.encode(), PARTITIONS),
    )
    assert json.loads(record.value) == {
        "reviewId": f"OK-{order_no}",
        "ticketId": ticket,
        "revision": 1,
        "action": "CONFIRM",
        "reviewer": OFFICER,
        "note": "the divert stands",
    }
    # Neither a key nor a review's note in the gateway's log.
    log = reviewing.gateway.log_path.read_text()
    assert not [key for key in reviewing.keys.values() if key in log]
    assert "the divert stands" not in log
    assert "paid in full" not in log
