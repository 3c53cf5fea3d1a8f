"""A sustained run's ground truth and what sandan answered, kept in sharded files, and the check.

A long run (3 million tickets) does not hold its truth and sandan's outputs in memory at once:
the driver appends each chunk's expected decisions and rejections (:func:`truth_frames`) to
``truth-<shard>.bin``; the output reader appends the decisions and rejections it reads, reduced
to what :func:`loadtest.verify.verify` compares, to ``seen-<shard>.bin``. A ticket's shard is
chosen from its id, a rejection's from its guid. :func:`verify_shards` then checks one shard at
a time and adds the reports up. Each file is a sequence of length-prefixed msgpack frames.

While reading, :func:`read_outputs` also keeps the record timestamps needed for the report: of
every decision, of each ticket's first decision, and of each decision made on a complete ticket
with the 64-bit keys (:func:`guid_key`) of the three document versions it decided on.

Alerts are sharded by their pattern and key (truth.pattern_key): the plan's expected alerts go to
``alert-truth-<shard>.bin`` (:func:`alert_truth_frames`), the alerts read from ``cbec.alert`` to
``alerts-seen-<shard>.bin``. Checking an alert needs its tickets' times (the decisions'
``firstSeenAt``), which are sharded by ticket: each truth frame names the alert shards of its
tickets, and :func:`verify_shards`, as it goes through the decision shards, copies those tickets'
times to ``alert-times-<shard>.bin``, then checks one alert shard at a time.
"""

from __future__ import annotations

import struct
import time
import zlib
from array import array
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from loadtest.truth import (
    ExpectedAlert,
    ExpectedDecision,
    ExpectedRejection,
    Plan,
    pattern_key,
)
from loadtest.verify import AlertCheck, Report, parse_iso_ms, verify, verify_alerts
from schemas.alerts import ALERT_PATTERNS

__all__ = (
    "AlertFiles",
    "OutputStats",
    "SeenDecision",
    "SeenFrame",
    "SeenRejection",
    "ShardFiles",
    "TruthFrame",
    "alert_truth_frames",
    "guid_key",
    "read_outputs",
    "shard_of",
    "truth_frames",
    "verify_shards",
)

_LENGTH = struct.Struct("<I")
_KINDS = ("order", "payment", "logistics")


class TruthFrame(msgspec.Struct):
    """Part of the plan's ground truth: per ticket its expected revisions; rejections; the
    alert shards of the tickets an expected alert counts."""

    decisions: dict[str, list[ExpectedDecision]]
    rejections: list[ExpectedRejection]
    kinds: dict[str, str]
    alert_shards: dict[str, list[int]] = {}


class SeenDecision(msgspec.Struct, array_like=True):
    """A decision read from release/divert, reduced to what the verifier compares."""

    ticket: str
    revision: int
    decision: str
    codes: list[str]
    missing: list[str]
    full_tax: bool
    first_seen: int = -1  # firstSeenAt, ms since the epoch (-1: unreadable)


class SeenRejection(msgspec.Struct, array_like=True):
    """A rejection read from rejected, reduced to what the verifier compares."""

    code: str | None
    doc_type: str | None
    guid: str | None


class SeenFrame(msgspec.Struct):
    """Outputs read in one batch that belong to one shard."""

    decisions: list[SeenDecision]
    rejections: list[SeenRejection]


def shard_of(text: str | None, shards: int) -> int:
    """The shard of a ticket id or a guid (None: the shard of the empty string)."""
    return zlib.crc32((text or "").encode()) % shards


def guid_key(guid: str | bytes) -> int:
    """A 64-bit key of a 36-character guid (its first 16 hex digits); 0 if it is not one."""
    digits = guid.encode() if isinstance(guid, str) else guid
    try:
        return max(0, int(digits[0:8] + digits[9:13] + digits[14:18], 16))
    except ValueError:
        return 0


