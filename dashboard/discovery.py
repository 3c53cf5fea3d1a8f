"""Finding the workers: the brokers describe their consumer group.

Every worker's consumer joins the group ``{prefix}sandan`` with the client id
``sandan-worker {url}`` (:data:`streams.metrics.WORKER_CLIENT_ID_PREFIX`, then the URL of its
web server, ``SANDAN_ADVERTISED_URL``). So one ``describe_consumer_groups`` gives each worker,
its URL and the partitions it owns, and ``describe_cluster`` the brokers, with the same
security settings as the workers' clients (:func:`streams.kafka_security.librdkafka_security`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from dashboard.models import GroupView, Member
from streams.kafka_security import librdkafka_security
from streams.metrics import worker_url
from streams.settings import Settings

if TYPE_CHECKING:  # confluent_kafka.admin imports them without exporting them
    from confluent_kafka.admin._cluster import DescribeClusterResult
    from confluent_kafka.admin._group import ConsumerGroupDescription

__all__ = ("Discovery", "group_view")

log = logging.getLogger(__name__)

_CLIENT_LOG = logging.getLogger("librdkafka")
_ERROR_EVERY = 30.0  # seconds between two log lines of the same client error


def group_view(
    description: ConsumerGroupDescription, cluster: DescribeClusterResult | None
) -> GroupView:
    """The described group (and cluster) as plain values."""
    members = tuple(
        Member(
            member_id=member.member_id,
            client_id=member.client_id,
            host=member.host.lstrip("/"),
            url=worker_url(member.client_id),
            partitions=tuple(sorted({tp.partition for tp in _partitions(member.assignment)})),
        )
        for member in description.members
    )
    brokers: tuple[str, ...] = ()
    controller = None
    if cluster is not None:
        brokers = tuple(f"{n.host}:{n.port} (id {n.id})" for n in sorted(cluster.nodes, key=_id))
        if cluster.controller is not None:
            controller = f"{cluster.controller.host}:{cluster.controller.port}"
    state = description.state
    return GroupView(
        ok=True,
        state=getattr(state, "name", str(state)),
        members=members,
        brokers=brokers,
        controller=controller,
    )


def _id(node: Any) -> int:
    return int(node.id)


def _partitions(assignment: Any) -> Iterable[Any]:
    return getattr(assignment, "topic_partitions", None) or ()


class Discovery:
    """Describes the group and the cluster each round, through one admin client."""

    def __init__(self, settings: Settings, timeout: float) -> None:
        self.group = settings.topic("sandan")
        self.timeout = timeout
        self._errors_logged: dict[int, float] = {}
        self._admin = AdminClient(
            {
                **librdkafka_security(settings),
                "bootstrap.servers": settings.brokers,
                "client.id": "sandan-dashboard",
            },
            error_cb=self._client_error,
            logger=_CLIENT_LOG,
        )

    async def describe(self) -> GroupView:
        """The group and the cluster now; ``ok`` False with the reason if the brokers do not
        answer within the timeout."""
        try:
            groups = self._admin.describe_consumer_groups(
                [self.group], request_timeout=self.timeout
            )
            cluster_future = self._admin.describe_cluster(request_timeout=self.timeout)
            description, cluster = await asyncio.gather(
                asyncio.wrap_future(groups[self.group]), asyncio.wrap_future(cluster_future)
            )
        except KafkaException as exc:
            return GroupView(ok=False, error=_describe_error(exc))
        return group_view(description, cluster)

    def _client_error(self, error: KafkaError) -> None:
        """librdkafka's own errors (it retries by itself): each kind once per 30 s."""
        now, code = time.monotonic(), error.code()
        if now - self._errors_logged.get(code, -_ERROR_EVERY) >= _ERROR_EVERY:
            self._errors_logged[code] = now
            log.warning("Kafka client: %s", error.str())


def _describe_error(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    if isinstance(error, KafkaError):
        return str(error.str())
    return str(exc) or type(exc).__name__
