"""A worker's /metrics with 10^6 open tickets: what a scrape computes is bounded by the minutes
of the windows, not by the tickets (streams/metrics.py)."""

from __future__ import annotations

import random

from prometheus_client.parser import text_string_to_metric_families
from pytest_benchmark.fixture import BenchmarkFixture

from streams.metrics import MINUTE_MS, OpenTickets, WorkerMetrics
from streams.settings import Settings

OPEN_TICKETS = 1_000_000
PARTITIONS = 12
NOW_MS = 1_795_490_400_000
WINDOW_MS = 24 * 3600 * 1000  # the longest window: deadlines spread over a day


def test_render_metrics_with_a_million_open_tickets(benchmark: BenchmarkFixture) -> None:
    rng = random.Random(1)
    open_tickets = OpenTickets()
    deadlines = [NOW_MS + rng.randrange(WINDOW_MS) for _ in range(OPEN_TICKETS)]
    for partition in range(PARTITIONS):
        groups = ((d,) for d in deadlines[partition::PARTITIONS])
        open_tickets.rebuild(partition, groups, restored=0)
    metrics = WorkerMetrics(Settings.from_env({}))
    assert metrics.steps is not None
    metrics.steps.watch(lambda: set(range(PARTITIONS)), open_tickets, clock=lambda: NOW_MS / 1000)
    benchmark.extra_info["per"] = f"scrape of a worker holding {OPEN_TICKETS:,} open tickets"
    text = benchmark(metrics.render).decode()
    hour = (NOW_MS + 3600 * 1000) // MINUTE_MS
    closing = sum(1 for d in deadlines if d // MINUTE_MS <= hour)
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert values["sandan_open_tickets"] == OPEN_TICKETS
    assert values["sandan_open_tickets_closing_within_1h"] == closing
    assert 0 < closing < OPEN_TICKETS
