"""The stages wired together for the engine: intake, the ticket stage, the buyer ledger and
the alerts.

Per batch, every group (orderNo) and buyer touched is read once, changed in memory by the
pure stages, and written once if it changed, as a changelog record and a staged local write.
The document versions a step stores or drops (streams/tickets.py: each under its own key beside
its group's) are staged as the step returns them, so the batch's next steps read them. The
groups written lately stay decoded in memory (``GROUP_CACHE``), as committed: a ticket's next
document usually comes in a later batch; and so do the document versions written or read
lately (``DOCUMENT_CACHE``), for a decision soon after they came (a ticket whose documents
come far apart reads them from the store, and decodes them, again).

Routing (all internal topics are co-partitioned with the inputs, see streams/topics.py):

    input record ─read─► SCHEMA/DRAFT rejection (JSON document, or XML message or node)
        │ each document: its ticket's partition owned here?  yes ─► ticket stage
        └─ no ─► {prefix}sandan-repartition (key orderNo, origin in headers) ─► ticket stage
    ticket stage ─► decisions, rejections, {prefix}sandan-ledger (key buyerIdNumber)
    ledger stage ─► release / divert, {prefix}sandan-outcomes ─► ticket stage
    ticket stage ─► a sighting of each decided ticket, to each of its alert keys' partitions
        (here, else {prefix}sandan-alerts) ─► alert stage ─► cbec.alert
    cbec.review ─► ticket stage (its partition, else forwarded there on cbec.review)
        ─► cbec.review-result, and a decision (a RELEASE by way of the ledger stage)

Every rejection and decision comes with its receipts (schemas/receipts.py), and every document
the ticket stage applies with one: all on ``cbec.receipt``, in the same transaction.

A step's outcomes are counted in ``counts`` (``in.{doc_type}.{json|xml}``, ``release``,
``divert.{code}``, ``rejected.{code}``, ``receipt.{status}``, ``ledger.{result}``,
``review.{action}.{applied|refused}``, ``review.forwarded``, ``alert.{pattern}``) and, with
metrics on, folded into them when the step commits, with the open tickets of the groups it
changed and the start of each decision's latency (streams/metrics.py).

A document or an outcome for a partition this worker owns skips the topic: it is handled in the
same step, so in the same transaction, as the topic would have delivered it (the engine holds
the documents for their turn in arrival order, see streams/arrivals.py). A ledger request skips
it only when this worker owns every partition: with other workers, the ledger decides in order
of completion across all of them, which the engine keeps by holding the requests from the topic
until every worker has applied its documents up to their time (streams/hops.py). A sighting
skips it whenever this worker owns its key's partition: the alerts' windows slide on the
tickets' own times, so they need no order of arrival.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from matchers import Limits
from schemas.alerts import Alert
from schemas.codec import decode_document, encode_json, readable_fields
from schemas.documents import DocType, Document
from schemas.errors import SchemaError
from schemas.fields import enc_hook
from schemas.keys import murmur2_partition
from schemas.outputs import Decision, Rejection, Source
from schemas.receipts import Addressed, concluded, encode_receipt, returned
from schemas.reviews import ReviewResult, decode_review
from streams.alerts import (
    AlertRules,
    KeyState,
    alert_keys,
    apply_expiry,
    apply_sighting,
    next_expiry,
)
from streams.hops import hop_headers, read_hop, request_headers
from streams.intake import Incoming, Refused, read, validate
from streams.kafka_security import aiokafka_security
from streams.ledger import BuyerLedger, decide, review_result
from streams.metrics import OpenTickets, StepMetrics, openings
from streams.records import (
    KeyedSighting,
    LedgerRequest,
    Outcome,
    Output,
    Record,
    Routed,
    Sighting,
    TopicPartition,
)
from streams.settings import Settings
from streams.store import DataDirError, Store
from streams.tickets import (
    DocumentReader,
    Emit,
    Group,
    KeyedRejection,
    Rules,
    Step,
    apply_document,
    apply_outcome,
    apply_review,
    apply_timer,
    document_key,
    is_document_key,
    next_due,
)
from streams.timefmt import iso_ms
from streams.topics import Topics

__all__ = ("SandanPipeline",)

log = logging.getLogger(__name__)

MAX_TIMERS_PER_BATCH = 5_000
MAX_POISONED_PER_BATCH = 100  # records of one batch set aside as INTERNAL at most
GROUP_CACHE = 10_000  # committed groups kept decoded, the latest written
DOCUMENT_CACHE = 30_000  # document versions kept decoded, the latest written or read

_encoder = msgspec.msgpack.Encoder(enc_hook=enc_hook)
_decode_group = msgspec.msgpack.Decoder(Group).decode
_decode_ledger = msgspec.msgpack.Decoder(BuyerLedger).decode
_decode_request = msgspec.msgpack.Decoder(LedgerRequest).decode
_decode_outcome = msgspec.msgpack.Decoder(Outcome).decode
_decode_sighting = msgspec.msgpack.Decoder(KeyedSighting).decode
_decode_key_state = msgspec.msgpack.Decoder(KeyState).decode
# The count key of the documents taken in, by kind and whether they came in XML.
_IN_KEYS = {
    (doc_type, xml): f"in.{doc_type}.{'xml' if xml else 'json'}"
    for doc_type in ("order", "payment", "logistics")
    for xml in (False, True)
}


class _PoisonRecordError(Exception):
    """Handling the batch's record at ``index`` raised ``error``."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index, self.error = index, error


