"""The dashboard's pure parts (Prometheus text, counter resets, rates, latency quantiles from
bucket deltas, the ring, the overview of a deployment) and its HTTP side over real sockets:
the scraper against a stand-in worker, the routes with a stand-in group. The real group, worker
and browser are in tests/integration/test_dashboard.py."""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout, web
from aiohttp.test_utils import TestServer
from confluent_kafka import ConsumerGroupState, Node, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # imported there, not exported
    ConsumerGroupDescription,
    DescribeClusterResult,
    MemberAssignment,
    MemberDescription,
)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from dashboard.aggregate import CHART_BINS, Deployment
from dashboard.app import Collector, create_app
from dashboard.discovery import Discovery, group_view
from dashboard.models import GroupView, Member, WorkerScrape
from dashboard.promtext import Samples, parse
from dashboard.scrape import Scraper
from dashboard.series import Ring, histogram_quantile, increase, rate
from dashboard.tracker import Tracker, reduce_gains
from schemas.alerts import ALERT_PATTERNS
from streams.metrics import worker_client_id, worker_url
from streams.settings import Settings

INF = math.inf
MODE = web.AppKey("mode", str)
LATENCY_BOUNDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


# -- counters, rates, quantiles, the ring -----------------------------------------------------


def test_a_counter_gains_the_difference_and_a_reset_counts_from_zero() -> None:
    assert increase(10, 15) == 5
    assert increase(10, 10) == 0
    assert increase(10, 4) == 4  # restarted: it counted 4 since
    assert increase(0, 0) == 0


def test_a_rate_is_per_second_and_zero_over_no_time() -> None:
    assert rate(30, 2) == 15
    assert rate(30, 0) == 0


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (0.5, 0.3),  # rank 15 in (0.1, 0.5], 5 of its 10: 0.1 + 0.4 * 0.5
        (0.99, 0.985),  # rank 29.7 in (0.5, 1], 9.7 of 10
        (0.25, 0.075),  # rank 7.5 in the first bucket, which starts at 0
        (0.0, 0.0),
        (1.0, 1.0),
    ],
)
def test_quantiles_interpolate_inside_their_bucket_as_promql(q: float, expected: float) -> None:
    buckets = [(0.1, 10.0), (0.5, 20.0), (1.0, 30.0), (INF, 30.0)]
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


def test_a_rank_in_the_inf_bucket_gives_the_highest_finite_bound() -> None:
    assert histogram_quantile(0.9, [(1.0, 5.0), (INF, 10.0)]) == 1.0


def test_quantiles_need_observations_an_inf_bucket_and_two_buckets() -> None:
    assert histogram_quantile(0.5, [(0.1, 0.0), (INF, 0.0)]) is None
    assert histogram_quantile(0.5, [(0.1, 3.0), (1.0, 5.0)]) is None
    assert histogram_quantile(0.5, [(INF, 5.0)]) is None
    with pytest.raises(ValueError, match="between 0 and 1"):
        histogram_quantile(1.5, [(0.1, 1.0), (INF, 1.0)])


def test_buckets_that_disagree_are_made_cumulative_again() -> None:
    # le=0.5 summed as 8 but le=0.1 as 9: read as 9 (PromQL's monotonicity fix)
    assert histogram_quantile(0.5, [(0.1, 9.0), (0.5, 8.0), (INF, 10.0)]) == pytest.approx(
        0.1 * 5 / 9
    )
    # and a non-positive first bound is its own answer
    assert histogram_quantile(0.1, [(0.0, 5.0), (INF, 10.0)]) == 0.0
    assert histogram_quantile(0.0, [(0.1, 0.0), (0.5, 3.0), (INF, 3.0)]) == 0.0


def test_the_ring_keeps_the_last_items_oldest_first() -> None:
    ring: Ring[str] = Ring(3)
    assert ring.latest() is None and len(ring) == 0
    for at, item in enumerate("abcde"):
        ring.append(float(at), item)
    assert [item for _, item in ring] == ["c", "d", "e"]
    assert ring.latest() == (4.0, "e")
    assert [item for _, item in ring.since(2.5)] == ["d", "e"]
    assert [item for _, item in ring.since(2.0)] == ["d", "e"]  # strictly later
    assert list(ring.since(10)) == []
    assert ring.capacity == 3
    with pytest.raises(ValueError, match="at least one"):
        Ring(0)


