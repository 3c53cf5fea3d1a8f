"""The chaos run: workers SIGKILLed at random moments and the broker restarted while a paced
load with the generator's faults flows; then a read_committed check against the ground truth.

    python -m loadtest.chaos --rate 40 --duration 600 --kills 100 --broker-restarts 4
    (make chaos; the short version runs in make test: tests/integration/test_chaos_short.py)
    python -m loadtest.chaos --nodes 3 ...   (make chaos NODES=3; tests/integration/test_cluster.py)

It starts its own broker (``kafka/broker.sh`` on free ports, so it may restart and kill it),
``--workers`` workers on a fresh topic prefix, and acts as their supervisor: a worker that
exits (a transaction failed while the broker was away, say) is started again. Meanwhile:

- ``--kills`` SIGKILLs of a random worker, spread over the load: some right after a restart
  (during its restore), some restarted with an empty data dir (a full changelog restore);
- ``--broker-restarts`` restarts of the broker, clean (SIGTERM) and SIGKILL in turn; with
  ``--nodes 3`` the brokers are a local KRaft cluster of three (``SANDAN_KAFKA_NODES=3``:
  replication factor 3, min.insync.replicas 2), sandan's topics are created with
  ``SANDAN_REPLICATION_FACTOR=3``, and each restart hits one random node, never two at once:
  the next waits until every partition's replicas are all in sync again;
- workers coming and going rebalance the partitions each time.

The workers' alert settings are those the ground truth plans for (loadtest.driver.alert_env:
windows longer than the run), so the plan says which pattern alerts must be raised, each once.

At the end every worker is left running until every expected decision and alert is out, then
the outputs are read with read_committed and checked: each ticket exactly its expected decisions
(none lost, none twice, none wrong), every rejection exactly as planned, receipts exactly once (a
document's 120 once, a decision's 399 once per document and revision, one 100 per rejection),
the buyer ledger's totals (its changelog) equal to the released dutiable values, and every
alert as planned, exactly once (loadtest.verify.verify_alerts; a key one of whose tickets a
broker restart moved is checked for exactly once only: at most one alert on it). The report
(report.json, report.md) goes to ``reports/chaos-<time>/``; the exit code is 0 only if
everything holds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported: no __all__
    AdminClient,
    ConfigResource,
    ResourceType,
)

from loadtest.driver import alert_env, decode_alert, read_outputs
from loadtest.generator import generate
from loadtest.processes import RunError, Worker, free_port, fresh_deployment
from loadtest.truth import ALERT_WINDOW, DEFAULT_MIX, Plan, pattern_key
from loadtest.verify import parse_iso_ms, verify, verify_alerts
from schemas.alerts import ALERT_PATTERNS
from schemas.receipts import CONTENT_TYPE_XML, decode_receipt
from streams.ledger import BuyerLedger

__all__ = ("main", "plan_for")

ROOT = Path(__file__).resolve().parents[1]
BROKER_SCRIPT = ROOT / "kafka" / "broker.sh"
RESTART_PAUSE = 0.5  # seconds between a worker's exit and its restart
# The least time between a record and one whose outcome depends on it: longer than a broker
# restart, which delays what is sent meanwhile (arrival is the broker's append time).
SETTLE = 12.0
IN_RESTORE_SHARE = 0.25  # of the kills, those that also catch the restarted worker restoring
IN_SYNC_LIMIT = 180.0  # seconds for a restarted node's replicas to be in sync again
READ_QUIET = 10.0  # seconds without a record that end the final read


@dataclass
class Broker:
    """A broker this run started (``kafka/broker.sh`` on its own ports and run dir), or with
    ``nodes`` > 1 a KRaft cluster: node n on ``port + 2(n - 1)``, each node started, stopped
    or killed alone when given (``None``: all of them)."""

    port: int
    home: Path
    nodes: int = 1

    @property
    def ports(self) -> list[int]:
        return [self.port + 2 * n for n in range(self.nodes)]

    @property
    def address(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def _script(self, command: str, node: int | None = None) -> None:
        env = {**os.environ, "SANDAN_KAFKA_PORT": str(self.port)}
        env["SANDAN_KAFKA_HOME"] = str(self.home)
        env["SANDAN_KAFKA_NODES"] = str(self.nodes)
        subprocess.run(  # noqa: S603 - our own broker script
            ["bash", str(BROKER_SCRIPT), command, *([str(node)] if node else [])],  # noqa: S607
            env=env,
            check=True,
            timeout=120 + 60 * self.nodes,
            stdout=subprocess.DEVNULL,
        )

    def start(self, node: int | None = None) -> None:
        self._script("start", node)

    def stop(self, node: int | None = None) -> None:
        self._script("stop", node)

    def kill(self, node: int | None = None) -> None:
        """SIGKILL, by the pid the broker script wrote (only this run's broker; with a cluster,
        its ``node``, else the first)."""
        pidfile = self.home / f"run-{self.ports[(node or 1) - 1]}" / "broker.pid"
        pid = int(pidfile.read_text().strip())
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        pidfile.unlink(missing_ok=True)

    def wait_in_sync(self, limit: float) -> float:
        """Seconds until every node is back and every partition (the internal topics' too) has
        all its replicas in sync; RunError after ``limit``."""
        admin = AdminClient({"bootstrap.servers": self.address, "log_level": 0})
        started = time.monotonic()
        while time.monotonic() - started < limit:
            try:
                metadata = admin.list_topics(timeout=10)
            except Exception:  # noqa: BLE001 - a KafkaException while the cluster settles
                metadata = None
            if metadata is not None and len(metadata.brokers) == self.nodes:
                partitions = [p for t in metadata.topics.values() for p in t.partitions.values()]
                if all(sorted(p.isrs) == sorted(p.replicas) for p in partitions):
                    return time.monotonic() - started
            time.sleep(0.5)
        msg = f"the cluster's replicas were not in sync within {limit:g} s"
        raise RunError(msg)


def _replication(brokers: str, prefix: str) -> dict[str, Any]:
    """The replicas of the deployment's topics and of the internal ones (consumer offsets,
    transaction state), and the deployment's topics' min.insync.replicas, as the cluster says."""
    admin = AdminClient({"bootstrap.servers": brokers, "log_level": 0})
    topics = admin.list_topics(timeout=30).topics
    ours = sorted(name for name in topics if name.startswith(prefix))
    internal = sorted(name for name in topics if name.startswith("__"))

    def replicas(names: list[str]) -> list[int]:
        return sorted({len(p.replicas) for n in names for p in topics[n].partitions.values()})

    configs = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in ours])
    min_isr = {int(f.result(30)["min.insync.replicas"].value) for f in configs.values()}
    return {
        "topics": len(ours),
        "replicas": replicas(ours),
        "min_insync_replicas": sorted(min_isr),
        "internal": {name: replicas([name]) for name in internal},
    }


def _free_run_of_ports(count: int) -> int:
    """A free port followed by ``count - 1`` more free ports (a cluster's client and controller
    ports), below the ephemeral range: there the nodes' own connections to the voters not yet
    listening would take some of them while the cluster starts."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    pick = random.SystemRandom()
    for _ in range(200):
        base = pick.randrange(10_000, max(10_001, low - count))
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    msg = f"no {count} consecutive free ports"
    raise RunError(msg)


