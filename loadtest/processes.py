"""The load test's subprocesses: sandan workers, waiting for them to own the partitions, and
stopping a process within a bound.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streams.settings import Settings
from streams.topics import create_topics

__all__ = ("RunError", "Worker", "free_port", "fresh_deployment", "stop", "tail", "wait_ready")


class RunError(Exception):
    """The run could not be carried out (not a verification failure)."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 just now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(process: subprocess.Popen[bytes] | None, grace: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file (empty if there is none)."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def fresh_deployment(
    tag: str, brokers: str, partitions: int, window: str, replication_factor: int = 1
) -> dict[str, str]:
    """The ``SANDAN_*`` settings of a deployment under a new topic prefix, its topics created."""
    env = {
        "SANDAN_BROKERS": brokers,
        "SANDAN_TOPIC_PREFIX": f"{tag}-{uuid.uuid4().hex[:8]}.",
        "SANDAN_PARTITIONS": str(partitions),
        "SANDAN_WINDOW": window,
    }
    if replication_factor != 1:
        env["SANDAN_REPLICATION_FACTOR"] = str(replication_factor)
    asyncio.run(create_topics(Settings.from_env(env)))
    return env


class Worker:
    """One ``python -m streams worker`` subprocess."""

    def __init__(self, name: str, env: dict[str, str], data: Path, out: Path) -> None:
        self.name, self.port, self.log = name, free_port(), out / f"{name}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
        data.mkdir(parents=True, exist_ok=True)
        env = base | env | {"SANDAN_DATA_DIR": str(data), "SANDAN_WEB_PORT": str(self.port)}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "worker", "-l", "warning"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _get(self, path: str, timeout: float) -> bytes | None:
        """The body of the worker's ``GET path``, or None if it does not answer."""
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                body: bytes = answer.read()
                return body
        except OSError:
            return None

    def status(self) -> dict[str, Any] | None:
        """The worker's /status, or None if it does not answer."""
        body = self._get("/status", 2)
        try:
            status: dict[str, Any] | None = None if body is None else json.loads(body)
        except ValueError:
            return None
        return status

    def transactions(self) -> tuple[float, float] | None:
        """The worker's committed transactions so far and their total time in seconds (its
        /metrics), or None if it does not answer."""
        body = self._get("/metrics", 5)
        if body is None:
            return None
        count = seconds = 0.0
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "sandan_transactions_total":
                    count += sample.value if sample.labels.get("result") == "committed" else 0
                elif sample.name == "sandan_transaction_duration_seconds_sum":
                    seconds = sample.value
        return count, seconds

    def check(self) -> None:
        """Raise RunError if the worker has exited."""
        if self.process.poll() is not None:
            msg = f"{self.name} exited with {self.process.returncode}:\n{tail(self.log)}"
            raise RunError(msg)


async def wait_ready(workers: list[Worker], partitions: int, limit: float) -> None:
    """Until the workers together own every partition once, each of them some."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        owned: list[list[int]] = []
        for worker in workers:
            worker.check()
            status = await asyncio.to_thread(worker.status)
            if status and status.get("ready") and status.get("partitions"):
                owned.append(status["partitions"])
        every = sorted(p for mine in owned for p in mine)
        if len(owned) == len(workers) and every == list(range(partitions)):
            return
        await asyncio.sleep(0.5)
    msg = f"the workers did not own the {partitions} partitions within {limit:g}s"
    raise RunError(msg)
