"""The topics sandan reads, writes and owns, and their creation.

Input and output topics are the contract's (``cbec.review`` is an input too, applied as it
comes: a review names the revision it acts on, so it needs no arrival order); internal topics
carry the prefix too:

    {prefix}sandan-repartition   documents whose producer key does not lead to their ticket's
                                 partition, re-keyed by orderNo
    {prefix}sandan-ledger        clean tickets keyed by buyerIdNumber, for the buyer ledger
    {prefix}sandan-outcomes      the ledger's outcome, back to the ticket's partition
    {prefix}sandan-alerts        decided tickets keyed by each alert key (streams/alerts.py)
    {prefix}sandan-tickets-changelog, {prefix}sandan-ledger-changelog,
    {prefix}sandan-alerts-changelog
                                 compacted changelogs: the truth behind the local RocksDB state

All of them have the same partition count, so partition ``p`` of every topic belongs to the
worker that owns partition ``p`` (range assignment).
"""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.documents import DOC_TYPES, DocType
from streams.kafka_security import aiokafka_security
from streams.settings import Settings

__all__ = ("Topics", "create_topics")

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class Topics:
    """The full topic names for one prefix."""

    def __init__(self, settings: Settings) -> None:
        t = settings.topic
        self.order, self.payment, self.logistics = t("order"), t("payment"), t("logistics")
        self.release, self.divert, self.rejected = t("release"), t("divert"), t("rejected")
        self.receipt = t("receipt")
        self.review, self.review_result = t("review"), t("review-result")
        self.alert = t("alert")
        self.repartition = t("sandan-repartition")
        self.ledger = t("sandan-ledger")
        self.outcomes = t("sandan-outcomes")
        self.tickets_changelog = t("sandan-tickets-changelog")
        self.ledger_changelog = t("sandan-ledger-changelog")
        self.alerts = t("sandan-alerts")
        self.alerts_changelog = t("sandan-alerts-changelog")
        self.inputs = (self.order, self.payment, self.logistics)
        self.doc_type_of: dict[str, DocType] = dict(zip(self.inputs, DOC_TYPES, strict=True))
        self.outputs = (
            self.release,
            self.divert,
            self.rejected,
            self.receipt,
            self.review_result,
            self.alert,
        )
        self.internal = (self.repartition, self.ledger, self.outcomes, self.alerts)
        self.changelogs = (self.tickets_changelog, self.ledger_changelog, self.alerts_changelog)
        self.consumed = (*self.inputs, self.review, *self.internal)

    def all(self) -> tuple[str, ...]:
        return (*self.inputs, self.review, *self.outputs, *self.internal, *self.changelogs)


async def create_topics(settings: Settings) -> list[str]:
    """Create every topic that does not exist yet; return the names created."""
    topics = Topics(settings)
    big = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    compacted = {**big, "cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
    # A document arrives when the broker appends it: its sender's clock (or a producer that
    # held it through an outage) cannot move a ticket's window.
    arrivals = {**big, "message.timestamp.type": "LogAppendTime"}
    configs = {name: arrivals for name in topics.inputs} | dict.fromkeys(
        topics.changelogs, compacted
    )
    wanted = [
        NewTopic(
            name,
            settings.partitions,
            settings.replication_factor,
            topic_configs=configs.get(name, big),
        )
        for name in topics.all()
    ]
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.brokers,
        request_timeout_ms=30000,
        **aiokafka_security(settings),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic for topic in wanted if topic.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was faster
                await admin.create_topics(missing)
        return [topic.name for topic in missing]
    finally:
        await admin.close()