@dataclass
class Tally:
    """What happened to the deployment during the run."""

    kills: int = 0
    kills_during_restore: int = 0
    wiped_restarts: int = 0
    broker_restarts: dict[str, int] = field(default_factory=lambda: {"clean": 0, "sigkill": 0})
    node_restarts: list[dict[str, Any]] = field(default_factory=list)  # with a cluster
    worker_exits: Counter[int] = field(default_factory=Counter)  # exit code -> count
    ready_seconds: list[float] = field(default_factory=list)  # start to owning partitions


class Fleet:
    """The workers, restarted whenever they exit or are killed."""

    def __init__(self, env: dict[str, str], out: Path, count: int, tally: Tally) -> None:
        self.env, self.out, self.tally = env, out, tally
        self.names = [f"w{n + 1}" for n in range(count)]
        self.workers: dict[str, Worker] = {}
        self.started: dict[str, float] = {}
        self.ready: dict[str, bool] = {}
        self.killed: set[str] = set()  # killed by the chaos, restarted by it too

    def start(self, name: str, *, wipe: bool = False) -> None:
        old = self.workers.get(name)
        if old is not None and old.process.poll() is None:  # never two of one name
            msg = f"worker {name} (pid {old.process.pid}) is still running"
            raise RuntimeError(msg)
        data = self.out / f"data-{name}"
        if wipe:
            shutil.rmtree(data, ignore_errors=True)
            self.tally.wiped_restarts += 1
        self.workers[name] = Worker(name, self.env, data, self.out)
        self.started[name], self.ready[name] = time.monotonic(), False
        self.killed.discard(name)

    def kill(self, name: str) -> None:
        """SIGKILL; the caller starts it again (the supervisor leaves it alone until then)."""
        worker = self.workers[name]
        self.killed.add(name)
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(timeout=30)
            self.tally.kills += 1
            if not self.ready[name]:
                self.tally.kills_during_restore += 1

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart what exited on its own; time each start until it owns partitions."""
        while not stop.is_set():
            for name, worker in list(self.workers.items()):
                code = worker.process.poll()
                if name in self.killed or self.workers[name] is not worker:
                    continue  # the chaos's own kill, or replaced while this loop awaited
                if code is not None:
                    self.tally.worker_exits[code] += 1
                    await asyncio.sleep(RESTART_PAUSE)
                    # Meanwhile the chaos may have killed and started it itself.
                    if self.workers[name] is worker and name not in self.killed:
                        self.start(name)
                elif not self.ready[name]:
                    status = await asyncio.to_thread(worker.status)
                    if status and status.get("ready"):
                        self.ready[name] = True
                        self.tally.ready_seconds.append(time.monotonic() - self.started[name])
            await asyncio.sleep(0.2)

    def stop_all(self) -> None:
        for worker in self.workers.values():
            if worker.process.poll() is None:
                worker.process.terminate()
        for worker in self.workers.values():
            try:
                worker.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(timeout=10)


async def _produce(brokers: str, prefix: str, plan: Plan) -> float:
    """The plan on its schedule, through broker restarts (an idempotent producer retries)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=brokers,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=60_000,
        retry_backoff_ms=250,
    )
    await producer.start()
    started = time.monotonic()
    try:
        pending = []
        for record in plan.records:
            delay = record.at - (time.monotonic() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(
                await producer.send(f"{prefix}{record.doc_type}", record.value, key=record.key)
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


async def _chaos(
    args: argparse.Namespace, fleet: Fleet, broker: Broker, tally: Tally, rng: random.Random
) -> None:
    """The kills and broker restarts, spread over the load's duration."""
    events: list[tuple[float, str]] = [
        (rng.uniform(0.05, 0.95) * args.duration, "kill") for _ in range(args.kills)
    ]
    events += [
        ((n + 1) / (args.broker_restarts + 1) * args.duration, "broker")
        for n in range(args.broker_restarts)
    ]
    events.sort()
    started = time.monotonic()
    for at, kind in events:
        await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
        if kind == "broker":
            clean = sum(tally.broker_restarts.values()) % 2 == 0
            node = None
            if broker.nodes > 1:  # one node at a time, another than the last one
                last = tally.node_restarts[-1]["node"] if tally.node_restarts else None
                node = rng.choice([n for n in range(1, broker.nodes + 1) if n != last])
            down = time.monotonic()
            await asyncio.to_thread(broker.stop if clean else broker.kill, node)
            tally.broker_restarts["clean" if clean else "sigkill"] += 1
            await asyncio.sleep(rng.uniform(1.0, 5.0))
            await asyncio.to_thread(broker.start, node)
            if node is not None:  # the next restart finds every replica in sync
                up = time.monotonic()
                seconds = await asyncio.to_thread(broker.wait_in_sync, IN_SYNC_LIMIT)
                tally.node_restarts.append(
                    {
                        "node": node,
                        "how": "clean" if clean else "sigkill",
                        "at": round(down - started, 1),
                        "down_seconds": round(up - down, 1),
                        "in_sync_seconds": round(seconds, 1),
                    }
                )
            continue
        name = rng.choice(fleet.names)
        if rng.random() < IN_RESTORE_SHARE:  # kill it once more, soon after, in its restore
            fleet.kill(name)
            fleet.start(name)
            await asyncio.sleep(rng.uniform(0.5, 3.0))
        fleet.kill(name)
        await asyncio.sleep(RESTART_PAUSE)
        fleet.start(name, wipe=rng.random() < args.wipe_share)


async def _read_all(brokers: str, topics: list[str], partitions: int) -> dict[str, list[Any]]:
    """Every committed record of ``topics`` (raw ConsumerRecords), by topic."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=brokers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    seen: dict[str, list[Any]] = {topic: [] for topic in topics}
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        todo = {tp for tp in tps if ends[tp] > 0}
        quiet_since = time.monotonic()
        while todo:
            batch = await consumer.getmany(timeout_ms=500, max_records=50_000)
            for tp, records in batch.items():
                seen[tp.topic].extend(records)
            todo = {tp for tp in todo if await consumer.position(tp) < ends[tp]}
            if batch:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > READ_QUIET:
                break  # what is left before the ends are transaction markers
    finally:
        await consumer.stop()
    return seen


def _receipt_problems(
    receipts: list[Any], decisions: list[Any], rejections: list[Any]
) -> list[str]:
    """Receipts exactly once: 120 once per document, 399 once per document and revision of each
    decision, 100 once per rejection."""
    problems: list[str] = []
    values = [
        msgspec.to_builtins(decode_receipt(r.value, xml=CONTENT_TYPE_XML in r.headers))
        for r in receipts
    ]
    stored = Counter(v["guid"] for v in values if v["returnStatus"] == "120")
    problems += [f"120 for {g} {n} times" for g, n in stored.items() if n > 1]
    concluded = Counter(
        (v["guid"], v.get("revision")) for v in values if v["returnStatus"] == "399"
    )
    problems += [f"399 for {k} {n} times" for k, n in concluded.items() if n > 1]
    expected_399 = {
        (guid, d["revision"]) for d in decisions for guid in d["documents"].values() if guid
    }
    problems += [f"399 missing for {k}" for k in expected_399 - concluded.keys()]
    problems += [f"399 unexpected for {k}" for k in concluded.keys() - expected_399]
    returned = Counter((v.get("guid"), v.get("code")) for v in values if v["returnStatus"] == "100")
    rejected = Counter((r.get("guid"), r.get("code")) for r in rejections)
    for key in returned.keys() | rejected.keys():
        if returned[key] != rejected[key]:
            problems.append(f"100 {key}: {returned[key]} receipts, {rejected[key]} rejections")
    return problems


def _check_alerts(
    plan: Plan, decisions: list[Any], alerts: list[dict[str, Any]], moved: frozenset[str]
) -> tuple[dict[str, Any], list[str]]:
    """The alerts read against the plan's (its keys each alerted once; a key's tickets' times
    their decisions' firstSeenAt): the report's figures, and the mismatches.

    A key one of whose tickets a broker restart moved (its revisions, so the values a pattern
    saw, may differ from the plan's: a small order that was not, say), expected or named by an
    alert naming a moved ticket, is checked for exactly once only: at most one alert on it (the
    windows are longer than the run), none raised twice. Every other key and alert is checked
    by loadtest.verify.verify_alerts, exactly."""
    times: dict[str, int] = {}
    for d in decisions:
        first, ticket = parse_iso_ms(d.get("firstSeenAt")), d.get("ticketId")
        if first is not None and isinstance(ticket, str):
            times[ticket] = min(first, times.get(ticket, first))
    keyed = [(_alert_key(alert), alert) for alert in alerts]
    touched = {key for key, e in plan.alerts.items() if any(t.ticket in moved for t in e.tickets)}
    touched |= {
        key
        for key, alert in keyed
        if alert.get("pattern") in ALERT_PATTERNS and _named(alert) & moved
    }
    exact = [alert for key, alert in keyed if key not in touched]
    loose: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, alert in keyed:
        if key in touched:
            loose[key].append(alert)
    expected = {k: e for k, e in plan.alerts.items() if k not in touched}
    check = verify_alerts(expected, exact, times, kinds=plan.kinds, window=ALERT_WINDOW)
    problems = list(check.mismatches)
    for key, found in sorted(loose.items()):
        ids = Counter(str(a.get("alertId")) for a in found)
        problems += [
            f"alert {i} [moved tickets]: raised {n} times" for i, n in ids.items() if n > 1
        ]
        if len(ids) > 1:
            problems.append(f"{key} [moved tickets]: {len(ids)} alerts, at most one expected")
    figures = {
        "expected": len(plan.alerts),
        "expected_by_pattern": {
            p: sum(e.pattern == p for e in plan.alerts.values()) for p in ALERT_PATTERNS
        },
        "planted": sum(e.planted for e in plan.alerts.values()),
        "seen": len(alerts),
        "keys_with_moved_tickets": len(touched & plan.alerts.keys()),
        "alerts_on_them": sum(len(found) for found in loose.values()),
        "checked": check.by_pattern,
    }
    return figures, problems


def _alert_key(alert: dict[str, Any]) -> str:
    """An alert's pattern and key, as truth.pattern_key names them."""
    return pattern_key(*(str(alert.get(f)) for f in ("pattern", "keyKind", "keyDigest")))


def _named(alert: dict[str, Any]) -> set[str]:
    """The tickets an alert names as its evidence."""
    tickets = alert.get("tickets")
    return {t for t in tickets if isinstance(t, str)} if isinstance(tickets, list) else set()


def _ledger_problems(changelog: list[Any], decisions: list[Any]) -> list[str]:
    released: dict[str, Decimal] = defaultdict(Decimal)
    for d in decisions:
        if d["decision"] == "RELEASE":
            released[d["buyerIdNumber"]] += Decimal(d["dutiableValue"])
    last: dict[bytes, bytes] = {r.key: r.value for r in changelog}
    totals = {
        key.decode(): sum(msgspec.msgpack.decode(value, type=BuyerLedger).totals.values())
        for key, value in last.items()
        if value is not None
    }
    return [
        f"ledger of buyer #{n}: {totals.get(buyer)} recorded, {released.get(buyer)} released"
        for n, buyer in enumerate(sorted(released.keys() | totals.keys()))
        if totals.get(buyer, Decimal(0)) != released.get(buyer, Decimal(0))
    ]


async def _wait_decided(
    env: dict[str, str], plan: Plan, partitions: int, window: float, limit: float
) -> bool:
    """Until every expected decision and alert is out (and then a few quiet seconds: anything
    that would come twice comes now), read once from the start; or until none came for longer
    than a window and its margins (a ticket whose documents a broker restart moved may have
    fewer decisions than planned). Whether the decisions stopped within ``limit``."""
    prefix = env["SANDAN_TOPIC_PREFIX"]
    wanted = sum(len(revisions) for revisions in plan.decisions.values()) + len(plan.alerts)
    start = {
        TopicPartition(f"{prefix}{topic}", p): 0
        for topic in ("release", "divert", "alert")
        for p in range(partitions)
    }
    deadline = time.monotonic() + limit
    give_up = window + 2 * SETTLE
    seen = await read_outputs(
        env["SANDAN_BROKERS"], start, until=wanted, deadline=deadline, idle=5.0, give_up=give_up
    )
    return sum(len(v) for v in seen.values()) >= wanted or time.monotonic() < deadline


def _moved(plan: Plan, inputs: list[Any]) -> tuple[frozenset[str], float]:
    """The tickets whose documents arrived (their append times) with gaps more than SETTLE / 2
    away from the plan's: a broker restart held some of them and not the others, which may
    have moved one across a window's edge. And the longest delay of a record against the run's
    usual gap between plan and arrival, in seconds."""
    planned: dict[bytes, list[Any]] = defaultdict(list)
    for record in plan.records:
        planned[record.value].append(record)
    arrived: dict[bytes, list[float]] = defaultdict(list)
    for record in inputs:
        arrived[record.value].append(record.timestamp / 1000)
    pairs = [
        (at - want.at, want.ticket_id)
        for value, times in arrived.items()
        for at, want in zip(sorted(times), planned.get(value, ()), strict=False)
    ]
    if not pairs:
        return frozenset(), 0.0
    usual = statistics.median(gap for gap, _ in pairs)
    delays: dict[str, list[float]] = defaultdict(list)
    for gap, ticket in pairs:
        if ticket is not None:
            delays[ticket].append(gap - usual)
    moved = frozenset(t for t, ds in delays.items() if max(ds) - min(ds) > SETTLE / 2)
    return moved, max(gap - usual for gap, _ in pairs)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def plan_for(seed: int, rate: float, duration: float, window: float) -> Plan:
    """The run's load and its ground truth: ``rate`` tickets/s for ``duration`` s, the
    generator's default faults."""
    return generate(
        seed, int(rate * duration), rate=rate, window=window, settle=SETTLE, faults=DEFAULT_MIX
    )


async def _run(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    if args.nodes == 1:
        broker = Broker(free_port(), out / "kafka")
    else:
        broker = Broker(_free_run_of_ports(2 * args.nodes), out / "kafka", args.nodes)
    (broker.home / "lib").parent.mkdir(parents=True, exist_ok=True)
    jars = ROOT / ".cache" / "kafka" / "lib"
    if jars.exists():  # the jars are shared, the run dir is this run's own
        (broker.home / "lib").symlink_to(jars)
    try:
        await asyncio.to_thread(broker.start)
    except BaseException:  # a cluster may have started some of its nodes
        await asyncio.to_thread(broker.stop)
        raise
    tally = Tally()
    fleet: Fleet | None = None
    tasks: list[asyncio.Task[Any]] = []
    try:
        env = await asyncio.to_thread(
            fresh_deployment,
            "chaos",
            broker.address,
            args.partitions,
            f"{args.window:g}s",
            min(args.nodes, 3),
        )
        env |= alert_env()  # the alerts the plan expects (loadtest.truth)
        plan = plan_for(args.seed, args.rate, args.duration, args.window)
        fleet = Fleet(env, out, args.workers, tally)
        for name in fleet.names:
            fleet.start(name)
        stop = asyncio.Event()
        supervisor = asyncio.create_task(fleet.supervise(stop))
        started = time.monotonic()
        producing = asyncio.create_task(_produce(broker.address, env["SANDAN_TOPIC_PREFIX"], plan))
        tasks += [supervisor, producing]
        await _chaos(args, fleet, broker, tally, rng)
        await producing
        load_seconds = time.monotonic() - started
        drained = await _wait_decided(env, plan, args.partitions, args.window, args.drain_limit)
        stop.set()
        await supervisor
        prefix = env["SANDAN_TOPIC_PREFIX"]
        topics = ["release", "divert", "rejected", "receipt", "alert", "sandan-ledger-changelog"]
        topics += ["order", "payment", "logistics"]
        seen = await _read_all(broker.address, [prefix + t for t in topics], args.partitions)
        replication = None
        if args.nodes > 1:
            replication = await asyncio.to_thread(_replication, broker.address, prefix)
    finally:
        for task in tasks:  # the supervisor must not start what stop_all stops
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if fleet is not None:
            fleet.stop_all()
        await asyncio.to_thread(broker.stop)
    decisions = [json.loads(r.value) for t in ("release", "divert") for r in seen[prefix + t]]
    rejections = [json.loads(r.value) for r in seen[prefix + "rejected"]]
    inputs = [r for kind in ("order", "payment", "logistics") for r in seen[prefix + kind]]
    moved, delayed = _moved(plan, inputs)
    report = verify(plan, decisions, rejections, moved)
    alerts, alert_problems = _check_alerts(
        plan, decisions, [decode_alert(r.value) for r in seen[prefix + "alert"]], moved
    )
    receipts = _receipt_problems(seen[prefix + "receipt"], decisions, rejections)
    ledger = _ledger_problems(seen[prefix + "sandan-ledger-changelog"], decisions)
    repeated = Counter((d["ticketId"], d["revision"]) for d in decisions)
    lost = [m for m in report.mismatches if "missing decision" in m]
    return {
        "command": f"python -m loadtest.chaos {' '.join(args.argv)}",
        "tickets": report.tickets_expected,
        "records": len(plan.records),
        "load_seconds": round(load_seconds, 1),
        "workers": args.workers,
        "nodes": args.nodes,
        "replication_factor": min(args.nodes, 3),
        "replication": replication,
        "kills": tally.kills,
        "kills_during_restore": tally.kills_during_restore,
        "restarts_with_empty_data_dir": tally.wiped_restarts,
        "broker_restarts": tally.broker_restarts,
        "node_restarts": tally.node_restarts,
        "worker_exits_on_their_own": {str(k): v for k, v in tally.worker_exits.items()},
        "restore_seconds": {
            "starts": len(tally.ready_seconds),
            "p50": _percentile(tally.ready_seconds, 0.5),
            "max": _percentile(tally.ready_seconds, 1.0),
        },
        "decisions": report.decisions_seen,
        "tickets_moved": report.tickets_moved,
        "most_delayed_seconds": round(delayed, 1),
        "lost": len(lost),
        "duplicated": sum(n - 1 for n in repeated.values() if n > 1),
        "wrong": len(report.mismatches) - len(lost),
        "rejections": {"expected": report.rejections_expected, "seen": report.rejections_seen},
        "receipts": len(seen[prefix + "receipt"]),
        "alerts": alerts,
        "receipt_problems": receipts[:50],
        "ledger_problems": ledger[:50],
        "alert_problems": alert_problems[:50],
        "mismatches": report.mismatches[:50],
        "drained": drained,
        "ok": drained and report.ok and not receipts and not ledger and not alert_problems,
    }


def _alert_lines(alerts: dict[str, Any]) -> list[str]:
    """The report's alerts: expected, checked and alerted keys by pattern."""
    lines = [
        f"Alerts (cbec.alert), each expected once (the workers' alert windows are longer than "
        f"the run): {alerts['expected']} keys ({alerts['planted']} planted), {alerts['seen']} "
        f"alerts read. Expected keys one of whose tickets a broker restart moved, checked for "
        f"exactly once only: {alerts['keys_with_moved_tickets']} ({alerts['alerts_on_them']} "
        "alerts on them or naming a moved ticket); the others checked exactly:",
        "",
        "| pattern | keys expected | checked exactly | of them alerted | alerts | unexpected |",
        "|---|---|---|---|---|---|",
    ]
    for pattern, expected in alerts["expected_by_pattern"].items():
        f = alerts["checked"].get(pattern, {})
        lines.append(
            f"| {pattern} | {expected} | {f.get('keys_expected', 0)} | "
            f"{f.get('keys_alerted', 0)} | {f.get('alerts', 0)} | {f.get('unexpected', 0)} |"
        )
    return lines


def _markdown(result: dict[str, Any]) -> str:
    restore = result["restore_seconds"]
    alerts = result["alerts"]
    brokers = "the broker restarted under them"
    if result["nodes"] > 1:
        brokers = (
            f"a local KRaft cluster of {result['nodes']} brokers (topics replicated "
            f"{result['replication_factor']} times, min.insync.replicas "
            f"{max(1, result['replication_factor'] - 1)}), one node at a time restarted under them"
        )
    lines = [
        f"# Chaos run {result['started']}",
        "",
        f"`{result['command']}`: {result['workers']} workers on this machine, {brokers}, the "
        "load with the generator's default faults.",
        "",
        "| tickets | kills (in a restore / empty data dir) | broker restarts (clean / SIGKILL) "
        "| lost | duplicated | wrong | rejections | receipts | alerts | restore p50 / max s "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {result['tickets']:,} | {result['kills']} ({result['kills_during_restore']} / "
        f"{result['restarts_with_empty_data_dir']}) | {result['broker_restarts']['clean']} / "
        f"{result['broker_restarts']['sigkill']} | {result['lost']} | {result['duplicated']} | "
        f"{result['wrong']} | {result['rejections']['seen']} of {result['rejections']['expected']}"
        f" | {result['receipts']:,} | {alerts['seen']} of {alerts['expected']} | "
        f"{restore['p50']} / {restore['max']} | {'OK' if result['ok'] else 'FAILED'} |",
        "",
        *_alert_lines(alerts),
        "",
        f"Tickets whose documents a broker restart held unevenly, changing their gaps by more "
        f"than {SETTLE / 2:g} s (so a window's edge may have moved: checked for exactly once, "
        f"not against the plan's decisions): {result['tickets_moved']} (the longest delay of a "
        f"record {result['most_delayed_seconds']} s).",
        "",
        *(
            []
            if result["drained"]
            else ["**Decisions were still coming out at the drain limit.**", ""]
        ),
        f"Workers that exited on their own (by exit code): {result['worker_exits_on_their_own']}"
        " (a transaction that failed while the broker was away ends the worker; the run's "
        "supervisor starts it again, as systemd or Kubernetes would).",
        "",
    ]
    if result["node_restarts"]:
        replication = result["replication"]
        lines += [
            f"Replication as the cluster reported it at the end: sandan's {replication['topics']} "
            f"topics on {replication['replicas']} replicas, min.insync.replicas "
            f"{replication['min_insync_replicas']}; internal topics "
            + ", ".join(f"{n} on {r} replicas" for n, r in replication["internal"].items())
            + ".",
            "",
            "Node restarts, one at a time, each time every replica back in sync before the next "
            "(at: seconds into the load; down: from the stop or SIGKILL until the node answered "
            "again):",
            "",
            "| at s | node | how | down s | back in sync after s |",
            "|---|---|---|---|---|",
            *(
                f"| {r['at']} | {r['node']} | {r['how']} | {r['down_seconds']} | "
                f"{r['in_sync_seconds']} |"
                for r in result["node_restarts"]
            ),
            "",
        ]
    for name in ("mismatches", "receipt_problems", "ledger_problems", "alert_problems"):
        if result[name]:
            lines += [f"{name}:", "", *(f"- {m}" for m in result[name]), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rate", type=float, default=40.0, help="tickets/s [40]")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load [600]")
    parser.add_argument("--kills", type=int, default=100, help="worker SIGKILLs [100]")
    parser.add_argument("--broker-restarts", type=int, default=4, help="[4]")
    parser.add_argument(
        "--nodes", type=int, default=1, help="brokers: 1, or a KRaft cluster of 3 [1]"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--window", type=float, default=40.0, help="SANDAN_WINDOW s [40]")
    parser.add_argument("--wipe-share", type=float, default=0.2, help="restarts with no data [0.2]")
    parser.add_argument("--drain-limit", type=float, default=600.0, help="s to decide all [600]")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 10**6)
    parser.add_argument("--out", default="reports")
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error("--nodes: at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # it retries through the restarts
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    started = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) / f"chaos-{started}"
    out.mkdir(parents=True)
    try:
        result = asyncio.run(_run(args, out))
    except RunError as exc:
        print(f"chaos run failed: {exc}")
        return 2
    result["started"] = started
    (out / "report.json").write_text(json.dumps(result, indent=2))
    (out / "report.md").write_text(_markdown(result))
    print(_markdown(result))
    print(f"report: {out / 'report.md'}")
    shutil.rmtree(out / "kafka", ignore_errors=True)
    for data in out.glob("data-*"):
        shutil.rmtree(data, ignore_errors=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
