"""A throughput measurement: a backlog of tickets drained by one worker or more.

    python -m loadtest.throughput --brokers 127.0.0.1:9092 --tickets 100000 [--workers 1]
    python -m loadtest.throughput ... --garbage 0.1 --rounds 2 --report reports/garbage.md

It creates topics under a fresh prefix, produces the whole plan (default fault mix, no
timeouts within the run) before the workers start, starts ``sandan worker`` (``--workers``
of them, sharing the partitions), and reads the
outputs until every expected decision and rejection is there. Throughput is tickets decided
per minute between the first and the last output's timestamp; the outputs are checked against
the ground truth, and so are the pattern alerts (the workers' alert settings are those the ground
truth plans for, loadtest.driver.alert_env). The sustained, open-loop load test with latency is
``make loadtest``'s job.

With ``--garbage 0.1`` it drains the backlog twice (``--rounds`` times each, alternating): as
planned, and with malformed records from the decoders' fuzzer making 10 % of the records, each
expected rejected ``SCHEMA``; it reports both rates and their ratio.

With ``--metrics-cost`` it drains the backlog with the workers' metrics off
(``SANDAN_METRICS=off``) and on, with ``sandan dashboard`` scraping every worker every 2 s
(``--rounds`` times each, alternating), and reports what metrics and page cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import orjson
import psutil  # type: ignore[import-untyped]  # no stubs installed
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from loadtest.driver import alert_env, decode_alert
from loadtest.fuzz import garbage
from loadtest.generator import generate
from loadtest.processes import Worker, free_port, fresh_deployment, stop
from loadtest.truth import ALERT_WINDOW, DEFAULT_MIX, ExpectedRejection, Plan
from loadtest.verify import verify
from schemas.documents import DocType
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("main",)

# A backlog is produced at once, ignoring the plan's timing: only faults whose outcome does not
# depend on the order or the time of arrival (or on a window closing) are planned.
BACKLOG_MIX = msgspec.structs.replace(
    DEFAULT_MIX,
    missing_document=0.0,
    late_document=0.0,
    duplicate=0.0,
    stale_change=0.0,
    annual_limit=0.0,
    change_after_divert=0.0,
    change_after_release=0.0,
    unknown_document=0.0,
    ambiguous_waybill=0.0,
)
ALERT_QUIET = 10.0  # seconds without an output that end the wait for missing alerts


async def _produce_all(settings: Settings, records: list[tuple[str, bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.brokers, linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(t, v, key=k) for t, k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _drain(
    settings: Settings, expected: int, limit_s: float, workers: list[Worker], alerts: int = 0
) -> tuple[list[tuple[str, int, bytes]], list[bytes], float]:
    """The outputs, the alerts (waited for until ``alerts`` came, or ALERT_QUIET seconds without
    any), and the CPU seconds the workers spent from the first output to the last."""
    topics = Topics(settings)
    consumer = AIOKafkaConsumer(
        topics.release,
        topics.divert,
        topics.rejected,
        topics.alert,
        bootstrap_servers=settings.brokers,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    seen: list[tuple[str, int, bytes]] = []
    raised: list[bytes] = []
    cpu_first: float | None = None
    cpu_last: float | None = None  # when every decision and rejection is out
    since = 0.0  # from then on, the last output's arrival (monotonic)
    end = time.monotonic() + limit_s
    try:
        while time.monotonic() < end:
            if cpu_last is not None and (
                len(raised) >= alerts or time.monotonic() - since >= ALERT_QUIET
            ):
                break
            for worker in workers:
                worker.check()
            batch = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, records in batch.items():
                if tp.topic == topics.alert:
                    raised.extend(r.value for r in records)
                else:
                    seen.extend((tp.topic, r.timestamp, r.value) for r in records)
            if cpu_first is None and seen:
                cpu_first = _cpu_s(workers)
            if cpu_last is None and len(seen) >= expected:
                cpu_last = _cpu_s(workers)
            if batch:
                since = time.monotonic()
    finally:
        await consumer.stop()
    cpu = _cpu_s(workers) if cpu_last is None else cpu_last
    return seen, raised, cpu - (cpu_first or 0.0)


def _dashboard(env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    """``sandan dashboard`` on a free port, scraping the deployment's workers every 2 s."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
    page = {"SANDAN_DASHBOARD_PORT": str(free_port()), "SANDAN_DASHBOARD_INTERVAL": "2s"}
    with (out / "dashboard.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", "dashboard", "-l", "warning"],
            env=base | env | page,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _cpu_s(workers: list[Worker]) -> float:
    """User and system CPU seconds the worker processes have used so far."""
    total = 0.0
    for worker in workers:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(worker.process.pid).cpu_times()
            total += times.user + times.system
    return total


