"""``sandan audit --ticket ID``: a ticket's whole history from the output topics alone.

What the output topics say about one ticket, for as long as they keep it: each document
stored (``120`` receipts), returned (``100`` receipts) and rejected (``cbec.rejected``), each
decision with its revision, reasons and the rules that made it (``cbec.release``,
``cbec.divert``), each concluded notice (``399`` receipts), each review's result
(``cbec.review-result``) and each pattern alert the ticket is evidence of (``cbec.alert``), in
the order they happened. No state store, no worker: an auditor needs only read access to the
output topics.

How the records are found: every partition of the output topics is read, read_committed, from
its start to the end it had when the audit began. A record is decoded only when its bytes hold
the ticket's id (decisions, receipts, review results: ``ticketId``; alerts: ``tickets``) or, for
rejections, which
carry no ticket id, its order number (kept when the rejection names that order and, if it
names one, the same platform). Personal data is masked in what is printed
(:func:`streams.logmask.mask`).

:func:`history` is pure: records in, events out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from xml.sax.saxutils import escape

import msgspec
from confluent_kafka import Consumer, KafkaException, TopicPartition

from schemas.keys import split_ticket_id
from schemas.receipts import CONTENT_TYPE_XML, decode_receipt
from streams.kafka_security import librdkafka_security
from streams.logmask import mask
from streams.records import Record, consumed
from streams.settings import Settings
from streams.timefmt import iso_ms
from streams.topics import MAX_MESSAGE_BYTES, Topics

__all__ = ("Event", "history", "read_ticket_records", "render_json", "render_text")

QUIET_SECONDS = 2.0  # nothing came this long while records before the end remain: markers only
_CHINA = timedelta(hours=8)
# Within a millisecond: what came in before what it led to.
_ORDER = {
    "stored": 0,
    "returned": 1,
    "rejected": 1,
    "decided": 2,
    "concluded": 3,
    "reviewed": 4,
    "alerted": 5,
}


class Event(NamedTuple):
    """One thing that happened to the ticket."""

    at: str  # ISO-8601 UTC, ms
    kind: str  # stored, returned, rejected, decided, concluded, reviewed, alerted
    fields: dict[str, Any]
    source: str  # topic/partition/offset of the record that says so


def needles(ticket: str) -> tuple[bytes, ...]:
    """Byte strings one of which a record about the ticket holds (JSON- or XML-escaped)."""
    _, order_no = split_ticket_id(ticket)
    forms = {ticket, order_no}
    encoded = {json.dumps(text, ensure_ascii=False)[1:-1] for text in forms}
    encoded |= {escape(text) for text in forms}
    return tuple(sorted(text.encode() for text in encoded))


def history(ticket: str, topics: Topics, records: Iterable[Record]) -> list[Event]:
    """The ticket's events, oldest first, from records of the output topics."""
    ebp, order_no = split_ticket_id(ticket)
    events: list[Event] = []
    for record in records:
        if record.value is None:
            continue
        source = f"{record.topic}/{record.partition}/{record.offset}"
        if record.topic in (topics.release, topics.divert):
            value = json.loads(record.value)
            if value.get("ticketId") == ticket:
                events.append(Event(value["decidedAt"], "decided", _decision(value), source))
        elif record.topic == topics.rejected:
            value = json.loads(record.value)
            if value.get("orderNo") == order_no and value.get("ebpCode") in (None, ebp):
                at = iso_ms(value["source"]["timestamp"])
                events.append(Event(at, "rejected", _rejection(value), source))
        elif record.topic == topics.receipt:
            xml = CONTENT_TYPE_XML in record.headers
            receipt = msgspec.to_builtins(decode_receipt(record.value, xml=xml))
            if receipt.get("ticketId") == ticket:
                kind = {"120": "stored", "100": "returned", "399": "concluded"}
                receipt["to"] = record.key.decode() if record.key else None
                receipt["format"] = "xml" if xml else "json"
                at = _utc(receipt["returnTime"])
                events.append(Event(at, kind[receipt["returnStatus"]], receipt, source))
        elif record.topic == topics.review_result:
            value = json.loads(record.value)
            if value.get("ticketId") == ticket:
                events.append(Event(value["at"], "reviewed", _review(value), source))
        elif record.topic == topics.alert:
            value = json.loads(record.value)
            if ticket in value.get("tickets", ()):
                events.append(Event(value["raisedAt"], "alerted", _alert(value), source))
    events.sort(key=lambda e: (e.at, _ORDER[e.kind], e.source))
    return events


def _decision(value: dict[str, Any]) -> dict[str, Any]:
    kept = ("decision", "revision", "documents", "dutiableValue", "fullTax", "missing")
    fields = {name: value[name] for name in kept if name in value}
    fields["reasons"] = [reason["code"] for reason in value.get("reasons", ())]
    fields["decidedBy"] = value.get("decidedBy")
    review = ("reviewId", "reviewAction", "reviewedBy", "reviewNote")
    fields |= {name: value[name] for name in review if name in value}
    return fields


def _review(value: dict[str, Any]) -> dict[str, Any]:
    kept = ("reviewId", "action", "reviewer", "revision", "result", "code", "detail")
    return {name: value[name] for name in (*kept, "decision", "decisionRevision")}


def _alert(value: dict[str, Any]) -> dict[str, Any]:
    kept = ("alertId", "pattern", "keyKind", "key", "windowStart", "windowEnd", "count", "total")
    return {name: value[name] for name in kept} | {"tickets": len(value["tickets"])}


