"""The sustained run's report: numbers from what was sent, decided and sampled, and its plots.

Definitions (also written into report.md):

- **Steady part**: from ``warm-up`` after the first slot (10 % of the duration, at least 5 s and
  at most 60 s) to the last slot's start. The warm-up (start, rebalance, JIT-less caches warming)
  and the drain (the tails of the plan, window timeouts, catching up) are outside it.
- **Throughput**: tickets decided for the first time (revision 1 on release or divert) whose
  decision record's timestamp falls in the steady part, per minute of it. If sandan keeps up it
  equals the offered rate (a lower bound of its capacity); if not, it is its capacity.
- **Latency**: for each decision on a complete ticket (all three documents named; window
  timeouts and ambiguous-waybill decisions never are), its record's timestamp minus the send
  time of the latest of the three document versions it decided on (the completing one, or the
  change). The send time is the timestamp the driver gave the record (the tick it was sent in).
- **Raw ceiling**: see loadtest.ceiling; sandan's ratio is its throughput over the ceiling's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from loadtest.ceiling import CeilingResult
from loadtest.monitor import Sample
from loadtest.openloop import DriverSummary
from loadtest.plots import write_plots
from loadtest.results import OutputStats
from loadtest.verify import Report

__all__ = ("RunInfo", "analyse", "steady_window", "write_report")

Floats = NDArray[np.float64]


class Transactions(msgspec.Struct, kw_only=True):
    """The Kafka transactions one worker committed while the load was sent (its /metrics)."""

    count: int
    seconds: float  # their total time, begin to commit
    span_s: float  # between the two readings


class RunInfo(msgspec.Struct, kw_only=True):
    """What the runner knows about the run besides the outputs."""

    config: dict[str, Any]
    driver: DriverSummary
    samples: list[Sample]
    verification: Report
    ceiling: CeilingResult | None
    drained_at: float  # wall time the drain was judged complete
    notes: list[str] = []
    transactions: dict[str, Transactions] = {}  # by worker


def steady_window(
    driver: DriverSummary, duration: float, samples: list[Sample], *, backlog: bool
) -> tuple[float, float]:
    """(start, end) wall seconds of the steady part; with ``backlog`` (no rate: the load is
    sent as fast as possible) it ends when the input lag is back at 0 after the load."""
    warmup = min(max(0.1 * duration, 5.0), 60.0, duration / 3)
    end = driver.slots_ended
    if backlog:
        caught_up = [
            s.t for s in samples if s.t >= end and s.lag is not None and not any(s.lag.values())
        ]
        end = caught_up[0] if caught_up else end
    return driver.started + warmup, max(end, driver.started + warmup + 1.0)


def _latencies(stats: OutputStats, out: Path) -> tuple[Floats, Floats, int]:
    """(decision timestamps, latencies) in ms of the decisions on complete tickets, and how
    many of them named a document version the driver has no send time for."""
    keys = np.fromfile(out / "sent-keys.bin", dtype=np.uint64)
    times = np.fromfile(out / "sent-ms.bin", dtype=np.float64)
    order = np.lexsort((times, keys))  # by key, then time: the first send of a guid first
    keys, times = keys[order], times[order]
    first = np.r_[True, keys[1:] != keys[:-1]] if len(keys) else np.zeros(0, dtype=bool)
    keys, times = keys[first], times[first]
    decided = np.frombuffer(stats.complete_keys, dtype=np.uint64).reshape(-1, 3)
    stamps = np.frombuffer(stats.complete_ts, dtype=np.int64).astype(np.float64)
    if not len(keys) or not len(decided):
        return np.zeros(0), np.zeros(0), len(decided)
    at = np.minimum(np.searchsorted(keys, decided), len(keys) - 1)
    found = (keys[at] == decided).all(axis=1)
    sent = times[at].max(axis=1)
    return stamps[found], (stamps - sent)[found], int((~found).sum())


def _percentiles(values: Floats) -> dict[str, float | None]:
    if not len(values):
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "count": len(values),
        "p50": round(float(p50), 1),
        "p95": round(float(p95), 1),
        "p99": round(float(p99), 1),
        "max": round(float(values.max()), 1),
    }


def _per_second(stamps_ms: Floats, origin: float, seconds: int) -> list[int]:
    at = np.floor(stamps_ms / 1000 - origin).astype(np.int64)
    at = at[(at >= 0) & (at < seconds)]
    return [int(n) for n in np.bincount(at, minlength=seconds)]


def _latency_bins(
    stamps: Floats, latency: Floats, origin: float, width: float
) -> list[list[float]]:
    """[bin start (s from origin), p50, p95, p99, count] per bin that has decisions."""
    rows: list[list[float]] = []
    if not len(stamps):
        return rows
    bins = np.floor((stamps / 1000 - origin) / width).astype(np.int64)
    order = np.argsort(bins, kind="stable")
    bins, latency = bins[order], latency[order]
    edges = np.flatnonzero(np.diff(bins)) + 1
    for group_bins, values in zip(np.split(bins, edges), np.split(latency, edges), strict=True):
        p = np.percentile(values, [50, 95, 99])
        rows.append([float(group_bins[0] * width), *(round(float(x), 1) for x in p), len(values)])
    return rows


def analyse(run: RunInfo, stats: OutputStats, out: Path) -> dict[str, Any]:
    """The report's content (see the module's docstring for the definitions)."""
    config, driver = run.config, run.driver
    origin = driver.started
    backlog = not config["rate"]
    start, end = steady_window(driver, float(config["duration"]), run.samples, backlog=backlog)
    firsts = np.frombuffer(stats.first_ts, dtype=np.int64).astype(np.float64)
    decisions = np.frombuffer(stats.decision_ts, dtype=np.int64).astype(np.float64)
    in_steady = int(((firsts >= start * 1000) & (firsts < end * 1000)).sum())
    per_min = in_steady / (end - start) * 60
    per_ticket = driver.records / max(driver.tickets, 1)
    span = int(max(decisions.max() / 1000 if len(decisions) else 0, run.drained_at) - origin) + 1
    if backlog:  # everything the driver sent, over the time it took
        offered = driver.tickets / max(driver.slots_ended - origin, 1e-3) * 60
    else:  # tickets: a fault slot may decide several (annual limit 2, ambiguous waybill 3)
        offered = float(config["rate"]) * 60 * driver.tickets / max(driver.slots, 1)
    stamps, latency, unmatched = _latencies(stats, out)
    steady = (stamps >= start * 1000) & (stamps < end * 1000)
    last_decision = float(decisions.max()) / 1000 if len(decisions) else None
    lags = [(s.t - origin, sum(s.lag.values())) for s in run.samples if s.lag is not None]
    topics = sorted({topic for s in run.samples for topic in s.lag or {}})
    lag_rows = [
        [round(s.t - origin, 1), sum(s.lag.values()), *(s.lag.get(t, 0) for t in topics)]
        for s in run.samples
        if s.lag is not None
    ]
    steady_lags = [lag for t, lag in lags if start - origin <= t < end - origin]
    at_end = [lag for t, lag in lags if t <= end - origin]
    slack = max(2 * per_ticket * float(config["rate"]), 1e3)  # 2 s of load, in records
    kept_up = None if backlog else bool(at_end) and at_end[-1] <= slack
    notes = list(run.notes)
    most = max((lag for _, lag in lags), default=0)
    behind = most / (float(config["rate"]) * per_ticket) if config["rate"] else None
    if behind is not None and behind > float(config["window"]):
        notes.append(
            f"The input lag reached {behind:.0f} s of load, more than the window "
            f"({config['window']:g} s): windows closed while the workers caught up, by arrival "
            "time and in arrival order across workers (docs/arrival-order.md), so the "
            "verification above holds for an overloaded run too."
        )
    names = sorted({name for s in run.samples for name in s.processes})
    resources: dict[str, dict[str, float | None]] = {}
    for name in names:
        cpu = [s.processes[name].cpu for s in run.samples if name in s.processes]
        rss = [s.processes[name].rss_mb for s in run.samples if name in s.processes]
        window = [
            s.processes[name].cpu for s in run.samples if name in s.processes and start <= s.t < end
        ]
        mean = float(np.mean(window)) if window else 0.0
        resources[name] = {
            "cpu_mean_steady": round(mean, 1),
            # CPU time a ticket costs it: its share of a core over the tickets a second
            "cpu_ms_per_ticket": round(mean / 100 * 60_000 / per_min, 3) if per_min else None,
            "cpu_max": max(cpu, default=0.0),
            "rss_mb_max": max(rss, default=0.0),
            "rss_mb_last": rss[-1] if rss else 0.0,
        }
    ceiling = msgspec.to_builtins(run.ceiling) if run.ceiling else None
    ratio = (
        per_min / run.ceiling.tickets_per_min
        if run.ceiling and run.ceiling.tickets_per_min
        else None
    )
    verification = msgspec.to_builtins(run.verification)
    verification["ok"] = run.verification.ok
    verification["mismatch_count"] = len(run.verification.mismatches)
    verification["mismatches"] = run.verification.mismatches[:50]
    width = float(max(1, round(float(config["duration"]) / 60)))
    return {
        "config": config,
        "steady": {
            "start_s": round(start - origin, 1),
            "end_s": round(end - origin, 1),
            "definition": "first slot + warm-up (10% of the duration, 5-60 s) to the last slot"
            + (" (no rate: to the input lag back at 0)" if backlog else ""),
        },
        "throughput": {
            "tickets_per_min": round(per_min),
            "offered_tickets_per_min": round(offered),
            "tickets_decided_in_steady": in_steady,
            "records_per_ticket": round(per_ticket, 3),
            "drain_s": round(last_decision - driver.slots_ended, 1) if last_decision else None,
            "kept_up": kept_up,
            "target_met": None if kept_up is None else kept_up and per_min >= 0.98 * offered,
        },
        "latency_ms": {
            "all": _percentiles(latency),
            "steady": _percentiles(latency[steady]),
            "unmatched": unmatched,
        },
        "lag_records": {
            "max": most,
            "max_seconds_of_load": round(behind, 1) if behind is not None else None,
            "steady_mean": round(float(np.mean(steady_lags)), 1) if steady_lags else None,
            "at_steady_end": at_end[-1] if at_end else None,
        },
        "resources": resources,
        "transactions": {
            name: {
                "count": t.count,
                "per_s": round(t.count / t.span_s, 1) if t.span_s else None,
                "mean_ms": round(1000 * t.seconds / t.count, 1) if t.count else None,
            }
            for name, t in run.transactions.items()
        },
        "ceiling": ceiling,
        "ratio_to_ceiling": round(ratio, 3) if ratio is not None else None,
        "driver": {k: v for k, v in msgspec.to_builtins(driver).items() if k != "sent_per_second"},
        "outputs": dict(stats.counts) | {"read_seconds": round(stats.read_seconds, 1)},
        "verification": verification,
        "notes": notes,
        "series": {
            "decided_per_s": _per_second(firsts, origin, span),
            "sent_records_per_s": driver.sent_per_second,
            "latency_bins": {
                "width_s": width,
                "rows": _latency_bins(stamps, latency, origin, width),
            },
            "lag": {"columns": ["t", "total", *topics], "rows": lag_rows},
            "resources": {
                name: [
                    [round(s.t - origin, 1), s.processes[name].cpu, s.processes[name].rss_mb]
                    for s in run.samples
                    if name in s.processes
                ]
                for name in names
            },
        },
    }


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int | float) else str(value)


def _markdown(report: dict[str, Any]) -> str:
    c, t, lat, v = (
        report["config"],
        report["throughput"],
        report["latency_ms"],
        report["verification"],
    )
    rate = f"{c['rate']:g} tickets/s" if c["rate"] else "as fast as possible"
    lines = [
        f"# sandan sustained load test — {c['started_utc']}",
        "",
        f"{rate} for {c['duration']:g} s, {c['workers']} worker(s), mix `{c['mix']}`, "
        f"seed {c['seed']}, window {c['window']:g} s, {c['partitions']} partitions, "
        f"brokers {c['brokers']}, topics `{c['prefix']}*`.",
        "",
        f"**Verification: {'OK' if v['ok'] else 'FAILED'}** — {v['tickets_decided']:,} of "
        f"{v['tickets_expected']:,} tickets decided, {v['decisions_seen']:,} decisions "
        f"({v['decisions_expected']:,} expected), {v['rejections_seen']:,} rejections "
        f"({v['rejections_expected']:,} expected), {_alerts_line(v)}, "
        f"{v['mismatch_count']} mismatches.",
        "",
        "## Throughput",
        "",
        "| | |",
        "|---|---|",
        f"| sustained (steady part) | **{_fmt(t['tickets_per_min'])} tickets/min** |",
        f"| offered | {_fmt(t['offered_tickets_per_min'])} tickets/min |",
        f"| kept up (lag at the end of the steady part within 2 s of load) | {t['kept_up']} |",
        f"| target: the offered load sustained (kept up, >= 98 % of it) | {t['target_met']} |",
        f"| drain after the last slot | {_fmt(t['drain_s'])} s |",
        f"| records per ticket | {t['records_per_ticket']} |",
    ]
    ceiling = report["ceiling"]
    if ceiling:
        lines += [
            f"| raw ceiling (one aiokafka process, no logic) | {_fmt(ceiling['records_per_s'])} "
            f"records/s, {_fmt(ceiling['tickets_per_min'])} tickets/min |",
            f"| sandan / ceiling | {_fmt(report['ratio_to_ceiling'])} |",
        ]
        if t["kept_up"]:
            lines += [
                "",
                "sandan kept up with the offered load: its throughput here is the offered rate, a "
                "lower bound of its capacity, and so is the ratio to the ceiling.",
            ]
    lines += [
        "",
        f"Steady part: {report['steady']['start_s']} s to {report['steady']['end_s']} s after "
        f"the first slot ({report['steady']['definition']}; the warm-up and the drain are "
        "excluded). Throughput counts tickets whose first decision's record timestamp falls in it.",
        "",
        "## Decision latency (ms)",
        "",
        "From the send time of the latest decided document to the decision record's timestamp;",
        "decisions on complete tickets only (no window timeouts).",
        "",
        "| | count | p50 | p95 | p99 | max |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("steady", "all"):
        p = lat[name]
        row = " | ".join(_fmt(p[k]) for k in ("count", "p50", "p95", "p99", "max"))
        lines.append(f"| {name} | {row} |")
    lag = report["lag_records"]
    lines += [
        "",
        "## Consumer lag and resources",
        "",
        f"Input lag of the workers' group (records): max {_fmt(lag['max'])} "
        f"({_fmt(lag['max_seconds_of_load'])} s of load), mean in the steady "
        f"part {_fmt(lag['steady_mean'])}, at its end {_fmt(lag['at_steady_end'])}.",
        "",
        "| process | CPU % mean (steady) | CPU ms per ticket (steady) | CPU % max | RSS MB max "
        "| RSS MB last |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in report["resources"].items():
        lines.append(
            f"| {name} | {r['cpu_mean_steady']} | {_fmt(r.get('cpu_ms_per_ticket'))} | "
            f"{r['cpu_max']} | {r['rss_mb_max']} | {r['rss_mb_last']} |"
        )
    lines += [
        "",
        "CPU % is of one core; `machine` is every process on the machine (its RSS column: the",
        "memory in use), so other load on the machine shows there. CPU ms per ticket: the",
        "steady part's mean CPU over the tickets decided a second in it.",
        "",
    ]
    if report.get("transactions"):
        lines += [
            "Kafka transactions committed while the load was sent (each worker's /metrics):",
            "",
            "| worker | transactions | per second | mean ms (begin to commit) |",
            "|---|---|---|---|",
        ]
        for name, t in report["transactions"].items():
            lines.append(f"| {name} | {t['count']:,} | {_fmt(t['per_s'])} | {_fmt(t['mean_ms'])} |")
        lines.append("")
    lines += [
        "## Outcomes",
        "",
    ]
    lines.append(f"released {v['released']:,}, diverted {v['diverted']:,}: {v['diverted_by_code']}")
    lines.append(f"rejected: {v['rejected_by_code']}")
    lines += _alerts_table(v)
    if v["mismatches"]:
        lines += ["", "Mismatches (first 50):", ""]
        lines += [f"- {line}" for line in v["mismatches"]]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report["notes"]]
    lines += ["", "## Plots", ""]
    for name in ("throughput", "latency", "lag", "resources"):
        lines.append(f"![{name}]({name}.png)")
    return "\n".join(lines) + "\n"


def _alerts_line(v: dict[str, Any]) -> str:
    if not v.get("alerts_checked"):
        return "alerts not checked"
    return (
        f"{v['alerts_seen']:,} alerts ({v['alert_keys_expected']:,} expected, "
        f"{v['alert_mismatches']} mismatches)"
    )


def _alerts_table(v: dict[str, Any]) -> list[str]:
    """The alerts by pattern (report.md's Outcomes)."""
    if not v.get("alerts_checked"):
        return []
    lines = [
        "",
        "Alerts (cbec.alert), each expected once: the plan's keys that cross a pattern over the",
        "whole run (the run's alert windows are longer than the run), planted (`alert_*` slots)",
        "or crossed by returning buyers on their own.",
        "",
        "| pattern | keys expected | of them planted | keys alerted | alerts | unexpected |",
        "|---|---|---|---|---|---|",
    ]
    for pattern, f in v["alerts_by_pattern"].items():
        lines.append(
            f"| {pattern} | {f['keys_expected']:,} | {f['planted_keys']:,} | "
            f"{f['keys_alerted']:,} | {f['alerts']:,} | {f['unexpected']:,} |"
        )
    return lines


def write_report(run: RunInfo, stats: OutputStats, out: Path) -> dict[str, Any]:
    """Analyse; write report.json, report.md and the plots into ``out``; return the report."""
    report = analyse(run, stats, out)
    (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))
    (out / "report.md").write_text(_markdown(report))
    write_plots(report, out)
    return report
