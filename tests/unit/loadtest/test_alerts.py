# ruff: noqa: RUF001 - full-width forms are what these tests write on purpose.
"""The load test's alerts: the oracle (loadtest.alerts) exact on small cases and agreeing with
sandan's alert stage whatever order tickets arrive in, the planted kinds crossing exactly their
pattern (and their near misses none), and the verifier naming every kind of wrong alert."""

from __future__ import annotations

import copy
import random
import re
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from loadtest import ids
from loadtest.alerts import PlannedSighting, expected_alerts, key_digest, plan_sightings
from loadtest.generator import generate
from loadtest.report import _alerts_line, _alerts_table
from loadtest.results import (
    AlertFiles,
    OutputStats,
    SeenFrame,
    SeenRejection,
    ShardFiles,
    _alert_shard,
    alert_truth_frames,
    shard_of,
    truth_frames,
    verify_shards,
)
from loadtest.truth import (
    ALERT_BUYERS,
    ALERT_CONSIGNEES,
    ALERT_WINDOW,
    ExpectedAlert,
    FaultMix,
    Plan,
    pattern_key,
)
from loadtest.verify import (
    parse_iso_ms,
    perfect_alerts,
    perfect_outputs,
    ticket_times,
    verify,
    verify_alerts,
)
from schemas.alerts import normalised, normalised_telephone
from streams.alerts import AlertRules, alert_keys, apply_sighting
from streams.records import Sighting
from streams.timefmt import iso_ms

BUYER = "11010519491231002X"
HOME = "北京市东城区中山路1号阳光花园1栋1单元101室"
PHONE = "13800138000"
PLANTED = ("alert_id_consignees", "alert_address_ids", "alert_split_orders")
DAY_MS = 86_400_000


def sighting(
    ticket: str,
    *,
    buyer: str = BUYER,
    consignee: str = "王伟",
    address: str = HOME,
    telephone: str = PHONE,
    values: tuple[str, ...] = ("100.00",),
) -> PlannedSighting:
    return PlannedSighting(
        ticket, buyer, consignee, address, telephone, tuple(Decimal(v) for v in values)
    )


def found(sightings: list[PlannedSighting]) -> Counter[tuple[str, str]]:
    """The (pattern, key kind) of each expected alert."""
    alerts = expected_alerts(sightings, {})
    return Counter((a.pattern, a.key_kind) for a in alerts.values())


def resident(n: int) -> str:
    body = f"1101051990010{n:04d}"
    return body + ids.check_char(body)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return generate(7, 1500, rate=50, window=20.0, faults=FaultMix.even())


# -- the oracle ---------------------------------------------------------------------------------


def test_at_the_consignee_threshold_no_alert_one_more_an_alert() -> None:
    names = ["王伟", "李娜", "张敏", "刘洋", "陈静"]
    same_home = [sighting(f"T:{i}", consignee=n) for i, n in enumerate(names)]
    assert ALERT_CONSIGNEES == 3
    assert found(same_home[:3]) == Counter()
    assert found(same_home[:4]) == Counter({("ID_MANY_CONSIGNEES", "buyerIdNumber"): 1})
    homes = [f"{HOME[:-4]}{i}01室" for i in range(5)]
    moved = [sighting(f"T:{i}", address=h, telephone=f"1390000000{i}") for i, h in enumerate(homes)]
    assert found(moved[:3]) == Counter()
    assert found(moved[:4]) == Counter({("ID_MANY_CONSIGNEES", "buyerIdNumber"): 1})
    alert = next(iter(expected_alerts(moved[:4], {}).values()))
    assert alert.threshold == ALERT_CONSIGNEES
    assert sorted(t.ticket for t in alert.tickets) == ["T:0", "T:1", "T:2", "T:3"]
    assert alert.key_digest == key_digest(BUYER.casefold())