def _rejection(value: dict[str, Any]) -> dict[str, Any]:
    kept = ("code", "detail", "docType", "guid", "node", "messageGuid", "source")
    return {name: value[name] for name in kept if value.get(name) is not None}


def _utc(return_time: str) -> str:
    """A receipt's ``returnTime`` (China time, ``YYYYMMDDhhmmssSSS``) as ISO-8601 UTC."""
    moment = datetime.strptime(return_time[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC) - _CHINA
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{return_time[14:17]}Z"


def render_json(ticket: str, events: list[Event]) -> str:
    """The history as one JSON document, personal data masked."""
    body = {"ticketId": ticket, "events": [event._asdict() for event in events]}
    return mask(json.dumps(body, ensure_ascii=False, indent=2))


def render_text(ticket: str, events: list[Event]) -> str:
    """The history as lines for a person, personal data masked."""
    if not events:
        return f"ticket {ticket}: nothing on the output topics (never seen, or no longer kept)"
    lines = [f"ticket {ticket}: {len(events)} events"]
    lines += [f"{e.at}  {e.kind:<9}  {_describe(e)}  [{e.source}]" for e in events]
    return mask("\n".join(lines))


def _describe(event: Event) -> str:
    f = event.fields
    if event.kind == "decided":
        rules = f.get("decidedBy") or {}
        text = f"{f['decision']} revision {f['revision']}"
        if f["reasons"]:
            text += ": " + ", ".join(f["reasons"])
        if f.get("missing"):
            text += f" (missing {', '.join(f['missing'])})"
        guids = ", ".join(f"{k} {v}" for k, v in f["documents"].items() if v)
        text = (
            f"{text}; documents {guids}; rules {rules.get('rulesVersion')} (window "
            f"{rules.get('windowSeconds')} s, limits {rules.get('singleLimit')} / "
            f"{rules.get('annualLimit')} CNY)"
        )
        if "reviewAction" in f:
            text += (
                f"; by review {f['reviewId']}: {f['reviewAction']} by {f['reviewedBy']}: "
                f"{f['reviewNote']}"
            )
        return text
    if event.kind == "reviewed":
        text = f"{f['action']} of revision {f['revision']} by {f['reviewer']} ({f['reviewId']}): "
        if f["code"]:
            return text + f"REFUSED {f['code']}: {f['detail']}"
        return text + f"APPLIED: {f['decision']} revision {f['decisionRevision']}"
    if event.kind == "rejected":
        return f"{f.get('docType')} {f.get('guid')} {f['code']}: {f['detail']}"
    if event.kind == "alerted":
        total = f" totalling {f['total']} CNY" if f["total"] is not None else ""
        return (
            f"{f['pattern']} on {f['keyKind']} {f['key']}: {f['count']}{total} in "
            f"{f['windowStart']} .. {f['windowEnd']}, one of {f['tickets']} tickets "
            f"({f['alertId']})"
        )
    text = f"{f['docType']} {f.get('guid')} -> {f['to']} ({f['format']})"
    if event.kind == "returned":
        return f"{text} {f.get('code')}: {f['returnInfo']}"
    if event.kind == "concluded":
        return f"{text} {f.get('decision')} revision {f.get('revision')}"
    return text


def read_ticket_records(settings: Settings, ticket: str, timeout: float = 60.0) -> list[Record]:
    """The records of the output topics that may be about ``ticket`` (see the module doc).

    Raises TimeoutError when the topics could not be read to their ends within ``timeout``."""
    topics = Topics(settings)
    wanted = needles(ticket)
    consumer = Consumer(
        {
            **librdkafka_security(settings),
            "bootstrap.servers": settings.brokers,
            "group.id": "sandan-audit",  # never joined nor committed: partitions are assigned
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "max.partition.fetch.bytes": MAX_MESSAGE_BYTES,
        }
    )
    found: list[Record] = []
    try:
        ends = _ends(consumer, topics.outputs, timeout)
        consumer.assign([TopicPartition(t, p, 0) for (t, p), end in ends.items() if end > 0])
        todo = {tp for tp, end in ends.items() if end > 0}
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while todo:
            if time.monotonic() > deadline:
                msg = f"could not read the output topics to their ends in {timeout:g} s"
                raise TimeoutError(msg)
            messages = consumer.consume(10_000, 0.2)
            for message in messages:
                if message.error():
                    raise KafkaException(message.error())
                tp: Any = (message.topic(), message.partition())
                offset = message.offset()
                if offset is not None and offset + 1 >= ends.get(tp, 0):
                    todo.discard(tp)
                value = message.value()
                if value is not None and any(needle in value for needle in wanted):
                    found.append(consumed(message))
            if messages:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > QUIET_SECONDS:
                break  # what is left before the ends are transaction markers or aborted
    finally:
        consumer.close()
    return found


def _ends(consumer: Consumer, names: Iterable[str], timeout: float) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of the topics, now."""
    metadata = consumer.list_topics(timeout=timeout)
    ends = {}
    for name in names:
        topic = metadata.topics.get(name)
        if topic is None or topic.error is not None:
            msg = f"topic {name} does not exist (run `sandan topics`)"
            raise LookupError(msg)
        for partition in topic.partitions:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(name, partition), timeout=timeout
            )
            ends[(name, partition)] = high
    return ends
