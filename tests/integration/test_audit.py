"""``sandan audit --ticket ID`` on the real broker: a ticket diverted, corrected and released,
then sent a duplicate, has its whole history rebuilt from the output topics alone, in order,
and matching the records on those topics; personal data masked; an unknown ticket says so."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import Deployment
from tests.integration.kafka import sandan
from tests.integration.test_contract import (
    EBP,
    Rec,
    decisions_of,
    new_order_no,
    outputs,
    send,
    ticket_docs,
    version,
)


def audit(d: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    return sandan(["audit", *args], d.env_settings)


@pytest.fixture(scope="module")
def shared(brokers: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    d = Deployment(brokers, tmp_path_factory.mktemp("audit"), SANDAN_WINDOW="5s")
    d.worker().wait_ready()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def audited(shared: Deployment) -> tuple[Deployment, str, dict[str, Any], dict[str, Any]]:
    """A ticket's history: (deployment, ticket id, docs and outputs, the audit's JSON)."""
    d = shared
    order_no = new_order_no("AU")
    docs = ticket_docs(order_no, payment={"amountPaid": "500.00"})  # AMOUNT_MISMATCH
    send(d, *(Rec(kind, docs[kind]) for kind in ("order", "payment", "logistics")))
    assert len(decisions_of(outputs(d, {order_no}, 1, settle=0))) == 1
    fixed = version(docs["payment"], "2", "20261124120000", amountPaid="497.50")
    send(d, Rec("payment", fixed))
    assert len(decisions_of(outputs(d, {order_no}, 2, settle=0))) == 2
    resent = version(docs["order"], "1", docs["order"]["appTime"])  # after release: refused
    send(d, Rec("order", resent))
    outs = outputs(d, {order_no}, 3)
    ticket = f"{EBP}:{order_no}"
    done = audit(d, "--ticket", ticket, "--json")
    assert done.returncode == 0, done.stderr
    found = {"docs": docs, "fixed": fixed, "resent": resent, "outs": outs}
    return d, ticket, found, json.loads(done.stdout)


def test_the_history_holds_every_document_decision_rejection_and_receipt(
    audited: tuple[Deployment, str, dict[str, Any], dict[str, Any]],
) -> None:
    _, ticket, found, history = audited
    docs, fixed, resent = found["docs"], found["fixed"], found["resent"]
    assert history["ticketId"] == ticket
    events = history["events"]
    kinds = Counter(event["kind"] for event in events)
    by_kind: dict[str, list[Any]] = {}
    for event in events:
        by_kind.setdefault(event["kind"], []).append(event)
    assert kinds == {"stored": 4, "decided": 2, "concluded": 6, "rejected": 1, "returned": 1}

    stored = [
        (e["fields"]["docType"], e["fields"]["guid"]) for e in events if e["kind"] == "stored"
    ]
    assert sorted(stored) == sorted(
        [
            ("order", docs["order"]["guid"]),
            ("payment", docs["payment"]["guid"]),
            ("logistics", docs["logistics"]["guid"]),
            ("payment", fixed["guid"]),
        ]
    )
    decided = [e["fields"] for e in events if e["kind"] == "decided"]
    assert [(f["decision"], f["revision"], f["reasons"]) for f in decided] == [
        ("DIVERT", 1, ["AMOUNT_MISMATCH"]),
        ("RELEASE", 2, []),
    ]
    assert decided[1]["documents"]["payment"] == fixed["guid"]
    assert decided[1]["decidedBy"]["rulesVersion"] == "1"
    concluded = Counter(
        (e["fields"]["docType"], e["fields"]["revision"])
        for e in events
        if e["kind"] == "concluded"
    )
    assert concluded == {(kind, rev): 1 for kind in docs for rev in (1, 2)}

    # the rejection is the one on cbec.rejected, and its 100 receipt agrees
    (on_topic,) = [o.value for o in found["outs"] if o.kind == "rejected"]
    (rejected,) = [e["fields"] for e in events if e["kind"] == "rejected"]
    assert (rejected["guid"], rejected["code"], rejected["docType"]) == (
        resent["guid"],
        on_topic["code"],
        "order",
    )
    (returned,) = [e["fields"] for e in events if e["kind"] == "returned"]
    assert (returned["guid"], returned["code"]) == (resent["guid"], on_topic["code"])

    # in the order things happened: each decision after the documents it decided on
    order = [(e["kind"], e["fields"].get("guid") or e["fields"].get("revision")) for e in events]
    first_divert = order.index(("decided", 1))
    assert all(order.index(("stored", docs[k]["guid"])) < first_divert for k in docs)
    assert order.index(("stored", fixed["guid"])) < order.index(("decided", 2))
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)


def test_the_text_history_masks_personal_data(
    audited: tuple[Deployment, str, dict[str, Any], dict[str, Any]],
) -> None:
    d, ticket, found, _ = audited
    done = audit(d, "--ticket", ticket)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"ticket {ticket}: 14 events"
    assert [line.split()[1] for line in lines[1:]].count("decided") == 2
    order = found["docs"]["order"]
    for personal in (order["buyerIdNumber"], order["buyerName"], order["buyerTelephone"]):
        assert personal not in done.stdout


def test_an_unknown_ticket_has_no_history_and_a_bad_id_is_refused(shared: Deployment) -> None:
    done = audit(shared, "--ticket", f"{EBP}:NEVER-SEEN-{new_order_no('X')}")
    assert done.returncode == 0, done.stderr
    assert "nothing on the output topics" in done.stdout
    bad = audit(shared, "--ticket", "no-colon-here")
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        "sandan: not a ticket id: 'no-colon-here' (expected {ebpCode}:{orderNo})"
    )