def test_at_the_buyer_threshold_no_alert_one_more_an_alert() -> None:
    assert ALERT_BUYERS == 5
    own_phones = [
        sighting(f"T:{i}", buyer=resident(i), telephone=f"1390000000{i}") for i in range(7)
    ]
    assert found(own_phones[:5]) == Counter()
    assert found(own_phones[:6]) == Counter({("ADDRESS_MANY_IDS", "consigneeAddress"): 1})
    one_phone = [
        sighting(f"T:{i}", buyer=resident(i), address=f"{HOME[:-4]}{i}01室") for i in range(6)
    ]
    assert found(one_phone[:5]) == Counter()
    assert found(one_phone) == Counter({("ADDRESS_MANY_IDS", "consigneeTelephone"): 1})
    both = [sighting(f"T:{i}", buyer=resident(i)) for i in range(6)]
    assert found(both) == Counter(
        {("ADDRESS_MANY_IDS", "consigneeAddress"): 1, ("ADDRESS_MANY_IDS", "consigneeTelephone"): 1}
    )


@pytest.mark.parametrize(
    ("values", "alert"),
    [
        (("2500.00", "2500.00"), False),  # exactly the limit together: not more
        (("2500.00", "2500.01"), True),  # the first cent over
        (("5000.00", "5000.00"), True),  # each at the limit is within it
        (("5000.01", "100.00"), False),  # one above the limit is not within it
        (("4999.99",), False),  # one order alone
        (("1000.00", "2000.00", "2000.01"), True),
    ],
)
def test_split_orders_at_the_limit(values: tuple[str, ...], alert: bool) -> None:
    orders = [sighting(f"T:{i}", values=(v,)) for i, v in enumerate(values)]
    assert found(orders) == (
        Counter({("SPLIT_ORDERS", "buyerIdNumber"): 1}) if alert else Counter()
    )


def test_split_orders_to_one_consignee_only() -> None:
    other = sighting("T:1", address=f"{HOME[:-4]}201室", values=("3000.00",))
    assert found([sighting("T:0", values=("3000.00",)), other]) == Counter()
    renamed = sighting("T:1", consignee="李娜", values=("3000.00",))
    assert found([sighting("T:0", values=("3000.00",)), renamed]) == Counter()
    # A late waybill's insuredFee: the final value counts, and the evidence may carry either.
    late = sighting("T:1", values=("2499.99", "2500.01"))
    [alert] = expected_alerts([sighting("T:0", values=("2500.00",)), late], {}).values()
    assert [t.values for t in alert.tickets] == [(Decimal("2500.00"),), late.values]


def test_values_written_otherwise_count_once() -> None:
    rng = random.Random(3)
    for _ in range(300):
        name, (_, home), phone = ids.chinese_name(rng), ids.address(rng), ids.mobile(rng)
        for original, written, same in (
            (name, ids.name_variant(rng, name), normalised),
            ("Wang Wei", ids.name_variant(rng, "Wang Wei"), normalised),
            (home, ids.address_variant(rng, home), normalised),
            (phone, ids.telephone_variant(rng, phone), normalised_telephone),
        ):
            assert written != original
            assert same(written) == same(original) != ""
    names = ["王伟", "王 伟", "王\u3000伟", " 王伟 ", "李娜", "ＬＩ　ＮＡ", "Li Na", "Ｌｉ Ｎａ"]
    homes = [HOME, HOME.replace("1", "１"), HOME + " ", HOME.replace("区", "区 ")]
    tickets = [sighting(f"T:{i}", consignee=n, address=homes[i % 4]) for i, n in enumerate(names)]
    assert found(tickets) == Counter()  # 王伟, 李娜, lina: 3 names once normalised
    phones = ["+86 138-0013-8000", "8613800138000", "１３８００１３８０００", "138 0013 8000"]
    buyers = [resident(i) for i in range(5)] + [resident(0).lower()]
    one = [
        sighting(f"T:{i}", buyer=b, telephone=phones[i % 4], address=f"{HOME}{i}")
        for i, b in enumerate(buyers)
    ]
    assert found(one) == Counter()  # five buyer IDs, however written
    one.append(sighting("T:9", buyer=resident(9), telephone=PHONE, address="上海"))
    assert found(one) == Counter({("ADDRESS_MANY_IDS", "consigneeTelephone"): 1})


