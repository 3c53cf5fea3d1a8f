"""``sandan demo``: a small mixed load through a running worker, checked and summarised.

It plans tickets with the generator (clean ones and every kind of fault), produces them on
schedule, reads what came out on ``release``, ``divert`` and ``rejected``, checks every ticket
against the ground truth and prints a summary.
"""

from __future__ import annotations

import time

from loadtest.driver import end_offsets, produce_plan, read_outputs
from loadtest.generator import generate
from loadtest.truth import FaultMix
from loadtest.verify import verify
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("run_demo",)

SETTLE = 2.0


async def run_demo(settings: Settings, *, tickets: int, seed: int | None) -> int:
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
    outputs = [topics.release, topics.divert, topics.rejected]
    start = await end_offsets(settings.brokers, outputs, settings.partitions)
    expected = sum(len(d) for d in plan.decisions.values()) + len(plan.rejections)
    print(
        f"demo: seed {seed}, {tickets} ticket slots, {len(plan.records)} records, "
        f"window {window:g}s; producing..."
    )
    took = await produce_plan(settings.brokers, settings.topic_prefix, plan)
    print(f"demo: produced in {took:.1f}s; waiting for the decisions (window {window:g}s)")
    deadline = time.monotonic() + window + 3 * SETTLE + 60
    seen = await read_outputs(settings.brokers, start, until=expected, deadline=deadline)
    decisions = seen[topics.release] + seen[topics.divert]
    report = verify(plan, decisions, seen[topics.rejected])
    print()
    print(f"  {topics.release:<16} {len(seen[topics.release]):>6}  released")
    print(f"  {topics.divert:<16} {len(seen[topics.divert]):>6}  diverted")
    for code, n in sorted(report.diverted_by_code.items()):
        print(f"  {'':<16} {n:>6}    {code}")
    print(f"  {topics.rejected:<16} {len(seen[topics.rejected]):>6}  rejected")
    for code, n in sorted(report.rejected_by_code.items()):
        print(f"  {'':<16} {n:>6}    {code}")
    print()
    if report.ok:
        print(
            f"demo: all {report.tickets_expected} tickets decided as the ground truth says "
            f"({report.decisions_seen} decisions, {report.rejections_seen} rejections)"
        )
        return 0
    print(f"demo: {len(report.mismatches)} mismatches with the ground truth, e.g.:")
    for line in report.mismatches[:10]:
        print(f"  - {line}")
    return 1
