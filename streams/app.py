"""The faust app: the worker's frame (lifecycle, signals, logging, web views) around the engine.

faust's per-event agents and tables cannot carry sandan's load (measured: an agent per event
with a faust table ran 50,000 to 90,000 tickets/min at 100 % of a core, ~600 to 900 us of CPU a
ticket, almost all of it the framework's; and ``stream.take()`` cannot write a table), so the
processing runs in batches in :class:`streams.engine.Engine`, started here as a faust service;
faust gives it the worker process, its web server and the CLI plumbing.

The web server answers ``GET /status`` (JSON, for people and tests) and ``GET /metrics`` (the
Prometheus text format, streams/metrics.py); the service keeps the metrics of the process
across the engines it starts. It also answers the lookups ``GET /v1/tickets/{id}`` and
``GET /v1/buyers/{id}/quota``, for any ticket or buyer: from this worker's committed state, or
through the partition's owner (streams/owners.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from typing import Any

import faust
from faust.app.base import BootStrategy
from mode import Service

from streams.engine import Engine
from streams.metrics import CONTENT_TYPE, WorkerMetrics
from streams.owners import FORWARDED, JSON, Lookups
from streams.pipeline import SandanPipeline
from streams.settings import Settings
from streams.store import DataDirError

__all__ = ("EXIT_DATA_DIR", "EXIT_ENGINE_FAILED", "EngineService", "create_app", "data_dir_stop")

log = logging.getLogger(__name__)

EXIT_ENGINE_FAILED = 70  # EX_SOFTWARE: a supervisor restarts the worker
# EX_IOERR: the data dir cannot take the local state (full, read-only, not permitted); a
# restart works once it can.
EXIT_DATA_DIR = 74
MAX_FAILURES_IN_A_ROW = 5


def data_dir_stop(settings: Settings, error: DataDirError) -> str:
    """The one line that says why the worker stops on its data dir, and what to do."""
    return (
        f"data dir {settings.data_dir.absolute()}: {error.strerror} ({error.name}: "
        f"{error.detail}); stopping with exit code {EXIT_DATA_DIR}: start the worker again "
        "once the data dir can be written, it restores its state from the changelogs"
    )


class EngineService(Service):
    """Runs the engine for the lifetime of the faust worker."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settings = settings
        self.metrics = WorkerMetrics(settings)
        self.pipeline = SandanPipeline(settings, self.metrics.steps)
        self.engine = Engine(settings, self.pipeline, self.metrics.steps)

    async def on_start(self) -> None:
        # aiokafka logs every record it sends at DEBUG: never build those log records.
        aiokafka_log = logging.getLogger("aiokafka")
        aiokafka_log.setLevel(max(aiokafka_log.getEffectiveLevel(), logging.INFO))
        await self.engine.start()
        # The state is outside the heap and the documents are untracked: what remains for the
        # collector are the start-up objects (frozen here) and short-lived batch garbage.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        self.add_future(self._run())

    async def _run(self) -> None:
        """Run the engine; after a failure (a fenced or failed transaction, a fatal client
        error) start a new one in this process: the failed step was rolled back, the new
        clients resume from the committed offsets and restore what the local state lacks.
        ``MAX_FAILURES_IN_A_ROW`` failures with no batch committed between them is not a
        passing fault: the worker stops, saying so, rather than loop.

        A data dir that cannot take the state (:class:`DataDirError`: full, read-only...) is
        not a passing fault either, and no new engine mends it: the worker stops at once, in
        one line. Nothing is pending then: the failed step's transaction was aborted, or it
        committed before the local write failed, and a restart restores that from the
        changelog."""
        failures = 0
        while True:
            committed = self.engine.batches
            try:
                await self.engine.run()
                return
            except DataDirError as exc:
                log.critical("%s", data_dir_stop(self.settings, exc))
                os._exit(EXIT_DATA_DIR)
            except Exception:
                failures = 1 if self.engine.batches > committed else failures + 1
                log.exception("the engine failed (%d in a row); starting it again", failures)
            await self._discard_engine()
            if failures >= MAX_FAILURES_IN_A_ROW:
                log.critical(
                    "the engine failed %d times in a row without committing a batch; "
                    "stopping instead of looping (see the errors above)",
                    failures,
                )
                os._exit(EXIT_ENGINE_FAILED)
            await asyncio.sleep(min(2.0**failures, 30.0))
            self.engine = Engine(self.settings, self.pipeline, self.metrics.steps)
            try:
                await self.engine.start()
            except Exception:
                log.exception("the engine did not start again; exiting for a restart")
                os._exit(EXIT_ENGINE_FAILED)

    async def _discard_engine(self) -> None:
        with contextlib.suppress(Exception):
            await self.engine.stop()
        await self.pipeline.revoke(set(self.pipeline.partitions))

    async def on_stop(self) -> None:
        await self.engine.stop()
        self.pipeline.close()


class _EngineBoot(BootStrategy):
    """faust starts no Kafka clients of its own: the engine owns all Kafka I/O (a faust
    consumer group would also make a restarted worker wait out its dead predecessor)."""

    enable_kafka = False


class _App(faust.App):
    BootStrategy = _EngineBoot


def create_app(settings: Settings) -> faust.App:
    """The faust app with the engine service and the status and metrics views."""
    app = _App(
        settings.topic("sandan-frame"),
        broker=[f"kafka://{address}" for address in settings.brokers.split(",")],
        datadir=str(settings.data_dir / "faust"),
        web_host="127.0.0.1",
        web_port=settings.web_port,
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
    )
    service = EngineService(settings, loop=None)
    app.service(service)  # type: ignore[arg-type]  # an instance works too (faust starts it)

    @app.page("/status")
    async def status(web: Any, request: Any) -> Any:
        return web.json(
            {
                "ready": bool(service.engine.assignment),
                "partitions": sorted(service.engine.assignment),
                "batches": service.engine.batches,
                "records": service.engine.records,
                "counts": dict(service.pipeline.counts),
                "order": service.engine.order_status(),
            }
        )

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(service.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    # The app's HTTP client forwards lookups to their owners (the app closes it when it stops).
    lookups = Lookups(settings, service.pipeline, lambda: app.http_client)

    @app.page("/v1/tickets/{ticket_id}")
    async def ticket(web: Any, request: Any, ticket_id: str) -> Any:
        forwarded = FORWARDED in request.headers
        reply = await lookups.ticket(ticket_id, request.raw_path, forwarded=forwarded)
        return web.bytes(reply.body, content_type=JSON, status=reply.status, headers=reply.headers)

    @app.page("/v1/buyers/{buyer_id}/quota")
    async def quota(web: Any, request: Any, buyer_id: str) -> Any:
        forwarded = FORWARDED in request.headers
        year = request.query.get("year")
        reply = await lookups.quota(buyer_id, year, request.raw_path, forwarded=forwarded)
        return web.bytes(reply.body, content_type=JSON, status=reply.status, headers=reply.headers)

    return app
