"""Lookups on the real broker, two workers sharing the partitions: every ticket and the buyer's
quota asked of EACH worker over HTTP, so for each one worker answers from its own committed
state and the other forwards to it (found through the group's description); the answers are
the same, exact, and masked. ``sandan inspect`` asks a worker as a subprocess, and says in one
line that a worker it cannot reach cannot be reached."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

from schemas.keys import murmur2_partition
from streams.lookup import china_year
from tests.integration.conftest import PARTITIONS, Deployment
from tests.integration.kafka import Timeout, Worker, free_port, sandan
from tests.integration.test_contract import (
    EBP,
    Rec,
    decisions_of,
    new_buyer_id,
    new_order_no,
    outputs,
    send,
    ticket_docs,
)

WINDOW_S = 3600  # the open ticket stays open while it is looked up
PERSONAL = ("buyerName", "buyerTelephone", "consigneeAddress")  # the examples' values


def get(worker: Worker, path: str) -> tuple[int, dict[str, str], Any]:
    """GET ``path`` from the worker: status, headers, JSON body."""
    url = f"http://127.0.0.1:{worker.web_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def ticket_path(ticket: str) -> str:
    return f"/v1/tickets/{quote(ticket, safe='')}"


SEEN: list[Any] = []  # every answer, checked for personal data at the end


def settled(workers: list[Worker], path: str, status: str) -> list[dict[str, Any]]:
    """Both workers' answers once both say ``status`` (the local state is written just after
    the transaction that the output topics show commits)."""
    timeout = Timeout(30, f"{path} to be {status} on both workers")
    while timeout:
        answers = [get(w, path) for w in workers]
        if all(code == 200 and body["status"] == status for code, _, body in answers):
            SEEN.extend(body for _, _, body in answers)
            return [body for _, _, body in answers]
        time.sleep(0.3)
    raise AssertionError("unreachable")


def inspect(d: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return sandan(["inspect", *args], d.env_settings)


def masked_id(value: str) -> str:
    return "*" * (len(value) - 4) + value[-4:]


def test_any_worker_answers_for_any_ticket_and_buyer(deploy: Any) -> None:
    d = deploy(SANDAN_WINDOW=f"{WINDOW_S}s")
    workers = [d.worker("w1"), d.worker("w2")]
    timeout = Timeout(90, "the two workers to share the partitions")
    while timeout:
        statuses = [w.status() for w in workers]
        if all(s and s["partitions"] for s in statuses):
            owned = [set(s["partitions"]) for s in statuses if s]
            assert owned[0] | owned[1] == set(range(PARTITIONS)) and not owned[0] & owned[1]
            break
        time.sleep(0.5)
    url_of = {
        p: f"http://127.0.0.1:{w.web_port}"
        for w, ps in zip(workers, owned, strict=True)
        for p in ps
    }

    buyer = new_buyer_id()
    mine = {"order": {"buyerIdNumber": buyer}, "payment": {"payerIdNumber": buyer}}
    released = ticket_docs(new_order_no("LR"), order=mine["order"], payment=mine["payment"])
    second = ticket_docs(new_order_no("LS"), order=mine["order"], payment=mine["payment"])
    diverted = ticket_docs(new_order_no("LD"), payment={"amountPaid": "500.00"})
    incomplete = ticket_docs(new_order_no("LO"))
    kinds = ("order", "payment", "logistics")
    complete: list[dict[str, Any]] = [dict(docs) for docs in (released, second, diverted)]
    send(
        d,
        *(Rec(kind, docs[kind]) for docs in complete for kind in kinds),
        Rec("order", incomplete["order"]),
    )
    order_nos = {docs["order"]["orderNo"] for docs in (released, second, diverted)}
    decided = {o.value["orderNo"]: o.value for o in decisions_of(outputs(d, order_nos, 3))}
    assert {no: v["decision"] for no, v in decided.items()} == {
        released["order"]["orderNo"]: "RELEASE",
        second["order"]["orderNo"]: "RELEASE",
        diverted["order"]["orderNo"]: "DIVERT",
    }

    def ticket_of(docs: Any) -> tuple[str, int]:
        order_no = docs["order"]["orderNo"]
        return f"{EBP}:{order_no}", murmur2_partition(order_no.encode(), PARTITIONS)

    # released: from both workers, one of them forwarding to the owner
    tid, partition = ticket_of(released)
    record = decided[released["order"]["orderNo"]]
    answers = settled(workers, ticket_path(tid), "released")
    assert answers[0] == answers[1]
    found = answers[0]
    assert (found["ticketId"], found["revision"], found["partition"], found["servedBy"]) == (
        tid,
        1,
        partition,
        url_of[partition],
    )
    assert (found["missing"], found["windowClosesAt"]) == ([], None)
    assert [(e["revision"], e["decision"], e["reasons"]) for e in found["decisions"]] == [
        (1, "RELEASE", [])
    ]
    # the ledger decided it; the log has it from when its outcome reached the ticket
    assert found["decisions"][0]["decidedAt"] >= record["decidedAt"]
    assert found["remembered"]["logisticsNo"] == released["logistics"]["logisticsNo"]
    order, payment = found["documents"]["order"][0], found["documents"]["payment"][0]
    assert (order["guid"], order["format"], order["state"]) == (
        released["order"]["guid"],
        "json",
        "stored",
    )
    assert order["fields"]["buyerIdNumber"] == masked_id(buyer)
    assert payment["fields"]["payerIdNumber"] == masked_id(buyer)
    assert (order["fields"]["buyerName"], order["fields"]["consigneeAddress"]) == (
        "王*",
        "浙江省***",
    )
    assert order["fields"]["buyerTelephone"] == "*******7706"
    assert found["documents"]["logistics"][0]["guid"] == released["logistics"]["guid"]

    # diverted AMOUNT_MISMATCH: decided at the ticket, at the record's very time
    tid, partition = ticket_of(diverted)
    record = decided[diverted["order"]["orderNo"]]
    answers = settled(workers, ticket_path(tid), "diverted")
    assert answers[0] == answers[1] and answers[0]["servedBy"] == url_of[partition]
    assert answers[0]["revision"] == 1
    assert [
        (e["revision"], e["decision"], e["reasons"], e["decidedAt"])
        for e in answers[0]["decisions"]
    ] == [(1, "DIVERT", ["AMOUNT_MISMATCH"], record["decidedAt"])]
    assert answers[0]["documents"]["payment"][0]["fields"]["amountPaid"] == "500.00"

    # incomplete: open, waiting for its payment and waybill
    tid, partition = ticket_of(incomplete)
    answers = settled(workers, ticket_path(tid), "open")
    assert answers[0] == answers[1] and answers[0]["servedBy"] == url_of[partition]
    found = answers[0]
    assert (found["revision"], found["decisions"], found["missing"]) == (
        0,
        [],
        ["payment", "logistics"],
    )
    assert found["completedAt"] is None and found["windowClosesAt"] > found["firstSeenAt"]
    assert [len(found["documents"][k]) for k in kinds] == [1, 0, 0]

    # the buyer's quota: two tickets of 497.50 released this year
    buyer_partition = murmur2_partition(buyer.encode(), PARTITIONS)
    for worker in workers:
        code, _, quota = get(worker, f"/v1/buyers/{buyer}/quota?year=2026")
        assert (code, quota) == (
            200,
            {
                "buyer": masked_id(buyer),
                "year": 2026,
                "annualLimit": "26000",
                "released": "995.00",
                "remaining": "25005.00",
                "releasedTickets": None,
                "partition": buyer_partition,
                "servedBy": url_of[buyer_partition],
            },
        )
        code, _, other_year = get(worker, f"/v1/buyers/{buyer}/quota?year=2025")
        assert (code, other_year["released"], other_year["remaining"]) == (200, "0", "26000")
        code, _, this_year = get(worker, f"/v1/buyers/{buyer}/quota")
        assert (code, this_year["year"]) == (200, china_year(int(time.time() * 1000)))

    # unknown, malformed
    never = f"{EBP}:{new_order_no('LX')}"
    stranger = new_buyer_id()
    for worker in workers:
        code, _, body = get(worker, ticket_path(never))
        assert (code, body["error"]) == (404, "unknown")
        assert body["detail"].startswith(f"ticket {never} is unknown")
        code, _, body = get(worker, f"/v1/buyers/{stranger}/quota")
        assert (code, body) == (
            404,
            {
                "error": "unknown",
                "detail": f"buyer {masked_id(stranger)} is unknown to the buyer ledger: no "
                "ticket of theirs has reached it",
            },
        )
        code, _, body = get(worker, "/v1/tickets/no-colon")
        assert (code, body) == (
            400,
            {
                "error": "bad request",
                "detail": "not a ticket id: 'no-colon' (expected {ebpCode}:{orderNo})",
            },
        )
        code, _, body = get(worker, f"/v1/buyers/{buyer}/quota?year=26")
        assert (code, body["error"]) == (400, "bad request")

    # sandan inspect, through the worker that does NOT own the ticket
    tid, partition = ticket_of(released)
    other = next(w for w in workers if f"http://127.0.0.1:{w.web_port}" != url_of[partition])
    done = inspect(d, tid, "--worker", f"http://127.0.0.1:{other.web_port}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"ticket {tid}: released, revision 1 (partition {partition}, answered by "
        f"{url_of[partition]})"
    )
    assert f"  order      {released['order']['guid']}  appType 1  appTime " in done.stdout
    (logged,) = [line for line in lines if line.startswith("  revision ")]
    assert logged.startswith("  revision 1  RELEASE  20")
    quota = inspect(d, "--buyer", buyer, "--year", "2026", "--worker", url_of[partition])
    assert quota.returncode == 0, quota.stderr
    assert quota.stdout.splitlines()[0] == (
        f"buyer {masked_id(buyer)} in 2026: released 995.00 CNY, remaining 25005.00 CNY of "
        "the annual limit 26000 CNY"
    )
    nowhere = f"http://127.0.0.1:{free_port()}"
    failed = inspect(d, tid, "--worker", nowhere)
    assert (failed.returncode, failed.stdout) == (1, "")
    assert len(failed.stderr.splitlines()) == 1
    assert failed.stderr.startswith(f"sandan: cannot reach the worker at {nowhere}: ")
    unknown = inspect(d, never, "--worker", url_of[partition])
    assert (unknown.returncode, unknown.stderr.count("\n")) == (1, 1)
    assert unknown.stderr.startswith(f"sandan: the worker at {url_of[partition]} answered 404 ")

    # no personal data anywhere: answers, the command's output, the workers' logs
    personal = [buyer, *(released["order"][f] for f in PERSONAL)]
    shown = done.stdout + quota.stdout + json.dumps(SEEN, ensure_ascii=False)
    shown += "".join(w.log_path.read_text(errors="replace") for w in workers)
    assert [value for value in personal if value in shown] == []
    assert all(w.alive() for w in workers)
