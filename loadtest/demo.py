"""``python -m loadtest.demo``: a small mixed load through a running worker, checked and
summarised (``make run``).

It plans tickets with the generator (clean ones and every kind of fault) and sends them on
schedule, in turn as JSON and as CEB XML messages straight to Kafka and, given a running gateway
(``--gateway``), as JSON and XML through it (with a key it adds to the gateway's keys file). It
reads what came out on ``release``, ``divert``, ``rejected``, ``receipt`` and ``alert``, checks
every ticket and every pattern alert against the ground truth (loadtest.verify, as the load test
does) and prints a summary.

The alerts are checked when the worker's settings (the ``SANDAN_*`` the demo reads too: ``make
run`` gives both the same) let the ground truth hold: its thresholds, and windows longer than the
demo (loadtest.driver.alert_settings_problems); with the truth's windows (driver.alert_env),
each alert's ``windowSeconds`` is checked too.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import urllib.error
import urllib.request
from collections import Counter

from loadtest.channels import Channel, plan_codes, send_plan
from loadtest.driver import alert_settings_problems, count_receipts, end_offsets, read_outputs
from loadtest.generator import generate
from loadtest.truth import ALERT_WINDOW, FaultMix
from loadtest.verify import Report, verify
from schemas.alerts import ALERT_PATTERNS
from streams.cli import log_to_stderr, require_brokers, settings_or_exit
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("main", "run_demo")

SETTLE = 2.0
KEY_WAIT = 15.0


async def run_demo(
    settings: Settings, *, tickets: int, seed: int | None, gateway: str | None = None
) -> int:
    """Run the demo against the worker(s) on ``settings``; 0 if every ticket came out right."""
    seed = int(time.time()) if seed is None else seed
    window = settings.window
    plan = generate(
        seed,
        tickets,
        rate=max(tickets / 10, 1.0),
        window=window,
        max_delay=1.0,
        settle=SETTLE,
        faults=FaultMix.even(0.4),
    )
    topics = Topics(settings)
    outputs = [topics.release, topics.divert, topics.rejected, topics.alert]
    start = await end_offsets(settings.brokers, outputs, settings.partitions)
    receipts_start = await end_offsets(settings.brokers, [topics.receipt], settings.partitions)
    channels = [Channel.KAFKA_JSON, Channel.KAFKA_XML]
    api_key = None
    if gateway:
        channels += [Channel.GATEWAY_JSON, Channel.GATEWAY_XML]
        api_key = await _demo_key(settings, gateway, plan_codes(plan))
    expected = sum(len(d) for d in plan.decisions.values()) + len(plan.rejections)
    wait = window + 3 * SETTLE + 60  # for the decisions, once everything is sent
    unfit = alert_settings_problems(settings, (plan.records[-1].at if plan.records else 0) + wait)
    if not unfit:
        expected += len(plan.alerts)
    print(
        f"demo: seed {seed}, {tickets} ticket slots, {len(plan.records)} records, "
        f"{len(plan.alerts)} alerts expected, window {window:g}s; sending..."
    )
    started = time.monotonic()
    sent = await send_plan(
        settings.brokers, settings.topic_prefix, plan, channels, gateway=gateway, api_key=api_key
    )
    took = time.monotonic() - started
    print(f"demo: sent in {took:.1f}s; waiting for the decisions (window {window:g}s)")
    deadline = time.monotonic() + wait
    seen = await read_outputs(settings.brokers, start, until=expected, deadline=deadline)
    receipts = await count_receipts(
        settings.brokers, receipts_start, deadline=time.monotonic() + 10
    )
    decisions = seen[topics.release] + seen[topics.divert]
    alerts = None if unfit else seen[topics.alert]
    windows = (
        settings.alert_consignees_window,
        settings.alert_buyers_window,
        settings.alert_split_window,
    )
    alert_window = ALERT_WINDOW if windows == (ALERT_WINDOW,) * 3 else None
    report = verify(
        plan, decisions, seen[topics.rejected], alerts=alerts, alert_window=alert_window
    )
    print()
    print("  documents sent:  " + ", ".join(f"{n} {way}" for way, n in sent.items()))
    print()
    print(f"  {topics.release:<16} {len(seen[topics.release]):>6}  released")
    print(f"  {topics.divert:<16} {len(seen[topics.divert]):>6}  diverted")
    for code, n in sorted(report.diverted_by_code.items()):
        print(f"  {'':<16} {n:>6}    {code}")
    print(f"  {topics.rejected:<16} {len(seen[topics.rejected]):>6}  rejected")
    for code, n in sorted(report.rejected_by_code.items()):
        print(f"  {'':<16} {n:>6}    {code}")
    by_status = Counter[str]()
    for (status, _), n in receipts.items():
        by_status[status] += n
    print(f"  {topics.receipt:<16} {sum(receipts.values()):>6}  receipts")
    names = {"120": "stored", "100": "returned", "399": "concluded"}
    for status, n in sorted(by_status.items()):
        formats = ", ".join(f"{m} {f}" for (s, f), m in sorted(receipts.items()) if s == status)
        print(f"  {'':<16} {n:>6}    {status} {names.get(status, '')} ({formats})")
    for line in alert_lines(topics.alert, report, len(seen[topics.alert]), unfit):
        print(line)
    if report.alerts_checked and alert_window is None:
        print(
            f"  (the worker's alert windows are not the ground truth's {ALERT_WINDOW / 86400:g} "
            "days but longer than the demo: checked without their windowSeconds)"
        )
    print()
    problems = list(report.mismatches)
    if by_status["100"] != len(seen[topics.rejected]):
        problems.append(
            f"{by_status['100']} returned receipts for {len(seen[topics.rejected])} rejections"
        )
    if report.ok and not problems:
        print(
            f"demo: all {report.tickets_expected} tickets decided as the ground truth says "
            f"({report.decisions_seen} decisions, {report.rejections_seen} rejections, "
            f"a receipt for each rejection"
            + (f", {report.alerts_seen} alerts as expected)" if report.alerts_checked else ")")
        )
        return 0
    print(f"demo: {len(problems)} mismatches with the ground truth, e.g.:")
    for line in problems[:10]:
        print(f"  - {line}")
    return 1


def alert_lines(topic: str, report: Report, seen: int, unfit: list[str]) -> list[str]:
    """The summary's alerts: by pattern, the keys expected (of them planted), the alerts seen,
    and the mismatches (each mismatch line names its pattern); or why they were not checked."""
    if not report.alerts_checked:
        lines = [f"  {topic:<16} {seen:>6}  alerts, not checked: the settings are not the truth's:"]
        return lines + [f"  {'':<16} {'':>6}    {reason}" for reason in unfit]
    mismatches = report.mismatches[len(report.mismatches) - report.alert_mismatches :]
    lines = [
        f"  {topic:<16} {report.alerts_seen:>6}  alerts ({report.alert_keys_expected} expected, "
        f"each once; {report.alert_mismatches} mismatches)"
    ]
    for pattern in ALERT_PATTERNS:
        f = report.alerts_by_pattern.get(pattern, {})
        wrong = sum(pattern in line for line in mismatches)
        lines.append(
            f"  {'':<16} {f.get('alerts', 0):>6}    {pattern} ({f.get('keys_expected', 0)} "
            f"expected, {f.get('planted_keys', 0)} planted; {wrong} mismatches)"
        )
    return lines


async def _demo_key(settings: Settings, gateway: str, codes: set[str]) -> str:
    """A key for the plan's codes, added to the gateway's keys file; wait until it works."""
    from gateway.keys import add_key  # noqa: PLC0415 - only the gateway part needs it

    key = add_key(settings.gateway_keys, "demo", sorted(codes))
    deadline = time.monotonic() + KEY_WAIT
    while time.monotonic() < deadline:
        if await asyncio.to_thread(_key_accepted, gateway, key):
            return key
        await asyncio.sleep(0.3)
    msg = f"the gateway at {gateway} did not take the demo's key within {KEY_WAIT:g}s"
    raise RuntimeError(msg)


def _key_accepted(gateway: str, key: str) -> bool:
    request = urllib.request.Request(  # noqa: S310 - the gateway's own URL
        f"{gateway}/v1/receipts?limit=1", headers={"Authorization": f"Bearer {key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310
            return True
    except urllib.error.HTTPError as error:
        return error.code != 401  # noqa: PLR2004
    except OSError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.demo",
        description="Send a demo load through the running worker(s) (the SANDAN_* settings), "
        "check every ticket against the ground truth and print what came out.",
    )
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="default: from the clock")
    parser.add_argument(
        "--gateway", help="URL of a running gateway: part of the load goes through it"
    )
    args = parser.parse_args(argv)
    settings = settings_or_exit()
    log_to_stderr(settings)
    require_brokers(settings)
    demo = run_demo(settings, tickets=args.tickets, seed=args.seed, gateway=args.gateway)
    raise SystemExit(asyncio.run(demo))


if __name__ == "__main__":
    main()
