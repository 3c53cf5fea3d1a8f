"""The stages wired together for the engine: intake, then the ticket and ledger stages."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from aiokafka import ConsumerRecord

from schemas.codec import encode_json
from schemas.outputs import Rejection, Source
from streams.engine import Output
from streams.intake import Incoming, validate
from streams.settings import Settings
from streams.topics import Topics

__all__ = ("SandanPipeline",)


class SandanPipeline:
    """Routes each consumed record to its stage and collects what they emit."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topics = Topics(settings)
        self.counts: Counter[str] = Counter()

    def process(self, records: Sequence[ConsumerRecord[bytes, bytes]], now_ms: int) -> list[Output]:
        outputs: list[Output] = []
        doc_type_of = self.topics.doc_type_of
        max_bytes = self.settings.max_document_bytes
        for record in records:
            doc_type = doc_type_of.get(record.topic)
            if doc_type is None:
                continue
            incoming = Incoming(
                doc_type,
                record.key,
                record.value,
                Source(record.topic, record.partition, record.offset, record.timestamp),
            )
            result = validate(incoming, max_bytes)
            self.counts[f"in.{doc_type}"] += 1
            if isinstance(result, Rejection):
                outputs.append(self._rejected(incoming, result))
        return outputs

    def _rejected(self, incoming: Incoming, rejection: Rejection) -> Output:
        self.counts[f"rejected.{rejection.code}"] += 1
        return Output(self.topics.rejected, incoming.key, encode_json(rejection))

    def tick(self, now_ms: int) -> list[Output]:
        return []

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    async def assign(self, partitions: set[int]) -> None:
        pass

    async def revoke(self, partitions: set[int]) -> None:
        pass
