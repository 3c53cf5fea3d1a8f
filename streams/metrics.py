"""The worker's Prometheus metrics, in a registry of its own (``GET /metrics``, beside ``/status``).

:class:`WorkerMetrics` is the registry of one worker process: ``sandan_worker_info`` and the
process metrics (read from ``/proc`` when scraped) always, and, unless ``SANDAN_METRICS=off``,
the :class:`StepMetrics` that the engine and the pipeline update. Every label value comes from
a closed set (document kinds, formats, the contract's codes, Kafka topics and partitions):
never a ticket, buyer, guid or anything personal.

Cost. Nothing here is called per record. The pipeline keeps counting a step's outcomes in its
``Counter`` as it always did (``in.order.json``, ``release``, ``divert.AMOUNT_MISMATCH``...)
and :meth:`StepMetrics.fold` adds each distinct key once per committed step. The histograms
observe once per step, except decision latency: the pipeline notes each decision's start (an int
appended to a list) and :meth:`StepMetrics.decided` buckets the step's latencies at once
(sorted, one bisection per bucket bound) into a histogram of its own (:class:`_BulkHistogram`,
exposed as a standard Prometheus histogram). That costs about 0.2 us a decision against
1.2 us for ``Histogram.observe`` (measured here with 10,000 values). Consumer lag is read from
the client's cached watermarks (no broker request), at most once a second.

Open tickets. A ticket is open while it still awaits a decision: it is at the buyer ledger, or
it is incomplete and its window is still open, so its window will decide it. A ticket diverted
when complete, released, or decided when its window closed is not open. (An incomplete ticket
diverted ``AMBIGUOUS_WAYBILL`` stays open: its window decides it again.) The gauges are kept
incrementally, never by scanning the state on a scrape: :func:`openings` reads the open
tickets of a group (the window deadline of each) when the pipeline writes the group in a step
(under a microsecond; the pipeline remembers them with the groups it keeps decoded, and reads them
when it loads a group from the store), and :class:`OpenTickets` applies the difference when the
step commits (an aborted step changes nothing). Per partition it keeps the count and the
deadlines tallied by minute, so a scrape costs one sum over the minutes that hold open
deadlines (at most the window's length in minutes per partition, 1,440 with the default 24 h,
plus the overdue ones), whatever the number of tickets. "Closing within 1 h" is therefore to
the minute: the minute in which the hour ends counts whole. A partition's tally survives its
revocation (the local state of a partition not owned does not change) and is rebuilt from the
local state, one pass over the partition's groups (about 3 us a group, measured here), when
the partition is assigned and the process has no tally for it yet (at start) or its restore
applied changelog records to it. So a worker that starts on a data dir holding 10^6 tickets
spends about 3 s more on its first assignment (off the event loop: the web server answers
meanwhile), and a rebalance that moves nothing costs nothing.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import get_args
from urllib.parse import urlsplit

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from schemas.alerts import ALERT_PATTERNS
from schemas.documents import DocType
from schemas.outputs import DecisionKind, DivertCode, RejectionCode, ReviewAction
from schemas.receipts import ReturnStatus
from streams.settings import Settings
from streams.tickets import OPEN, PENDING, Group

__all__ = (
    "CONTENT_TYPE",
    "FORMATS",
    "LEDGER_RESULTS",
    "WORKER_CLIENT_ID_PREFIX",
    "OpenTickets",
    "StepMetrics",
    "WorkerMetrics",
    "openings",
    "worker_client_id",
    "worker_url",
)

# A worker's consumer joins the group ``settings.topic("sandan")`` with the client id
# ``sandan-worker {SANDAN_ADVERTISED_URL}``: the group's description lists every worker, the URL
# of its web server and its partitions.
WORKER_CLIENT_ID_PREFIX = "sandan-worker "
CONTENT_TYPE = CONTENT_TYPE_LATEST
FORMATS = ("json", "xml")
# The buyer ledger's answer to a request: the ticket's value reserved in the buyer's annual
# total (released), refused (diverted ANNUAL_LIMIT_EXCEEDED), or a request decided before
# (consumed again after a restart: nothing is decided twice).
LEDGER_RESULTS = ("reserved", "refused", "replayed")
MINUTE_MS = 60_000
HOUR_MS = 3_600_000

DECISION_LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
TRANSACTION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 10, 100, 500, 1000, 2500, 5000, 10_000, 20_000)
RESTORE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


def worker_client_id(url: str) -> str:
    """The consumer's client id that advertises a worker's web server at ``url``."""
    return f"{WORKER_CLIENT_ID_PREFIX}{url}"


def worker_url(client_id: str) -> str | None:
    """The inverse: the URL a worker advertises in its consumer's client id (None: not a
    worker's, or not an http(s)://host... URL)."""
    if not client_id.startswith(WORKER_CLIENT_ID_PREFIX):
        return None
    url = client_id.removeprefix(WORKER_CLIENT_ID_PREFIX).strip().rstrip("/")
    parts = urlsplit(url)
    return url if parts.scheme in ("http", "https") and parts.netloc else None