def test_key_digests_are_those_sandan_names() -> None:
    s = sighting("T:0", buyer=BUYER.lower(), telephone="+86 138 0013 8000", address=HOME + " ")
    keys = alert_keys(
        Sighting(s.ticket, 0, s.buyer, s.consignee, s.address, s.telephone, Decimal(1))
    )
    assert [(kind, key[1:].hex()) for kind, key in keys] == [
        ("buyerIdNumber", key_digest(normalised(BUYER))),
        ("consigneeAddress", key_digest(normalised(HOME))),
        ("consigneeTelephone", key_digest(PHONE)),
    ]


def test_sightings_are_of_what_the_engine_applies(plan: Plan) -> None:
    sightings = {s.ticket: s for s in plan_sightings(plan.records, plan.decisions, plan.rejections)}
    firsts: dict[str, dict[str, Any]] = {}
    for record in plan.records:
        if record.doc_type == "order" and record.ticket_id in plan.decisions:
            doc = msgspec.json.decode(record.value)
            if doc["appStatus"] == "2" and doc["appType"] == "1":
                firsts.setdefault(record.ticket_id, doc)
    for ticket, revisions in plan.decisions.items():
        held = [d for d in revisions if "order" not in d.missing]
        if not held:
            assert ticket not in sightings, ticket  # never decided with an order
            continue
        s = sightings[ticket]
        assert len(s.values) == len(held), ticket
        order = firsts[ticket]  # no fault changes an applied order: later ones are rejected
        assert (s.buyer, s.consignee, s.address, s.telephone) == (
            order["buyerIdNumber"],
            order["consignee"],
            order["consigneeAddress"],
            order["consigneeTelephone"],
        )
        if held[0].missing == ("logistics",) and held[-1].missing == ():
            assert s.values[0] <= s.values[-1]  # a late waybill adds its insuredFee
    lone = [t for t in plan.decisions if t.startswith(":")]
    assert lone and not set(lone) & sightings.keys()
    late = [t for t, k in plan.kinds.items() if k == "late_document" and t in sightings]
    assert {len(sightings[t].values) for t in late} == {1, 2}  # the order late, or not


# -- the planted kinds ---------------------------------------------------------------------------


def planted(kind: str, slots: int = 150) -> tuple[Plan, list[PlannedSighting]]:
    plan = generate(11, slots, rate=20, window=20.0, faults=FaultMix(**{kind: 1.0}))
    assert {d.decision for ds in plan.decisions.values() for d in ds} == {"RELEASE"}
    return plan, plan_sightings(plan.records, plan.decisions, plan.rejections)


def test_planted_id_consignees() -> None:
    plan, sightings = planted("alert_id_consignees")
    by_buyer: defaultdict[str, list[PlannedSighting]] = defaultdict(list)
    for s in sightings:
        by_buyer[s.buyer].append(s)
    assert len(by_buyer) == plan.faults["alert_id_consignees"]  # a new buyer each
    crossed = near = 0
    for buyer, tickets in by_buyer.items():
        names = {normalised(s.consignee) for s in tickets}
        homes = {normalised(s.address) for s in tickets}
        written = {(s.consignee, s.address) for s in tickets}
        key = pattern_key("ID_MANY_CONSIGNEES", "buyerIdNumber", key_digest(normalised(buyer)))
        distinct = max(len(names), len(homes))
        assert distinct in (ALERT_CONSIGNEES, ALERT_CONSIGNEES + 1)
        assert (key in plan.alerts) == (distinct > ALERT_CONSIGNEES)
        if distinct == ALERT_CONSIGNEES:
            near += 1
            assert len(written) > ALERT_CONSIGNEES  # more than the threshold as written
        else:
            crossed += 1
            assert plan.alerts[key].planted
    assert crossed > 3 * near > 0
    assert {a.pattern for a in plan.alerts.values()} == {"ID_MANY_CONSIGNEES"}


