"""Fixtures on a real Kafka broker that the test session starts (on free ports) and stops.

A broker that cannot start is a failure, never a skip.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.settings import Settings
from streams.topics import create_topics
from tests.integration.kafka import Worker, run, running_broker, unique_prefix

PARTITIONS = 4


@pytest.fixture(scope="session")
def brokers() -> Iterator[str]:
    with running_broker() as address:
        yield address


class Deployment:
    """One isolated sandan deployment: its own topic prefix, settings and workers."""

    def __init__(self, brokers: str, tmp: Path, **settings: str) -> None:
        self.brokers = brokers
        self.tmp = tmp
        self.env_settings = {
            "SANDAN_BROKERS": brokers,
            "SANDAN_TOPIC_PREFIX": unique_prefix(),
            "SANDAN_PARTITIONS": str(PARTITIONS),
            **settings,
        }
        self.settings = Settings.from_env(self.env_settings)
        run(create_topics(self.settings))
        self.workers: list[Worker] = []

    def topic(self, name: str) -> str:
        return self.settings.topic(name)

    def worker(self, name: str = "w1", **settings: str) -> Worker:
        """A new worker process (same data dir for the same name, so restarts keep state),
        with ``settings`` on top of the deployment's."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDAN_")}
        env.update(self.env_settings)
        env.update(settings)
        env["SANDAN_DATA_DIR"] = str(self.tmp / f"data-{name}")
        worker = Worker(env=env, log_path=self.tmp / f"{name}.log")
        self.workers.append(worker)
        return worker.start()

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def deploy(brokers: str, tmp_path: Path) -> Iterator[Callable[..., Deployment]]:
    deployments: list[Deployment] = []

    def factory(**settings: str) -> Deployment:
        deployment = Deployment(brokers, tmp_path, **settings)
        deployments.append(deployment)
        return deployment

    yield factory
    for deployment in deployments:
        deployment.stop()