Input = tuple[DocType, bytes | None, bytes]  # document type, key, value


class Measured(msgspec.Struct):
    """One drained backlog: what went in, how fast it was decided, whether it was right."""

    name: str
    tickets: int
    records: int
    garbage: int
    decided: int
    outputs: int
    span_s: float
    tickets_per_minute: float
    records_per_minute: float
    worker_cpu_s: float  # from the first output to the last: the cost, whatever else runs
    tickets_per_cpu_s: float
    load: float  # the machine's 1-minute load average at the end: what else was running
    mismatches: list[str]  # the alerts' too
    alerts_expected: int = 0  # keys the ground truth expects an alert on, each once
    alerts_seen: int = 0


def _measure(
    args: argparse.Namespace,
    name: str,
    records: list[Input],
    plan: Plan,
    settings_env: dict[str, str] | None = None,
    *,
    dashboard: bool = False,
) -> Measured:
    """Produce ``records`` (document type, key, value) under a fresh prefix, drain them with
    ``args.workers`` workers (``settings_env`` on top of the deployment's settings, and a
    ``sandan dashboard`` scraping them if ``dashboard``), check the outputs against ``plan``."""
    env = fresh_deployment("tp", args.brokers, args.partitions, "1h") | alert_env()
    env |= settings_env or {}
    settings = Settings.from_env(env)
    started = time.monotonic()
    asyncio.run(_produce_all(settings, [(settings.topic(k), key, v) for k, key, v in records]))
    took = time.monotonic() - started
    print(f"[{name}] produced {len(records)} records in {took:.1f}s; starting", flush=True)

    expected = sum(len(d) for d in plan.decisions.values()) + len(plan.rejections)
    with tempfile.TemporaryDirectory() as data:
        workers = [
            Worker(f"worker-{i}", env, Path(data) / f"worker-{i}", Path(data))
            for i in range(1, args.workers + 1)
        ]
        page = _dashboard(env, Path(data)) if dashboard else None
        try:
            drained = _drain(settings, expected, 1800, workers, len(plan.alerts))
            seen, raised, cpu_s = asyncio.run(drained)
        finally:
            for worker in workers:
                stop(worker.process)
            stop(page)
    topics = Topics(settings)
    decisions = [orjson.loads(v) for t, _, v in seen if t in (topics.release, topics.divert)]
    rejections = [orjson.loads(v) for t, _, v in seen if t == topics.rejected]
    alerts = [decode_alert(value) for value in raised]
    report = verify(plan, decisions, rejections, alerts=alerts, alert_window=ALERT_WINDOW)
    stamps = sorted(ts for _, ts, _ in seen)
    span_s = max((stamps[-1] - stamps[0]) / 1000, 1e-3) if stamps else float("nan")
    measured = Measured(
        name=name,
        tickets=plan.tickets,
        records=len(records),
        garbage=len(records) - len(plan.records),
        decided=report.tickets_decided,
        outputs=len(seen),
        span_s=round(span_s, 2),
        tickets_per_minute=round(report.tickets_decided / span_s * 60),
        records_per_minute=round(len(records) / span_s * 60),
        worker_cpu_s=round(cpu_s, 2),
        tickets_per_cpu_s=round(report.tickets_decided / max(cpu_s, 1e-3)),
        load=round(os.getloadavg()[0], 1),
        mismatches=report.mismatches,
        alerts_expected=report.alert_keys_expected,
        alerts_seen=report.alerts_seen,
    )
    shown = msgspec.structs.replace(measured, mismatches=[])
    print(msgspec.json.encode(shown).decode(), flush=True)
    for line in report.mismatches[:10]:
        print(f"  - {line}")
    return measured


