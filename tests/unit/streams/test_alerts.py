"""The alert stage (streams/alerts.py), pure: each pattern exactly at its threshold and one
over, the window's edges, out-of-order arrival, one alert per window, replays, new revisions,
lateness, expiry and the cap; the keys' normalisation."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from schemas.alerts import Alert, normalised, normalised_telephone
from streams.alerts import (
    MAX_ORDERS,
    MAX_VALUES,
    AlertRules,
    KeyState,
    alert_keys,
    apply_expiry,
    apply_sighting,
    next_expiry,
)
from streams.records import Sighting

T0 = 1_795_490_400_000  # 2026-11-24T03:20:00.000Z
MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
RULES = AlertRules(
    consignees=3,
    consignees_window_ms=7 * DAY,
    buyers=5,
    buyers_window_ms=7 * DAY,
    split_window_ms=HOUR,
    single_limit=Decimal(5000),
    lateness_ms=DAY,
)
BUYER = "110101199003071234"
ADDRESS = "北京市东城区景山前街4号"
PHONE = "13800138000"


def sighting(n: int, at: int, **values: object) -> Sighting:
    fields: dict[str, object] = {
        "buyer": BUYER,
        "consignee": "张三",
        "address": ADDRESS,
        "telephone": PHONE,
        "dutiable": Decimal(100),
    }
    fields.update(values)
    return Sighting(ticket=f"EBP:SO{n:04d}", at=at, **fields)  # type: ignore[arg-type]


def key_of(kind: str, s: Sighting) -> bytes:
    return dict(alert_keys(s))[kind]  # type: ignore[index]


def feed(kind: str, sightings: list[Sighting], rules: AlertRules = RULES) -> list[Alert]:
    """Apply ``sightings`` in order to one key of ``kind``; every alert raised."""
    state: KeyState | None = None
    alerts: list[Alert] = []
    for s in sightings:
        step = apply_sighting(rules, state, kind, key_of(kind, s), s, 0, T0 + 10 * DAY)
        state = step.state
        alerts += step.alerts
    return alerts


# -- normalisation and keys ------------------------------------------------------------------


def test_text_is_compared_without_width_whitespace_or_case() -> None:
    assert (
        normalised("北京市 东城区\u3000景山前街\uff14号 \uff21座") == "北京市东城区景山前街4号a座"
    )
    assert normalised_telephone("+86 138-0013-8000") == "13800138000"
    assert (
        normalised_telephone("\uff11\uff13\uff18\uff10\uff10\uff11\uff13\uff18\uff10\uff10\uff10")
        == "13800138000"
    )
    assert normalised_telephone("010-12345678") == "01012345678"


def test_a_sighting_has_a_key_per_kind_and_none_for_an_empty_value() -> None:
    keys = alert_keys(sighting(1, T0))
    assert [kind for kind, _ in keys] == ["buyerIdNumber", "consigneeAddress", "consigneeTelephone"]
    assert [key[:1] for _, key in keys] == [b"i", b"a", b"t"]
    assert all(len(key) == 17 for _, key in keys)
    same = alert_keys(
        sighting(2, T0, address="北京市东城区 景山前街\uff14号", telephone="+8613800138000")
    )
    assert same == keys  # normalised alike: the same keys
    assert [kind for kind, _ in alert_keys(sighting(3, T0, telephone="--"))] == [
        "buyerIdNumber",
        "consigneeAddress",
    ]


# -- ID_MANY_CONSIGNEES ------------------------------------------------------------------------


def test_one_id_alerts_at_one_more_consignee_than_the_threshold_and_names_the_evidence() -> None:
    names = ["甲", "乙", "丙", "丁"]
    at_three = [sighting(n, T0 + n * MINUTE, consignee=names[n]) for n in range(3)]
    assert feed("buyerIdNumber", at_three) == []
    four = [*at_three, sighting(3, T0 + 3 * MINUTE, consignee=names[3])]
    (alert,) = feed("buyerIdNumber", four)
    assert alert.pattern == "ID_MANY_CONSIGNEES"
    assert alert.keyKind == "buyerIdNumber"
    assert alert.key == "**************1234"
    assert alert.count == 4
    assert alert.threshold == 3
    assert (alert.limit, alert.total) == (None, None)
    assert alert.tickets == ["EBP:SO0000", "EBP:SO0001", "EBP:SO0002", "EBP:SO0003"]
    assert alert.windowStart == "2026-11-24T03:20:00.000Z"
    assert alert.windowEnd == "2026-11-24T03:23:00.000Z"
    assert alert.windowSeconds == 7 * 86400
    assert alert.alertId == f"ID_MANY_CONSIGNEES:{alert.keyDigest}:{T0}"
    assert alert.keyDigest == key_of("buyerIdNumber", four[0])[1:].hex()


def test_distinct_addresses_count_as_well_as_names() -> None:
    places = [sighting(n, T0 + n, address=f"{ADDRESS}{n}室") for n in range(4)]
    (alert,) = feed("buyerIdNumber", places)
    assert alert.count == 4


def test_consignees_alike_once_normalised_are_one() -> None:
    spellings = ["张 三", "张三", "张\u3000三", " 张三 "]
    assert (
        feed("buyerIdNumber", [sighting(n, T0 + n, consignee=c) for n, c in enumerate(spellings)])
        == []
    )


def test_the_window_holds_both_ends_and_not_one_ms_more() -> None:
    week = RULES.consignees_window_ms
    inside = [sighting(n, T0 + n * week // 3, consignee=str(n)) for n in range(4)]
    assert inside[-1].at - inside[0].at == week
    assert len(feed("buyerIdNumber", inside)) == 1
    outside = [*inside[:3], sighting(3, T0 + week + 1, consignee="3")]
    assert feed("buyerIdNumber", outside) == []


def test_out_of_order_arrival_gives_the_same_alert() -> None:
    tickets = [sighting(n, T0 + n * HOUR, consignee=str(n)) for n in range(4)]
    expected = feed("buyerIdNumber", tickets)
    for seed in range(10):
        shuffled = random.Random(seed).sample(tickets, len(tickets))
        (alert,) = feed("buyerIdNumber", shuffled)
        assert (alert.tickets, alert.count, alert.windowStart) == (
            expected[0].tickets,
            expected[0].count,
            expected[0].windowStart,
        )


def test_an_alert_mutes_its_pattern_and_key_for_a_window_length_after_its_evidence() -> None:
    week = RULES.consignees_window_ms
    first = [sighting(n, T0 + n, consignee=str(n)) for n in range(4)]
    muted = [sighting(n, T0 + week - 4 + n, consignee=str(n)) for n in range(4, 8)]
    assert muted[-1].at == T0 + 3 + week  # 4 new consignees, the last at the mute's end
    late = sighting(9, T0 + 2, consignee="9")  # inside the first alert's window
    assert len(feed("buyerIdNumber", [*first, *muted, late])) == 1
    fresh = [sighting(n, T0 + 4 + week + n, consignee=str(n)) for n in range(10, 14)]
    alerts = feed("buyerIdNumber", [*first, *muted, *fresh])
    assert [a.tickets for a in alerts] == [
        ["EBP:SO0000", "EBP:SO0001", "EBP:SO0002", "EBP:SO0003"],
        ["EBP:SO0010", "EBP:SO0011", "EBP:SO0012", "EBP:SO0013"],
    ]


# -- ADDRESS_MANY_IDS --------------------------------------------------------------------------


def _id(n: int) -> str:
    return f"1101011990030712{n:02d}"


def test_an_address_alerts_at_one_more_buyer_than_the_threshold() -> None:
    five = [sighting(n, T0 + n, buyer=_id(n)) for n in range(5)]
    assert feed("consigneeAddress", five) == []
    (alert,) = feed("consigneeAddress", [*five, sighting(5, T0 + 5, buyer=_id(5))])
    assert (alert.pattern, alert.keyKind, alert.count, alert.threshold) == (
        "ADDRESS_MANY_IDS",
        "consigneeAddress",
        6,
        5,
    )
    assert "景山" not in alert.key and alert.key.startswith("北京市")
    (by_phone,) = feed("consigneeTelephone", [*five, sighting(5, T0 + 5, buyer=_id(5))])
    assert (by_phone.keyKind, by_phone.key) == ("consigneeTelephone", "*******8000")


def test_the_same_buyer_again_at_an_address_is_not_another_id() -> None:
    same = [sighting(n, T0 + n, buyer=_id(n % 5)) for n in range(12)]
    assert feed("consigneeAddress", same) == []


# -- SPLIT_ORDERS ------------------------------------------------------------------------------


def test_orders_each_within_the_limit_and_together_above_it_alert_once() -> None:
    a = sighting(1, T0, dutiable=Decimal("2500.00"))
    b = sighting(2, T0 + 30 * MINUTE, dutiable=Decimal("2500.01"))
    (alert,) = feed("buyerIdNumber", [a, b])
    assert alert.pattern == "SPLIT_ORDERS"
    assert (alert.count, alert.total, alert.limit, alert.threshold) == (
        2,
        Decimal("5000.01"),
        Decimal(5000),
        1,
    )
    assert alert.tickets == ["EBP:SO0001", "EBP:SO0002"]
    assert alert.windowSeconds == 3600


def test_split_orders_need_more_than_the_limit_one_consignee_and_the_window() -> None:
    half = Decimal(2500)
    exactly = [sighting(1, T0, dutiable=half), sighting(2, T0 + 1, dutiable=half)]
    assert feed("buyerIdNumber", exactly) == []  # 5000 is not above 5000
    over = Decimal("2500.01")
    elsewhere = [
        sighting(1, T0, dutiable=half),
        sighting(2, T0 + 1, dutiable=over, consignee="李四"),
    ]
    assert feed("buyerIdNumber", elsewhere) == []
    edge = [sighting(1, T0, dutiable=half), sighting(2, T0 + HOUR, dutiable=over)]
    assert len(feed("buyerIdNumber", edge)) == 1  # an hour apart: in
    apart = [sighting(1, T0, dutiable=half), sighting(2, T0 + HOUR + 1, dutiable=over)]
    assert feed("buyerIdNumber", apart) == []


def test_an_order_above_the_limit_is_no_split() -> None:
    big = [sighting(1, T0, dutiable=Decimal("5000.01")), sighting(2, T0 + 1, dutiable=Decimal(1))]
    assert feed("buyerIdNumber", big) == []


def test_three_small_orders_alert_when_the_third_crosses() -> None:
    orders = [sighting(n, T0 + n * MINUTE, dutiable=Decimal(2000)) for n in range(3)]
    assert feed("buyerIdNumber", orders[:2]) == []
    (alert,) = feed("buyerIdNumber", orders)
    assert (alert.count, alert.total) == (3, Decimal(6000))


# -- state: replays, revisions, lateness, expiry, the cap ---------------------------------------


def state_after(kind: str, sightings: list[Sighting], rules: AlertRules = RULES) -> KeyState:
    state: KeyState | None = None
    for s in sightings:
        state = apply_sighting(rules, state, kind, key_of(kind, s), s, 0, T0).state
    assert state is not None
    return state


def test_the_same_sighting_again_changes_nothing() -> None:
    s = sighting(1, T0)
    key = key_of("buyerIdNumber", s)
    first = apply_sighting(RULES, None, "buyerIdNumber", key, s, 0, T0)
    assert first.changed
    assert first.state is not None
    again = apply_sighting(RULES, first.state, "buyerIdNumber", key, s, 0, T0)
    assert (again.changed, again.alerts) == (False, [])


def test_a_new_revision_replaces_its_order_and_adds_its_other_consignee() -> None:
    state = state_after(
        "buyerIdNumber",
        [sighting(1, T0), sighting(1, T0, consignee="李四", dutiable=Decimal(200))],
    )
    assert [(o.ticket, o.value) for o in state.orders] == [("EBP:SO0001", Decimal(200))]
    assert len(state.seen) == 2  # the ticket was declared to both


def test_a_hot_key_keeps_each_value_s_first_and_last_ticket_only() -> None:
    same = [sighting(n, T0 + n * MINUTE, dutiable=Decimal(1)) for n in range(300)]
    state = state_after("consigneeAddress", same)
    assert [(v.first, v.last) for v in state.seen] == [("EBP:SO0000", "EBP:SO0299")]
    late = sighting(999, T0 - 1)  # out of order: the first moves
    moved = apply_sighting(
        RULES, state, "consigneeAddress", key_of("consigneeAddress", late), late, 0, T0
    ).state
    assert moved is state
    assert [(v.first, v.last) for v in state.seen] == [("EBP:SO0999", "EBP:SO0299")]
    middle = sighting(5, T0 + 5 * MINUTE)
    step = apply_sighting(
        RULES, state, "consigneeAddress", key_of("consigneeAddress", middle), middle, 0, T0
    )
    assert not step.changed


def test_a_sighting_older_than_a_pattern_keeps_is_too_late_for_it() -> None:
    s = sighting(1, T0)
    key = key_of("buyerIdNumber", s)
    split_keep, id_keep = RULES.keep_ms("SPLIT_ORDERS"), RULES.keep_ms("ID_MANY_CONSIGNEES")
    assert (split_keep, id_keep) == (HOUR + DAY, 7 * DAY + DAY)
    step = apply_sighting(RULES, None, "buyerIdNumber", key, s, T0 + split_keep, T0)
    assert step.state is not None
    assert (step.state.orders, len(step.state.seen)) == ([], 1)  # too late to split only
    assert not apply_sighting(RULES, None, "buyerIdNumber", key, s, T0 + id_keep, T0).changed


def test_an_alert_drops_what_it_mutes_and_the_rest_expires_on_the_timer() -> None:
    tickets = [sighting(n, T0 + n * DAY, consignee=str(n)) for n in range(4)]
    state = state_after("buyerIdNumber", tickets)
    mute = T0 + 3 * DAY + RULES.consignees_window_ms  # the alert's evidence ends at 3 d
    assert state.alerted == {"ID_MANY_CONSIGNEES": mute}
    assert state.seen == []  # every value it had is muted
    assert [o.ticket for o in state.orders] == [t.ticket for t in tickets]
    split_keep = RULES.keep_ms("SPLIT_ORDERS")
    assert next_expiry(RULES, state) == T0 + split_keep
    assert not apply_expiry(RULES, state, T0 + split_keep - 1).changed
    step = apply_expiry(RULES, state, T0 + 3 * DAY + split_keep)
    assert step.state is not None
    assert (step.state.orders, step.changed) == ([], True)
    assert next_expiry(RULES, step.state) == mute + RULES.keep_ms("ID_MANY_CONSIGNEES")
    gone = apply_expiry(RULES, step.state, mute + RULES.keep_ms("ID_MANY_CONSIGNEES"))
    assert (gone.state, gone.changed) == (None, True)


def test_a_key_keeps_at_most_its_latest_values_and_orders() -> None:
    loose = RULES._replace(buyers=1000)
    many = [sighting(n, T0 + n, buyer=f"{n:018d}") for n in range(MAX_VALUES + 6)]
    state = state_after("consigneeAddress", many, loose)
    assert len(state.seen) == MAX_VALUES
    assert min(v.first for v in state.seen) == "EBP:SO0006"
    tiny = [sighting(n, T0 + n, consignee=str(n % 2), dutiable=Decimal(1)) for n in range(300)]
    assert len(state_after("buyerIdNumber", tiny).orders) == MAX_ORDERS


@pytest.mark.parametrize("kind", ["consigneeAddress", "consigneeTelephone"])
def test_an_address_or_telephone_key_runs_no_buyer_pattern(kind: str) -> None:
    split = [sighting(1, T0, dutiable=Decimal(3000)), sighting(2, T0 + 1, dutiable=Decimal(3000))]
    assert feed(kind, split) == []