class ShardFiles:
    """Append-only frame files ``<directory>/<name>-<shard>.bin``."""

    def __init__(self, directory: Path, name: str, shards: int) -> None:
        self.directory, self.name, self.shards = directory, name, shards
        self._files: dict[int, BinaryIO] = {}

    def path(self, shard: int) -> Path:
        """The file of one shard."""
        return self.directory / f"{self.name}-{shard}.bin"

    def write(self, shard: int, frame: bytes) -> None:
        """Append one frame to a shard's file."""
        out = self._files.get(shard)
        if out is None:
            out = self._files[shard] = self.path(shard).open("ab")
        out.write(_LENGTH.pack(len(frame)) + frame)

    def close(self) -> None:
        """Flush and close every file."""
        for out in self._files.values():
            out.close()
        self._files.clear()

    def frames(self, shard: int) -> Iterator[bytes]:
        """The frames of one shard, in the order written."""
        path = self.path(shard)
        if not path.exists():
            return
        data = path.read_bytes()
        at = 0
        while at < len(data):
            (size,) = _LENGTH.unpack_from(data, at)
            yield data[at + 4 : at + 4 + size]
            at += 4 + size


def truth_frames(plan: Plan, shards: int) -> list[tuple[int, bytes]]:
    """The plan's expected decisions and rejections as (shard, frame) to append to the files."""
    frames = [TruthFrame({}, [], {}) for _ in range(shards)]
    for ticket, revisions in plan.decisions.items():
        frame = frames[shard_of(ticket, shards)]
        frame.decisions[ticket] = revisions
        frame.kinds[ticket] = plan.kinds.get(ticket, "clean")
    for key, expected in plan.alerts.items():
        alert_shard = shard_of(key, shards)
        for counted in expected.tickets:
            frame = frames[shard_of(counted.ticket, shards)]
            held = frame.alert_shards.setdefault(counted.ticket, [])
            if alert_shard not in held:
                held.append(alert_shard)
    for rejection in plan.rejections:
        frames[shard_of(rejection.guid, shards)].rejections.append(rejection)
    encode = msgspec.msgpack.encode
    return [(i, encode(f)) for i, f in enumerate(frames) if f.decisions or f.rejections]


def alert_truth_frames(plan: Plan, shards: int) -> list[tuple[int, bytes]]:
    """The plan's expected alerts as (shard, frame) to append to the alert truth files."""
    frames: list[dict[str, ExpectedAlert]] = [{} for _ in range(shards)]
    for key, expected in plan.alerts.items():
        frames[shard_of(key, shards)][key] = expected
    encode = msgspec.msgpack.encode
    return [(i, encode(frame)) for i, frame in enumerate(frames) if frame]


class AlertFiles:
    """The alert shard files of a run in ``directory``: the truth, the alerts read, and the
    times of the tickets the truth names (written by :func:`verify_shards`)."""

    def __init__(self, directory: Path, shards: int) -> None:
        self.truth = ShardFiles(directory, "alert-truth", shards)
        self.seen = ShardFiles(directory, "alerts-seen", shards)
        self.times = ShardFiles(directory, "alert-times", shards)

    def close(self) -> None:
        """Flush and close every file."""
        for files in (self.truth, self.seen, self.times):
            files.close()


class OutputStats:
    """What the reader keeps beside the shard files (timestamps in ms since the epoch)."""

    def __init__(self) -> None:
        self.decision_ts = array("q")  # every decision
        self.first_ts = array("q")  # revision 1: a ticket decided for the first time
        self.complete_ts = array("q")  # decisions on a complete ticket...
        self.complete_keys = array("Q")  # ...and the guid keys of its three documents
        self.counts: Counter[str] = Counter()
        self.decision_bytes = 0
        self.read_seconds = 0.0

    @property
    def total(self) -> int:
        """Records read on the three output topics."""
        return sum(self.counts.values())

    def add_decision(self, value: dict[str, Any], timestamp: int, size: int) -> SeenDecision:
        """Keep a decision's timestamps; return its reduced form."""
        revision = value.get("revision")
        self.decision_ts.append(timestamp)
        self.decision_bytes += size
        if revision == 1:
            self.first_ts.append(timestamp)
        documents = value.get("documents") or {}
        guids = [g for kind in _KINDS if isinstance(g := documents.get(kind), str)]
        if len(guids) == len(_KINDS):
            self.complete_ts.append(timestamp)
            self.complete_keys.extend(guid_key(g) for g in guids)
        reasons = value.get("reasons") or []
        first_seen = parse_iso_ms(value.get("firstSeenAt"))
        return SeenDecision(
            str(value.get("ticketId")),
            revision if isinstance(revision, int) else -1,
            str(value.get("decision")),
            sorted({str(r.get("code")) for r in reasons if isinstance(r, dict)}),
            [str(kind) for kind in value.get("missing") or []],
            bool(value.get("fullTax")),
            -1 if first_seen is None else first_seen,
        )


