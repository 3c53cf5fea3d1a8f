"""The HTTP load test's report (loadtest.http): each phase's alerts, read and expected."""

from __future__ import annotations

from typing import Any

from loadtest.http import _markdown


def phase(name: str, requests: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "phase": name,
        "offered_tickets_per_min": 6000,
        "decided_per_min": 5990,
        "requests": requests,
        "verification": {
            "ok": True,
            "tickets_expected": 100,
            "tickets_decided": 100,
            "alerts_expected": 3,
            "alerts_seen": 3,
            "alert_mismatches": 0,
        },
        "resources": {"worker": {"cpu_mean": 50.0, "cpu_max": 90.0, "rss_mb_max": 200.0}},
    }


def test_each_phase_shows_its_alerts() -> None:
    requests = {
        "requests": 300,
        "p50_ms": 1.0,
        "p95_ms": 2.0,
        "p99_ms": 3.0,
        "max_ms": 4.0,
        "statuses": {"202": 300},
    }
    run = {
        "started": "20261203-000000",
        "rate": 100.0,
        "duration": 1.0,
        "window": 20.0,
        "phases": [phase("kafka", None), phase("gateway, 1 per request", requests)],
    }
    text = _markdown(run)
    assert "| verification | alerts | worker CPU % |" in text
    rows = [line for line in text.splitlines() if line.startswith(("| kafka", "| gateway"))]
    assert len(rows) == 2
    assert all("| OK 100/100 | 3/3 | 50 |" in row for row in rows)
