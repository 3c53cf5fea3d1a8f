"""``sandan review``: put one reviewer's action on ``cbec.review`` and wait for its result.

The review is produced (idempotent, ``acks=all``) keyed by the ticket's ``orderNo`` to the
ticket's partition, as the worker places tickets (``schemas.keys.murmur2_partition``); its
result comes on the same partition of ``cbec.review-result``, which is read (read_committed)
from where it ended just before the review was produced, until the record with the review's
id, or until ``wait`` runs out (the review then stands on the topic: its result comes when a
worker applies it). No consumer group is joined.
"""

from __future__ import annotations

import time
import uuid

import msgspec
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from schemas.codec import encode_json
from schemas.keys import murmur2_partition
from schemas.reviews import Review, ReviewResult, decode_review
from streams.kafka_security import librdkafka_security
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("new_review", "submit_review")

_decode_result = msgspec.json.Decoder(ReviewResult).decode
_POLL = 0.2  # seconds


def new_review(
    ticket_id: str,
    revision: int,
    action: str,
    reviewer: str,
    note: str,
    review_id: str | None = None,
    max_bytes: int = 64 * 1024,
) -> Review:
    """The review as the worker will read it (raise ``SchemaError`` naming the bad field);
    a fresh uuid4 when no ``review_id`` is given."""
    fields = {
        "reviewId": review_id or str(uuid.uuid4()),
        "ticketId": ticket_id,
        "revision": revision,
        "action": action,
        "reviewer": reviewer,
        "note": note,
    }
    return decode_review(msgspec.json.encode(fields), max_bytes)


def submit_review(settings: Settings, review: Review, wait: float) -> ReviewResult | None:
    """Produce ``review`` and return its result, or None if none came within ``wait`` s.

    Raises ``KafkaException`` when the brokers refuse or cannot take it."""
    topics = Topics(settings)
    partition = murmur2_partition(review.order_no.encode(), settings.partitions)
    security = librdkafka_security(settings)
    consumer = Consumer(
        {
            **security,
            "bootstrap.servers": settings.brokers,
            "group.id": "sandan-review",  # never joined nor committed: the partition is assigned
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        where = TopicPartition(topics.review_result, partition)
        _, end = consumer.get_watermark_offsets(where, timeout=max(wait, 10.0))
        consumer.assign([TopicPartition(topics.review_result, partition, end)])
        _produce(settings, security, topics.review, partition, review)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            for message in consumer.consume(100, _POLL):
                if message.error():
                    raise KafkaException(message.error())
                result = _decode_result(message.value() or b"{}")
                if result.reviewId == review.reviewId:
                    return result
        return None
    finally:
        consumer.close()


def _produce(
    settings: Settings, security: dict[str, str], topic: str, partition: int, review: Review
) -> None:
    producer = Producer(
        {
            **security,
            "bootstrap.servers": settings.brokers,
            "enable.idempotence": True,
            "acks": "all",
        }
    )
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    producer.produce(
        topic,
        encode_json(review),
        key=review.order_no.encode(),
        partition=partition,
        on_delivery=delivered,
    )
    left = producer.flush(30.0)
    if left or failures:
        msg = failures[0] if failures else "the brokers did not acknowledge the review in 30 s"
        raise KafkaException(msg)