def test_planted_address_ids() -> None:
    plan, sightings = planted("alert_address_ids")
    by_key: defaultdict[tuple[str, str], list[PlannedSighting]] = defaultdict(list)
    for s in sightings:
        if re.search("驿站|快递柜|兔喜|快递站", s.address):
            by_key["consigneeAddress", normalised(s.address)].append(s)
        if normalised_telephone(s.telephone)[:3] in ids.VIRTUAL_PREFIXES:
            by_key["consigneeTelephone", normalised_telephone(s.telephone)].append(s)
    expected = set()
    counts: Counter[int] = Counter()
    for (kind, value), tickets in by_key.items():
        buyers = {normalised(s.buyer) for s in tickets}
        assert len(buyers) in (ALERT_BUYERS, ALERT_BUYERS + 1)
        counts[len(buyers)] += 1
        if len(buyers) > ALERT_BUYERS:
            expected.add(pattern_key("ADDRESS_MANY_IDS", kind, key_digest(value)))
        else:
            assert len(tickets) == ALERT_BUYERS + 1  # one buyer twice
    assert set(plan.alerts) == expected
    assert all(a.planted for a in plan.alerts.values())
    assert counts[ALERT_BUYERS] > 0
    assert {a.key_kind for a in plan.alerts.values()} == {"consigneeAddress", "consigneeTelephone"}
    written = Counter(s.telephone for s in sightings)
    assert any("+86" in phone or "-" in phone for phone in written)


def test_planted_split_orders() -> None:
    plan, sightings = planted("alert_split_orders")
    by_buyer: defaultdict[str, list[PlannedSighting]] = defaultdict(list)
    for s in sightings:
        by_buyer[s.buyer].append(s)
    limit, near, exact = Decimal(5000), 0, 0
    for buyer, orders in by_buyer.items():
        assert 2 <= len(orders) <= 3
        within = [s for s in orders if s.values[-1] <= limit]
        consignees = {(normalised(s.consignee), normalised(s.address)) for s in within}
        total = sum(s.values[-1] for s in within)
        crosses = len(within) == len(orders) > 1 and len(consignees) == 1 and total > limit
        key = pattern_key("SPLIT_ORDERS", "buyerIdNumber", key_digest(normalised(buyer)))
        assert (key in plan.alerts) == crosses, buyer
        near += not crosses
        exact += total == limit or total == limit + Decimal("0.01")
    assert 0 < near < len(by_buyer) / 2
    assert exact > 0
    full_tax = [d for ds in plan.decisions.values() for d in ds if d.full_tax]
    assert full_tax  # the near miss whose other order is a single item above the limit
    assert {a.pattern for a in plan.alerts.values()} == {"SPLIT_ORDERS"}


def test_the_mixes_plant_every_pattern(plan: Plan) -> None:
    assert all(plan.faults[kind] > 10 for kind in PLANTED)
    figures = Counter((a.pattern, a.planted) for a in plan.alerts.values())
    for pattern in ("ID_MANY_CONSIGNEES", "ADDRESS_MANY_IDS", "SPLIT_ORDERS"):
        assert figures[pattern, True] > 5, pattern
    # returning buyers cross on their own too (gifts; orders to themselves in one window)
    assert figures["SPLIT_ORDERS", False] > 0
    assert figures["ADDRESS_MANY_IDS", False] == 0


# -- sandan's alert stage agrees -----------------------------------------------------------------


