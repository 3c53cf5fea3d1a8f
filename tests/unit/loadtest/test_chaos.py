"""The chaos run's alert check (loadtest.chaos): every key exactly, those a broker restart moved
a ticket of for exactly once only; and the short run's plan, whose figures
tests/integration/test_chaos_short.py asserts."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from loadtest.chaos import _alert_lines, _check_alerts, plan_for
from loadtest.truth import Plan, pattern_key
from loadtest.verify import perfect_alerts, perfect_outputs, ticket_times

# tests/integration/test_chaos_short.py: --rate 15 --duration 60 --seed 11 (window 40 s)
SHORT = {"ID_MANY_CONSIGNEES": 10, "ADDRESS_MANY_IDS": 0, "SPLIT_ORDERS": 31}


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_for(11, 15.0, 60.0, 40.0)


@pytest.fixture
def decisions(plan: Plan) -> list[dict[str, Any]]:
    return perfect_outputs(plan)[0]


@pytest.fixture
def alerts(plan: Plan) -> list[dict[str, Any]]:
    return perfect_alerts(plan.alerts, ticket_times(plan))


def key_of(alert: dict[str, Any]) -> str:
    return pattern_key(alert["pattern"], alert["keyKind"], alert["keyDigest"])


def test_the_short_runs_plan_expects_its_figures(plan: Plan) -> None:
    assert Counter(e.pattern for e in plan.alerts.values()) == {p: n for p, n in SHORT.items() if n}
    assert not any(e.planted for e in plan.alerts.values())


def test_the_perfect_alerts_check(
    plan: Plan, decisions: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> None:
    figures, problems = _check_alerts(plan, decisions, alerts, frozenset())
    assert problems == []
    assert figures["expected"] == figures["seen"] == 41
    assert figures["expected_by_pattern"] == SHORT
    assert (figures["planted"], figures["keys_with_moved_tickets"]) == (0, 0)
    assert figures["alerts_on_them"] == 0
    for pattern, f in figures["checked"].items():
        assert f["keys_expected"] == f["keys_alerted"] == f["alerts"] == SHORT[pattern]
        assert f["unexpected"] == 0
    table = _alert_lines(figures)
    assert "| SPLIT_ORDERS | 31 | 31 | 31 | 31 | 0 |" in table
    assert "| ADDRESS_MANY_IDS | 0 | 0 | 0 | 0 | 0 |" in table


def test_a_missing_and_a_repeated_alert(
    plan: Plan, decisions: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> None:
    gone = alerts.pop(0)
    alerts.append(copy.deepcopy(alerts[0]))
    _, problems = _check_alerts(plan, decisions, alerts, frozenset())
    assert len(problems) == 2
    assert any(gone["keyDigest"][:12] in p and "no alert, expected one" in p for p in problems)
    assert f"alert {alerts[0]['alertId']}: raised 2 times" in problems


def test_a_key_with_a_moved_ticket_is_checked_for_exactly_once_only(
    plan: Plan, decisions: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> None:
    moved_alert = next(a for a in alerts if a["pattern"] == "SPLIT_ORDERS")
    key = key_of(moved_alert)
    moved = frozenset({plan.alerts[key].tickets[0].ticket})
    touched = {k for k, e in plan.alerts.items() if moved & {t.ticket for t in e.tickets}}
    # its alert may be missing, or have other evidence (the values a pattern saw moved)
    rest = [a for a in alerts if key_of(a) not in touched]
    figures, problems = _check_alerts(plan, decisions, rest, moved)
    assert problems == []
    assert figures["keys_with_moved_tickets"] == len(touched)
    assert figures["alerts_on_them"] == 0
    assert sum(f["keys_expected"] for f in figures["checked"].values()) == 41 - len(touched)
    changed = dict(moved_alert, count=99, total="1.00", tickets=[*moved])
    figures, problems = _check_alerts(plan, decisions, [*rest, changed], moved)
    assert problems == []
    assert figures["alerts_on_them"] == 1
    # but never twice
    again = dict(changed, alertId="again")
    _, problems = _check_alerts(plan, decisions, [*rest, changed, again, changed], moved)
    assert problems == [
        f"alert {changed['alertId']} [moved tickets]: raised 2 times",
        f"{key} [moved tickets]: 2 alerts, at most one expected",
    ]


def test_an_unexpected_alert_naming_a_moved_ticket_only_is_let_pass(
    plan: Plan, decisions: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> None:
    stray = copy.deepcopy(next(a for a in alerts if a["pattern"] == "ID_MANY_CONSIGNEES"))
    stray["keyDigest"] = "0" * 32
    stray["alertId"] = f"ID_MANY_CONSIGNEES:{stray['keyDigest']}:1"
    unplanned = next(t for t in plan.decisions if not any(t in a["tickets"] for a in alerts))
    stray["tickets"] = [unplanned]
    _, problems = _check_alerts(plan, decisions, [*alerts, stray], frozenset())
    assert len(problems) == 1
    assert problems[0].startswith(f"unexpected alert {stray['alertId']}")
    figures, problems = _check_alerts(plan, decisions, [*alerts, stray], frozenset({unplanned}))
    assert problems == []
    assert figures["seen"] == 42
    assert (figures["keys_with_moved_tickets"], figures["alerts_on_them"]) == (0, 1)


def test_a_malformed_alert_is_a_problem_whatever_it_names(
    plan: Plan, decisions: list[dict[str, Any]], alerts: list[dict[str, Any]]
) -> None:
    ticket = alerts[0]["tickets"][0]
    bad = {"unreadable": "{not json"}
    odd = {"pattern": "NO_SUCH_PATTERN", "tickets": [ticket]}
    _, problems = _check_alerts(plan, decisions, [*alerts, bad, odd], frozenset({ticket}))
    assert sum(p.startswith("malformed alert") for p in problems) == 2