# -- Prometheus text ----------------------------------------------------------------------------


def worker_text(
    *,
    decisions: dict[str, float] | None = None,
    reasons: dict[str, float] | None = None,
    rejections: dict[str, float] | None = None,
    receipts: dict[str, float] | None = None,
    alerts: dict[str, float] | None = None,
    documents: float = 0,
    latencies: list[float] | None = None,
    batches: list[float] | None = None,
    cpu: float = 0.0,
    memory: float = 100e6,
    lag: dict[int, float] | None = None,
    open_tickets: float = 0,
    closing: float = 0,
    worker_id: str = "w1",
    url: str = "http://w1",
) -> str:
    """A worker's /metrics as prometheus_client writes it, with the names the worker uses
    (``alerts`` None: a worker older than ``sandan_alerts_total``; else every pattern from 0)."""
    registry = CollectorRegistry()

    def counter(name: str, labels: str, values: dict[str, float] | None) -> None:
        metric = Counter(name, name, [labels], registry=registry)
        for key, value in (values or {}).items():
            metric.labels(key).inc(value)

    counter("sandan_decisions_total", "decision", decisions)
    counter("sandan_divert_reasons_total", "code", reasons)
    counter("sandan_rejections_total", "code", rejections)
    counter("sandan_receipts_total", "status", receipts)
    if alerts is not None:
        counter("sandan_alerts_total", "pattern", dict.fromkeys(ALERT_PATTERNS, 0) | alerts)
    docs = Counter("sandan_documents_total", "d", ["doc_type", "format"], registry=registry)
    if documents:
        docs.labels("order", "json").inc(documents)
    latency = Histogram(
        "sandan_decision_latency_seconds", "l", buckets=LATENCY_BOUNDS, registry=registry
    )
    for value in latencies or []:
        latency.observe(value)
    batch = Histogram("sandan_batch_records", "b", buckets=(1, 10, 100, 1000), registry=registry)
    for value in batches or []:
        batch.observe(value)
    Counter("process_cpu_seconds", "c", registry=registry).inc(cpu)
    Gauge("process_resident_memory_bytes", "m", registry=registry).set(memory)
    lags = Gauge("sandan_consumer_lag_records", "l", ["topic", "partition"], registry=registry)
    for partition, value in (lag or {}).items():
        lags.labels("t.order", str(partition)).set(value)
    Gauge("sandan_open_tickets", "o", registry=registry).set(open_tickets)
    Gauge("sandan_open_tickets_closing_within_1h", "o", registry=registry).set(closing)
    info = Gauge("sandan_worker_info", "i", ["worker_id", "url"], registry=registry)
    info.labels(worker_id, url).set(1)
    return generate_latest(registry).decode()


def samples(**kw: Any) -> Samples:
    return parse(worker_text(**kw))


def test_parse_keeps_every_sample_by_name_and_sorted_labels_and_drops_created() -> None:
    parsed = samples(decisions={"release": 3, "divert": 1}, latencies=[0.07])
    assert parsed["sandan_decisions_total"] == {
        (("decision", "release"),): 3.0,
        (("decision", "divert"),): 1.0,
    }
    assert parsed["sandan_decision_latency_seconds_bucket"][(("le", "0.1"),)] == 1.0
    assert parsed["sandan_decision_latency_seconds_bucket"][(("le", "0.05"),)] == 0.0
    assert parsed["sandan_decision_latency_seconds_count"] == {(): 1.0}
    assert parsed["sandan_worker_info"] == {(("url", "http://w1"), ("worker_id", "w1")): 1.0}
    assert not [name for name in parsed if name.endswith("_created")]
    with pytest.raises(ValueError):
        parse("this is { not prometheus text")


# -- counters per worker ------------------------------------------------------------------------

RELEASE = ("sandan_decisions_total", (("decision", "release"),))
DIVERT = ("sandan_decisions_total", (("decision", "divert"),))