def _invalid_review(error: SchemaError, now_ms: int) -> ReviewResult:
    return ReviewResult(
        reviewId=None,
        ticketId=None,
        revision=None,
        action=None,
        reviewer=None,
        result="REFUSED",
        code="INVALID_REVIEW",
        detail=error.detail,
        decision=None,
        decisionRevision=None,
        at=iso_ms(now_ms),
    )


def _group_due(key: bytes, value: bytes) -> int | None:
    return None if is_document_key(key) else next_due(_decode_group(value))


@dataclass
class _Batch:
    """What one step gathers from its start to its commit or rollback: the groups and buyers it
    read (each once) and which groups changed, what it outputs, what it counts."""

    groups: dict[tuple[int, str], Group] = field(default_factory=dict)
    changed: set[tuple[int, str]] = field(default_factory=set)  # the groups to write
    stored_due: dict[tuple[int, str], int | None] = field(default_factory=dict)  # their timers
    openings: dict[tuple[int, str], tuple[int, ...]] = field(default_factory=dict)  # (metrics)
    buyers: dict[tuple[int, str], BuyerLedger] = field(default_factory=dict)
    # Alert keys read (each once): their state (None: none) and its timer as stored.
    alert_keys: dict[tuple[int, bytes], tuple[KeyState | None, int | None]] = field(
        default_factory=dict
    )
    alerts_changed: set[tuple[int, bytes]] = field(default_factory=set)
    outputs: list[Output] = field(default_factory=list)
    # Ledger requests for buyers' partitions this worker owns, decided in the same step.
    ledger_inbox: deque[tuple[int, LedgerRequest]] = field(default_factory=deque)
    counts: Counter[str] = field(default_factory=Counter)  # added once committed
    decision_starts: list[int] = field(default_factory=list)  # each decision's latency start
    applied_until: int = 0  # the step's watermark (streams/engine.py)
    now_ms: int = 0  # the step's clock: when its decisions and alerts are made