def sandan_alerts(plan: Plan, times: dict[str, int], seed: int | None) -> list[dict[str, Any]]:
    """The alerts streams/alerts.py raises for the plan's sightings, in time order (``seed``
    None) or shuffled (a ticket's revisions still in order)."""
    window = int(ALERT_WINDOW * 1000)
    rules = AlertRules(
        consignees=ALERT_CONSIGNEES,
        consignees_window_ms=window,
        buyers=ALERT_BUYERS,
        buyers_window_ms=window,
        split_window_ms=window,
        single_limit=Decimal(5000),
        lateness_ms=20_000,
    )
    planned = plan_sightings(plan.records, plan.decisions, plan.rejections)
    tickets = [s.ticket for s in planned for _ in s.values]
    if seed is None:
        tickets.sort(key=times.__getitem__)
    else:
        random.Random(seed).shuffle(tickets)
    revisions = {s.ticket: iter(s.values) for s in planned}
    by_ticket = {s.ticket: s for s in planned}
    states: dict[bytes, Any] = {}
    alerts: list[dict[str, Any]] = []
    for ticket in tickets:
        s = by_ticket[ticket]
        at, value = times[ticket], next(revisions[ticket])
        seen = Sighting(ticket, at, s.buyer, s.consignee, s.address, s.telephone, value)
        for kind, key in alert_keys(seen):
            step = apply_sighting(rules, states.get(key), kind, key, seen, 0, at)
            states[key] = step.state
            alerts += [msgspec.to_builtins(alert) for alert in step.alerts]
    return alerts


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_sandans_alert_stage_raises_exactly_the_expected_alerts(
    plan: Plan, seed: int | None
) -> None:
    times = ticket_times(plan)
    alerts = sandan_alerts(plan, times, seed)
    check = verify_alerts(plan.alerts, alerts, times, window=ALERT_WINDOW)
    assert not check.mismatches
    assert check.alerts_seen == check.keys_expected == len(plan.alerts)


# -- the verifier --------------------------------------------------------------------------------


@pytest.fixture
def alerts(plan: Plan) -> list[dict[str, Any]]:
    return perfect_alerts(plan.alerts, ticket_times(plan))


def check(plan: Plan, alerts: list[dict[str, Any]]) -> list[str]:
    return verify_alerts(plan.alerts, alerts, ticket_times(plan), window=ALERT_WINDOW).mismatches


def one(alerts: list[dict[str, Any]], pattern: str, *, longest: bool = False) -> dict[str, Any]:
    mine = [a for a in alerts if a["pattern"] == pattern]
    return max(mine, key=lambda a: len(a["tickets"])) if longest else mine[0]


def test_the_perfect_alerts_verify(plan: Plan, alerts: list[dict[str, Any]]) -> None:
    random.Random(1).shuffle(alerts)
    result = verify_alerts(plan.alerts, alerts, ticket_times(plan), window=ALERT_WINDOW)
    assert result.mismatches == []
    for pattern, figures in result.by_pattern.items():
        expected = sum(a.pattern == pattern for a in plan.alerts.values())
        planted_keys = sum(a.pattern == pattern and a.planted for a in plan.alerts.values())
        assert figures == {
            "keys_expected": expected,
            "keys_alerted": expected,
            "alerts": expected,
            "planted_keys": planted_keys,
            "unexpected": 0,
        }


def test_a_missing_a_repeated_and_an_unexpected_alert(
    plan: Plan, alerts: list[dict[str, Any]]
) -> None:
    gone = alerts.pop(0)
    alerts.append(copy.deepcopy(alerts[0]))
    stray = copy.deepcopy(alerts[1])
    stray["keyDigest"] = "0" * 32
    stray["alertId"] = stray["alertId"].replace(alerts[1]["keyDigest"], stray["keyDigest"])
    alerts.append(stray)
    lines = check(plan, alerts)
    key = f"{gone['pattern']} {gone['keyKind']} {gone['keyDigest'][:12]}"
    assert any(line.startswith(key) and "no alert, expected one" in line for line in lines)
    assert f"alert {alerts[0]['alertId']}: raised 2 times" in lines
    assert any(line.startswith(f"unexpected alert {stray['alertId']}") for line in lines)
    assert len(lines) == 3


