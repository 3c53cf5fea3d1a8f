"""Lookups on any worker: the owner of the partition answers (docs/contract.md, "Lookup").

The Kafka Streams interactive-queries model: each worker's state holds only its own
partitions, so the worker asked finds which partition holds the answer (murmur2 of the
``orderNo`` or of the buyer id, as the pipeline places them) and

- owns it (it has restored it): reads its local **committed** state (:meth:`Store.committed`,
  never what a step in flight has staged) in a thread, off the event loop the engine runs on;
- else finds the owner in the workers' group description (each member's client id is
  ``sandan-worker {url}``, :data:`streams.metrics.WORKER_CLIENT_ID_PREFIX`; the description is
  cached ``MEMBERSHIP_TTL`` seconds) and forwards the GET there, with the header
  :data:`FORWARDED`: a forwarded lookup is answered locally or not at all, never forwarded
  again (one hop at most, so no loop while the group's view and the owners disagree);
- when no worker owns it (a rebalance, a restore), or the owner does not answer within
  ``FORWARD_TIMEOUT``: 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, urlsplit

import aiohttp
import msgspec
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from rocksdict import DbClosedError
from yarl import URL

from schemas.keys import murmur2_partition
from streams.kafka_security import librdkafka_security
from streams.ledger import BuyerLedger
from streams.lookup import (
    BadLookupError,
    mask_buyer,
    parse_buyer,
    parse_ticket_id,
    parse_year,
    quota_answer,
    ticket_answer,
)
from streams.metrics import worker_url
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.pipeline import SandanPipeline

__all__ = (
    "FORWARDED",
    "ErrorBody",
    "Lookups",
    "Owners",
    "OwnersUnavailableError",
    "Reply",
    "WorkerUnreachableError",
    "ask_worker",
    "lookup_path",
    "owners_of",
)

log = logging.getLogger(__name__)

FORWARDED = "X-Sandan-Forwarded"  # on a forwarded lookup: answer it here or not at all
MEMBERSHIP_TTL = 3.0  # seconds a group description is used for
DESCRIBE_TIMEOUT = 5.0
FORWARD_TIMEOUT = 5.0
RETRY_AFTER = 2  # seconds, in a 503's Retry-After
JSON = "application/json"

_decode_ledger = msgspec.msgpack.Decoder(BuyerLedger).decode
_encoder = msgspec.json.Encoder()
_CLIENT_LOG = logging.getLogger("librdkafka")


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Any answer that is not 200: a short phrase, what exactly is wrong, and for a 503 the
    seconds to wait (as ``Retry-After``)."""

    error: str
    detail: str
    retryAfter: int | None = None  # noqa: N815


class Reply(NamedTuple):
    """An HTTP answer: status, JSON body, extra headers."""

    status: int
    body: bytes
    headers: dict[str, str]


def _reply(status: int, body: msgspec.Struct) -> Reply:
    return Reply(status, _encoder.encode(body), {})


def _error(status: int, error: str, detail: str) -> Reply:
    if status == 503:  # noqa: PLR2004
        body = _encoder.encode(ErrorBody(error, detail, RETRY_AFTER))
        return Reply(status, body, {"Retry-After": str(RETRY_AFTER)})
    return _reply(status, ErrorBody(error, detail))


# -- the owners ---------------------------------------------------------------------------------


def owners_of(members: Iterable[tuple[str, Iterable[int]]]) -> dict[int, str]:
    """Partition -> URL of its owner, from (client id, partitions assigned) per member (the
    partition numbers are the same on every topic the workers consume)."""
    owners: dict[int, str] = {}
    for client_id, partitions in members:
        url = worker_url(client_id)
        if url is not None:
            for partition in partitions:
                owners.setdefault(partition, url)
    return owners


class OwnersUnavailableError(Exception):
    """The brokers did not describe the workers' group; the message says why."""


Describe = Callable[[], Awaitable[dict[int, str]]]


