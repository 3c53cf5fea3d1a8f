"""The HTTP load test: one open-loop load sent straight to Kafka, then through the gateway in
requests of 1 document and of up to 100, each phase decided end to end and checked against the
ground truth, in one run on one deployment.

    python -m loadtest.http --rate 1417 --duration 60 [--brokers 127.0.0.1:9092]
    (make loadtest-http RATE=1417 DURATION=60)

It starts one worker and one gateway (``python -m streams gateway``) on a fresh topic prefix,
with a key for every enterprise code of the plans. Each phase plans its own tickets (a chunk of
its own: no ticket or buyer shared), sends each record at its time (a record that does not
decode goes straight to Kafka in every phase: the gateway would refuse it), waits until every
decision, rejection and alert is out, and verifies them (the worker's alert settings are those the
ground truth plans for, loadtest.driver.alert_env). Request latency is measured from a request's
planned time to its answer, so a client that falls behind shows it. CPU and memory of the
worker, the gateway, the broker and this driver are sampled every second. The report goes to
``reports/http-<time>/`` (report.json, report.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from loadtest import ids
from loadtest.channels import GATEWAY_ROUTES
from loadtest.driver import MAX_REQUEST_BYTES, alert_env, end_offsets, read_outputs
from loadtest.generator import generate
from loadtest.httpclient import PipelinedClient, prepare
from loadtest.monitor import Monitor, broker_pid
from loadtest.processes import RunError, Worker, free_port, fresh_deployment, stop, tail, wait_ready
from loadtest.truth import ALERT_WINDOW, DEFAULT_MIX, Plan, PlannedRecord
from loadtest.verify import verify
from schemas.codec import decode_document
from schemas.errors import SchemaError
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("main",)

SETTLE = 3.0
WARM_UP = 5.0
FLUSH_AGE = 0.1  # seconds a document waits for its batch of 100 at most
CONNECTIONS = 256  # aiohttp answers one request at a time per connection: this is the concurrency
PHASES = (("kafka", 1), ("gateway", 1), ("gateway", 100))


@dataclass
class Latencies:
    """Request latencies (seconds from the planned time to the answer) and answers by status."""

    values: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, seconds: float, status: int) -> None:
        self.values.append(seconds)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.values)

        def at(q: float) -> float | None:
            return (
                round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)
                if ordered
                else None
            )

        return {
            "requests": len(ordered),
            "p50_ms": at(0.50),
            "p95_ms": at(0.95),
            "p99_ms": at(0.99),
            "max_ms": round(ordered[-1] * 1000, 1) if ordered else None,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


class Gateway:
    """A ``python -m streams gateway`` subprocess on a free port."""

    def __init__(self, env: dict[str, str], out: Path) -> None:
        self.port, self.log = free_port(), out / "gateway.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
        env = base | env | {"SANDAN_GATEWAY_PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "gateway"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, limit: float = 60) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                msg = f"the gateway exited with {self.process.returncode}:\n{tail(self.log)}"
                raise RunError(msg)
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:  # noqa: PLR2004
                        return
            except OSError:
                pass
            time.sleep(0.3)
        msg = f"the gateway did not become healthy within {limit:g}s:\n{tail(self.log)}"
        raise RunError(msg)


def _decodes(record: PlannedRecord) -> bool:
    try:
        decode_document(record.doc_type, record.value)
    except SchemaError:
        return False
    return True


async def send_phase(
    plan: Plan, prefix: str, brokers: str, gateway: str | None, key: str | None, batch: int
) -> tuple[Latencies, float]:
    """Send the plan (straight to Kafka when ``gateway`` is None); return the request latencies
    and the seconds it took. Records come due in groups: the loop sleeps only until the next
    one is due, and sends everything due by then."""
    producer = AIOKafkaProducer(
        bootstrap_servers=brokers, linger_ms=5, max_request_size=MAX_REQUEST_BYTES
    )
    await producer.start()
    client = None
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if gateway:
        host, _, port = gateway.removeprefix("http://").partition(":")
        client = PipelinedClient(host, int(port), CONNECTIONS)
        await client.open()
    # What goes where is settled before the clock starts.
    via_gateway = [client is not None and _decodes(record) for record in plan.records]
    latencies = Latencies()
    pending: list[asyncio.Future[Any]] = []
    batches: dict[str, tuple[float, list[bytes]]] = {}
    started = time.monotonic()

    def post(path: str, body: bytes, planned: float) -> None:
        assert client is not None  # noqa: S101
        client.send(
            prepare(path, body, headers),
            lambda status: latencies.add(time.monotonic() - planned, status),
        )

    def flush(kind: str) -> None:
        _, bodies = batches.pop(kind)
        # a batch's request starts now: the wait to fill it is not its latency
        post(GATEWAY_ROUTES[kind], b"[" + b",".join(bodies) + b"]", time.monotonic())

    try:
        index, count = 0, len(plan.records)
        while index < count:
            now = time.monotonic()
            ahead = started + plan.records[index].at - now
            if ahead > 0:
                await asyncio.sleep(ahead)
                now = time.monotonic()
            for kind in [k for k, (first, _) in batches.items() if now - first >= FLUSH_AGE]:
                flush(kind)
            while index < count and started + plan.records[index].at <= now:
                record = plan.records[index]
                if not via_gateway[index]:
                    topic = f"{prefix}{record.doc_type}"
                    pending.append(await producer.send(topic, record.value, key=record.key))
                elif batch == 1:
                    post(GATEWAY_ROUTES[record.doc_type], record.value, started + record.at)
                else:
                    _, bodies = batches.setdefault(record.doc_type, (now, []))
                    bodies.append(record.value)
                    if len(bodies) >= batch:
                        flush(record.doc_type)
                index += 1
        for kind in list(batches):
            flush(kind)
        await asyncio.gather(*pending)
        if client is not None:
            await client.drain()
    finally:
        await producer.stop()
        if client is not None:
            await client.close()
    return latencies, time.monotonic() - started


def _cpu(monitor: Monitor, since: float, until: float) -> dict[str, dict[str, float]]:
    """Mean and max CPU % and max RSS per watched process between two wall times."""
    rows: dict[str, list[tuple[float, float]]] = {}
    for sample in monitor.samples:
        if since <= sample.t <= until:
            for name, p in sample.processes.items():
                rows.setdefault(name, []).append((p.cpu, p.rss_mb))
    return {
        name: {
            "cpu_mean": round(sum(c for c, _ in values) / len(values), 1),
            "cpu_max": round(max(c for c, _ in values), 1),
            "rss_mb_max": round(max(r for _, r in values), 1),
        }
        for name, values in rows.items()
        if values
    }


async def run_phase(
    index: int,
    via: str,
    batch: int,
    args: argparse.Namespace,
    settings: Settings,
    gateway: Gateway,
    key: str,
    monitor: Monitor,
) -> dict[str, Any]:
    """One phase, end to end: plan, send, wait for the decisions, verify, report."""
    plan = generate(
        args.seed + index,
        int(args.rate * args.duration),
        rate=args.rate,
        window=args.window,
        settle=SETTLE,
        faults=DEFAULT_MIX,
        chunk=index,
    )
    topics = Topics(settings)
    outputs = [topics.release, topics.divert, topics.rejected, topics.alert]
    start = await end_offsets(settings.brokers, outputs, settings.partitions)
    expected = sum(len(d) for d in plan.decisions.values()) + len(plan.rejections)
    expected += len(plan.alerts)
    name = "kafka" if via == "kafka" else f"gateway, {batch} per request"
    print(f"phase {name}: {plan.tickets} tickets, {len(plan.records)} records", flush=True)
    began = time.time()
    latencies, took = await send_phase(
        plan,
        settings.topic_prefix,
        settings.brokers,
        gateway.url if via == "gateway" else None,
        key,
        batch,
    )
    sent = time.time()
    deadline = time.monotonic() + args.window + 120
    seen = await read_outputs(settings.brokers, start, until=expected, deadline=deadline)
    decisions = seen[topics.release] + seen[topics.divert]
    report = verify(
        plan, decisions, seen[topics.rejected], alerts=seen[topics.alert], alert_window=ALERT_WINDOW
    )
    stamps = sorted(d["decidedAt"] for d in decisions)
    last = _epoch(stamps[-1]) if stamps else sent
    # Decisions per minute while the load ran, warm-up (the first 5 s) excluded: the windows'
    # late decisions and the faults' follow-ups after the last slot do not count.
    steady = (began + WARM_UP, began + args.duration)
    in_time = sum(1 for d in decisions if steady[0] <= _epoch(d["decidedAt"]) < steady[1])
    result = {
        "phase": name,
        "tickets": plan.tickets,
        "documents": len(plan.records),
        "send_seconds": round(took, 1),
        "offered_tickets_per_min": round(plan.tickets / args.duration * 60),
        "decided_per_min": round(in_time / (steady[1] - steady[0]) * 60),
        "last_decision_after_s": round(last - began, 1),
        "requests": latencies.summary() if via == "gateway" else None,
        "verification": {
            "ok": report.ok,
            "tickets_expected": report.tickets_expected,
            "tickets_decided": report.tickets_decided,
            "rejections_expected": report.rejections_expected,
            "rejections_seen": report.rejections_seen,
            "alerts_expected": report.alert_keys_expected,
            "alerts_seen": report.alerts_seen,
            "alert_mismatches": report.alert_mismatches,
            "mismatches": report.mismatches[:20],
        },
        "resources": _cpu(monitor, began + WARM_UP, began + args.duration),
    }
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return result


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _markdown(run: dict[str, Any]) -> str:
    lines = [
        f"# HTTP load test {run['started']}",
        "",
        f"`python -m loadtest.http --rate {run['rate']:g} --duration {run['duration']:g}`: "
        "one worker, one gateway, the broker and this driver on the same machine "
        f"({os.cpu_count()} cores), default fault mix, window {run['window']:g} s.",
        "",
        "| phase | offered tickets/min | decided/min | requests | p50 ms | p95 ms"
        " | p99 ms | max ms | verification | alerts | worker CPU % | gateway CPU % | broker CPU %"
        " | driver CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in run["phases"]:
        r = p["requests"] or {}
        res = p["resources"]

        def cpu(name: str, res: dict[str, Any] = res) -> str:
            return f"{res[name]['cpu_mean']:.0f}" if name in res else "-"

        v = p["verification"]
        lines.append(
            f"| {p['phase']} | {p['offered_tickets_per_min']:,}"
            f" | {p['decided_per_min']:,}"
            f" | {r.get('requests', '-')} | {r.get('p50_ms', '-')} | {r.get('p95_ms', '-')}"
            f" | {r.get('p99_ms', '-')} | {r.get('max_ms', '-')}"
            f" | {'OK' if v['ok'] else 'FAILED'} {v['tickets_decided']}/{v['tickets_expected']}"
            f" | {v.get('alerts_seen', '-')}/{v.get('alerts_expected', '-')}"
            f" | {cpu('worker')} | {cpu('gateway')} | {cpu('broker')} | {cpu('driver')} |"
        )
    lines += [
        "",
        "decided/min: decisions made while the load ran, the first 5 s excluded. Request "
        "latency: from a request's planned time (1 per request) or its start (100 per request; "
        "a document waits up to 100 ms for its batch before that) to its answer. alerts: "
        "those read / the keys the ground truth expects an alert on, each once (each checked, "
        "the verification includes them).",
        "",
    ]
    direct = [p for p in run["phases"] if p["phase"] == "kafka"]
    if direct:
        lines.append("Ratios to the same load sent straight to Kafka (decided/min):")
        base = direct[0]["decided_per_min"] or 1
        for p in run["phases"]:
            if p is not direct[0]:
                lines.append(f"- {p['phase']}: {p['decided_per_min'] / base:.3f}")
    lines += [
        "",
        "Request statuses: "
        + "; ".join(
            f"{p['phase']}: {p['requests']['statuses']}" for p in run["phases"] if p["requests"]
        ),
        "",
    ]
    return "\n".join(lines)


async def _run(args: argparse.Namespace, out: Path, env: dict[str, str]) -> int:
    keys = out / "keys.json"
    env["SANDAN_GATEWAY_KEYS"] = str(keys)
    settings = Settings.from_env(env)
    from gateway.keys import add_key  # noqa: PLC0415 - the gateway's key file format

    key = add_key(keys, "loadtest", sorted(_all_codes()))
    worker = Worker("worker", env, out / "data", out)
    gateway = Gateway(env, out)
    monitor = Monitor(
        settings.brokers, settings.topic("sandan"), Topics(settings).inputs, args.partitions
    )
    monitor.watch("worker", worker.process.pid)
    monitor.watch("gateway", gateway.process.pid)
    monitor.watch("broker", broker_pid(args.brokers))
    monitor.watch("driver", os.getpid(), children=False)  # the worker and gateway are its children
    sampling = asyncio.ensure_future(monitor.run())
    try:
        await wait_ready([worker], args.partitions, 120)
        await asyncio.to_thread(gateway.wait_ready)
        phases = [
            await run_phase(i, via, batch, args, settings, gateway, key, monitor)
            for i, (via, batch) in enumerate(PHASES)
            if (via if via == "kafka" else str(batch)) in args.phases
        ]
    finally:
        monitor.stop()
        await sampling
        stop(gateway.process)
        stop(worker.process)
    run = {
        "started": out.name.removeprefix("http-"),
        "rate": args.rate,
        "duration": args.duration,
        "window": args.window,
        "seed": args.seed,
        "phases": phases,
    }
    (out / "report.json").write_text(json.dumps(run, indent=2, ensure_ascii=False))
    (out / "report.md").write_text(_markdown(run))
    print(f"report: {out / 'report.md'}")
    return 0 if all(p["verification"]["ok"] for p in phases) else 1


def _all_codes() -> set[str]:
    """Every enterprise code the generator writes: what the run's key may declare for."""
    firms = (*ids.PLATFORMS, *ids.PAY_FIRMS, *ids.LOGISTICS_FIRMS)
    return {firm.code for firm in firms} | {code for code, _ in ids.SHOPS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.http", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rate", type=float, default=1417.0, help="tickets/s [1417: 85,000/min]")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase [60]")
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--window", type=float, default=20.0, help="SANDAN_WINDOW s [20]")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10**6)
    parser.add_argument("--out", default="reports")
    parser.add_argument(
        "--phases",
        type=lambda text: text.split(","),
        default=["kafka", "1", "100"],
        help="which phases: kafka (straight to Kafka), 1, 100 (documents a request) [all]",
    )
    args = parser.parse_args(argv)
    out = Path(args.out) / f"http-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True)
    env = fresh_deployment("http", args.brokers, args.partitions, f"{args.window:g}s")
    env |= alert_env()  # the alerts the plans expect (loadtest.truth)
    return asyncio.run(_run(args, out, env))


if __name__ == "__main__":
    raise SystemExit(main())
