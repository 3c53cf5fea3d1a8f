"""The load-test plan and its ground truth: what to send when, and what sandan must answer.

A :class:`Plan` is pure data: the records to produce (each with its send time in seconds from the
start of the run), and the outcomes docs/contract.md requires for them: per ticket, one
:class:`ExpectedDecision` per revision; per rejected record, one :class:`ExpectedRejection`.
:class:`FaultMix` says how often each fault kind is planned; see loadtest.generator for what each
kind sends and expects.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = (
    "DEFAULT_MIX",
    "DocKind",
    "ExpectedDecision",
    "ExpectedRejection",
    "FaultMix",
    "Plan",
    "PlannedRecord",
)

DocKind = Literal["order", "payment", "logistics"]


class PlannedRecord(msgspec.Struct, frozen=True):
    """One record to produce: at ``at`` seconds from the start, to the topic of ``doc_type``.

    ``ticket_id`` is the ticket the record belongs to in the ground truth, or None when it belongs
    to no decided ticket (undecodable garbage, a draft or a change of an unknown ticket on its own).
    """

    at: float
    doc_type: DocKind
    key: bytes | None
    value: bytes
    ticket_id: str | None


class ExpectedDecision(msgspec.Struct, frozen=True):
    """The decision sandan must make on one ticket revision.

    ``codes`` are the distinct reason codes, sorted (empty for RELEASE); ``missing`` the missing
    document kinds, sorted. ``full_tax`` is the ``fullTax`` flag a RELEASE must carry.
    """

    ticket_id: str
    revision: int
    decision: Literal["RELEASE", "DIVERT"]
    codes: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    full_tax: bool = False


class ExpectedRejection(msgspec.Struct, frozen=True):
    """A record sandan must reject on ``cbec.rejected``; ``guid`` None where it cannot be read."""

    code: str
    doc_type: DocKind
    guid: str | None


class Plan(msgspec.Struct):
    """Records sorted by ``at``; decisions by ticket id, revisions ascending; rejections.

    ``tickets`` is the number of tickets that must be decided (``len(decisions)``): a fault may
    involve several tickets (annual limit: 2, ambiguous waybill: 3) or none (a lone garbage record).
    ``kinds`` names the fault kind behind each decided ticket ("clean" for none); ``faults`` counts
    the planned slots per kind.
    """

    records: list[PlannedRecord]
    decisions: dict[str, list[ExpectedDecision]]
    rejections: list[ExpectedRejection]
    tickets: int
    kinds: dict[str, str] = {}
    faults: dict[str, int] = {}


class FaultMix(msgspec.Struct, frozen=True, kw_only=True):
    """Probability per planned ticket of each fault kind; the rest (``1 - total``) is clean."""

    amount_mismatch: float = 0.0
    order_arithmetic: float = 0.0
    line_total: float = 0.0
    payer_mismatch: float = 0.0
    payment_reference: float = 0.0
    consignee_mismatch: float = 0.0
    invalid_buyer_id: float = 0.0
    single_limit: float = 0.0
    full_tax: float = 0.0
    annual_limit: float = 0.0
    multiple: float = 0.0
    missing_document: float = 0.0
    late_document: float = 0.0
    duplicate: float = 0.0
    redelivery: float = 0.0
    stale_change: float = 0.0
    change_after_divert: float = 0.0
    change_after_release: float = 0.0
    unknown_document: float = 0.0
    draft: float = 0.0
    schema: float = 0.0
    ambiguous_waybill: float = 0.0

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            if not 0.0 <= getattr(self, name) <= 1.0:
                msg = f"FaultMix.{name} must be a probability in [0, 1]"
                raise ValueError(msg)
        if self.total > 1.0 + 1e-9:
            msg = f"FaultMix probabilities sum to {self.total:.6f}, more than 1"
            raise ValueError(msg)

    @property
    def total(self) -> float:
        """The probability that a planned ticket carries a fault."""
        return float(sum(getattr(self, name) for name in self.__struct_fields__))

    def items(self) -> list[tuple[str, float]]:
        """(kind, probability) in declaration order."""
        return [(name, getattr(self, name)) for name in self.__struct_fields__]

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        """The fault kinds' names."""
        return cls.__struct_fields__

    @classmethod
    def even(cls, share: float = 0.6) -> FaultMix:
        """Every kind equally likely, faults taking ``share`` of the tickets: for correctness runs."""
        each = share / len(cls.__struct_fields__)
        return cls(**dict.fromkeys(cls.__struct_fields__, each))


# ~97 % clean; faults skewed as domain.md §6 suggests: late or missing documents first, then
# consignee formatting, amounts and redeliveries/duplicates/stale versions.
DEFAULT_MIX = FaultMix(
    missing_document=0.006,
    late_document=0.004,
    consignee_mismatch=0.004,
    amount_mismatch=0.003,
    redelivery=0.003,
    duplicate=0.002,
    stale_change=0.001,
    schema=0.001,
    payer_mismatch=0.001,
    payment_reference=0.0005,
    order_arithmetic=0.0005,
    line_total=0.0003,
    invalid_buyer_id=0.0005,
    single_limit=0.0005,
    full_tax=0.0005,
    annual_limit=0.0002,
    multiple=0.0002,
    change_after_divert=0.0005,
    change_after_release=0.0005,
    unknown_document=0.0003,
    draft=0.0005,
    ambiguous_waybill=0.0001,
)
