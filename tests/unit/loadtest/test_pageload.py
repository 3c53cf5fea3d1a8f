"""The page-load measurement's pure parts (loadtest.pageload): the orders, the statistics,
the report."""

from __future__ import annotations

from typing import Any

import pytest

from loadtest.pageload import (
    BACK_FORWARD,
    MEASURES,
    TABS,
    Loading,
    Result,
    order_values,
    render,
    slow_loads,
    stat,
)
from schemas.codec import decode_document
from schemas.documents import Order


def test_each_order_is_a_valid_order_of_a_ticket_of_its_own() -> None:
    orders = list(order_values(7, 150, templates=8))
    documents = [decode_document("order", value) for _, value in orders]
    assert all(isinstance(d, Order) for d in documents)
    assert [key for key, _ in orders] == [d.orderNo.encode() for d in documents]
    assert len({d.orderNo for d in documents}) == 150
    assert len({d.guid for d in documents}) == 150
    assert all(len(d.guid) == 36 for d in documents)
    assert len({d.ebpCode for d in documents}) > 1  # the generator's platforms, in turn
    assert orders == list(order_values(7, 150, templates=8))  # reproducible


def test_stat_is_the_median_the_max_and_the_min() -> None:
    assert stat([]) is None
    s = stat([30.0, 10.0, 20.0, 1000.04])
    assert s is not None
    assert (s.n, s.p50, s.max, s.min) == (4, 25.0, 1000.0, 10.0)


def result(**changes: Any) -> Result:
    loads = [12.0, 15.0, 40.0]
    fields: dict[str, Any] = {
        "command": "python -m loadtest.pageload --open-tickets 1000",
        "started_utc": "2026-12-03 09:00:00 UTC",
        "machine": {"cores": 2, "memory_gib": 23.0, "load_start": 1.5, "load_measure": 2.0},
        "loading": Loading(1000, 1000, 2.5, 9.5, 1000, True, 0),
        "loads": 3,
        "target_s": 1.0,
        "stats": {key: stat(loads) for key, _ in MEASURES},
        "browser_loads": [{"browser_load": v, "value": 1000} for v in loads],
        "other_series": {},
        "sizes": {"page": 17000},
        "gauge_at_measure": 1000,
        "shown_values": [1000, 1000, 1000],
        "api_open": 1000,
        "rss": {"worker": 300 * 2**20},
        "notes": [],
    }
    return Result(**(fields | changes))


def test_the_report_says_met_with_every_load_fast_and_every_ticket_shown() -> None:
    ok = result()
    assert ok.passed
    text = render(ok)
    assert "**met**" in text
    assert "`python -m loadtest.pageload --open-tickets 1000`" in text
    assert "| chromium: loadEventEnd (**the page loaded**) | 3 | 15.0 | 40.0 | 12.0 |" in text
    assert "counted them all 9.5 s after" in text
    assert "worker 300 MiB" in text


@pytest.mark.parametrize(
    "changes",
    [
        {"stats": {"browser_load": stat([12.0, 1500.0, 20.0]), "browser_open_shown": stat([1.0])}},
        {"loading": Loading(1000, 1000, 2.5, None, 640, False, 0)},
        {"shown_values": [1000, 999, 1000]},
        {"stats": {}},
    ],
)
def test_the_report_says_not_met_with_a_slow_load_or_tickets_missing(
    changes: dict[str, Any],
) -> None:
    report = result(**changes)
    assert not report.passed
    text = render(report)
    assert "**not met**" in text
    if not report.loading.reached:
        assert "did not get there" in text and "640" in text


def test_slow_loads_are_the_failed_and_the_late_ones() -> None:
    loads: list[dict[str, Any]] = [
        {"browser_load": 80.0},
        {"error": "timeout", "browser_get_wall": 10_000.0},
        {"browser_load": 1000.0},
        {"browser_load": 999.9},
    ]
    assert slow_loads(loads, 1000.0) == [2, 3]
    assert slow_loads([], 1000.0) == []


def test_the_report_tells_the_pages_that_did_not_load_beside_others() -> None:
    fast = [{"browser_load": 50.0, "browser_get_wall": 70.0, "browser_response_start": 5.0}]
    failed = {"error": "timeout", "browser_get_wall": 10_010.0}
    stalled = [*fast * 6, failed | {"dashboard_connections": 6, "get_page_meanwhile": 1.25}]
    report = result(other_series={BACK_FORWARD: stalled, TABS: fast * 7})
    assert report.passed  # the measured series is fast: the others are told, not judged
    text = render(report)
    assert "## Several dashboard pages in one browser" in text
    assert (
        f"- {BACK_FORWARD}: 7 loads, loads 7 not loaded within 1,000 ms (loads 7 not at all); "
        "when a load had failed, the dashboard had 6 connections open to its port and answered "
        "a plain `GET /` in 1.2 ms." in text
    )
    assert f"- {TABS}: 7 loads, every load under 1,000 ms." in text
    assert (
        "| load | back/forward cache on: `get` wall | responseStart | new tabs: `get` wall " in text
    )
    assert "| 7 | 10,010.0 (failed) | \N{EN DASH} | 70.0 | 5.0 |" in text
    assert "the next page may not load at all" in text