def test_a_worker_seen_first_gained_nothing_yet_but_its_counts_are_in_the_totals() -> None:
    tracker = Tracker()
    step = tracker.observe("w1", 100.0, samples(decisions={"release": 5}))
    assert step.gained == {} and step.seconds == 0
    assert tracker.totals[RELEASE] == 5
    step = tracker.observe("w1", 102.0, samples(decisions={"release": 8, "divert": 2}))
    # a series that appears gained its whole value (prometheus_client shows it once counted)
    assert step.gained[RELEASE] == 3 and step.gained[DIVERT] == 2
    assert step.seconds == 2 and not step.restarted
    assert tracker.totals[RELEASE] == 8 and tracker.totals[DIVERT] == 2


def test_a_counter_that_goes_back_is_a_restart_of_the_whole_worker() -> None:
    tracker = Tracker()
    tracker.observe("w1", 0.0, samples(decisions={"release": 10, "divert": 4}))
    # restarted: release went back to 2; divert grew past its old value since (6 > 4)
    step = tracker.observe("w1", 2.0, samples(decisions={"release": 2, "divert": 6}))
    assert step.restarted
    assert step.gained[RELEASE] == 2 and step.gained[DIVERT] == 6
    assert tracker.totals[RELEASE] == 12 and tracker.totals[DIVERT] == 10
    step = tracker.observe("w1", 4.0, samples(decisions={"release": 3, "divert": 6}))
    assert not step.restarted and step.gained[RELEASE] == 1 and DIVERT not in step.gained


def test_a_changed_process_start_time_is_a_restart_even_if_every_counter_grew() -> None:
    tracker = Tracker()
    before = samples(decisions={"release": 1})
    before["process_start_time_seconds"] = {(): 1000.0}
    tracker.observe("w1", 0.0, before)
    after = samples(decisions={"release": 3})
    after["process_start_time_seconds"] = {(): 1050.0}
    step = tracker.observe("w1", 2.0, after)
    assert step.restarted and step.gained[RELEASE] == 3
    assert tracker.totals[RELEASE] == 4


def test_workers_are_followed_apart_and_forgotten_when_gone() -> None:
    tracker = Tracker()
    tracker.observe("w1", 0.0, samples(decisions={"release": 1}))
    tracker.observe("w2", 0.0, samples(decisions={"release": 7}))
    assert tracker.observe("w2", 2.0, samples(decisions={"release": 9})).gained[RELEASE] == 2
    assert tracker.totals[RELEASE] == 10
    tracker.forget(before=1.0)  # w1 was last seen at 0
    assert tracker.observe("w1", 3.0, samples(decisions={"release": 2})).gained == {}
    assert tracker.totals[RELEASE] == 12  # seen again as new: its count since it started


def test_reduce_keeps_the_windowed_counters_that_gained_summed_by_their_label() -> None:
    step_text = samples(decisions={"RELEASE": 2}, reasons={"AMOUNT_MISMATCH": 1}, latencies=[0.3])
    gains = {(name, labels): v for name, s in step_text.items() for labels, v in s.items()}
    reduced = reduce_gains(gains)
    assert reduced[("decision", "release")] == 2  # kinds in lower case
    assert reduced[("reason", "AMOUNT_MISMATCH")] == 1
    assert reduced[("le", "0.5")] == 1 and reduced[("le", "+Inf")] == 1
    assert ("le", "0.05") not in reduced  # zeros dropped: the bounds are kept apart
    assert ("documents", "") not in reduced and ("receipt", "120") not in reduced
    alerted = samples(alerts={"SPLIT_ORDERS": 2})["sandan_alerts_total"]
    assert reduce_gains({("sandan_alerts_total", k): v for k, v in alerted.items()}) == {
        ("alert", "SPLIT_ORDERS"): 2  # the patterns at 0 gained nothing
    }
    idle = {key: 0.0 for key in gains}
    assert reduce_gains(idle) == {}


# -- a deployment over rounds -------------------------------------------------------------------

GROUP = "t.sandan"


def member(url: str, partitions: tuple[int, ...] = (0, 1)) -> Member:
    return Member(f"m-{url}", f"sandan-worker {url}", "127.0.0.1", url, partitions)


