"""Review actions exactly once under SIGKILL: two workers, SIGKILLed at random moments (six
times, three each) and restarted while reviews and corrected documents flow, still give every
review exactly one result, every ticket exactly one decision per revision (a reviewed one with
its review's fields), every document exactly its receipts, and exact ledger totals.

Phase 1: 300 tickets, a third diverted ``AMOUNT_MISMATCH`` (paid 0.01 short). The annual limit
is 5,000 CNY: four buyers have ten clean tickets of 497.50 each (4,975 released, 25 left), so
any further release of theirs is refused, whatever order the ledger sees them in; the other
buyers can never reach it. Four more tickets have only their order (the window is an hour).

Phase 2, wave A: one review of each diverted ticket (RELEASE, CONFIRM, REQUEST_CORRECTION in
turn), reviews of released, undecided and unknown tickets, and two records that are no review.
Wave B, once wave A's results are in and no ticket waits at the ledger: repeated review ids
(refused DUPLICATE_REVIEW, or TICKET_RELEASED on a released ticket: that check comes first),
stale revisions, reviews of closed and released tickets, a second look at the tickets whose
release the ledger refused, and corrected payments for closed, released and
correction-requested tickets. Every expectation of a wave holds in any order of its records.

A review comes keyed by its orderNo (the default partitioner puts it), or on its ticket's
partition explicitly, or on another partition, with its key or without one: the worker
forwards those (the partitions are shared by two workers, so a forward often crosses to the
other one).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer

from matchers.identity import resident_id_check_char
from schemas.keys import murmur2_partition, ticket_id
from streams.ledger import BuyerLedger
from streams.tickets import CLOSED, OPEN, PENDING, RELEASED, Group, is_document_key
from tests.factories import as_bytes, logistics_dict, order_dict, payment_dict
from tests.integration.kafka import Timeout, Worker, consume, produce, run
from tests.integration.receipts import receipt
from tests.integration.test_exactly_once import numbered_guid

TICKETS = 300
NEAR_TICKETS = 60  # tickets 0..59: four buyers, ten clean tickets and five diverted each
NEAR_BUYERS = 4
BUYERS = 40  # tickets 60..299: six each (two diverted), at most 2,985 CNY released
ORDER_ONLY = 4  # tickets 300..303: only their order
ANNUAL_LIMIT = Decimal(5000)
VALUE = Decimal("497.50")  # every ticket's dutiable value
KILLS = 6
SEED = 20261207
EBP = "3301980ABC"
ACTIONS = ("RELEASE", "CONFIRM", "REQUEST_CORRECTION")
CORRECTED_AT = "20261124120000"  # a corrected payment's appTime (newer than the first one's)
RESULT_FIELDS = ("result", "code", "decision", "decisionRevision", "ticketId", "revision", "action")
OUTPUTS = ("release", "divert", "review-result", "rejected", "sandan-tickets-changelog")

# (topic name, key, value, partition: None lets the default partitioner choose)
Sent = tuple[str, bytes | None, bytes, int | None]


@dataclass(frozen=True)
class Parcel:
    n: int
    order_no: str
    buyer: str
    near: bool  # its buyer has less of the annual limit left than one ticket

    @property
    def id(self) -> str:
        return ticket_id(EBP, self.order_no)

    @property
    def diverted(self) -> bool:
        return self.n % 3 == 0


def _parcels() -> list[Parcel]:
    parcels = []
    for n in range(TICKETS + ORDER_ONLY):
        near = n < NEAR_TICKETS
        index = n % NEAR_BUYERS if near else NEAR_BUYERS + n % BUYERS
        first17 = f"44030519801226{index:03d}"
        buyer = first17 + resident_id_check_char(first17)
        parcels.append(Parcel(n, f"RV{SEED}{n:06d}", buyer, near))
    return parcels


class Plan:
    """What is sent, and what must come out of it."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        # (reviewId, reviewer; for a record that is no review: "", its key) ->
        #   (result, code, decision, decisionRevision, ticketId, revision, action)
        self.results: dict[tuple[str, str], tuple[Any, ...]] = {}
        # ticket -> (revision, decision, reason codes, reviewId, reviewAction, reviewedBy, note)
        self.decisions: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        self.final: dict[str, tuple[int, int]] = {}  # ticket -> (status, revision) at the end
        self.rejected: Counter[tuple[str, str]] = Counter()  # (code, guid)
        self.stored: set[str] = set()  # guids of the documents stored (a 120 receipt each)
        self.released: dict[str, Decimal] = defaultdict(Decimal)
        self._reviews = 0

    def decide(
        self,
        parcel: Parcel,
        revision: int,
        decision: str,
        reasons: tuple[str, ...] = (),
        review: dict[str, Any] | None = None,
    ) -> None:
        fields = (
            (review["reviewId"], review["action"], review["reviewer"], review["note"])
            if review
            else (None, None, None, None)
        )
        self.decisions[parcel.id].append((revision, decision, reasons, *fields))
        if decision == "RELEASE":
            self.released[parcel.buyer] += VALUE

    def review(
        self,
        tid: str,
        revision: int,
        action: str,
        review_id: str,
        reviewer: str,
        expect: tuple[str, str | None, str | None, int | None],
    ) -> tuple[Sent, dict[str, Any]]:
        """A review record and the review; ``expect``: (result, code, decision, revision)."""
        order_no = tid.partition(":")[2]
        review = {
            "reviewId": review_id,
            "ticketId": tid,
            "revision": revision,
            "action": action,
            "reviewer": reviewer,
            "note": f"{action.lower()} of {order_no} r{revision}: 金额已与支付企业核实",
        }
        assert (review_id, reviewer) not in self.results
        self.results[review_id, reviewer] = (*expect, tid, revision, action)
        home = murmur2_partition(order_no.encode(), self.partitions)
        key: bytes | None = order_no.encode()
        partition: int | None = None  # the default partitioner puts it on its ticket's
        mode, self._reviews = self._reviews % 4, self._reviews + 1
        if mode == 1:
            partition = home
        elif mode == 2:  # (range assignment: the other worker's partition, if both are up)
            partition = (home + 2) % self.partitions
        elif mode == 3:
            key, partition = None, (home + 1) % self.partitions
        value = json.dumps(review, ensure_ascii=False).encode()
        return ("review", key, value, partition), review

    def not_a_review(self, key: bytes, value: bytes) -> Sent:
        self.results["", key.decode()] = ("REFUSED", "INVALID_REVIEW", None, None, None, None, None)
        return ("review", key, value, None)

    def correction(self, parcel: Parcel, rejected: str | None = None) -> Sent:
        """A corrected payment (the right amount, a newer appTime): stored, or ``rejected``."""
        guid = numbered_guid("C", parcel.n)
        if rejected:
            self.rejected[rejected, guid] += 1
        else:
            self.stored.add(guid)
        payment = payment_dict(
            orderNo=parcel.order_no,
            guid=guid,
            appType="2",
            appTime=CORRECTED_AT,
            payerIdNumber=parcel.buyer,
            amountPaid="497.50",
        )
        return ("payment", parcel.order_no.encode(), as_bytes(payment), None)


