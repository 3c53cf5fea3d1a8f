"""What the dashboard reads (a round of discovery and scrapes) and what it serves (the
overview, as msgspec Structs encoded once per round for ``/api/overview`` and
``/api/events``).

Times are Unix seconds; durations seconds; counts whole numbers. ``None`` (JSON ``null``) is
"not known": no reachable worker reported it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from dashboard.promtext import Samples

__all__ = (
    "Broker",
    "Charts",
    "Counts",
    "GroupView",
    "LastBatch",
    "Latency",
    "Member",
    "Overview",
    "Throughput",
    "Tickets",
    "WorkerScrape",
    "WorkerView",
)

# -- read each round ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One member of the workers' consumer group."""

    member_id: str
    client_id: str
    host: str
    url: str | None  # from its client.id; None when it advertises none
    partitions: tuple[int, ...]  # the partition numbers it owns (the same on every topic)


@dataclass(frozen=True)
class GroupView:
    """The consumer group and the cluster as the brokers describe them (``ok`` False: the
    describe failed, ``error`` says why, and nothing else is known)."""

    ok: bool
    error: str | None = None
    state: str | None = None
    members: tuple[Member, ...] = ()
    brokers: tuple[str, ...] = ()  # "host:port (id n)"
    controller: str | None = None


@dataclass(frozen=True)
class WorkerScrape:
    """What one worker answered (``samples`` None: ``/metrics`` did not, ``error`` says why)."""

    url: str
    samples: Samples | None
    status: dict[str, Any] | None = None
    error: str | None = None


# -- served ------------------------------------------------------------------------------------


class Broker(msgspec.Struct, kw_only=True):
    connected: bool  # the last describe succeeded
    bootstrap: list[str]  # SANDAN_BROKERS
    brokers: list[str]  # the cluster's brokers, as the last good describe listed them
    controller: str | None
    group: str
    group_state: str | None
    error: str | None
    checked_at: float | None  # the last good describe


class Throughput(msgspec.Struct, kw_only=True):
    documents_per_s: float
    decisions_per_s: float
    window_s: float  # over the rounds of the last window_s seconds


class Latency(msgspec.Struct, kw_only=True):
    """Decision latency quantiles over the last ``window_s`` seconds (None: no decision)."""

    p50: float | None
    p95: float | None
    p99: float | None
    decisions: int
    window_s: float


class Counts(msgspec.Struct, kw_only=True):
    documents: int
    decisions: dict[str, int]  # by decision: release, divert
    divert_reasons: dict[str, int]  # by reason code
    rejections: dict[str, int]  # by rejection code
    receipts: dict[str, int]  # by return status: 120, 100, 399
    # By pattern: every one of schemas.alerts.ALERT_PATTERNS, 0 included (the workers count
    # each from the start, and the page shows each), and any other pattern that counted.
    alerts: dict[str, int]


class Tickets(msgspec.Struct, kw_only=True):
    open: int | None
    closing_within_1h: int | None


class LastBatch(msgspec.Struct, kw_only=True):
    records: float  # records per batch in the last round that saw a batch (mean if several)
    at: float  # that round


class WorkerView(msgspec.Struct, kw_only=True):
    url: str | None
    member_id: str
    host: str
    worker_id: str | None
    reachable: bool
    error: str | None
    ready: bool | None
    partitions: list[int]
    cpu: float | None  # cores busy over the last round
    memory_bytes: int | None
    lag: int | None
    open_tickets: int | None
    decisions_per_s: float | None  # over the last round
    last_batch: LastBatch | None


class Charts(msgspec.Struct, kw_only=True):
    """The last hour in ``bins`` of ``bin_s`` seconds, oldest first, the last one ending at
    ``end``: counts per bin, and lag as the last value seen in each (None: none seen)."""

    bin_s: float
    end: float
    documents: list[int]
    release: list[int]
    divert: list[int]
    lag: list[int | None]


class Overview(msgspec.Struct, kw_only=True):
    seq: int  # the round; 0 before the first
    at: float
    interval_s: float
    history_s: float  # the time the history covers (up to an hour)
    broker: Broker
    workers: list[WorkerView]
    reachable_workers: int
    throughput: Throughput
    lag: int | None
    latency: Latency
    tickets: Tickets
    totals: Counts  # since each worker started (restarts counted through)
    last_hour: Counts  # while the dashboard watched
    charts: Charts