async def read_outputs(
    brokers: str,
    topics: tuple[str, str, str],
    partitions: int,
    files: ShardFiles,
    *,
    expected: int,
    deadline: float,
    idle: float = 2.0,
    alert: str | None = None,
    alerts: ShardFiles | None = None,
) -> OutputStats:
    """Read release, divert and rejected (``topics`` of ``partitions`` partitions, committed
    records, from the beginning) into ``files``, and the ``alert`` topic, if given, into
    ``alerts`` (each alert a frame, as it came): until the end offsets seen at the start are
    reached, or ``expected`` records came and ``idle`` seconds passed without more, or
    ``deadline`` (monotonic) passed."""
    release, divert, rejected = topics
    read = topics if alert is None else (*topics, alert)
    stats = OutputStats()
    started = time.monotonic()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=brokers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for topic in read for p in range(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(assigned)
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=50_000)
            frames = [SeenFrame([], []) for _ in range(files.shards)]
            for tp, records in batch.items():
                stats.counts[tp.topic] += len(records)
                for record in records:
                    if tp.topic == alert:
                        value = _loads(record.value)
                    else:
                        value = orjson.loads(record.value)
                    if tp.topic == rejected:
                        guid, code, kind = (value.get(f) for f in ("guid", "code", "docType"))
                        seen = SeenRejection(_text(code), _text(kind), _text(guid))
                        frames[shard_of(guid, files.shards)].rejections.append(seen)
                    elif tp.topic in (release, divert):
                        size = len(record.value)
                        decision = stats.add_decision(value, record.timestamp, size)
                        frames[shard_of(decision.ticket, files.shards)].decisions.append(decision)
                    elif alerts is not None:
                        alerts.write(_alert_shard(value, alerts.shards), record.value)
            for shard, frame in enumerate(frames):
                if frame.decisions or frame.rejections:
                    files.write(shard, msgspec.msgpack.encode(frame))
            now = time.monotonic()
            if batch:
                quiet_since = now
            at_end = all(await _positions(consumer, ends))
            if at_end or (stats.total >= expected and now - quiet_since >= idle):
                break
    finally:
        await consumer.stop()
        files.close()
        if alerts is not None:
            alerts.close()
    stats.read_seconds = time.monotonic() - started
    return stats


def _loads(raw: bytes | None) -> dict[str, Any]:
    """An alert's JSON object; an unreadable one as ``{"unreadable": ...}`` (a mismatch)."""
    try:
        value = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        value = None
    return (
        value
        if isinstance(value, dict)
        else {"unreadable": (raw or b"")[:200].decode(errors="replace")}
    )


def _alert_shard(alert: dict[str, Any], shards: int) -> int:
    """The shard of an alert read: that of its pattern and key."""
    key = pattern_key(
        str(alert.get("pattern")), str(alert.get("keyKind")), str(alert.get("keyDigest"))
    )
    return shard_of(key, shards)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


