"""Pattern alerts on ``cbec.alert`` (docs/contract.md, "Alerts"): the record, its patterns,
and how a key is normalised before distinct values are counted.

Three patterns, each over decided tickets, each on its own key:

- ``ID_MANY_CONSIGNEES``: one ``buyerIdNumber`` shipping to more than N distinct consignees or
  consignee addresses within a window (someone's ID used by others);
- ``ADDRESS_MANY_IDS``: one consignee address, or one consignee telephone, receiving for more
  than M distinct buyer IDs within a window (a drop point collecting IDs);
- ``SPLIT_ORDERS``: one buyer's orders (any platforms) to the same consignee within T, each
  within the single limit and together above it (one purchase split under the limit).

Text is compared normalised (:func:`normalised`): Unicode NFKC (full-width letters, digits and
the ideographic space become their half-width forms), every whitespace removed, case folded.
A telephone keeps its digits only, without a leading ``86`` country code.
"""

from __future__ import annotations

import unicodedata
from decimal import Decimal
from typing import Literal, get_args

import msgspec

__all__ = (
    "ALERT_PATTERNS",
    "KEY_KINDS",
    "Alert",
    "AlertPattern",
    "KeyKind",
    "normalised",
    "normalised_telephone",
)

AlertPattern = Literal["ID_MANY_CONSIGNEES", "ADDRESS_MANY_IDS", "SPLIT_ORDERS"]
ALERT_PATTERNS: tuple[AlertPattern, ...] = get_args(AlertPattern)
# The document field an alert's key is the (normalised) value of.
KeyKind = Literal["buyerIdNumber", "consigneeAddress", "consigneeTelephone"]
KEY_KINDS: tuple[KeyKind, ...] = get_args(KeyKind)

_MOBILE_WITH_COUNTRY = 13  # 86 and an 11-digit mobile number


def normalised(text: str) -> str:
    """``text`` as patterns compare it: NFKC, no whitespace, case folded."""
    return "".join(unicodedata.normalize("NFKC", text).split()).casefold()


def normalised_telephone(text: str) -> str:
    """A telephone as patterns compare it: its digits (after NFKC) without a leading ``86``
    country code; ``+86 138-0013-8000`` and ``13800138000`` are one number."""
    digits = "".join(c for c in unicodedata.normalize("NFKC", text) if c.isascii() and c.isdigit())
    if len(digits) == _MOBILE_WITH_COUNTRY and digits.startswith("86"):
        return digits[2:]
    return digits


class Alert(msgspec.Struct, kw_only=True, gc=False):
    """One alert on ``cbec.alert`` (key: ``keyDigest``). One per pattern and key per window:
    the evidence of two alerts of one pattern and key never overlaps in time."""

    alertId: str  # noqa: N815 - "{pattern}:{keyDigest}:{window start, ms}": the same alert, the same id
    pattern: AlertPattern
    keyKind: KeyKind  # noqa: N815
    key: str  # masked, as lookups mask the field
    keyDigest: str  # noqa: N815 - hex: the same normalised key, the same digest
    windowSeconds: float  # noqa: N815 - the pattern's window
    windowStart: str  # noqa: N815 - ISO-8601 UTC, ms: the earliest evidence ticket's time
    windowEnd: str  # noqa: N815 - the latest evidence ticket's time
    threshold: int  # more than this many distinct values; SPLIT_ORDERS: 1 (more than one order)
    count: int  # distinct values (the larger of consignees and addresses); SPLIT_ORDERS: orders
    limit: Decimal | None  # SPLIT_ORDERS: the single limit the total is above; else None
    total: Decimal | None  # SPLIT_ORDERS: the orders' dutiable values added; else None
    tickets: list[str]  # the evidence: ticket ids, by time
    raisedAt: str  # noqa: N815 - ISO-8601 UTC, ms
