"""The sustained load test's short mode, end to end on the session's broker.

``python -m loadtest.run --short`` at a small rate for ~40 s: every ticket and every pattern
alert verified against the ground truth, and a report whose numbers make sense. Speed (kept up,
target met, drain time) is printed, never asserted: on a busy machine a correct run may fall
behind. Also: the chunks a long run is planned in never share a ticket or a buyer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from loadtest import ids
from loadtest.generator import generate
from loadtest.run import main
from loadtest.truth import FaultMix

RATE = 40
DURATION = 40
BUYER_ID = re.compile(rb'"buyerIdNumber":"([0-9X]{18})"')


def test_chunks_share_no_ticket_and_no_buyer() -> None:
    plans = [
        generate(seed, 1500, rate=100, window=10, faults=FaultMix.even(), chunk=chunk)
        for seed, chunk in ((11, 0), (11, 1), (12, 2))  # even the same seed
    ]
    tickets = [set(plan.decisions) for plan in plans]
    assert all(tickets) and not (tickets[0] & tickets[1] or tickets[1] & tickets[2])
    buyers = []
    for plan in plans:
        found = {m.decode() for r in plan.records for m in BUYER_ID.findall(r.value)}
        buyers.append({b for b in found if ids.is_valid_resident_id(b)})
    assert all(buyers) and not (buyers[0] & buyers[1] or buyers[0] & buyers[2])
    assert generate(3, 200, rate=50, window=10) == generate(3, 200, rate=50, window=10, chunk=None)


@pytest.mark.timeout(420)
def test_short_run_verifies_and_reports(brokers: str, tmp_path: Path) -> None:
    argv = ["--short", "--brokers", brokers, "--rate", str(RATE), "--duration", str(DURATION)]
    argv += ["--out", str(tmp_path), "--partitions", "4", "--ceiling-limit", "20", "--seed", "5"]
    assert main(argv) == 0

    (out,) = tmp_path.iterdir()
    for name in ("report.md", "report.json", "throughput.png", "latency.png", "lag.png"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob("*.bin"))
    report = json.loads((out / "report.json").read_text())

    verification = report["verification"]
    assert verification["ok"], verification["mismatches"]
    assert (
        verification["tickets_decided"] == verification["tickets_expected"] > 0.9 * RATE * DURATION
    )
    assert verification["rejections_seen"] == verification["rejections_expected"] > 0

    # Every alert the plan expects raised once, none other (verification["ok"] checked each).
    assert verification["alerts_checked"]
    assert verification["alert_mismatches"] == 0
    assert verification["alerts_seen"] == verification["alert_keys_expected"] > 0
    for pattern, figures in verification["alerts_by_pattern"].items():
        assert figures["planted_keys"] > 0, pattern  # the even mix plants every pattern
        assert figures["keys_alerted"] == figures["alerts"] == figures["keys_expected"], pattern
        assert figures["unexpected"] == 0, pattern
    assert "| SPLIT_ORDERS |" in (out / "report.md").read_text()

    # Speed is reported, not asserted: on a busy machine a correct run may fall behind.
    throughput = report["throughput"]
    offered = throughput["offered_tickets_per_min"]
    per_slot = report["driver"]["tickets"] / report["driver"]["slots"]  # a fault: 0 to 7 tickets
    assert offered == pytest.approx(RATE * 60 * per_slot, abs=1)  # the plan's rate, not a timing
    print(
        f"short load test: {throughput['tickets_per_min']} tickets/min of {offered} offered, "
        f"kept up: {throughput['kept_up']}, target met: {throughput['target_met']}, "
        f"drain {throughput['drain_s']} s; alerts {verification['alerts_by_pattern']}"
    )

    # Latency over every decision on a complete ticket; the steady part's share is timing.
    latency = report["latency_ms"]["all"]
    assert latency["count"] > 0.5 * RATE * DURATION
    assert 0 <= latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert report["latency_ms"]["unmatched"] == 0
    print(f"short load test: latency (ms) {report['latency_ms']}")

    lags = [row[1] for row in report["series"]["lag"]["rows"]]
    assert lags and lags[-1] == 0  # every record was consumed in the end
    resources = report["resources"]
    for name in ("worker-1", "broker", "driver"):
        assert resources[name]["rss_mb_max"] > 10, name
        assert resources[name]["cpu_max"] > 0, name
        assert resources[name]["cpu_ms_per_ticket"] > 0, name  # (the steady part had tickets)
    # the worker's transactions while the load was sent, read from its /metrics
    transactions = report["transactions"]
    workers = {f"worker-{n}" for n in range(1, report["config"]["workers"] + 1)}
    assert set(transactions) == workers
    for name, committed in transactions.items():
        assert committed["count"] > 0 and committed["per_s"] > 0 and committed["mean_ms"] > 0, name
    assert "| worker-1 | " in (out / "report.md").read_text().split("transactions committed")[1]
    print(f"short load test: resources {resources}, transactions {transactions}")

    ceiling = report["ceiling"]
    assert ceiling["complete"] and ceiling["records_per_s"] > 0
    assert ceiling["records_in"] == report["driver"]["records"]
    assert report["ratio_to_ceiling"] > 0
    assert "Verification: OK" in (out / "report.md").read_text()