async def _positions(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> list[bool]:
    return [await consumer.position(tp) >= end for tp, end in ends.items()]


def verify_shards(
    truth: ShardFiles,
    seen: ShardFiles,
    alerts: AlertFiles | None = None,
    alert_window: float | None = None,
) -> Report:
    """Verify shard by shard (same shard count) and add the reports up; with ``alerts``, the
    alerts too, one alert shard at a time (``alert_window``: the windows the run set, s)."""
    reports = []
    for shard in range(truth.shards):
        decisions: dict[str, list[ExpectedDecision]] = {}
        rejections: list[ExpectedRejection] = []
        kinds: dict[str, str] = {}
        alert_shards: dict[str, list[int]] = {}
        for raw in truth.frames(shard):
            frame = msgspec.msgpack.decode(raw, type=TruthFrame)
            decisions |= frame.decisions
            rejections += frame.rejections
            kinds |= frame.kinds
            alert_shards |= frame.alert_shards
        plan = Plan([], decisions, rejections, len(decisions), kinds, {})
        got: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        times: list[list[tuple[str, int]]] = [[] for _ in range(truth.shards)]
        for raw in seen.frames(shard):
            outputs = msgspec.msgpack.decode(raw, type=SeenFrame)
            for d in outputs.decisions:
                for alert_shard in alert_shards.get(d.ticket, ()):
                    times[alert_shard].append((d.ticket, d.first_seen))
            got.extend(
                {
                    "ticketId": d.ticket,
                    "revision": d.revision,
                    "decision": d.decision,
                    "reasons": [{"code": code} for code in d.codes],
                    "missing": d.missing,
                    "fullTax": d.full_tax,
                }
                for d in outputs.decisions
            )
            rejected.extend(
                {"code": r.code, "docType": r.doc_type, "guid": r.guid} for r in outputs.rejections
            )
        reports.append(verify(plan, got, rejected))
        if alerts is not None:
            for alert_shard, known in enumerate(times):
                if known:
                    alerts.times.write(alert_shard, msgspec.msgpack.encode(known))
    report = _add_up(reports)
    if alerts is None:
        return report
    alerts.times.close()
    check = _add_checks([_verify_alert_shard(alerts, s, alert_window) for s in range(truth.shards)])
    return msgspec.structs.replace(
        report,
        mismatches=report.mismatches + check.mismatches,
        alerts_checked=True,
        alert_keys_expected=check.keys_expected,
        alerts_seen=check.alerts_seen,
        alert_mismatches=len(check.mismatches),
        alerts_by_pattern=check.by_pattern,
    )


_decode_times = msgspec.msgpack.Decoder(list[tuple[str, int]]).decode


def _verify_alert_shard(files: AlertFiles, shard: int, window: float | None) -> AlertCheck:
    """Check one alert shard: its expected alerts, the alerts read, its tickets' times."""
    expected: dict[str, ExpectedAlert] = {}
    for raw in files.truth.frames(shard):
        expected |= msgspec.msgpack.decode(raw, type=dict[str, ExpectedAlert])
    times: dict[str, int] = {}
    for raw in files.times.frames(shard):
        for ticket, at in _decode_times(raw):
            if at >= 0:
                times[ticket] = min(at, times.get(ticket, at))
    seen = [_loads(raw) for raw in files.seen.frames(shard)]
    return verify_alerts(expected, seen, times, window=window)


def _add_checks(checks: list[AlertCheck]) -> AlertCheck:
    by_pattern: dict[str, Counter[str]] = {p: Counter() for p in ALERT_PATTERNS}
    for check in checks:
        for pattern, figures in check.by_pattern.items():
            by_pattern.setdefault(pattern, Counter()).update(figures)
    return AlertCheck(
        keys_expected=sum(c.keys_expected for c in checks),
        alerts_seen=sum(c.alerts_seen for c in checks),
        by_pattern={p: dict(figures) for p, figures in by_pattern.items()},
        mismatches=[line for check in checks for line in check.mismatches],
    )


def _add_up(reports: list[Report]) -> Report:
    def total(name: str) -> int:
        return sum(int(getattr(r, name)) for r in reports)

    diverted: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for report in reports:
        diverted.update(report.diverted_by_code)
        rejected.update(report.rejected_by_code)
    return Report(
        tickets_expected=total("tickets_expected"),
        tickets_decided=total("tickets_decided"),
        decisions_expected=total("decisions_expected"),
        decisions_seen=total("decisions_seen"),
        released=total("released"),
        diverted=total("diverted"),
        diverted_by_code=dict(sorted(diverted.items())),
        rejections_expected=total("rejections_expected"),
        rejections_seen=total("rejections_seen"),
        rejected_by_code=dict(sorted(rejected.items())),
        mismatches=[line for report in reports for line in report.mismatches],
    )