def _phase1(plan: Plan, parcels: list[Parcel]) -> list[Sent]:
    """Every ticket's documents (the order-only ones first), shuffled a little."""
    rng = random.Random(SEED)
    first: list[Sent] = []
    records: list[Sent] = []
    for p in parcels:
        key = p.order_no.encode()
        order = order_dict(orderNo=p.order_no, guid=numbered_guid("O", p.n), buyerIdNumber=p.buyer)
        plan.stored.add(order["guid"])
        if p.n >= TICKETS:
            first.append(("order", key, as_bytes(order), None))
            plan.final[p.id] = (OPEN, 0)
            continue
        docs = {
            "order": order,
            "payment": payment_dict(
                orderNo=p.order_no,
                guid=numbered_guid("P", p.n),
                payerIdNumber=p.buyer,
                amountPaid="497.49" if p.diverted else "497.50",
            ),
            "logistics": logistics_dict(orderNo=p.order_no, guid=numbered_guid("L", p.n)),
        }
        plan.stored.update(doc["guid"] for doc in docs.values())
        kinds = list(docs)
        rng.shuffle(kinds)
        records.extend((kind, key, as_bytes(docs[kind]), None) for kind in kinds)
        if p.diverted:
            plan.decide(p, 1, "DIVERT", ("AMOUNT_MISMATCH",))
            plan.final[p.id] = (OPEN, 1)
        else:
            plan.decide(p, 1, "RELEASE")
            plan.final[p.id] = (RELEASED, 1)
    window = 30
    for i in range(0, len(records) - window, window // 2):
        chunk = records[i : i + window]
        rng.shuffle(chunk)
        records[i : i + window] = chunk
    return first + records


@dataclass
class Reviewed:
    """The diverted tickets by what their wave A review did."""

    released: list[Parcel]  # RELEASE, applied: released at revision 2
    refused: list[Parcel]  # RELEASE of a buyer at the limit: diverted at revision 2
    confirmed: list[Parcel]  # CONFIRM: closed at revision 2
    correcting: list[Parcel]  # REQUEST_CORRECTION: open at revision 2


def _wave_a(plan: Plan, parcels: list[Parcel]) -> tuple[list[Sent], Reviewed, dict[str, Any]]:
    """One review of each diverted ticket, and the refusals that need no earlier review."""
    sent: list[Sent] = []
    reviewed = Reviewed([], [], [], [])
    reviews: dict[str, Any] = {}  # ticket -> its wave A review
    complete = parcels[:TICKETS]
    for i, p in enumerate(q for q in complete if q.diverted):
        action = ACTIONS[i % 3]
        if action == "RELEASE" and p.near:
            expect: Any = ("REFUSED", "ANNUAL_LIMIT_EXCEEDED", "DIVERT", 2)
        else:
            expect = ("APPLIED", None, "RELEASE" if action == "RELEASE" else "DIVERT", 2)
        record, review = plan.review(p.id, 1, action, f"RV-{p.n}", f"officer-{p.n % 5}", expect)
        sent.append(record)
        reviews[p.id] = review
        if action == "RELEASE" and not p.near:
            plan.decide(p, 2, "RELEASE", (), review)
            plan.final[p.id] = (RELEASED, 2)
            reviewed.released.append(p)
        elif action == "RELEASE":
            plan.decide(p, 2, "DIVERT", ("ANNUAL_LIMIT_EXCEEDED",), review)
            plan.final[p.id] = (OPEN, 2)
            reviewed.refused.append(p)
        else:
            plan.decide(p, 2, "DIVERT", ("AMOUNT_MISMATCH",), review)
            plan.final[p.id] = (CLOSED if action == "CONFIRM" else OPEN, 2)
            (reviewed.confirmed if action == "CONFIRM" else reviewed.correcting).append(p)
    for j, p in enumerate(q for q in complete if not q.diverted):
        if j % 20 == 3:  # a ticket released by the rules
            refused: Any = ("REFUSED", "TICKET_RELEASED", None, None)
            sent.append(plan.review(p.id, 1, ACTIONS[j % 3], f"RV-{p.n}", "officer-r", refused)[0])
    for k, p in enumerate(parcels[TICKETS:]):  # only an order: not decided yet
        refused = ("REFUSED", "NOT_DIVERTED", None, None)
        sent.append(plan.review(p.id, 1, ACTIONS[k % 3], f"RV-{p.n}", "officer-o", refused)[0])
    for k in range(2):
        unknown = ticket_id(EBP, f"RVNOSUCH{k:06d}")
        refused = ("REFUSED", "UNKNOWN_TICKET", None, None)
        sent.append(plan.review(unknown, 1, "RELEASE", f"RV-U{k}", "officer-u", refused)[0])
    sent.append(plan.not_a_review(b"not-a-review-0", b"{"))
    bad = json.dumps(reviews[complete[0].id] | {"action": "APPROVE"}).encode()
    sent.append(plan.not_a_review(b"not-a-review-1", bad))
    return sent, reviewed, reviews


def _wave_b(
    plan: Plan, parcels: list[Parcel], reviewed: Reviewed, reviews: dict[str, Any]
) -> list[Sent]:
    """What needs wave A's results first: repeats, stale revisions, closed and released
    tickets, second looks, corrections."""
    sent: list[Sent] = []
    closed: Any = ("REFUSED", "TICKET_CLOSED", None, None)
    stale: Any = ("REFUSED", "STALE_REVISION", None, None)
    for k, p in enumerate(reviewed.released[:5]):
        expect: Any = ("REFUSED", "TICKET_RELEASED", None, None)
        action = ACTIONS[(k + 1) % 3]
        sent.append(plan.review(p.id, 2, action, f"RV-{p.n}-b", "officer-b", expect)[0])
    sent += [plan.correction(p, rejected="TICKET_RELEASED") for p in reviewed.released[5:8]]
    # The tickets whose release the ledger refused are diverted at revision 2: look again.
    for p in reviewed.refused[:2]:
        applied: Any = ("APPLIED", None, "DIVERT", 3)
        record, review = plan.review(p.id, 2, "CONFIRM", f"RV-{p.n}-b", "officer-b", applied)
        sent.append(record)
        plan.decide(p, 3, "DIVERT", ("ANNUAL_LIMIT_EXCEEDED",), review)
        plan.final[p.id] = (CLOSED, 3)
    for p in reviewed.refused[2:4]:
        again: Any = ("REFUSED", "ANNUAL_LIMIT_EXCEEDED", "DIVERT", 3)
        record, review = plan.review(p.id, 2, "RELEASE", f"RV-{p.n}-b", "officer-b", again)
        sent.append(record)
        plan.decide(p, 3, "DIVERT", ("ANNUAL_LIMIT_EXCEEDED",), review)
        plan.final[p.id] = (OPEN, 3)
    for p in reviewed.refused[4:6]:
        sent.append(plan.review(p.id, 1, "RELEASE", f"RV-{p.n}-b", "officer-b", stale)[0])
    # Closed: a corrected payment is rejected, and so is a review (some tickets get both).
    sent += [plan.correction(p, rejected="TICKET_CLOSED") for p in reviewed.confirmed[:10]]
    for p in reviewed.confirmed[5:12]:
        sent.append(plan.review(p.id, 2, "RELEASE", f"RV-{p.n}-b", "officer-b", closed)[0])
    # Correction requested: the corrected payment decides the ticket again, through the ledger.
    near = [p for p in reviewed.correcting if p.near]
    others = [p for p in reviewed.correcting if not p.near]
    corrected = near[:3] + others[:12]
    for p in corrected:
        sent.append(plan.correction(p))
        if p.near:
            plan.decide(p, 3, "DIVERT", ("ANNUAL_LIMIT_EXCEEDED",))
            plan.final[p.id] = (OPEN, 3)
        else:
            plan.decide(p, 3, "RELEASE")
            plan.final[p.id] = (RELEASED, 3)
    for p in others[12:18]:
        sent.append(plan.review(p.id, 1, "CONFIRM", f"RV-{p.n}-b", "officer-b", stale)[0])
    # A review id acted on before: refused, whatever it now says; on a released ticket,
    # TICKET_RELEASED comes first (not on a corrected one: it may be released by then or not).
    diverted = [p for p in parcels[:TICKETS] if p.diverted and p not in corrected]
    for p in diverted[4::10]:
        code = "TICKET_RELEASED" if p in reviewed.released else "DUPLICATE_REVIEW"
        repeat: Any = ("REFUSED", code, None, None)
        review_id = reviews[p.id]["reviewId"]
        sent.append(plan.review(p.id, 2, "CONFIRM", review_id, f"auditor-{p.n}", repeat)[0])
    return sent


async def _send(brokers: str, records: Sequence[Sent], prefix: str, pace: float) -> None:
    """Produce the records, five at a time ``pace`` seconds apart, each acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=brokers, linger_ms=2)
    await producer.start()
    try:
        for i in range(0, len(records), 5):
            acks = [
                await producer.send(prefix + name, value, key=key, partition=partition)
                for name, key, value, partition in records[i : i + 5]
            ]
            for ack in acks:
                await ack
            await asyncio.sleep(pace)
    finally:
        await producer.stop()


def _state(changelog: list[Any]) -> dict[str, Any]:
    """Each ticket as the tickets' changelog (last value per orderNo; the documents' own
    records set aside) holds it."""
    last = {record.key: record.value for record in changelog}
    tickets = {}
    for key, value in last.items():
        if value is None or is_document_key(key):
            continue
        group = msgspec.msgpack.decode(value, type=Group)
        for ebp, ticket in group.tickets.items():
            tickets[ticket_id(ebp, group.order_no)] = ticket
    return tickets


def _outputs(d: Any, idle: float) -> dict[str, list[Any]]:
    """The records of the topics in OUTPUTS so far, by topic name."""
    records = run(consume(d.brokers, [d.topic(name) for name in OUTPUTS], idle=idle))
    out: dict[str, list[Any]] = {name: [] for name in OUTPUTS}
    names = {d.topic(name): name for name in OUTPUTS}
    for record in records:
        out[names[record.topic]].append(record)
    return out


def _settle(d: Any, plan: Plan, workers: dict[str, Worker], seconds: float) -> None:
    """Until every decision, result and rejection the plan expects so far is out and every
    ticket is in the state with none waiting at the ledger."""
    want = {
        "decisions": sum(len(v) for v in plan.decisions.values()),
        "results": len(plan.results),
        "rejected": sum(plan.rejected.values()),
    }
    timeout = Timeout(seconds, f"{want} and no ticket pending")
    got: dict[str, int] = {}
    try:
        while timeout:
            out = _outputs(d, idle=1)
            state = _state(out["sandan-tickets-changelog"])
            got = {
                "decisions": len(out["release"]) + len(out["divert"]),
                "results": len(out["review-result"]),
                "rejected": len(out["rejected"]),
                "tickets": len(set(plan.final) & set(state)),
                "pending": sum(1 for t in state.values() if t.status == PENDING),
            }
            if (
                all(got[name] >= n for name, n in want.items())
                and got["tickets"] == len(plan.final)
                and got["pending"] == 0
            ):
                return
    except TimeoutError as exc:
        tails = "\n".join(f"--- {name}:\n{w.log_tail(20)}" for name, w in workers.items())
        raise AssertionError(f"{exc}; got {got}\n{tails}") from None
    raise AssertionError("unreachable")


def test_review_actions_exactly_once_across_sigkill(deploy: Any) -> None:
    d = deploy(SANDAN_WINDOW="1h", SANDAN_ANNUAL_LIMIT=str(ANNUAL_LIMIT))
    plan = Plan(d.settings.partitions)
    parcels = _parcels()
    workers = {name: d.worker(name) for name in ("a", "b")}
    for worker in workers.values():
        worker.wait_ready()

    # Phase 1: every ticket decided, the releases settled at the tickets.
    phase1 = _phase1(plan, parcels)
    run(produce(d.brokers, [(d.topic(name), key, value) for name, key, value, _ in phase1]))
    _settle(d, plan, workers, 90)

    # Phase 2, with the workers killed at random moments.
    rng = random.Random(SEED)
    wave_a, reviewed, reviews = _wave_a(plan, parcels)
    rng.shuffle(wave_a)
    done = threading.Event()
    kills: list[str] = []
    errors: list[BaseException] = []

    def killer() -> None:
        chance = random.Random(SEED + 1)
        victims = [sorted(workers)[k % len(workers)] for k in range(KILLS)]
        chance.shuffle(victims)  # each worker killed as often
        try:
            for name in victims:
                if done.wait(chance.uniform(0.5, 2.0)):
                    return
                workers[name].kill()
                kills.append(name)
                workers[name] = d.worker(name)
                workers[name].wait_ready(60)
        except BaseException as exc:  # noqa: BLE001 - reported by the test's thread
            errors.append(exc)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        prefix = d.settings.topic("")
        run(_send(d.brokers, wave_a, prefix, 0.4))
        _settle(d, plan, workers, 90)
        wave_b = _wave_b(plan, parcels, reviewed, reviews)  # (what the plan expects grows)
        rng.shuffle(wave_b)
        run(_send(d.brokers, wave_b, prefix, 0.4))
        thread.join(timeout=200)
    finally:
        done.set()
        thread.join(timeout=200)
    assert not errors, errors
    assert len(kills) == KILLS
    _settle(d, plan, workers, 90)
    by_topic = _outputs(d, idle=3)
    _check_results(plan, by_topic["review-result"])
    _check_decisions(plan, by_topic["release"], by_topic["divert"])
    state = _state(by_topic["sandan-tickets-changelog"])
    assert {tid: (state[tid].status, state[tid].revision) for tid in plan.final} == plan.final
    rejected = [json.loads(r.value) for r in by_topic["rejected"]]
    assert Counter((r["code"], r["guid"]) for r in rejected) == plan.rejected
    _check_receipts(d, plan, by_topic["release"] + by_topic["divert"])
    _check_ledger(d, plan, by_topic["release"])


def _check_results(plan: Plan, records: list[Any]) -> None:
    """One result per review, as expected, keyed by its ticket on its ticket's partition."""
    got: dict[tuple[str, str], tuple[Any, ...]] = {}
    seen: Counter[tuple[str, str]] = Counter()
    for record in records:
        v = json.loads(record.value)
        key = (v["reviewId"] or "", v["reviewer"] or record.key.decode())
        seen[key] += 1
        got[key] = tuple(v[f] for f in RESULT_FIELDS)
        if v["ticketId"] is not None:
            order_no = v["ticketId"].partition(":")[2]
            assert record.key == v["ticketId"].encode()
            assert record.partition == murmur2_partition(order_no.encode(), plan.partitions)
    repeated = {key: n for key, n in seen.items() if n > 1}
    assert not repeated, f"review results repeated: {list(repeated.items())[:5]}"
    missing = {key: want for key, want in plan.results.items() if key not in got}
    assert not missing, f"reviews without a result: {list(missing.items())[:5]}"
    wrong = {key: (got[key], want) for key, want in plan.results.items() if got[key] != want}
    assert not wrong, f"results (got, expected): {list(wrong.items())[:5]}"
    assert set(got) == set(plan.results)