def group(*members: Member) -> GroupView:
    return GroupView(ok=True, state="STABLE", members=members, brokers=("127.0.0.1:9092 (id 1)",))


def deployment(interval: float = 2.0) -> Deployment:
    return Deployment(group=GROUP, bootstrap=["127.0.0.1:9092"], interval=interval)


def test_first_round_shows_the_counts_so_far_as_totals_and_nothing_in_the_last_hour() -> None:
    d = deployment()
    w1 = member("http://w1")
    d.ingest(
        1000.0,
        group(w1),
        [WorkerScrape("http://w1", samples(decisions={"release": 5, "divert": 2}, documents=21))],
    )
    o = d.overview()
    assert o.seq == 1
    assert o.totals.decisions == {"divert": 2, "release": 5}
    assert o.totals.documents == 21
    assert o.last_hour.decisions == {} and o.last_hour.documents == 0
    assert o.throughput.documents_per_s == 0
    assert o.latency.p50 is None and o.latency.decisions == 0
    assert o.broker.connected and o.broker.group == GROUP and o.broker.group_state == "STABLE"
    assert [(w.url, w.worker_id, w.reachable, w.partitions) for w in o.workers] == [
        ("http://w1", "w1", True, [0, 1])
    ]
    assert o.workers[0].cpu is None and o.workers[0].decisions_per_s is None  # no interval yet
    # a worker without sandan_alerts_total (older): every pattern, at 0
    no_alerts = dict.fromkeys(ALERT_PATTERNS, 0)
    assert o.totals.alerts == no_alerts and o.last_hour.alerts == no_alerts


def test_alerts_by_pattern_are_summed_over_the_workers_and_an_older_worker_counts_zero() -> None:
    d = deployment()
    w1, w2, old = member("http://w1"), member("http://w2"), member("http://old")

    def round_(at: float, a1: dict[str, float], a2: dict[str, float]) -> None:
        d.ingest(
            at,
            group(w1, w2, old),
            [
                WorkerScrape("http://w1", samples(alerts=a1)),
                WorkerScrape("http://w2", samples(alerts=a2, url="http://w2", worker_id="w2")),
                WorkerScrape("http://old", samples(url="http://old", worker_id="old")),
            ],
        )

    round_(1000.0, {"ID_MANY_CONSIGNEES": 2}, {"ID_MANY_CONSIGNEES": 1, "ADDRESS_MANY_IDS": 1})
    round_(
        1002.0,
        {"ID_MANY_CONSIGNEES": 3, "SPLIT_ORDERS": 2},
        {"ID_MANY_CONSIGNEES": 1, "ADDRESS_MANY_IDS": 4},
    )
    o = d.overview()
    assert o.reachable_workers == 3
    assert o.totals.alerts == {"ID_MANY_CONSIGNEES": 4, "ADDRESS_MANY_IDS": 4, "SPLIT_ORDERS": 2}
    assert o.last_hour.alerts == {"ID_MANY_CONSIGNEES": 1, "ADDRESS_MANY_IDS": 3, "SPLIT_ORDERS": 2}
    assert list(o.totals.alerts) == list(ALERT_PATTERNS)  # in the patterns' order


