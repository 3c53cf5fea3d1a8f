"""INVALID_BUYER_ID: the resident ID check (length, digits, birth date, MOD 11-2 check char)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matchers.identity import (
    CHECK_CHARS,
    WEIGHTS,
    check_buyer_id,
    check_resident_id,
    resident_id_check_char,
)
from tests import factories

ON = date(2026, 11, 24)  # the day of the example order's appTime
CLEAN = "440305198012262283"  # the example buyer
ENDS_IN_X = "11010520000229003X"


def _valid(region: str, born: str, sequence: str) -> str:
    first17 = region + born + sequence
    return first17 + resident_id_check_char(first17)


def _mod_11_2_holds(number: str) -> bool:
    """Independent oracle: ISO 7064 MOD 11-2 weights 2**17 ... 2**0; the total is 1 mod 11."""
    values = [10 if char == "X" else int(char) for char in number]
    return sum(value * pow(2, 17 - i, 11) for i, value in enumerate(values)) % 11 == 1


# Examples


@pytest.mark.parametrize("number", [CLEAN, ENDS_IN_X, "11010519491231002X"])
def test_valid_numbers(number: str) -> None:
    assert check_resident_id(number, ON) is None


def test_check_char_of_the_example() -> None:
    assert resident_id_check_char(CLEAN[:17]) == "3"
    assert resident_id_check_char(ENDS_IN_X[:17]) == "X"


@pytest.mark.parametrize(
    "first17", ["4403051980122622", "4403051980122622\uff18", "44030519801226228 "]
)
def test_check_char_needs_17_ascii_digits(first17: str) -> None:
    with pytest.raises(ValueError, match="17 ASCII digits"):
        resident_id_check_char(first17)


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        (ENDS_IN_X[:17] + "x", "upper-case X"),
        ("440305801226228", "15 characters"),  # the legacy 15-digit number
        (CLEAN + "0", "19 characters"),
        ("", "0 characters"),
        (CLEAN[:16] + "A3", "ASCII digits"),
        ("\uff14" + CLEAN[1:], "ASCII digits"),  # a full-width digit
        (CLEAN[:17] + "4", "check character is wrong"),
        (CLEAN[:17] + "X", "check character is wrong"),
        (_valid("440305", "19990229", "123"), "not a calendar date"),  # not a leap year
        (_valid("440305", "19000229", "123"), "not a calendar date"),  # 1900 was not either
        (_valid("440305", "19801301", "123"), "not a calendar date"),
        (_valid("440305", "00000101", "123"), "not a calendar date"),
        (_valid("440305", "18991231", "123"), "before 1900-01-01"),
        (_valid("440305", "20261125", "123"), "after 2026-11-24"),
    ],
)
def test_invalid_numbers(number: str, problem: str) -> None:
    description = check_resident_id(number, ON)
    assert description is not None
    assert problem in description
    if number:
        assert number not in description


@pytest.mark.parametrize("born", ["19000101", "20000229", "20261124"])
def test_birth_date_bounds_are_inclusive(born: str) -> None:
    assert check_resident_id(_valid("440305", born, "123"), ON) is None


def test_clean_order_has_a_valid_buyer() -> None:
    assert check_buyer_id(factories.order()) == []


def test_invalid_buyer_id_reason_keeps_the_number_out_of_the_detail() -> None:
    number = ENDS_IN_X[:17] + "x"
    [reason] = check_buyer_id(factories.order(buyerIdNumber=number))
    assert reason.code == "INVALID_BUYER_ID"
    assert "upper-case X" in reason.detail
    assert number not in reason.detail
    assert reason.fields == {"buyerIdNumber": [number, None]}


def test_reference_day_is_the_order_app_time() -> None:
    born_today = _valid("440305", "20261124", "123")
    assert check_buyer_id(factories.order(buyerIdNumber=born_today)) == []
    earlier = factories.order(buyerIdNumber=born_today, appTime="20261123235959")
    [reason] = check_buyer_id(earlier)
    assert "after 2026-11-23" in reason.detail


# Properties

seventeen_digits = st.text(alphabet="0123456789", min_size=17, max_size=17)
valid_numbers = st.builds(
    lambda region, born, sequence: _valid(region, born.strftime("%Y%m%d"), sequence),
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.dates(min_value=date(1900, 1, 1), max_value=ON),
    st.text(alphabet="0123456789", min_size=3, max_size=3),
)


@settings(database=None)
@given(seventeen_digits)
def test_check_char_is_the_weighted_sum(first17: str) -> None:
    char = resident_id_check_char(first17)
    assert char == CHECK_CHARS[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]
    assert _mod_11_2_holds(first17 + char)


@settings(database=None)
@given(valid_numbers)
def test_check_char_makes_a_valid_id(number: str) -> None:
    assert check_resident_id(number, ON) is None


@settings(database=None)
@given(valid_numbers, st.integers(0, 17), st.integers(1, 9))
def test_any_single_digit_change_is_caught(number: str, position: int, shift: int) -> None:
    old = number[position]
    new = str((int(old) + shift) % 10) if old != "X" else str(shift)
    changed = number[:position] + new + number[position + 1 :]
    assert check_resident_id(changed, ON) is not None
