"""Field types of the customs documents: lengths, enumerations, amounts and timestamps.

Amounts (N19,5) are :class:`Amount`, a :class:`~decimal.Decimal` that msgspec cannot build by
itself: the JSON decoder hands the literal text of every string or number to :func:`dec_hook`,
which accepts only plain decimal notation with at most 14 integer and 5 fraction digits. So
``497.5`` and ``"497.50"`` decode exactly, while ``1e2``, ``-1``, ``0.123456`` and ``true`` are
refused with the field's path. No amount ever passes through a binary float.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

import msgspec

__all__ = (
    "C3",
    "C18",
    "C30",
    "C36",
    "C50",
    "C60",
    "C100",
    "C200",
    "C250",
    "C510",
    "Amount",
    "AppStatus",
    "AppType",
    "Currency",
    "IdType",
    "LineNumber",
    "OptC6",
    "OptC18",
    "OptC30",
    "OptC37",
    "OptC50",
    "OptC60",
    "OptC100",
    "OptC200",
    "OptC1000",
    "Timestamp",
    "dec_hook",
    "enc_hook",
    "is_real_timestamp",
    "parse_timestamp",
)

# ASCII digits only: ``\d`` would also take full-width and other Unicode digits (U+FF10...).
AMOUNT_TEXT = re.compile(r"[0-9]{1,14}(?:\.[0-9]{1,5})?")
TIMESTAMP_TEXT = r"^[0-9]{14}$"


class Amount(Decimal):
    """A non-negative decimal amount with at most 14 integer and 5 fraction digits."""

    __slots__ = ()


# The standard's string types: ``Cn`` is exactly n characters, ``C..n`` at most n. Required
# fields must not be empty; optional ones (``Opt*``) may be empty or absent.
C3 = Annotated[str, msgspec.Meta(min_length=3, max_length=3)]
C36 = Annotated[str, msgspec.Meta(min_length=36, max_length=36)]
C18 = Annotated[str, msgspec.Meta(min_length=1, max_length=18)]
C30 = Annotated[str, msgspec.Meta(min_length=1, max_length=30)]
C50 = Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
C60 = Annotated[str, msgspec.Meta(min_length=1, max_length=60)]
C100 = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
C200 = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
C250 = Annotated[str, msgspec.Meta(min_length=1, max_length=250)]
C510 = Annotated[str, msgspec.Meta(min_length=1, max_length=510)]
OptC6 = Annotated[str, msgspec.Meta(max_length=6, pattern=r"^(?:.{6})?$")]  # C6: "" or 6 chars
OptC18 = Annotated[str, msgspec.Meta(max_length=18)]
OptC30 = Annotated[str, msgspec.Meta(max_length=30)]
OptC37 = Annotated[str, msgspec.Meta(max_length=37)]
OptC50 = Annotated[str, msgspec.Meta(max_length=50)]
OptC60 = Annotated[str, msgspec.Meta(max_length=60)]
OptC100 = Annotated[str, msgspec.Meta(max_length=100)]
OptC200 = Annotated[str, msgspec.Meta(max_length=200)]
OptC1000 = Annotated[str, msgspec.Meta(max_length=1000)]
LineNumber = Annotated[int, msgspec.Meta(ge=1, le=99)]

AppType = Literal["1", "2", "3"]
AppStatus = Literal["1", "2"]
Currency = Literal["142"]
IdType = Literal["1"]
Timestamp = Annotated[
    str, msgspec.Meta(pattern=TIMESTAMP_TEXT, description="YYYYMMDDhhmmss, China time")
]


def parse_timestamp(text: str) -> datetime:
    """Parse a ``YYYYMMDDhhmmss`` timestamp (naive, China time); ValueError if not a real time."""
    return datetime.strptime(text, "%Y%m%d%H%M%S")  # noqa: DTZ007 - the standard's local time


def is_real_timestamp(text: str) -> bool:
    """Whether a 14-digit ``YYYYMMDDhhmmss`` names a real time (fast: dates are cached)."""
    if len(text) != 14:  # noqa: PLR2004 - the pattern's `$` lets a trailing newline through
        return False
    hour, minute, second = text[8:10], text[10:12], text[12:14]
    return _is_real_date(text[:8]) and hour < "24" and minute < "60" and second < "60"


@lru_cache(maxsize=8192)
def _is_real_date(yyyymmdd: str) -> bool:
    try:
        date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return True


def dec_hook(type_: type, value: object) -> object:
    """Build the custom field types msgspec does not know (decoding)."""
    if type_ is Amount:
        if isinstance(value, bool) or not isinstance(value, str | int):
            msg = f"expected a decimal amount as a string or number, got {type(value).__name__}"
            raise TypeError(msg)
        return _amount(str(value))
    msg = f"no decoder for {type_!r}"
    raise NotImplementedError(msg)


@lru_cache(maxsize=65_536)
def _amount(text: str) -> Amount:
    """The amount a text holds (amounts repeat a lot: prices, freight, "0.00")."""
    if AMOUNT_TEXT.fullmatch(text) is None:
        msg = (
            f"expected a non-negative decimal amount in plain notation with at most "
            f"14 integer and 5 fraction digits (N19,5), got {text!r}"
        )
        raise ValueError(msg)
    return Amount(text)


def enc_hook(value: object) -> object:
    """Encode the custom field types (amounts become decimal strings)."""
    if isinstance(value, Decimal):
        return str(value)
    msg = f"cannot encode {type(value).__name__}"
    raise NotImplementedError(msg)