def _check_decisions(plan: Plan, releases: list[Any], diverts: list[Any]) -> None:
    """One decision per ticket revision, the expected ones, a reviewed one with its review."""
    got: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    seen: Counter[tuple[str, int]] = Counter()
    for topic, records in (("RELEASE", releases), ("DIVERT", diverts)):
        for record in records:
            v = json.loads(record.value)
            assert v["decision"] == topic
            seen[v["ticketId"], v["revision"]] += 1
            codes = tuple(r["code"] for r in v.get("reasons", ()))
            fields = tuple(v.get(f) for f in ("reviewId", "reviewAction", "reviewedBy"))
            got[v["ticketId"]].append(
                (v["revision"], v["decision"], codes, *fields, v.get("reviewNote"))
            )
    repeated = {key: n for key, n in seen.items() if n > 1}
    assert not repeated, f"decisions repeated: {list(repeated.items())[:5]}"
    twice = [tid for tid, ds in got.items() if sum(x[1] == "RELEASE" for x in ds) > 1]
    assert not twice, f"released twice: {twice[:5]}"
    expected = {tid: sorted(ds) for tid, ds in plan.decisions.items()}
    actual = {tid: sorted(ds) for tid, ds in got.items()}
    wrong = {tid: (actual.get(tid), ds) for tid, ds in expected.items() if actual.get(tid) != ds}
    assert not wrong, f"decisions (got, expected): {list(wrong.items())[:3]}"
    assert set(actual) == set(expected)