def with_garbage(
    plan: Plan, share: float, seed: int, max_size: int
) -> tuple[list[Input], Plan, int]:
    """The plan's records with malformed ones (loadtest.fuzz.garbage: each rejected SCHEMA
    whole) making ``share`` of them, spread evenly at random; the plan expecting them; the
    malformed records' bytes."""
    count = round(len(plan.records) * share / (1 - share))
    bad = garbage(seed, count, max_size=max_size)
    rng = random.Random(seed)
    places = sorted(rng.randrange(len(plan.records) + 1) for _ in bad)
    records: list[Input] = []
    clean = iter(plan.records)
    at = 0
    for number, (place, item) in enumerate(zip(places, bad, strict=True)):
        while at < place:
            record = next(clean)
            records.append((record.doc_type, record.key, record.value))
            at += 1
        records.append((item.made.doc_type, f"garbage-{number}".encode(), item.made.value))
    records += [(r.doc_type, r.key, r.value) for r in clean]
    expected = [ExpectedRejection("SCHEMA", g.made.doc_type, g.guid) for g in bad]
    truth = msgspec.structs.replace(plan, rejections=[*plan.rejections, *expected])
    return records, truth, sum(len(g.made.value) for g in bad)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.throughput")
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--garbage",
        type=float,
        default=0.0,
        help="share of malformed input records (0.1: 10 %%); the clean backlog is drained too",
    )
    parser.add_argument("--garbage-max-size", type=int, default=64 * 1024)
    parser.add_argument("--rounds", type=int, default=1, help="each backlog this many times")
    parser.add_argument(
        "--metrics-cost",
        action="store_true",
        help="drain the backlog with metrics off, and on with the dashboard scraping",
    )
    parser.add_argument("--report", type=Path, help="write a markdown report here")
    args = parser.parse_args(argv)
    if args.metrics_cost and args.garbage:
        parser.error("--metrics-cost and --garbage measure one thing each: pick one")

    started = time.monotonic()
    plan = generate(args.seed, args.tickets, rate=None, window=3600.0, faults=BACKLOG_MIX)
    clean: list[Input] = [(r.doc_type, r.key, r.value) for r in plan.records]
    backlogs = [("clean", clean, plan)]
    garbage_bytes = 0
    if args.garbage:
        records, truth, garbage_bytes = with_garbage(
            plan, args.garbage, args.seed, args.garbage_max_size
        )
        backlogs.append((f"{args.garbage:.0%} garbage", records, truth))
    took = time.monotonic() - started
    print(f"planned {plan.tickets} tickets, {len(plan.records)} records in {took:.1f}s", flush=True)
    if args.metrics_cost:
        off, on = {"SANDAN_METRICS": "off"}, {"SANDAN_METRICS": "on"}
        runs = []
        for _ in range(args.rounds):
            runs.append(_measure(args, "metrics off", clean, plan, off))
            runs.append(_measure(args, "metrics on, dashboard", clean, plan, on, dashboard=True))
        text = comparison_report(args, runs, "metrics off", "metrics on, dashboard", 0.95)
    else:
        runs = [
            _measure(args, name, records, truth)
            for _ in range(args.rounds)
            for name, records, truth in backlogs
        ]
        text = garbage_report(args, runs, backlogs[1][1], garbage_bytes) if args.garbage else ""
    ok = all(not run.mismatches for run in runs)
    if text:
        print(text)
        if args.report is not None:
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(text)
    return 0 if ok else 1