def test_wrong_evidence_count_total_and_window(plan: Plan, alerts: list[dict[str, Any]]) -> None:
    many = one(alerts, "ID_MANY_CONSIGNEES")
    many["count"] += 5
    split = one(alerts, "SPLIT_ORDERS")
    split["total"] = str(Decimal(split["total"]) + 1)
    address = one(alerts, "ADDRESS_MANY_IDS")
    address["tickets"][0] = next(t for t in plan.decisions if t not in address["tickets"])
    shifted = [a for a in alerts if a["pattern"] == "ADDRESS_MANY_IDS"][1]
    shifted["windowStart"] = iso_ms(parse_iso_ms(shifted["windowStart"]) - 1)  # type: ignore[operator]
    lines = check(plan, alerts)
    assert len(lines) == 4
    assert any(f"{many['alertId']}: count {many['count']}, its tickets count" in x for x in lines)
    assert any(f"{split['alertId']}: total {split['total']}, its orders add up" in x for x in lines)
    assert any(f"{address['alertId']}: tickets not of this key" in x for x in lines)
    assert any(f"{shifted['alertId']}: window" in x for x in lines)


def test_an_alert_later_than_its_first_crossing(plan: Plan, alerts: list[dict[str, Any]]) -> None:
    times = ticket_times(plan)
    for alert in alerts:
        key = pattern_key(alert["pattern"], alert["keyKind"], alert["keyDigest"])
        rest = [t.ticket for t in plan.alerts[key].tickets if t.ticket not in alert["tickets"]]
        later = [t for t in rest if times[t] > parse_iso_ms(alert["windowEnd"])]  # type: ignore[operator]
        if alert["pattern"] == "ID_MANY_CONSIGNEES" and later:
            last = min(later, key=lambda t: (times[t], t))
            alert["tickets"].append(last)
            alert["windowEnd"] = iso_ms(times[last])
            alert["count"] = len(alert["tickets"])
            break
    else:
        pytest.fail("no key with tickets after its alert")
    lines = [x for x in check(plan, alerts) if alert["alertId"] in x]
    assert any("not the first crossing" in x for x in lines), lines


def test_an_alert_within_another_ones_mute_and_one_missing_after_it() -> None:
    names = ["王伟", "李娜", "张敏", "刘洋", "陈静", "杨帆", "赵雷", "黄丽"]
    sightings = [sighting(f"T:{i}", consignee=n) for i, n in enumerate(names)]
    expected = expected_alerts(sightings, {})
    times = {s.ticket: 1_000_000 + 1000 * i for i, s in enumerate(sightings)}
    [alert] = perfect_alerts(expected, times)
    assert alert["tickets"] == ["T:0", "T:1", "T:2", "T:3"]  # the first crossing; then muted
    assert verify_alerts(expected, [alert], times, window=ALERT_WINDOW).mismatches == []

    again = dict(alert, alertId="again")
    lines = verify_alerts(expected, [alert, again], times).mismatches
    assert "ID_MANY_CONSIGNEES buyerIdNumber" in lines[0]
    assert any("alert again within the window alert" in x for x in lines)
    assert any("tickets in another alert too" in x for x in lines)

    short = dict(alert, windowSeconds=0.5)  # muting 500 ms: T:4 to T:7 cross on their own
    lines = verify_alerts(expected, [short], times, window=ALERT_WINDOW).mismatches
    assert len(lines) == 2
    assert lines[0].endswith(f"windowSeconds 0.5, expected {ALERT_WINDOW:g}")
    assert lines[1].endswith(
        "4 tickets after the last alert's mute cross again: an alert is missing (1 seen)"
    )
    later = dict(alert, alertId="later", tickets=["T:4", "T:5", "T:6", "T:7"], windowSeconds=0.5)
    later |= {"windowStart": iso_ms(times["T:4"]), "windowEnd": iso_ms(times["T:7"])}
    later["alertId"] = f"ID_MANY_CONSIGNEES:{alert['keyDigest']}:{times['T:4']}"
    assert verify_alerts(expected, [short, later], times).mismatches == []