# -- open tickets ------------------------------------------------------------------------------


def openings(group: Group) -> tuple[int, ...]:
    """The window deadline (ms; 0 once the window closed) of each open ticket of ``group``."""
    found: tuple[int, ...] = ()
    for ticket in group.tickets.values():  # (a loop: a third cheaper than a generator here)
        status = ticket.status
        if status == PENDING or (
            status == OPEN
            and ticket.deadline_ms
            and (ticket.order is None or ticket.payment is None or ticket.logistics is None)
        ):
            found += (ticket.deadline_ms,)
    return found


class _Tally:
    """One partition's open tickets: how many, and their deadlines by minute."""

    __slots__ = ("count", "minutes", "restored")

    def __init__(self, restored: int = -1) -> None:
        self.count = 0
        self.minutes: dict[int, int] = {}
        self.restored = restored  # the store's restore count it was built at (-1: never)

    def add(self, deadlines: tuple[int, ...], sign: int) -> None:
        self.count += sign * len(deadlines)
        minutes = self.minutes
        for deadline in deadlines:
            if deadline:
                minute = deadline // MINUTE_MS
                left = minutes.get(minute, 0) + sign
                if left:
                    minutes[minute] = left
                else:
                    del minutes[minute]


class OpenTickets:
    """The open tickets of each partition, changed by committed steps (see the module's
    docstring). ``stage`` a group's change during a step; ``commit`` or ``rollback`` with the
    step's transaction."""

    def __init__(self) -> None:
        self._tallies: dict[int, _Tally] = {}
        self._staged: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = []

    def stage(self, partition: int, before: tuple[int, ...], after: tuple[int, ...]) -> None:
        """A group of ``partition`` had the open tickets ``before`` and has ``after``."""
        self._staged.append((partition, before, after))

    def commit(self) -> None:
        tallies = self._tallies
        for partition, before, after in self._staged:
            tally = tallies.get(partition)
            if tally is None:
                tally = tallies[partition] = _Tally()
            tally.add(before, -1)
            tally.add(after, 1)
        self._staged.clear()

    def rollback(self) -> None:
        self._staged.clear()

    def current(self, partition: int, restored: int) -> bool:
        """Whether the tally of ``partition`` was built from the local state as it is after
        ``restored`` restored records (the store's count, :attr:`streams.store.Store.restored`)."""
        tally = self._tallies.get(partition)
        return tally is not None and tally.restored == restored

    def rebuild(self, partition: int, groups: Iterable[tuple[int, ...]], restored: int) -> None:
        """Count ``partition`` again from the openings of every group it holds."""
        tally = _Tally(restored)
        for deadlines in groups:
            if deadlines:
                tally.add(deadlines, 1)
        self._tallies[partition] = tally

    def count(self, partitions: Iterable[int]) -> int:
        """Open tickets in ``partitions``."""
        tallies = self._tallies
        return sum(tallies[p].count for p in partitions if p in tallies)

    def closing_by(self, partitions: Iterable[int], until_ms: int) -> int:
        """Open tickets in ``partitions`` whose window closes by ``until_ms`` (to the minute:
        the minute holding ``until_ms`` counts whole; windows overdue count too)."""
        last = until_ms // MINUTE_MS
        tallies = self._tallies
        return sum(
            count
            for p in partitions
            if p in tallies
            for minute, count in tallies[p].minutes.items()
            if minute <= last
        )


# -- collectors of our own -----------------------------------------------------------------------