class SandanPipeline:
    """Routes each consumed record to its stage and collects what they emit."""

    def __init__(self, settings: Settings, metrics: StepMetrics | None = None) -> None:
        """``metrics``: the worker's, updated once per committed step (None: no metrics)."""
        self.settings = settings
        self.topics = Topics(settings)
        self.counts: Counter[str] = Counter()
        self.rules = Rules(
            window_ms=int(settings.window * 1000),
            retention_ms=int(settings.retention * 1000),
            released_horizon_ms=int(settings.released_horizon * 1000),
            limits=Limits(single_limit=settings.single_limit, annual_limit=settings.annual_limit),
            max_document_bytes=settings.max_document_bytes,
            inline_documents=settings.document_state == "inline",
            sightings=settings.alerts,
        )
        self.alert_rules = AlertRules(
            consignees=settings.alert_consignees,
            consignees_window_ms=int(settings.alert_consignees_window * 1000),
            buyers=settings.alert_buyers,
            buyers_window_ms=int(settings.alert_buyers_window * 1000),
            split_window_ms=int(settings.alert_split_window * 1000),
            single_limit=settings.single_limit,
            lateness_ms=self.rules.window_ms,
        )
        state = Path(settings.data_dir) / "state"
        self.tickets = Store(state / "tickets", self.topics.tickets_changelog, due=_group_due)
        self.ledger = Store(state / "ledger", self.topics.ledger_changelog)
        self.alerts = Store(state / "alerts", self.topics.alerts_changelog, due=self._alert_due)
        self.partitions: set[int] = set()
        # (group, its timer, its open tickets' deadlines when metrics are on)
        self._cache: OrderedDict[tuple[int, str], tuple[Group, int | None, tuple[int, ...]]] = (
            OrderedDict()
        )
        self._documents_cache: OrderedDict[tuple[int, bytes], Document] = OrderedDict()
        self._batch = _Batch()
        self._routing: list[Output] = []  # what routing input records emitted (this step)
        self._routing_counts: Counter[str] = Counter()
        self._metrics = metrics
        self.open_tickets = OpenTickets() if metrics is not None else None  # with metrics
        if metrics is not None and self.open_tickets is not None:
            metrics.watch(lambda: self.partitions, self.open_tickets)

    # -- the batch ------------------------------------------------------------------------

    def route(
        self,
        records: Sequence[Record],
        now_ms: int,
        replay_below: Mapping[TopicPartition, int] | None = None,
    ) -> list[Routed]:
        """Read consumed input records: reject what is invalid and send each document whose
        ticket is on another worker's partition there (outputs of this step, which the next
        ``process`` returns); return the documents whose tickets are here, to be applied in
        arrival order.

        A record below ``replay_below`` for its partition was routed before, in a committed
        transaction, and is consumed again because a document of it was still held: its
        rejections are not repeated. Its hops may be (the ticket may have moved since): an
        exact redelivery, which the ticket stage ignores."""
        routed: list[Routed] = []
        doc_type_of = self.topics.doc_type_of
        poisoned = 0
        for record in records:
            replay = replay_below is not None and record.offset < replay_below.get(
                TopicPartition(record.topic, record.partition), -1
            )
            emitted = len(self._routing)
            try:
                routed += self._read(record, doc_type_of[record.topic], now_ms, replay)
            except Exception as exc:  # a poison record: set aside, see process
                del self._routing[emitted:]
                poisoned += 1
                if poisoned > MAX_POISONED_PER_BATCH:
                    msg = f"more than {MAX_POISONED_PER_BATCH} records of one batch failed"
                    raise RuntimeError(msg) from exc
                if not replay:
                    self._log_poison(record, exc)
                    self._routing += self._internal_rejection(
                        record, exc, now_ms, self._routing_counts
                    )
        return routed

    def process(
        self, records: Sequence[Record | Routed], now_ms: int, arrived_ms: int
    ) -> list[Output]:
        """The step's outputs: those of routing, then of applying the documents routed here
        (``Routed``), the hops from other workers and the internal records, in the order given,
        and of the timers due by ``arrived_ms``. An input record given here is routed and its
        documents applied at once. (Marks never come here: the engine reads them.)

        A record whose handling raises is a poison record: the batch is rolled back and handled
        again without it, and it goes to ``cbec.rejected`` as ``INTERNAL`` with its original
        bytes; the other records come out as if it had not been there. More than
        ``MAX_POISONED_PER_BATCH`` is not poison but a broken worker: the error goes on (the
        engine stops)."""
        items: list[Record | Routed] = list(records)
        inputs = [
            r for r in records if isinstance(r, Record) and r.topic in self.topics.doc_type_of
        ]
        if inputs:
            routed: dict[int, list[Record | Routed]] = {id(r): [] for r in inputs}
            for document in self.route(inputs, now_ms):
                routed[id(document.record)].append(document)
            items = [i for r in records for i in routed.get(id(r), (r,))]
        poisoned: list[tuple[Record, Exception]] = []
        while True:
            try:
                outputs = self._process(items, now_ms, arrived_ms)
            except _PoisonRecordError as poison:
                self._reset_batch()
                failed = items[poison.index]
                record = failed.record if isinstance(failed, Routed) else failed
                self._log_poison(record, poison.error)
                poisoned.append((record, poison.error))
                if len(poisoned) > MAX_POISONED_PER_BATCH:
                    msg = f"more than {MAX_POISONED_PER_BATCH} records of one batch failed"
                    raise RuntimeError(msg) from poison.error
                items = [*items[: poison.index], *items[poison.index + 1 :]]
                continue
            for record, error in poisoned:
                outputs += self._internal_rejection(record, error, now_ms, self._batch.counts)
            outputs[:0] = self._routing
            self._batch.counts.update(self._routing_counts)
            self._routing, self._routing_counts = [], Counter()
            return outputs

    def _log_poison(self, record: Record, error: Exception) -> None:
        log.error(
            "record %s[%d]@%d failed (%s); it goes to %s as INTERNAL",
            record.topic,
            record.partition,
            record.offset,
            type(error).__name__,
            self.topics.rejected,
            exc_info=error,
        )

    def _process(
        self, items: Sequence[Record | Routed], now_ms: int, arrived_ms: int
    ) -> list[Output]:
        topics = self.topics
        self._batch.applied_until, self._batch.now_ms = arrived_ms, now_ms
        for index, item in enumerate(items):
            try:
                if isinstance(item, Routed):
                    incoming, document = item.document
                    self._on_document(item.ticket_partition, incoming, document, now_ms)
                    continue
                topic = item.topic
                if topic == topics.repartition:
                    self._on_repartitioned(item, now_ms)
                elif topic == topics.ledger:
                    request = _decode_request(item.value or b"")
                    self._on_ledger_request(item.partition, request, now_ms)
                elif topic == topics.outcomes:
                    outcome = _decode_outcome(item.value or b"")
                    self._on_outcome(item.partition, outcome, now_ms)
                elif topic == topics.review:
                    self._on_review(item, now_ms)
                elif topic == topics.alerts:
                    keyed = _decode_sighting(item.value or b"")
                    self._on_sighting(item.partition, keyed.kind, item.key or b"", keyed.sighting)
            except DataDirError:
                raise  # the disk under the local state, not this record: never set aside
            except Exception as exc:
                raise _PoisonRecordError(index, exc) from exc
        self._drain_ledger_inbox(now_ms)
        self._fire_timers(arrived_ms, now_ms)
        return self._flush()

    def _internal_rejection(
        self, record: Record, error: Exception, now_ms: int, counts: Counter[str]
    ) -> list[Output]:
        """The ``INTERNAL`` rejection of a poison record (and, for a document whose sender can
        be read, its receipt)."""
        headers = dict(record.headers)
        topic = record.topic
        doc_type = self.topics.doc_type_of.get(topic)
        if topic == self.topics.repartition and "topic" in headers:
            doc_type = self.topics.doc_type_of.get(headers["topic"].decode(errors="replace"))
        detail = (
            f"sandan failed on this record ({type(error).__name__}); it was set aside so the "
            "stream goes on: see the worker's log at this source"
        )
        raw = record.value or b""
        fields = readable_fields(raw) if doc_type is not None else {}
        rejection = Rejection(
            code="INTERNAL",
            detail=detail,
            docType=doc_type,
            source=Source(topic, record.partition, record.offset, record.timestamp),
            raw=raw,
            **fields,  # type: ignore[arg-type]  # the str key fields
        )
        counts["rejected.INTERNAL"] += 1
        outputs = [Output(self.topics.rejected, record.key, encode_json(rejection))]
        if doc_type is not None and rejection.guid is not None:
            addressed = returned(rejection, cop_code=None, xml=False, ticket=None, now_ms=now_ms)
            counts[f"receipt.{addressed.receipt.returnStatus}"] += 1
            key, value, receipt_headers = encode_receipt(addressed)
            outputs.append(Output(self.topics.receipt, key, value, None, receipt_headers))
        return outputs

    def _read(self, record: Record, doc_type: DocType, now_ms: int, replay: bool) -> list[Routed]:
        """Route one input record's documents (see ``route``)."""
        source = Source(record.topic, record.partition, record.offset, record.timestamp)
        incoming = Incoming(doc_type, record.key, record.value, source)
        items = read(incoming, self.rules.max_document_bytes, self.settings.max_message_bytes)
        if not replay and items:
            first = items[0]
            xml = first.xml if isinstance(first, Refused) else first[0].origin is not None
            self._routing_counts[_IN_KEYS[doc_type, xml]] += len(items)
        routed: list[Routed] = []
        for item in items:
            if isinstance(item, Refused):
                if not replay:
                    self._routing += self._rejection_outputs(
                        incoming.key,
                        item.rejection,
                        now_ms,
                        item.cop_code,
                        item.xml,
                        self._routing_counts,
                    )
                continue
            accepted, document = item
            owner = murmur2_partition(document.orderNo.encode(), self.settings.partitions)
            if owner in self.partitions:
                routed.append(Routed(record, owner, item))
                continue
            self._routing.append(
                Output(
                    self.topics.repartition,
                    document.orderNo.encode(),
                    accepted.value,
                    owner,
                    hop_headers(accepted),
                    source.timestamp,  # it keeps its arrival time, by which the owner orders it
                )
            )
        return routed

    def _on_repartitioned(self, record: Record, now_ms: int) -> None:
        incoming = read_hop(record, self.topics.doc_type_of)
        result = validate(incoming, self.rules.max_document_bytes)
        if isinstance(result, Rejection):  # cannot happen: it was valid before repartitioning
            self._output_rejection(
                incoming.key, result, now_ms, None, xml=incoming.origin is not None
            )
            return
        self._on_document(record.partition, incoming, result, now_ms)

    def _on_document(
        self, partition: int, incoming: Incoming, document: Document, now_ms: int
    ) -> None:
        order_no = document.orderNo
        group = self._group(partition, order_no)
        stored = self._documents(partition, order_no)
        step = apply_document(self.rules, partition, group, stored, incoming, document, now_ms)
        self._changes(partition, order_no, step)
        self._emit(step.emits, partition, incoming.source.timestamp or now_ms)

    def _on_ledger_request(self, partition: int, request: LedgerRequest, now_ms: int) -> None:
        ledger = self._buyer(partition, request.buyer)
        decided = decide(ledger, request, self.settings.annual_limit, now_ms)
        if decided is None:
            self._batch.counts["ledger.replayed"] += 1
            return  # decided before (consumed again after a restart): its outcome went then
        decision, outcome = decided
        self._batch.counts["ledger.reserved" if outcome.released else "ledger.refused"] += 1
        self._output_decision(decision, request.at)
        result = review_result(decision)
        if result is not None:
            self._output_review_result(result, request.ticket_partition)
        for receipt in concluded(decision, request.addressees, now_ms):
            self._output_receipt(receipt)
        if request.ticket_partition in self.partitions:
            self._on_outcome(request.ticket_partition, outcome, now_ms)
            return
        self._batch.outputs.append(
            Output(
                self.topics.outcomes,
                outcome.order_no.encode(),
                _encoder.encode(outcome),
                request.ticket_partition,
            )
        )

    def _on_outcome(self, partition: int, outcome: Outcome, now_ms: int) -> None:
        # What the outcome replays counts as arriving after everything applied (the floor).
        floor_ms = self._batch.applied_until + 1
        order_no = outcome.order_no
        group = self._group(partition, order_no)
        stored = self._documents(partition, order_no)
        step = apply_outcome(self.rules, partition, group, stored, outcome, now_ms, floor_ms)
        self._changes(partition, order_no, step)
        self._emit(step.emits, partition, floor_ms)

    def _on_review(self, record: Record, now_ms: int) -> None:
        """A reviewer's action: applied on its ticket's partition if this worker owns it, else
        forwarded there on the review topic (a producer that did not partition by orderNo with
        Kafka's default partitioner), in this transaction."""
        try:
            review = decode_review(record.value, self.settings.max_document_bytes)
        except SchemaError as exc:
            self._output_review_result(_invalid_review(exc, now_ms), record.partition, record.key)
            return
        order_no = review.order_no
        partition = murmur2_partition(order_no.encode(), self.settings.partitions)
        if partition not in self.partitions:
            self._batch.counts["review.forwarded"] += 1
            headers = [*record.headers, ("forwarded-from", str(record.partition).encode())]
            self._batch.outputs.append(
                Output(self.topics.review, order_no.encode(), record.value, partition, headers)
            )
            return
        # A release by review counts as arriving after everything applied (the floor).
        floor_ms = self._batch.applied_until + 1
        group = self._group(partition, order_no)
        stored = self._documents(partition, order_no)
        step = apply_review(
            self.rules, partition, group, stored, review, record.timestamp, now_ms, floor_ms
        )
        self._changes(partition, order_no, step)
        self._emit(step.emits, partition, 0)

    def _drain_ledger_inbox(self, now_ms: int) -> None:
        """Decide the ledger requests whose buyer's partition this worker owns, in the same
        transaction (an outcome may replay parked records and so request again)."""
        inbox = self._batch.ledger_inbox
        while inbox:
            partition, request = inbox.popleft()
            self._on_ledger_request(partition, request, now_ms)

    def _fire_timers(self, arrived_ms: int, now_ms: int) -> None:
        for partition in sorted(self.partitions):
            for key in list(self.tickets.due(partition, arrived_ms, MAX_TIMERS_PER_BATCH)):
                order_no = key.decode()
                group = self._group(partition, order_no)
                stored = self._documents(partition, order_no)
                step = apply_timer(self.rules, partition, group, stored, arrived_ms, now_ms)
                self._changes(partition, order_no, step)
                self._emit(step.emits, partition, 0)  # a window's decision: nothing completed it
            for key in list(self.alerts.due(partition, arrived_ms, MAX_TIMERS_PER_BATCH)):
                state = self._alert_key(partition, key)
                if state is not None:
                    expired = apply_expiry(self.alert_rules, state, arrived_ms)
                    self._alert_changes(partition, key, expired.state, expired.changed)

    # -- state, read once and written once per batch ----------------------------------------

    def _group(self, partition: int, order_no: str) -> Group:
        """The group, read once per batch (from the cache, else the store). It is written at
        the end of the batch only if a step applied to it says it changed (``_changed``)."""
        key = (partition, order_no)
        group = self._batch.groups.get(key)
        if group is None:
            cached = self._cache.pop(key, None)
            if cached is not None:
                group, due, opened = cached
            else:
                stored = self.tickets.get(partition, order_no.encode())
                group = _decode_group(stored) if stored is not None else Group(order_no)
                due = next_due(group)
                opened = () if stored is None or self.open_tickets is None else openings(group)
            self._batch.groups[key] = group
            self._batch.stored_due[key] = due
            self._batch.openings[key] = opened
        return group

    def _documents(self, partition: int, order_no: str) -> DocumentReader:
        """Reads the group's stored documents, as this batch left them so far: decoded from
        the cache, else from the store."""
        cache = self._documents_cache

        def read(kind: DocType, guid: str) -> Document:
            key = document_key(order_no, guid)
            document = cache.get((partition, key))
            if document is None:
                raw = self.tickets.get(partition, key)
                if raw is None:
                    msg = f"document {guid} of orderNo {order_no!r} is not in the local state"
                    raise LookupError(msg)
                document = decode_document(kind, raw, len(raw))
                self._remember(partition, key, document)
            return document

        return read

    def _remember(self, partition: int, key: bytes, document: Document) -> None:
        cache = self._documents_cache
        cache[(partition, key)] = document
        if len(cache) > DOCUMENT_CACHE:
            cache.popitem(last=False)  # the oldest

    def _changes(self, partition: int, order_no: str, step: Step) -> None:
        """Stage the changes a step returned: its documents at once (the batch's next steps
        read them), its group at the end of the batch (``_flush``)."""
        if step.changed:
            self._batch.changed.add((partition, order_no))
        for guid, written in step.documents.items():
            key = document_key(order_no, guid)
            if written is None:
                self._batch.outputs.append(self.tickets.put(partition, key, None))
                self._documents_cache.pop((partition, key), None)
            else:
                self._batch.outputs.append(self.tickets.put(partition, key, written.raw))
                self._remember(partition, key, written.document)

    def committed_group(
        self, partition: int, order_no: str
    ) -> tuple[Group | None, Callable[[str], bytes]]:
        """The group (None: nothing stored) and its documents' bytes by guid (empty: not
        stored) as the last committed step left them, for readers outside the engine
        (lookups), from any thread: see :meth:`Store.committed`."""
        stored = self.tickets.committed(partition, order_no.encode())
        group = _decode_group(stored) if stored is not None else None

        def read(guid: str) -> bytes:
            return self.tickets.committed(partition, document_key(order_no, guid)) or b""

        return group, read

    def _buyer(self, partition: int, buyer: str) -> BuyerLedger:
        ledger = self._batch.buyers.get((partition, buyer))
        if ledger is None:
            stored = self.ledger.get(partition, buyer.encode())
            ledger = _decode_ledger(stored) if stored is not None else BuyerLedger()
            self._batch.buyers[(partition, buyer)] = ledger
        return ledger

    def _alert_due(self, key: bytes, value: bytes) -> int | None:
        return _decode_key_state(value).due

    def _alert_key(self, partition: int, key: bytes) -> KeyState | None:
        """An alert key's state, read once per batch."""
        read = self._batch.alert_keys.get((partition, key))
        if read is None:
            stored = self.alerts.get(partition, key)
            state = _decode_key_state(stored) if stored is not None else None
            due = state.due if state is not None else None
            read = self._batch.alert_keys[(partition, key)] = (state, due)
        return read[0]

    def _alert_changes(
        self, partition: int, key: bytes, state: KeyState | None, changed: bool
    ) -> None:
        """The key's state after a step (written at the end of the batch if it changed)."""
        _, due = self._batch.alert_keys[(partition, key)]
        self._batch.alert_keys[(partition, key)] = (state, due)
        if changed:
            self._batch.alerts_changed.add((partition, key))

    def _flush(self) -> list[Output]:
        outputs, cache, open_tickets = self._batch.outputs, self._cache, self.open_tickets
        for key, group in self._batch.groups.items():
            partition, order_no = key
            due, opened = self._batch.stored_due[key], self._batch.openings[key]
            if key in self._batch.changed:
                value = None if group.empty() else _encoder.encode(group)
                due, before = next_due(group), due
                outputs.append(self.tickets.put(partition, order_no.encode(), value, due, before))
                if open_tickets is not None:
                    was, opened = opened, openings(group)
                    if was != opened:
                        open_tickets.stage(partition, was, opened)
            if not group.empty():
                cache[key] = (group, due, opened)  # the newest last
        while len(cache) > GROUP_CACHE:
            cache.popitem(last=False)  # the oldest
        for (partition, buyer), ledger in self._batch.buyers.items():
            outputs.append(self.ledger.put(partition, buyer.encode(), _encoder.encode(ledger)))
        for partition, alert_key in sorted(self._batch.alerts_changed):
            state, before = self._batch.alert_keys[(partition, alert_key)]
            due = None
            if state is not None:
                due = state.due = next_expiry(self.alert_rules, state)
            value = None if state is None else _encoder.encode(state)
            outputs.append(self.alerts.put(partition, alert_key, value, due, before))
        return outputs

    # -- what the stages emit ---------------------------------------------------------------

    def _emit(self, emits: list[Emit], partition: int, started_ms: int) -> None:
        """What a step on ``partition`` emitted; its decisions' latency starts at
        ``started_ms`` (0: none)."""
        for item in emits:
            if isinstance(item, Addressed):
                self._output_receipt(item)
            elif isinstance(item, Decision):
                self._output_decision(item, started_ms)
            elif isinstance(item, KeyedRejection):
                self._output_rejection_record(item.key, item.rejection)
            elif isinstance(item, ReviewResult):
                self._output_review_result(item, partition)
            elif isinstance(item, Sighting):
                self._sighted(item)
            else:
                partitions = self.settings.partitions
                partition = murmur2_partition(item.buyer.encode(), partitions)
                if len(self.partitions) == partitions:  # no other worker: decided at once
                    self._batch.ledger_inbox.append((partition, item))
                    continue
                self._batch.outputs.append(
                    Output(
                        self.topics.ledger,
                        item.buyer.encode(),
                        _encoder.encode(item),
                        partition,
                        request_headers(item.ticket_partition),
                        item.at or None,
                    )
                )

    def _sighted(self, sighting: Sighting) -> None:
        """A decided ticket, to each of its alert keys: applied here if this worker owns the
        key's partition, else sent there."""
        for kind, key in alert_keys(sighting):
            partition = murmur2_partition(key, self.settings.partitions)
            if partition in self.partitions:
                self._on_sighting(partition, kind, key, sighting)
                continue
            value = _encoder.encode(KeyedSighting(kind, sighting))
            self._batch.outputs.append(Output(self.topics.alerts, key, value, partition))

    def _on_sighting(self, partition: int, kind: str, key: bytes, sighting: Sighting) -> None:
        state = self._alert_key(partition, key)
        batch = self._batch
        step = apply_sighting(
            self.alert_rules, state, kind, key, sighting, batch.applied_until, batch.now_ms
        )
        self._alert_changes(partition, key, step.state, step.changed)
        for alert in step.alerts:
            self._output_alert(alert)

    def _output_alert(self, alert: Alert) -> None:
        self._batch.counts[f"alert.{alert.pattern}"] += 1
        key = alert.keyDigest.encode()
        self._batch.outputs.append(Output(self.topics.alert, key, encode_json(alert)))

    def _output_decision(self, decision: Decision, started_ms: int) -> None:
        """A decision; with metrics, its latency runs from ``started_ms``, the arrival of the
        document that completed or changed the ticket (decisions on incomplete tickets, as
        a window closing, have none)."""
        self._batch.counts[f"{decision.decision.lower()}"] += 1
        if started_ms and self._metrics is not None and decision.completedAt is not None:
            self._batch.decision_starts.append(started_ms)
        if decision.decision == "DIVERT" and decision.reasons:
            for reason in decision.reasons:
                self._batch.counts[f"divert.{reason.code}"] += 1
        topic = self.topics.release if decision.decision == "RELEASE" else self.topics.divert
        self._batch.outputs.append(Output(topic, decision.ticketId.encode(), encode_json(decision)))

    def _output_rejection(
        self,
        key: bytes | None,
        rejection: Rejection,
        now_ms: int,
        cop_code: str | None,
        xml: bool,
    ) -> None:
        """An intake rejection and its receipt."""
        self._batch.outputs += self._rejection_outputs(
            key, rejection, now_ms, cop_code, xml, self._batch.counts
        )

    def _rejection_outputs(
        self,
        key: bytes | None,
        rejection: Rejection,
        now_ms: int,
        cop_code: str | None,
        xml: bool,
        counts: Counter[str],
    ) -> list[Output]:
        addressed = returned(rejection, cop_code=cop_code, xml=xml, ticket=None, now_ms=now_ms)
        counts[f"rejected.{rejection.code}"] += 1
        counts[f"receipt.{addressed.receipt.returnStatus}"] += 1
        receipt_key, value, headers = encode_receipt(addressed)
        return [
            Output(self.topics.rejected, key, encode_json(rejection)),
            Output(self.topics.receipt, receipt_key, value, None, headers),
        ]

    def _output_rejection_record(self, key: bytes | None, rejection: Rejection) -> None:
        self._batch.counts[f"rejected.{rejection.code}"] += 1
        self._batch.outputs.append(Output(self.topics.rejected, key, encode_json(rejection)))

    def _output_review_result(
        self, result: ReviewResult, partition: int, key: bytes | None = None
    ) -> None:
        """A review's result, on its ticket's partition (a record that is no review: on its
        own partition, with its own key)."""
        outcome = "applied" if result.code is None else "refused"
        self._batch.counts[f"review.{result.action or 'invalid'}.{outcome}"] += 1
        if result.ticketId is not None:
            key = result.ticketId.encode()
        self._batch.outputs.append(
            Output(self.topics.review_result, key, encode_json(result), partition)
        )

    def _output_receipt(self, addressed: Addressed) -> None:
        self._batch.counts[f"receipt.{addressed.receipt.returnStatus}"] += 1
        key, value, headers = encode_receipt(addressed)
        self._batch.outputs.append(Output(self.topics.receipt, key, value, None, headers))

    # -- transaction and partition lifecycle ------------------------------------------------

    def commit(self, offsets: dict[tuple[str, int], int], committed_ms: int | None = None) -> None:
        """The step's transaction committed (at ``committed_ms``, default now): write its
        changes locally, and count them."""
        self.tickets.commit({p: o for (t, p), o in offsets.items() if t == self.tickets.changelog})
        self.ledger.commit({p: o for (t, p), o in offsets.items() if t == self.ledger.changelog})
        self.alerts.commit({p: o for (t, p), o in offsets.items() if t == self.alerts.changelog})
        self.counts.update(self._batch.counts)
        metrics = self._metrics
        if metrics is not None:
            metrics.fold(self._batch.counts)
            if self._batch.decision_starts:
                at = int(time.time() * 1000) if committed_ms is None else committed_ms
                metrics.decided(self._batch.decision_starts, at)
            if self.open_tickets is not None:
                self.open_tickets.commit()
        self._batch = _Batch()

    def rollback(self) -> None:
        """The step's transaction aborted: forget everything of it, routing included."""
        self._reset_batch()
        self._routing, self._routing_counts = [], Counter()

    def _reset_batch(self) -> None:
        self.tickets.rollback()
        self.ledger.rollback()
        self.alerts.rollback()
        self._batch = _Batch()
        self._cache.clear()  # it may hold changes that were rolled back
        self._documents_cache.clear()
        if self.open_tickets is not None:
            self.open_tickets.rollback()

    async def assign(self, partitions: set[int]) -> None:
        """Restore the state of ``partitions`` (and, with metrics, count their open tickets
        again where the local state changed: see streams/metrics.py)."""
        started = time.monotonic()
        brokers, security = self.settings.brokers, aiokafka_security(self.settings)
        restored = await self.tickets.restore(brokers, partitions, security=security)
        restored += await self.ledger.restore(brokers, partitions, security=security)
        restored += await self.alerts.restore(brokers, partitions, security=security)
        open_tickets = self.open_tickets
        if open_tickets is not None:
            restored_here = self.tickets.restored
            stale = [p for p in sorted(partitions) if not open_tickets.current(p, restored_here[p])]
            if stale:  # off the event loop: the web views answer meanwhile
                await asyncio.to_thread(self._count_open_tickets, open_tickets, stale)
        self.counts["restored"] += restored
        self.partitions |= partitions
        if self._metrics is not None:
            self._metrics.restored(time.monotonic() - started, restored)

    def _count_open_tickets(self, open_tickets: OpenTickets, partitions: list[int]) -> None:
        for partition in partitions:
            groups = (
                openings(_decode_group(value))
                for key, value in self.tickets.items(partition)
                if not is_document_key(key)
            )
            open_tickets.rebuild(partition, groups, self.tickets.restored[partition])

    async def revoke(self, partitions: set[int]) -> None:
        self.partitions -= partitions
        for key in [key for key in self._cache if key[0] in partitions]:
            del self._cache[key]
        for doc_key in [doc_key for doc_key in self._documents_cache if doc_key[0] in partitions]:
            del self._documents_cache[doc_key]

    def close(self) -> None:
        self.tickets.close()
        self.ledger.close()
        self.alerts.close()