def test_rounds_give_rates_last_hour_counts_charts_and_latency_from_bucket_deltas() -> None:
    d = deployment()
    w1, w2 = member("http://w1", (0, 1)), member("http://w2", (2, 3))
    old_latencies = [2.0] * 50  # before the dashboard: must not weigh on the quantiles
    d.ingest(
        1000.0,
        group(w1, w2),
        [
            WorkerScrape("http://w1", samples(latencies=old_latencies, decisions={"release": 50})),
            WorkerScrape("http://w2", samples(url="http://w2", worker_id="w2")),
        ],
    )
    d.ingest(
        1002.0,
        group(w1, w2),
        [
            WorkerScrape(
                "http://w1",
                samples(
                    latencies=[*old_latencies, 0.07, 0.07, 0.3],
                    decisions={"release": 53},
                    documents=9,
                    cpu=0.5,
                    batches=[4, 5],
                    lag={0: 3, 1: 4},
                    open_tickets=6,
                    closing=1,
                ),
            ),
            WorkerScrape(
                "http://w2",
                samples(
                    url="http://w2",
                    worker_id="w2",
                    latencies=[0.07],
                    decisions={"divert": 1},
                    reasons={"AMOUNT_MISMATCH": 1},
                    documents=3,
                    lag={2: 10},
                    open_tickets=1,
                ),
            ),
        ],
    )
    o = d.overview()
    assert o.last_hour.decisions == {"release": 3, "divert": 1}
    assert o.last_hour.divert_reasons == {"AMOUNT_MISMATCH": 1}
    assert o.totals.decisions == {"release": 53, "divert": 1}
    assert o.throughput.documents_per_s == 6.0  # 12 documents over 2 s
    assert o.throughput.decisions_per_s == 2.0
    # the last minute's 4 decisions: 3 in (0.05, 0.1], 1 in (0.25, 0.5]
    buckets = [(0.05, 0), (0.1, 3), (0.25, 3), (0.5, 4), (1.0, 4), (2.5, 4), (INF, 4)]
    assert o.latency.decisions == 4
    assert o.latency.p50 == pytest.approx(histogram_quantile(0.5, buckets))
    assert o.latency.p50 == pytest.approx(0.05 + 0.05 * 2 / 3)
    assert o.latency.p99 == pytest.approx(0.25 + 0.25 * (3.96 - 3))
    assert o.lag == 17 and o.tickets.open == 7 and o.tickets.closing_within_1h == 1
    first = o.workers[0]
    assert first.url == "http://w1" and first.cpu == 0.25 and first.lag == 7
    assert first.last_batch is not None and first.last_batch.records == 4.5
    assert first.last_batch.at == 1002.0
    assert first.decisions_per_s == 1.5 and first.memory_bytes == 100_000_000
    assert o.charts.release[-1] == 3 and o.charts.divert[-1] == 1 and o.charts.documents[-1] == 12
    assert len(o.charts.release) == CHART_BINS and o.charts.lag[-1] == 17
    assert o.history_s == 2.0


def test_a_worker_restart_is_counted_through_and_a_gone_worker_is_shown_unreachable() -> None:
    d = deployment()
    w1 = member("http://w1")
    d.ingest(0.0, group(w1), [WorkerScrape("http://w1", samples(decisions={"release": 10}))])
    d.ingest(2.0, group(w1), [WorkerScrape("http://w1", samples(decisions={"release": 2}))])
    d.ingest(4.0, group(w1), [WorkerScrape("http://w1", None, error="/metrics: no answer")])
    o = d.overview()
    assert o.totals.decisions == {"release": 12}
    assert o.last_hour.decisions == {"release": 2}
    (worker,) = o.workers
    assert not worker.reachable and worker.error == "/metrics: no answer"
    assert worker.memory_bytes is None and worker.cpu is None and worker.decisions_per_s is None
    assert o.reachable_workers == 0 and o.tickets.open is None and o.lag is None


def test_brokers_down_keep_the_last_members_and_say_why() -> None:
    d = deployment()
    w1 = member("http://w1")
    d.ingest(0.0, group(w1), [WorkerScrape("http://w1", samples())])
    d.ingest(2.0, GroupView(ok=False, error="Local: Timed out"), [])
    assert d.members == (w1,)
    o = d.overview()
    assert not o.broker.connected and o.broker.error == "Local: Timed out"
    assert o.broker.brokers == ["127.0.0.1:9092 (id 1)"] and o.broker.checked_at == 0.0
    assert [w.url for w in o.workers] == ["http://w1"]


def test_a_member_without_a_url_is_listed_and_says_so() -> None:
    d = deployment()
    stranger = Member("m-x", "sandan-abc123", "10.0.0.5", None, (5,))
    d.ingest(0.0, group(stranger), [])
    (worker,) = d.overview().workers
    assert worker.url is None and not worker.reachable and worker.partitions == [5]
    assert worker.error is not None and "sandan-worker {url}" in worker.error