class Owners:
    """Which worker owns each partition, from the group's description, cached a few seconds
    (one description at a time, whatever the number of lookups waiting for it)."""

    def __init__(
        self,
        settings: Settings,
        *,
        ttl: float = MEMBERSHIP_TTL,
        describe: Describe | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.ttl = ttl
        self._describe = describe or self._describe_group
        self._clock = clock
        self._owners: dict[int, str] = {}
        self._at: float | None = None
        self._lock = asyncio.Lock()
        self._admin: AdminClient | None = None

    async def owner(self, partition: int) -> str | None:
        """The URL of the worker owning ``partition`` (None: no worker does, now); raise
        :class:`OwnersUnavailableError`."""
        async with self._lock:
            if self._at is None or self._clock() - self._at >= self.ttl:
                self._owners = await self._describe()
                self._at = self._clock()
            return self._owners.get(partition)

    def forget(self) -> None:
        """Describe the group again at the next lookup (an owner did not answer as one)."""
        self._at = None

    async def _describe_group(self) -> dict[int, str]:
        group = self.settings.topic("sandan")
        if self._admin is None:
            self._admin = AdminClient(
                {
                    **librdkafka_security(self.settings),
                    "bootstrap.servers": self.settings.brokers,
                    "client.id": "sandan-lookup",
                },
                logger=_CLIENT_LOG,
            )
        try:
            futures = self._admin.describe_consumer_groups(
                [group], request_timeout=DESCRIBE_TIMEOUT
            )
            description = await asyncio.wrap_future(futures[group])
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            reason = error.str() if isinstance(error, KafkaError) else str(exc)
            raise OwnersUnavailableError(
                f"the workers' group {group} was not described: {reason}"
            ) from None
        return owners_of((member.client_id, _partitions(member)) for member in description.members)


def _partitions(member: Any) -> set[int]:
    assignment = getattr(member.assignment, "topic_partitions", None) or ()
    return {tp.partition for tp in assignment}


# -- answering ----------------------------------------------------------------------------------


class Lookups:
    """Answers the lookup routes of one worker: locally for its own partitions, else through
    their owner (see the module's docstring)."""

    def __init__(
        self,
        settings: Settings,
        pipeline: SandanPipeline,
        session: Callable[[], aiohttp.ClientSession],
        *,
        owners: Owners | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``session``: the HTTP client to forward with (the app's: it closes it)."""
        self.settings = settings
        self.url = settings.advertised_url.rstrip("/")
        self.pipeline = pipeline
        self._session = session
        self.owners = owners or Owners(settings)
        self._clock = clock

    async def ticket(self, raw_id: str, path: str, *, forwarded: bool) -> Reply:
        """``GET /v1/tickets/{id}``; ``path``: the request's raw path and query, to forward."""
        try:
            ebp, order_no = parse_ticket_id(raw_id)
        except BadLookupError as exc:
            return _error(400, "bad request", str(exc))
        partition = murmur2_partition(order_no.encode(), self.settings.partitions)

        def read() -> Reply:
            group, read = self.pipeline.committed_group(partition, order_no)
            answer = ticket_answer(group, read, ebp, order_no, partition, self.url)
            if answer is None:
                detail = (
                    f"ticket {raw_id} is unknown: its partition ({partition}) neither holds it "
                    "nor remembers it as released"
                )
                return _error(404, "unknown", detail)
            return _reply(200, answer)

        return await self._answer(partition, path, forwarded, read)

    async def quota(self, raw_buyer: str, year: str | None, path: str, *, forwarded: bool) -> Reply:
        """``GET /v1/buyers/{id}/quota?year=YYYY``."""
        try:
            buyer = parse_buyer(raw_buyer)
            wanted = parse_year(year, int(self._clock() * 1000))
        except BadLookupError as exc:
            return _error(400, "bad request", str(exc))
        partition = murmur2_partition(buyer.encode(), self.settings.partitions)

        def read() -> Reply:
            stored = self.pipeline.ledger.committed(partition, buyer.encode())
            ledger = _decode_ledger(stored) if stored is not None else None
            limit = self.settings.annual_limit
            answer = quota_answer(ledger, buyer, wanted, limit, partition, self.url)
            if answer is None:
                detail = (
                    f"buyer {mask_buyer(buyer)} is unknown to the buyer ledger: no ticket of "
                    "theirs has reached it"
                )
                return _error(404, "unknown", detail)
            return _reply(200, answer)

        return await self._answer(partition, path, forwarded, read)

    async def _answer(
        self, partition: int, path: str, forwarded: bool, read: Callable[[], Reply]
    ) -> Reply:
        """Read locally if this worker owns ``partition``, else ask its owner."""
        if partition in self.pipeline.partitions:
            try:
                return await asyncio.to_thread(read)
            except (OSError, DbClosedError) as exc:  # a failing disk, the worker stopping
                log.warning("a lookup on partition %d failed: %s", partition, exc)
                return _error(503, "unavailable", "this worker cannot read its state now")
            except Exception:  # a bug: the traceback (masked) says where
                log.exception("a lookup on partition %d failed", partition)
                return _error(500, "internal error", "this worker failed to read its state")
        if forwarded:  # one hop at most: the sender's view of the group is older than ours
            detail = (
                f"partition {partition} is not owned by this worker now: the partitions are moving"
            )
            return _error(503, "unavailable", detail)
        try:
            owner = await self.owners.owner(partition)
        except OwnersUnavailableError as exc:
            return _error(503, "unavailable", str(exc))
        if owner is None:
            detail = f"no worker owns partition {partition} now: the workers are rebalancing"
            return _error(503, "unavailable", detail)
        if owner == self.url:  # assigned here, still restoring
            detail = f"partition {partition} is being restored on this worker"
            return _error(503, "unavailable", detail)
        return await self._forward(owner, partition, path)

    async def _forward(self, owner: str, partition: int, path: str) -> Reply:
        url = URL(owner + path, encoded=True)
        try:
            async with self._session().get(
                url,
                headers={FORWARDED: "1", "Accept": JSON},
                timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT),
                allow_redirects=False,
            ) as response:
                body = await response.read()
                status, content_type = response.status, response.content_type
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.owners.forget()
            log.warning(
                "the owner of partition %d at %s did not answer: %s",
                partition,
                owner,
                type(exc).__name__,
            )
            detail = f"the owner of partition {partition} ({owner}) did not answer"
            return _error(503, "unavailable", detail)
        if content_type != JSON:  # not sandan's lookup (an older worker during an upgrade?)
            self.owners.forget()
            detail = (
                f"the owner of partition {partition} ({owner}) answered {status} without a "
                "lookup answer"
            )
            return _error(502, "bad gateway", detail)
        if status == 503:  # noqa: PLR2004 - it no longer owns it, or restores it
            self.owners.forget()
        headers = {"Retry-After": retry_after} if retry_after else {}
        return Reply(status, body, headers)


# -- asking a worker (sandan inspect) -----------------------------------------------------------


class WorkerUnreachableError(Exception):
    """No answer from the worker; the message says where and why (never the lookup's path)."""


def lookup_path(ticket: str | None, buyer: str | None, year: str | None) -> str:
    """The path (and query) of a ticket's lookup, or of a buyer's quota."""
    if ticket is not None:
        return f"/v1/tickets/{quote(ticket, safe='')}"
    path = f"/v1/buyers/{quote(buyer or '', safe='')}/quota"
    return path + (f"?year={quote(year, safe='')}" if year is not None else "")


async def ask_worker(worker: str, path: str, seconds: float) -> tuple[int, bytes]:
    """GET ``path`` from the worker at ``worker``: its status and body; raise
    :class:`WorkerUnreachableError`."""
    parts = urlsplit(worker)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        msg = f"not a worker URL: {worker!r} (expected http://host:port)"
        raise WorkerUnreachableError(msg)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as session,
            session.get(URL(worker + path, encoded=True), headers={"Accept": JSON}) as response,
        ):
            return response.status, await response.read()
    except aiohttp.ClientConnectorError as exc:
        msg = f"cannot reach the worker at {worker}: {exc.os_error}"
        raise WorkerUnreachableError(msg) from None
    except aiohttp.ClientError as exc:  # its text may hold the path: the name only
        msg = f"cannot reach the worker at {worker}: {type(exc).__name__}"
        raise WorkerUnreachableError(msg) from None
    except TimeoutError:
        msg = f"cannot reach the worker at {worker}: no answer within {seconds:g} s"
        raise WorkerUnreachableError(msg) from None
