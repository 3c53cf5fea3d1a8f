"""The demo's summary of the alerts (loadtest.demo.alert_lines): by pattern, expected, seen and
mismatches, checked with the load test's verify."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from loadtest.demo import SETTLE, alert_lines
from loadtest.generator import generate
from loadtest.truth import ALERT_WINDOW, FaultMix, Plan
from loadtest.verify import perfect_alerts, perfect_outputs, ticket_times, verify

TOPIC = "cbec.alert"


@pytest.fixture(scope="module")
def plan() -> Plan:  # as the demo plans (make run: 200 slots, an 8 s window)
    return generate(
        11, 200, rate=20.0, window=8.0, max_delay=1.0, settle=SETTLE, faults=FaultMix.even(0.4)
    )


@pytest.fixture
def alerts(plan: Plan) -> list[dict[str, Any]]:
    return perfect_alerts(plan.alerts, ticket_times(plan))


def test_the_demo_plants_every_pattern(plan: Plan) -> None:
    planted = Counter(e.pattern for e in plan.alerts.values() if e.planted)
    assert set(planted) == {"ID_MANY_CONSIGNEES", "ADDRESS_MANY_IDS", "SPLIT_ORDERS"}


def test_the_alerts_by_pattern(plan: Plan, alerts: list[dict[str, Any]]) -> None:
    decisions, rejections = perfect_outputs(plan)
    report = verify(plan, decisions, rejections, alerts=alerts, alert_window=ALERT_WINDOW)
    assert report.ok
    expected = Counter(e.pattern for e in plan.alerts.values())
    planted = Counter(e.pattern for e in plan.alerts.values() if e.planted)
    lines = alert_lines(TOPIC, report, len(alerts), [])
    n = len(plan.alerts)
    assert lines[0] == f"  {TOPIC:<16} {n:>6}  alerts ({n} expected, each once; 0 mismatches)"
    patterns = ("ID_MANY_CONSIGNEES", "ADDRESS_MANY_IDS", "SPLIT_ORDERS")
    for pattern, line in zip(patterns, lines[1:], strict=True):
        assert line.split() == [
            str(expected[pattern]),
            pattern,
            f"({expected[pattern]}",
            "expected,",
            str(planted[pattern]),
            "planted;",
            "0",
            "mismatches)",
        ]


def test_a_missing_alert_is_a_mismatch_of_its_pattern(
    plan: Plan, alerts: list[dict[str, Any]]
) -> None:
    decisions, rejections = perfect_outputs(plan)
    gone = next(a for a in alerts if a["pattern"] == "ADDRESS_MANY_IDS")
    rest = [a for a in alerts if a is not gone]
    report = verify(plan, decisions, rejections, alerts=rest, alert_window=ALERT_WINDOW)
    assert not report.ok
    lines = alert_lines(TOPIC, report, len(rest), [])
    assert lines[0].endswith(f"({len(plan.alerts)} expected, each once; 1 mismatches)")
    assert [line.split()[-2] for line in lines[1:]] == ["0", "1", "0"]


def test_alerts_not_checked_say_why(plan: Plan) -> None:
    decisions, rejections = perfect_outputs(plan)
    report = verify(plan, decisions, rejections)
    lines = alert_lines(TOPIC, report, 3, ["SANDAN_ALERTS is off"])
    assert lines[0].split()[:3] == [TOPIC, "3", "alerts,"]
    assert "not checked" in lines[0]
    assert lines[1].strip() == "SANDAN_ALERTS is off"
