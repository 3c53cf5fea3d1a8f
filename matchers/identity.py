"""Resident identity number rule: ``INVALID_BUYER_ID``.

An 18-character PRC resident ID (GB 11643-1999) is valid when:

- its first 17 characters are ASCII digits: region (1-6), birth date ``YYYYMMDD`` (7-14),
  sequence (15-17);
- the birth date is a real calendar date from 1900-01-01 to the reference day, inclusive;
- its last character is the ISO 7064 MOD 11-2 check character: the sum of the digits times
  :data:`WEIGHTS`, modulo 11, indexes :data:`CHECK_CHARS`. Only an upper-case ``X`` is accepted.

The reference day of an order is the calendar day of its ``appTime`` (China time). Descriptions
and details never contain the number itself (they may be logged); the reason's ``fields`` do.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

from schemas.documents import Order
from schemas.fields import parse_timestamp
from schemas.outputs import Reason

__all__ = (
    "CHECK_CHARS",
    "EARLIEST_BIRTH",
    "WEIGHTS",
    "check_buyer_id",
    "check_resident_id",
    "resident_id_check_char",
)

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
EARLIEST_BIRTH = date(1900, 1, 1)
_ID_LENGTH = 18


def _check_char(digits: str) -> str:
    # The weights are 2**17 ... 2**1 modulo 11, so the weighted sum is 2 * sum(d * 2**(16 - i)).
    # Read as a base-13 number the digits give sum(d * 13**(16 - i)), and 13 = 2 (mod 11): one
    # C-level int() replaces a 17-step loop. The caller has checked the digits are ASCII 0-9.
    return CHECK_CHARS[2 * int(digits, 13) % 11]


def resident_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character (``0``-``9`` or ``X``) of 17 ASCII digits."""
    if len(first17) != _ID_LENGTH - 1 or not (first17.isascii() and first17.isdigit()):
        msg = "expected exactly 17 ASCII digits"
        raise ValueError(msg)
    return _check_char(first17)


def check_resident_id(number: str, on: date) -> str | None:
    """None if ``number`` is a valid resident ID on day ``on``, else what is wrong with it."""
    if len(number) != _ID_LENGTH:
        return f"has {len(number)} characters, expected 18"
    first17 = number[:17]
    if not (first17.isascii() and first17.isdigit()):
        return "the first 17 characters are not all ASCII digits"
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return "the birth date (characters 7-14) is not a calendar date"
    if born < EARLIEST_BIRTH:
        return "the birth date is before 1900-01-01"
    if born > on:
        return f"the birth date is after {on.isoformat()}"
    expected = _check_char(first17)
    last = number[17]
    if last == expected:
        return None
    if last == "x" and expected == "X":
        return "the check character must be an upper-case X"
    return "the check character is wrong (ISO 7064 MOD 11-2)"


@lru_cache(maxsize=256)
def _day(yyyymmdd: str) -> date:
    # Tickets of one day share the day: parse it once, not once per ticket.
    return parse_timestamp(yyyymmdd + "000000").date()


def check_buyer_id(order: Order) -> list[Reason]:
    """``INVALID_BUYER_ID`` unless buyerIdNumber is valid on the day of the order's appTime."""
    number = order.buyerIdNumber
    problem = check_resident_id(number, _day(order.appTime[:8]))
    if problem is None:
        return []
    return [
        Reason(
            "INVALID_BUYER_ID",
            f"buyerIdNumber is not a valid resident ID: {problem}",
            {"buyerIdNumber": [number, None]},
        )
    ]
