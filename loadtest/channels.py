"""How planned records reach sandan: as JSON or as CEB XML messages, straight to Kafka or through
the HTTP gateway, each on its planned schedule (open loop).

A record that does not decode as its document (a planned ``SCHEMA`` fault) always goes to Kafka
as it is: the gateway would refuse it with a 400 and sandan would never see it. Records taking
the XML path to Kafka are gathered per topic for ``XML_GATHER`` seconds into one message of up
to 100 nodes, as a firm batching its declarations does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from enum import Enum
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from loadtest.driver import MAX_REQUEST_BYTES
from loadtest.truth import Plan, PlannedRecord
from schemas.ceb_xml import MAX_NODES, encode_message
from schemas.codec import decode_document
from schemas.documents import Document
from schemas.errors import SchemaError

__all__ = ("COP_CODE", "Channel", "SendCounts", "plan_codes", "send_plan")

COP_CODE = "3301980DMO"  # the BaseTransfer/copCode of the XML messages the demo sends
XML_GATHER = 0.2
GATEWAY_ROUTES = {"order": "/v1/orders", "payment": "/v1/payments", "logistics": "/v1/waybills"}
RETRIES = 20


class Channel(Enum):
    KAFKA_JSON = "kafka json"
    KAFKA_XML = "kafka xml"
    GATEWAY_JSON = "gateway json"
    GATEWAY_XML = "gateway xml"


SendCounts = dict[str, int]


def plan_codes(plan: Plan) -> set[str]:
    """Every enterprise code the plan's documents name: what a key needs to send them all."""
    codes = {COP_CODE}
    for record in plan.records:
        document = _document(record)
        if document is not None:
            for name in ("ebpCode", "ebcCode", "payCode", "logisticsCode"):
                value = getattr(document, name, None)
                if value:
                    codes.add(value)
    return codes


def _document(record: PlannedRecord) -> Document | None:
    try:
        return decode_document(record.doc_type, record.value)
    except SchemaError:
        return None


def _channel(index: int, document: Document | None, channels: tuple[Channel, ...]) -> Channel:
    if document is None:
        return Channel.KAFKA_JSON
    return channels[index % len(channels)]


async def send_plan(
    brokers: str,
    prefix: str,
    plan: Plan,
    channels: Iterable[Channel],
    *,
    gateway: str | None = None,
    api_key: str | None = None,
) -> SendCounts:
    """Send every record at its time by one of ``channels`` (in turn, record by record); return
    how many documents went each way."""
    chosen = tuple(channels)
    producer = AIOKafkaProducer(
        bootstrap_servers=brokers, linger_ms=5, max_request_size=MAX_REQUEST_BYTES
    )
    await producer.start()
    session = (
        aiohttp.ClientSession(base_url=gateway, headers={"Authorization": f"Bearer {api_key}"})
        if gateway
        else None
    )
    counts: SendCounts = {channel.value: 0 for channel in chosen}
    counts.setdefault(Channel.KAFKA_JSON.value, 0)
    xml_pending: dict[str, list[Document]] = {}
    tasks: list[asyncio.Future[Any]] = []
    started = time.monotonic()
    last_gather = started
    try:
        for index, record in enumerate(plan.records):
            delay = record.at - (time.monotonic() - started)
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() - last_gather >= XML_GATHER:
                tasks += await _flush_xml(producer, prefix, xml_pending)
                last_gather = time.monotonic()
            document = _document(record)
            channel = _channel(index, document, chosen)
            counts[channel.value] += 1
            topic = f"{prefix}{record.doc_type}"
            if channel is Channel.KAFKA_JSON:
                tasks.append(await producer.send(topic, record.value, key=record.key))
            elif channel is Channel.KAFKA_XML:
                assert document is not None  # noqa: S101 - only documents take this path
                xml_pending.setdefault(record.doc_type, []).append(document)
                if len(xml_pending[record.doc_type]) >= MAX_NODES:
                    tasks += await _flush_xml(producer, prefix, xml_pending)
            else:
                assert session is not None and document is not None  # noqa: S101
                xml = channel is Channel.GATEWAY_XML
                body = (
                    encode_message(record.doc_type, [document], cop_code=COP_CODE)
                    if xml
                    else record.value
                )
                path = "/v1/messages" if xml else GATEWAY_ROUTES[record.doc_type]
                tasks.append(asyncio.ensure_future(_post(session, path, body, xml=xml)))
        tasks += await _flush_xml(producer, prefix, xml_pending)
        await asyncio.gather(*tasks)
    finally:
        await producer.stop()
        if session is not None:
            await session.close()
    return counts


async def _flush_xml(
    producer: AIOKafkaProducer, prefix: str, pending: dict[str, list[Document]]
) -> list[asyncio.Future[Any]]:
    futures = []
    for kind, documents in pending.items():
        if documents:
            message = encode_message(kind, documents, cop_code=COP_CODE)  # type: ignore[arg-type]
            key = documents[0].orderNo.encode()
            futures.append(await producer.send(f"{prefix}{kind}", message, key=key))
    pending.clear()
    return futures


async def _post(session: aiohttp.ClientSession, path: str, body: bytes, *, xml: bool) -> None:
    """POST until accepted (202), waiting out 503s as their Retry-After says (bounded)."""
    content_type = "application/xml" if xml else "application/json"
    for _ in range(RETRIES):
        async with session.post(path, data=body, headers={"Content-Type": content_type}) as answer:
            if answer.status == 202:  # noqa: PLR2004
                return
            if answer.status != 503:  # noqa: PLR2004
                text = await answer.text()
                msg = f"the gateway answered {answer.status} to POST {path}: {text[:500]}"
                raise RuntimeError(msg)
            await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
    msg = f"the gateway kept answering 503 to POST {path}"
    raise RuntimeError(msg)
