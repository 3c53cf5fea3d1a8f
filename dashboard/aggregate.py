"""The deployment over time: each round folded into an hour of history and the overview the
page shows. Pure: the caller passes each round and its time.

Each worker's counters are followed from scrape to scrape by :class:`dashboard.tracker.Tracker`
(first sight, resets, totals). Each round becomes a :class:`Point` in a
:class:`~dashboard.series.Ring` of one hour: the gains of every worker summed and reduced to
what the page windows (documents; decisions by kind; divert reasons; rejections; receipts;
alerts by pattern; decision-latency buckets), with the round's lag. Rates, the last minute's
latency quantiles, the last hour's counts and the charts are sums over the ring, computed once
per round (:meth:`Deployment.overview`), never per page view.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dashboard.models import (
    Broker,
    Charts,
    Counts,
    GroupView,
    LastBatch,
    Latency,
    Member,
    Overview,
    Throughput,
    Tickets,
    WorkerScrape,
    WorkerView,
)
from dashboard.promtext import Samples, label, total
from dashboard.series import Ring, buckets_of, histogram_quantile, rate
from dashboard.tracker import LATENCY_BUCKETS, Gain, SeriesKey, Step, Tracker, reduce_gains
from schemas.alerts import ALERT_PATTERNS

__all__ = ("CHART_BINS", "HOUR", "LATENCY_WINDOW", "Deployment", "Point")

HOUR = 3600.0
LATENCY_WINDOW = 60.0  # seconds of decisions the latency quantiles cover
MIN_RATE_WINDOW = 10.0  # throughput: over at least this many seconds of rounds
CHART_BINS = 60
QUANTILES = (0.5, 0.95, 0.99)

_CPU: SeriesKey = ("process_cpu_seconds_total", ())
_BATCH_COUNT: SeriesKey = ("sandan_batch_records_count", ())
_BATCH_SUM: SeriesKey = ("sandan_batch_records_sum", ())
_DECISIONS = "sandan_decisions_total"
_COUNT_FIELDS = {
    "decision": "decisions",
    "reason": "divert_reasons",
    "rejection": "rejections",
    "receipt": "receipts",
    "alert": "alerts",
}


def _counts(gains: Iterable[tuple[Gain, float]]) -> Counts:
    documents = 0.0
    fields: dict[str, dict[str, float]] = {name: {} for name in _COUNT_FIELDS.values()}
    for (what, key), value in gains:
        if what == "documents":
            documents += value
        elif what in _COUNT_FIELDS:
            field = fields[_COUNT_FIELDS[what]]
            field[key] = field.get(key, 0.0) + value

    def whole(values: dict[str, float]) -> dict[str, int]:
        return {key: round(values[key]) for key in sorted(values) if round(values[key])}

    return Counts(
        documents=round(documents),
        decisions=whole(fields["decisions"]),
        divert_reasons=whole(fields["divert_reasons"]),
        rejections=whole(fields["rejections"]),
        receipts=whole(fields["receipts"]),
        # Every pattern, 0 included: an alert is rare, and "none" is what the panel is for.
        alerts=dict.fromkeys(ALERT_PATTERNS, 0) | whole(fields["alerts"]),
    )


# -- the deployment ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Point:
    """One round in the history."""

    seconds: float  # since the previous round
    gained: dict[Gain, float]
    lag: float | None


def _gauge(scrapes: Iterable[WorkerScrape], name: str) -> int | None:
    """``name`` summed over the workers that answered; None when none reported it."""
    values = [total(s.samples, name) for s in scrapes if s.samples is not None]
    known = [value for value in values if value is not None]
    return round(sum(known)) if known else None


class Deployment:
    """The whole deployment as the rounds saw it; ``overview()`` is what the page shows."""

    def __init__(
        self, *, group: str, bootstrap: list[str], interval: float, history: float = HOUR
    ) -> None:
        self.group = group
        self.bootstrap = bootstrap
        self.interval = interval
        self.history = history
        self.seq = 0
        # Each point holds what was gained in the interval before it: an hour's worth.
        self._ring: Ring[Point] = Ring(math.ceil(history / interval))
        self._tracker = Tracker()
        self._at = 0.0
        self._group = GroupView(ok=False, error="not described yet")
        self._good_group: GroupView | None = None
        self._checked_at: float | None = None
        self._scrapes: dict[str, WorkerScrape] = {}
        self._steps: dict[str, Step] = {}
        self._last_batch: dict[str, LastBatch] = {}
        # The latency buckets' bounds (``le``) the workers have: the points hold only the
        # buckets that gained, the quantiles' interpolation needs every bound.
        self._bounds: frozenset[str] = frozenset()

    @property
    def members(self) -> tuple[Member, ...]:
        """The workers to scrape: the last good describe's (the brokers may be down while
        the workers are up)."""
        return self._good_group.members if self._good_group is not None else ()

    def ingest(self, at: float, group: GroupView, scrapes: Iterable[WorkerScrape]) -> None:
        """Fold one round: the group as described at ``at`` and what each worker answered."""
        previous = self._at if self.seq else at
        self.seq += 1
        self._at = at
        self._group = group
        if group.ok:
            self._good_group, self._checked_at = group, at
        self._scrapes = {scrape.url: scrape for scrape in scrapes}
        gains: dict[Gain, float] = {}
        steps: dict[str, Step] = {}
        for url, scrape in self._scrapes.items():
            if scrape.samples is None:
                continue
            step = steps[url] = self._tracker.observe(url, at, scrape.samples)
            for gain, value in reduce_gains(step.gained).items():
                gains[gain] = gains.get(gain, 0.0) + value
            batches = step.gained.get(_BATCH_COUNT, 0.0)
            if batches > 0:
                records = step.gained.get(_BATCH_SUM, 0.0) / batches
                self._last_batch[url] = LastBatch(records=round(records, 1), at=at)
        self._steps = steps
        bounds = {
            label(labels, "le")
            for scrape in self._scrapes.values()
            for labels in (scrape.samples or {}).get(LATENCY_BUCKETS, ())
        }
        if bounds:
            self._bounds = frozenset(bounds)
        lag = _gauge(self._scrapes.values(), "sandan_consumer_lag_records")
        self._ring.append(at, Point(max(at - previous, 0.0), gains, lag))
        self._tracker.forget(at - self.history)
        known = {m.url for m in self.members} | set(self._scrapes)
        for url in [u for u in self._last_batch if u not in known]:
            del self._last_batch[url]

    def overview(self) -> Overview:
        """The page's numbers as of the last round."""
        at = self._at
        reachable = [s for s in self._scrapes.values() if s.samples is not None]
        # The ring holds an hour of rounds; rounds that overran their interval make it longer.
        hour = [point for _, point in self._ring.since(at - self.history)]
        return Overview(
            seq=self.seq,
            at=at,
            interval_s=self.interval,
            history_s=round(sum(point.seconds for point in hour), 3),
            broker=self._broker(),
            workers=[self._worker(member) for member in self._shown_members()],
            reachable_workers=len(reachable),
            throughput=self._throughput(),
            lag=_gauge(reachable, "sandan_consumer_lag_records"),
            latency=self._latency(),
            tickets=Tickets(
                open=_gauge(reachable, "sandan_open_tickets"),
                closing_within_1h=_gauge(reachable, "sandan_open_tickets_closing_within_1h"),
            ),
            totals=_counts(reduce_gains(self._tracker.totals).items()),
            last_hour=_counts(
                (gain, value) for point in hour for gain, value in point.gained.items()
            ),
            charts=self._charts(),
        )

    # -- parts of the overview ---------------------------------------------------------------

    def _shown_members(self) -> list[Member]:
        return sorted(self.members, key=lambda m: (m.url or "", m.member_id))

    def _broker(self) -> Broker:
        good = self._good_group
        return Broker(
            connected=self._group.ok,
            bootstrap=self.bootstrap,
            brokers=list(good.brokers) if good is not None else [],
            controller=good.controller if good is not None else None,
            group=self.group,
            group_state=self._group.state if self._group.ok else None,
            error=self._group.error,
            checked_at=self._checked_at,
        )

    def _worker(self, member: Member) -> WorkerView:
        scrape = self._scrapes.get(member.url) if member.url else None
        samples = scrape.samples if scrape is not None else None
        step = self._steps.get(member.url) if member.url else None
        if member.url is None:
            error: str | None = "advertises no URL (its client.id is not 'sandan-worker {url}')"
        elif scrape is None:
            error = "not scraped yet"
        else:
            error = scrape.error
        status = scrape.status if scrape is not None and samples is not None else None
        cpu = decisions = None
        if step is not None and step.seconds > 0:
            cpu = round(rate(step.gained.get(_CPU, 0.0), step.seconds), 3)
            gained = sum(v for (name, _), v in step.gained.items() if name == _DECISIONS)
            decisions = round(rate(gained, step.seconds), 2)
        only = [scrape] if scrape is not None else []
        ready = status.get("ready") if status is not None else None
        return WorkerView(
            url=member.url,
            member_id=member.member_id,
            host=member.host,
            worker_id=_worker_id(samples, status),
            reachable=samples is not None,
            error=error,
            ready=ready if isinstance(ready, bool) else None,
            partitions=list(member.partitions),
            cpu=cpu,
            memory_bytes=_gauge(only, "process_resident_memory_bytes"),
            lag=_gauge(only, "sandan_consumer_lag_records"),
            open_tickets=_gauge(only, "sandan_open_tickets"),
            decisions_per_s=decisions,
            last_batch=self._last_batch.get(member.url) if member.url else None,
        )

    def _throughput(self) -> Throughput:
        window = max(MIN_RATE_WINDOW, 3 * self.interval)
        recent = [point for _, point in self._ring.since(self._at - window)]
        seconds = sum(point.seconds for point in recent)
        documents = sum(point.gained.get(("documents", ""), 0.0) for point in recent)
        decisions = sum(
            value
            for point in recent
            for (what, _), value in point.gained.items()
            if what == "decision"
        )
        return Throughput(
            documents_per_s=round(rate(documents, seconds), 2),
            decisions_per_s=round(rate(decisions, seconds), 2),
            window_s=round(seconds, 3),
        )

    def _latency(self) -> Latency:
        window = max(LATENCY_WINDOW, self.interval)
        counts = dict.fromkeys(self._bounds, 0.0)
        for _, point in self._ring.since(self._at - window):
            for (what, le), value in point.gained.items():
                if what == "le":
                    counts[le] = counts.get(le, 0.0) + value
        buckets = buckets_of(counts)
        p50, p95, p99 = (histogram_quantile(q, buckets) for q in QUANTILES)
        return Latency(
            p50=p50, p95=p95, p99=p99, decisions=round(counts.get("+Inf", 0.0)), window_s=window
        )

    def _charts(self) -> Charts:
        bin_s = self.history / CHART_BINS
        documents, release, divert = [0.0] * CHART_BINS, [0.0] * CHART_BINS, [0.0] * CHART_BINS
        lag: list[int | None] = [None] * CHART_BINS
        for at, point in self._ring:
            index = CHART_BINS - 1 - int((self._at - at) // bin_s)
            if index < 0:
                continue
            documents[index] += point.gained.get(("documents", ""), 0.0)
            release[index] += point.gained.get(("decision", "release"), 0.0)
            divert[index] += point.gained.get(("decision", "divert"), 0.0)
            if point.lag is not None:
                lag[index] = round(point.lag)
        return Charts(
            bin_s=bin_s,
            end=self._at,
            documents=[round(v) for v in documents],
            release=[round(v) for v in release],
            divert=[round(v) for v in divert],
            lag=lag,
        )


def _worker_id(samples: Samples | None, status: Mapping[str, object] | None) -> str | None:
    """From ``sandan_worker_info{worker_id}``, else the status page's ``worker_id``."""
    for labels in (samples or {}).get("sandan_worker_info", {}):
        found = label(labels, "worker_id")
        if found:
            return found
    value = status.get("worker_id") if status is not None else None
    return value if isinstance(value, str) else None