def test_malformed_alerts_are_reported(plan: Plan, alerts: list[dict[str, Any]]) -> None:
    alerts.append({"alertId": "x", "pattern": "NO_SUCH_PATTERN"})
    alerts.append({"unreadable": "{not json"})
    lines = check(plan, alerts)
    assert len(lines) == 2
    assert all(line.startswith("malformed alert") for line in lines)


def test_verify_reports_the_alerts_beside_the_decisions(
    plan: Plan, alerts: list[dict[str, Any]]
) -> None:
    decisions, rejections = perfect_outputs(plan)
    report = verify(plan, decisions, rejections, alerts=alerts, alert_window=ALERT_WINDOW)
    assert report.ok, report.mismatches
    assert report.alerts_checked
    assert report.alerts_seen == report.alert_keys_expected == len(plan.alerts)
    assert "alerts" in _alerts_line(msgspec.to_builtins(report))
    table = _alerts_table(msgspec.to_builtins(report))
    assert any(line.startswith("| SPLIT_ORDERS |") for line in table)
    unchecked = verify(plan, decisions, rejections)
    assert unchecked.ok and not unchecked.alerts_checked
    assert _alerts_line(msgspec.to_builtins(unchecked)) == "alerts not checked"
    wrong = verify(plan, decisions, rejections, alerts=alerts[1:])
    assert not wrong.ok
    assert wrong.alert_mismatches == len(wrong.mismatches) == 1


def test_a_sharded_run_verifies_its_alerts(tmp_path: Path) -> None:
    shards = 3
    truth, seen = ShardFiles(tmp_path, "truth", shards), ShardFiles(tmp_path, "seen", shards)
    files = AlertFiles(tmp_path, shards)
    every: list[dict[str, Any]] = []
    expected: dict[str, ExpectedAlert] = {}
    for chunk in (0, 1):
        part = generate(5 + chunk, 600, rate=50, window=20.0, faults=FaultMix.even(), chunk=chunk)
        times = ticket_times(part, origin_ms=1_795_478_400_000 + chunk * DAY_MS)
        for shard, frame in truth_frames(part, shards):
            truth.write(shard, frame)
        for shard, frame in alert_truth_frames(part, shards):
            files.truth.write(shard, frame)
        decisions, rejections = perfect_outputs(part, times)
        stats, frames = OutputStats(), [SeenFrame([], []) for _ in range(shards)]
        for decision in decisions:
            reduced = stats.add_decision(decision, 0, 0)
            frames[shard_of(reduced.ticket, shards)].decisions.append(reduced)
        for r in rejections:
            rejected = SeenRejection(r["code"], r["docType"], r["guid"])
            frames[shard_of(r["guid"], shards)].rejections.append(rejected)
        for shard, seen_frame in enumerate(frames):
            seen.write(shard, msgspec.msgpack.encode(seen_frame))
        every += perfect_alerts(part.alerts, times)
        expected |= part.alerts
    for alert in every[1:]:
        files.seen.write(_alert_shard(alert, shards), msgspec.json.encode(alert))
    truth.close()
    seen.close()
    files.close()
    report = verify_shards(truth, seen, files, alert_window=ALERT_WINDOW)
    assert report.alerts_checked
    assert report.alert_keys_expected == len(expected) == len(every)
    assert report.alerts_seen == len(every) - 1
    [line] = report.mismatches  # the first alert was never read
    assert "no alert, expected one" in line
    assert sum(f["keys_alerted"] for f in report.alerts_by_pattern.values()) == len(every) - 1