def test_the_history_holds_an_hour_and_the_last_hour_forgets_what_is_older() -> None:
    d = deployment(interval=60.0)
    w1 = member("http://w1")
    for i in range(70):  # 70 minutes, one release a minute
        sample = samples(decisions={"release": i})
        d.ingest(60.0 * i, group(w1), [WorkerScrape("http://w1", sample)])
    o = d.overview()
    assert o.history_s == 3600.0
    assert o.last_hour.decisions == {"release": 60}
    assert o.totals.decisions == {"release": 69}
    assert sum(o.charts.release) == 60


# -- discovery ------------------------------------------------------------------------------------


def test_a_worker_url_comes_from_its_client_id() -> None:
    assert worker_url(worker_client_id("http://10.0.0.7:6066")) == "http://10.0.0.7:6066"
    assert worker_url("sandan-worker https://w.example/") == "https://w.example"
    assert worker_url("sandan-abc123") is None  # an older worker: no URL
    assert worker_url("sandan-worker file:///etc/passwd") is None
    assert worker_url("sandan-worker ") is None


def test_a_group_description_becomes_members_with_their_partitions() -> None:
    def describe_member(name: str, url: str, partitions: list[tuple[str, int]]) -> Any:
        assignment = MemberAssignment([TopicPartition(t, p) for t, p in partitions])
        return MemberDescription(f"{name}-1", worker_client_id(url), "/127.0.0.1", assignment)

    description = ConsumerGroupDescription(
        "t.sandan",
        False,
        [
            describe_member("a", "http://a:1", [("t.order", 2), ("t.payment", 2), ("t.order", 0)]),
            describe_member("b", "http://b:1", []),
        ],
        "range",
        ConsumerGroupState.STABLE,
        Node(1, "127.0.0.1", 9092),
    )
    cluster = DescribeClusterResult(Node(2, "k2", 9092), [Node(2, "k2", 9092), Node(1, "k1", 9092)])
    view = group_view(description, cluster)
    assert view.ok and view.state == "STABLE"
    assert view.members == (
        Member("a-1", "sandan-worker http://a:1", "127.0.0.1", "http://a:1", (0, 2)),
        Member("b-1", "sandan-worker http://b:1", "127.0.0.1", "http://b:1", ()),
    )
    assert view.brokers == ("k1:9092 (id 1)", "k2:9092 (id 2)") and view.controller == "k2:9092"


def test_brokers_that_do_not_answer_are_a_view_with_the_reason_not_an_exception() -> None:
    settings = Settings(brokers=f"127.0.0.1:{unused_port()}")
    view = asyncio.run(Discovery(settings, timeout=1.0).describe())
    assert not view.ok and view.error and view.members == ()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- HTTP: the scraper and the routes ------------------------------------------------------------


def test_the_scraper_reads_metrics_and_status_and_reports_a_worker_that_fails() -> None:
    async def scenario() -> list[WorkerScrape]:
        text = worker_text(decisions={"release": 2})

        async def metrics(request: web.Request) -> web.Response:
            mode = request.app[MODE]
            if mode == "slow":
                await asyncio.sleep(2)
            if mode == "error":
                return web.Response(status=500)
            if mode == "garbage":
                return web.Response(text="{ not prometheus")
            return web.Response(text=text)

        async def status(request: web.Request) -> web.Response:
            return web.json_response({"ready": True, "partitions": [0, 1]})

        servers = []
        for mode in ("ok", "slow", "error", "garbage"):
            app = web.Application()
            app[MODE] = mode
            app.router.add_get("/metrics", metrics)
            app.router.add_get("/status", status)
            server = TestServer(app, host="127.0.0.1")
            await server.start_server()
            servers.append(server)
        scraper = Scraper(0.5)
        await scraper.start()
        try:
            urls = [str(server.make_url("")).rstrip("/") for server in servers]
            return await scraper.scrape_all([*urls, "http://127.0.0.1:1"])
        finally:
            await scraper.close()
            for server in servers:
                await server.close()

    ok, slow, error, garbage, closed = asyncio.run(scenario())
    assert ok.samples is not None and ok.error is None
    assert ok.samples["sandan_decisions_total"] == {(("decision", "release"),): 2.0}
    assert ok.status == {"ready": True, "partitions": [0, 1]}
    assert slow.samples is None and slow.error == "/metrics: no answer in time"
    assert error.samples is None and error.error == "/metrics: HTTP 500"
    assert garbage.samples is None and garbage.error is not None
    assert garbage.error.startswith("/metrics is not Prometheus text")
    assert closed.samples is None and closed.error is not None
    assert closed.error.startswith("/metrics: cannot connect")