def _check_receipts(d: Any, plan: Plan, decisions: list[Any]) -> None:
    """A 120 per document stored, a 100 per document rejected, a 399 per decision to each
    document it decided on; nothing twice."""
    receipts = [receipt(r) for r in run(consume(d.brokers, [d.topic("receipt")], idle=2))]
    seen = Counter((r["guid"], r["returnStatus"], r.get("revision")) for r in receipts)
    repeated = {key: n for key, n in seen.items() if n > 1}
    assert not repeated, f"receipts repeated: {list(repeated.items())[:5]}"
    expected: set[tuple[str, str, int | None]] = {(g, "120", None) for g in plan.stored}
    expected |= {(guid, "100", None) for _, guid in plan.rejected}
    for record in decisions:
        decision = json.loads(record.value)
        for guid in decision["documents"].values():
            expected.add((guid, "399", decision["revision"]))
    assert set(seen) == expected


def _check_ledger(d: Any, plan: Plan, releases: list[Any]) -> None:
    """The ledger's totals (its compacted changelog, last value per buyer) are exact."""
    released: dict[str, Decimal] = defaultdict(Decimal)
    for record in releases:
        value = json.loads(record.value)
        released[value["buyerIdNumber"]] += Decimal(value["dutiableValue"])
    assert released == plan.released
    changelog = run(consume(d.brokers, [d.topic("sandan-ledger-changelog")], idle=2))
    totals = {
        r.key.decode(): msgspec.msgpack.decode(r.value, type=BuyerLedger).totals for r in changelog
    }
    assert {buyer: sum(years.values()) for buyer, years in totals.items()} == plan.released
    assert max(plan.released.values()) <= ANNUAL_LIMIT
