"""create_topics (streams.topics): every topic with the partitions and the replication factor of
the settings, on an admin client that records what it is asked (no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams import topics as topics_module
from streams.settings import Settings
from streams.topics import Topics, create_topics


class RecordingAdmin:
    """Stands in for AIOKafkaAdminClient: no topic exists; creations are recorded."""

    created: list[Any]

    def __init__(self, **_: Any) -> None:
        RecordingAdmin.created = []

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def list_topics(self) -> list[str]:
        return []

    async def create_topics(self, new: list[Any]) -> None:
        RecordingAdmin.created.extend(new)


@pytest.mark.parametrize(
    ("environ", "replicas"), [({}, 1), ({"SANDAN_REPLICATION_FACTOR": "3"}, 3)]
)
def test_every_topic_gets_the_replication_factor_of_the_settings(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], replicas: int
) -> None:
    monkeypatch.setattr(topics_module, "AIOKafkaAdminClient", RecordingAdmin)
    settings = Settings.from_env({"SANDAN_PARTITIONS": "4", **environ})
    created = asyncio.run(create_topics(settings))
    assert sorted(created) == sorted(Topics(settings).all())
    assert [(t.name, t.num_partitions, t.replication_factor) for t in RecordingAdmin.created] == [
        (name, 4, replicas) for name in Topics(settings).all()
    ]