class FakeDiscovery:
    def __init__(self, view: GroupView) -> None:
        self.view = view

    async def describe(self) -> GroupView:
        return self.view


class FakeScraper:
    def __init__(self) -> None:
        self.text = worker_text(decisions={"release": 1})

    async def scrape_all(self, urls: list[str]) -> list[WorkerScrape]:
        return [WorkerScrape(url, parse(self.text), {"ready": True}) for url in urls]


def test_the_routes_serve_the_page_the_overview_the_events_and_health() -> None:
    settings = Settings(topic_prefix="t.", dashboard_interval=0.2)
    scraper = FakeScraper()
    collector = Collector(settings, FakeDiscovery(group(member("http://w1"))), scraper)

    async def scenario() -> dict[str, Any]:
        server = TestServer(create_app(collector, run_rounds=False), host="127.0.0.1")
        await server.start_server()
        seen: dict[str, Any] = {}
        try:
            async with ClientSession(timeout=ClientTimeout(total=10)) as http:
                async with http.get(server.make_url("/")) as r:
                    seen["page"] = (r.status, r.content_type, await r.text())
                    seen["csp"] = r.headers["Content-Security-Policy"]
                async with http.get(server.make_url("/api/overview")) as r:
                    seen["before"] = await r.json()
                async with http.get(server.make_url("/healthz")) as r:
                    seen["health"] = (r.status, await r.json())
                await collector.round()
                async with http.get(server.make_url("/api/events")) as r:
                    seen["events_type"] = r.content_type
                    events = []
                    async for line in r.content:
                        if line.startswith(b"data: "):
                            events.append(json.loads(line[6:]))
                            if len(events) == 1:
                                scraper.text = worker_text(decisions={"release": 4})
                                await collector.round()
                            else:
                                break
                    seen["events"] = events
                async with http.get(server.make_url("/api/overview")) as r:
                    seen["after"] = await r.json()
                async with http.get(server.make_url("/nope")) as r:
                    seen["missing"] = r.status
        finally:
            await server.close()
        return seen

    seen = asyncio.run(scenario())
    status, content_type, html = seen["page"]
    assert status == 200 and content_type == "text/html"
    assert "<svg" in html and "EventSource" in html
    assert '<tbody id="alerts">' in html and 'counts($("alerts"), ' in html
    # all inline: nothing to fetch, not even a favicon
    assert "src=" not in html and "@import" not in html and "url(" not in html
    assert re.findall(r"<link[^>]*>", html) == ['<link rel="icon" href="data:,">']
    assert "default-src 'none'" in seen["csp"]
    assert seen["before"]["seq"] == 0 and seen["before"]["workers"] == []
    assert seen["health"] == (200, {"status": "ok", "seq": 0})
    assert seen["events_type"] == "text/event-stream"
    first, second = seen["events"]
    assert first["seq"] == 1 and second["seq"] == 2
    assert second["last_hour"]["decisions"] == {"release": 3}
    assert second["totals"]["decisions"] == {"release": 4}
    assert second["totals"]["alerts"] == dict.fromkeys(ALERT_PATTERNS, 0)  # an older worker
    assert seen["after"] == second
    assert seen["missing"] == 404


def test_health_fails_once_the_rounds_stall() -> None:
    settings = Settings(dashboard_interval=0.2)
    collector = Collector(settings, FakeDiscovery(group()), FakeScraper(), stall_after=0.05)

    async def scenario() -> int:
        server = TestServer(create_app(collector, run_rounds=False), host="127.0.0.1")
        await server.start_server()
        try:
            await asyncio.sleep(0.1)
            async with ClientSession() as http, http.get(server.make_url("/healthz")) as r:
                return r.status
        finally:
            await server.close()

    assert asyncio.run(scenario()) == 503