class _BulkHistogram(Collector):
    """A histogram that takes a step's values at once (a standard Prometheus histogram when
    scraped: ``_bucket{le}``, ``_count``, ``_sum``)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        self.name, self.documentation = name, documentation
        self._bounds = tuple(float(b) for b in buckets)
        self._bounds_ms = tuple(b * 1000 for b in self._bounds)
        self._counts = [0] * (len(self._bounds) + 1)  # per bucket (not cumulative), then +Inf
        self._sum = 0.0

    def add_latencies(self, started_ms: Sequence[int], ended_ms: int) -> None:
        """Observe ``ended_ms - start`` seconds for each start (never below 0)."""
        if not started_ms:
            return
        latencies = sorted(max(ended_ms - start, 0) for start in started_ms)
        counts, below = self._counts, 0
        for index, bound in enumerate(self._bounds_ms):
            upto = bisect.bisect_right(latencies, bound)
            counts[index] += upto - below
            below = upto
        counts[-1] += len(latencies) - below
        self._sum += sum(latencies) / 1000

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        buckets, total = [], 0
        for bound, count in zip((*self._bounds, None), self._counts, strict=True):
            total += count
            # ``le`` as prometheus_client writes it: 0.025, 1.0, +Inf
            buckets.append(("+Inf" if bound is None else repr(bound), float(total)))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=buckets, sum_value=self._sum
        )


class _Lag(Collector):
    """``sandan_consumer_lag_records{topic, partition}`` as the engine last measured it."""

    name = "sandan_consumer_lag_records"
    documentation = (
        "Records in an assigned input partition not yet fetched: high watermark minus position"
    )

    def __init__(self) -> None:
        self.values: Mapping[tuple[str, int], int] = {}  # replaced whole by the engine's thread

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=("topic", "partition"))

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=("topic", "partition"))
        for (topic, partition), lag in sorted(self.values.items()):
            family.add_metric((topic, str(partition)), lag)
        yield family


# -- the metrics ---------------------------------------------------------------------------------


class StepMetrics:
    """The metrics the engine and the pipeline update, once per step (or per restore)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.documents = Counter(
            "sandan_documents_total",
            "Documents taken in (a JSON record, each node of an XML message, an XML message "
            "rejected whole), by kind and format",
            ("doc_type", "format"),
            registry=registry,
        )
        self.decisions = Counter(
            "sandan_decisions_total", "Decisions committed", ("decision",), registry=registry
        )
        self.divert_reasons = Counter(
            "sandan_divert_reasons_total",
            "Reasons of the DIVERT decisions committed, one per reason code of each",
            ("code",),
            registry=registry,
        )
        self.rejections = Counter(
            "sandan_rejections_total",
            "Records and documents rejected (cbec.rejected), by code",
            ("code",),
            registry=registry,
        )
        self.receipts = Counter(
            "sandan_receipts_total",
            "Receipts committed, by returnStatus",
            ("status",),
            registry=registry,
        )
        self.ledger = Counter(
            "sandan_ledger_operations_total",
            "Buyer-ledger requests decided: reserved (released), refused (annual limit), "
            "replayed (decided before)",
            ("result",),
            registry=registry,
        )
        self.reviews = Counter(
            "sandan_reviews_total",
            "Review results committed, by action and result (applied, refused); a record "
            "that is no review counts as action invalid",
            ("action", "result"),
            registry=registry,
        )
        self.reviews_forwarded = Counter(
            "sandan_reviews_forwarded_total",
            "Reviews that came on another partition than their ticket's, sent on to it",
            registry=registry,
        )
        self.alerts = Counter(
            "sandan_alerts_total",
            "Pattern alerts committed to cbec.alert, by pattern",
            ("pattern",),
            registry=registry,
        )
        self.transactions = Counter(
            "sandan_transactions_total",
            "Kafka transactions of the steps, by result",
            ("result",),
            registry=registry,
        )
        self.restored_records = Counter(
            "sandan_restored_records_total",
            "Changelog records applied to the local state by restores",
            registry=registry,
        )
        self.batch_records = Histogram(
            "sandan_batch_records",
            "Records applied per committed step (steps that applied none are not observed)",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.transaction_duration = Histogram(
            "sandan_transaction_duration_seconds",
            "Time of each committed step's Kafka transaction, begin to commit",
            buckets=TRANSACTION_BUCKETS,
            registry=registry,
        )
        self.restore_duration = Histogram(
            "sandan_restore_duration_seconds",
            "Time to restore the state of the partitions assigned, once per assignment",
            buckets=RESTORE_BUCKETS,
            registry=registry,
        )
        self.decision_latency = _BulkHistogram(
            "sandan_decision_latency_seconds",
            "From the append time of the document that completed (or changed) a complete "
            "ticket to the commit of the transaction that carried its decision",
            DECISION_LATENCY_BUCKETS,
        )
        registry.register(self.decision_latency)
        self.lag = _Lag()
        registry.register(self.lag)
        self.open_tickets = Gauge(
            "sandan_open_tickets",
            "Tickets in this worker's partitions awaiting a decision (at the buyer ledger, or "
            "incomplete with their window open)",
            registry=registry,
        )
        self.closing_within_1h = Gauge(
            "sandan_open_tickets_closing_within_1h",
            "Open tickets whose window closes within the next hour (to the minute)",
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "sandan_assigned_partitions",
            "Partitions (numbers, the same on every topic) this worker owns",
            registry=registry,
        )
        self._by_key = self._children()

    def _children(self) -> dict[str, Counter]:
        """Every count key the pipeline uses, to its counter's child (all created: each label
        value shows from the start, at 0)."""
        children: dict[str, Counter] = {}
        for doc_type in get_args(DocType):
            for fmt in FORMATS:
                children[f"in.{doc_type}.{fmt}"] = self.documents.labels(doc_type, fmt)
        for decision in get_args(DecisionKind):
            children[decision.lower()] = self.decisions.labels(decision)
        for code in get_args(DivertCode):
            children[f"divert.{code}"] = self.divert_reasons.labels(code)
        for code in get_args(RejectionCode):
            children[f"rejected.{code}"] = self.rejections.labels(code)
        for status in get_args(ReturnStatus):
            children[f"receipt.{status}"] = self.receipts.labels(status)
        for result in LEDGER_RESULTS:
            children[f"ledger.{result}"] = self.ledger.labels(result)
        for action in (*get_args(ReviewAction), "invalid"):
            for result in ("applied", "refused"):
                children[f"review.{action}.{result}"] = self.reviews.labels(action, result)
        children["review.forwarded"] = self.reviews_forwarded
        for pattern in ALERT_PATTERNS:
            children[f"alert.{pattern}"] = self.alerts.labels(pattern)
        for result in ("committed", "aborted"):
            self.transactions.labels(result)
        return children

    def fold(self, counts: Mapping[str, int]) -> None:
        """Add a committed step's counts: ``in.{doc_type}.{format}``, ``release``, ``divert``,
        ``divert.{code}``, ``rejected.{code}``, ``receipt.{status}``, ``ledger.{result}``,
        ``review.{action}.{result}``, ``review.forwarded``, ``alert.{pattern}`` (other keys
        are not metrics and are skipped: no label value is ever made up)."""
        children = self._by_key
        for key, count in counts.items():
            child = children.get(key)
            if child is not None and count:
                child.inc(count)

    def decided(self, started_ms: Sequence[int], committed_ms: int) -> None:
        """The step's transaction carrying decisions that started at ``started_ms`` (each the
        append time of the document that completed or changed its ticket) committed."""
        self.decision_latency.add_latencies(started_ms, committed_ms)

    def transaction(self, seconds: float | None) -> None:
        """A step's transaction committed after ``seconds``, or aborted (None)."""
        if seconds is None:
            self.transactions.labels("aborted").inc()
            return
        self.transactions.labels("committed").inc()
        self.transaction_duration.observe(seconds)

    def applied(self, records: int) -> None:
        """A committed step applied ``records`` records."""
        self.batch_records.observe(records)

    def restored(self, seconds: float, records: int) -> None:
        """The partitions assigned were restored in ``seconds``, applying ``records``."""
        self.restore_duration.observe(seconds)
        if records:
            self.restored_records.inc(records)

    def set_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        """The lag of each assigned input partition (topic, partition), replacing the last."""
        self.lag.values = lag

    def watch(
        self,
        partitions: Callable[[], Collection[int]],
        open_tickets: OpenTickets,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Read the gauges, when scraped, from the partitions owned and their open tickets."""
        self.assigned_partitions.set_function(lambda: len(partitions()))
        self.open_tickets.set_function(lambda: open_tickets.count(partitions()))
        self.closing_within_1h.set_function(
            lambda: open_tickets.closing_by(partitions(), int(clock() * 1000) + HOUR_MS)
        )


class WorkerMetrics:
    """The registry of one worker process; ``steps`` is None with ``SANDAN_METRICS=off``."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        Info(
            "sandan_worker",
            "This worker: its id and the URL of its web server (SANDAN_ADVERTISED_URL)",
            registry=self.registry,
        ).info({"worker_id": settings.worker_id, "url": settings.advertised_url})
        self.steps = StepMetrics(self.registry) if settings.metrics else None

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