def comparison_report(
    args: argparse.Namespace, runs: list[Measured], base: str, other: str, target: float
) -> str:
    """Two kinds of run side by side (by name), with the ratios of their medians."""
    median = {
        (name, what): statistics.median(getattr(r, what) for r in runs if r.name == name)
        for name in (base, other)
        for what in ("tickets_per_minute", "tickets_per_cpu_s")
    }
    wall = median[other, "tickets_per_minute"] / median[base, "tickets_per_minute"]
    cpu = median[other, "tickets_per_cpu_s"] / median[base, "tickets_per_cpu_s"]
    command = (
        f"python -m loadtest.throughput --tickets {args.tickets} --workers {args.workers} "
        f"--partitions {args.partitions} --seed {args.seed} --metrics-cost --rounds {args.rounds}"
    )
    lines = [
        f"# Throughput: {other} against {base}",
        "",
        f"Command: `{command}`. The same backlog of {runs[0].tickets:,} tickets "
        f"({runs[0].records:,} records) drained by {args.workers} worker(s), alternating, "
        f"{args.rounds} round(s) each. Rates from the first output to the last; worker CPU over "
        "the same stretch.",
        "",
        "| run | tickets decided | span (s) | tickets/min | worker CPU (s) "
        "| tickets per CPU s | load average | alerts seen / expected | mismatches |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    lines += [
        f"| {r.name} | {r.decided:,} | {r.span_s:.1f} | {r.tickets_per_minute:,.0f} "
        f"| {r.worker_cpu_s:.1f} | {r.tickets_per_cpu_s:,.0f} | {r.load:.1f} "
        f"| {r.alerts_seen:,} / {r.alerts_expected:,} | {len(r.mismatches)} |"
        for r in runs
    ]
    lines += [
        "",
        f"Medians, {other} against {base}: tickets/min {median[other, 'tickets_per_minute']:,.0f}"
        f" / {median[base, 'tickets_per_minute']:,.0f} = **{wall:.3f}**; tickets per worker CPU "
        f"second {median[other, 'tickets_per_cpu_s']:,.0f} / "
        f"{median[base, 'tickets_per_cpu_s']:,.0f} = **{cpu:.3f}** (target: at least "
        f"{target:g}).",
    ]
    return "\n".join(lines) + "\n"


def garbage_report(
    args: argparse.Namespace, runs: list[Measured], records: list[Input], garbage_bytes: int
) -> str:
    """Clean and garbage runs side by side, with the ratios of their medians: tickets per
    minute, and tickets per second of the workers' CPU (what a shared machine disturbs less)."""
    clean = [r for r in runs if not r.garbage]
    dirty = [r for r in runs if r.garbage]
    median = {
        (name, what): statistics.median(getattr(r, what) for r in group)
        for name, group in (("clean", clean), ("garbage", dirty))
        for what in ("tickets_per_minute", "tickets_per_cpu_s")
    }
    wall = median["garbage", "tickets_per_minute"] / median["clean", "tickets_per_minute"]
    cpu = median["garbage", "tickets_per_cpu_s"] / median["clean", "tickets_per_cpu_s"]
    bad = dirty[0].garbage
    command = (
        f"python -m loadtest.throughput --tickets {args.tickets} --workers {args.workers} "
        f"--partitions {args.partitions} --seed {args.seed} --garbage {args.garbage} "
        f"--rounds {args.rounds}"
    )
    lines = [
        "# Throughput with malformed input",
        "",
        f"Command: `{command}`.",
        "",
        f"The same backlog of {clean[0].tickets:,} tickets ({clean[0].records:,} records) drained "
        f"by {args.workers} worker(s), clean and with {bad:,} malformed records "
        f"({bad / dirty[0].records:.1%} of the records, {garbage_bytes:,} of "
        f"{sum(len(v) for _, _, v in records):,} bytes) from the decoders' fuzzer "
        f"(loadtest.fuzz.garbage: each rejected SCHEMA whole, at most "
        f"{args.garbage_max_size:,} bytes), alternating, {args.rounds} round(s). Rates are taken "
        "from the first output to the last; worker CPU over the same stretch.",
        "",
        "| run | records | garbage | tickets decided | span (s) | tickets/min | records/min "
        "| worker CPU (s) | tickets per CPU s | load average | alerts seen / expected "
        "| mismatches |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    lines += [
        f"| {r.name} | {r.records:,} | {r.garbage:,} | {r.decided:,} | {r.span_s:.1f} "
        f"| {r.tickets_per_minute:,.0f} | {r.records_per_minute:,.0f} | {r.worker_cpu_s:.1f} "
        f"| {r.tickets_per_cpu_s:,.0f} | {r.load:.1f} | {r.alerts_seen:,} / "
        f"{r.alerts_expected:,} | {len(r.mismatches)} |"
        for r in runs
    ]
    lines += [
        "",
        f"Medians, with garbage against clean: tickets/min "
        f"{median['garbage', 'tickets_per_minute']:,.0f} / "
        f"{median['clean', 'tickets_per_minute']:,.0f} = **{wall:.3f}**; tickets per worker "
        f"CPU second {median['garbage', 'tickets_per_cpu_s']:,.0f} / "
        f"{median['clean', 'tickets_per_cpu_s']:,.0f} = **{cpu:.3f}** (target: at least 0.85).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
