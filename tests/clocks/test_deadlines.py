"""Due dates: calendar days, working days with weekends and holidays, per kind / per administration."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from config.loader import load_config
from config.settings import ConfigError
from conversations.deadlines import add_days, due_dates, is_working_day, parse_holidays, rules_for


def at(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, 30, tzinfo=timezone.utc)


def deadlines(**table):  # type: ignore[no-untyped-def]
    return load_config(overrides={"deadlines": table}).deadlines


def test_calendar_days_by_default() -> None:
    dl = deadlines()
    # Thursday 2026-01-01 (a holiday would not matter in calendar mode)
    assert due_dates(at(2026, 1, 1), dl) == (at(2026, 1, 16), at(2026, 3, 2))
    assert add_days(at(2026, 2, 27), 2, dl) == at(2026, 3, 1)  # across the end of February


def test_working_days_skip_weekends_and_keep_the_time() -> None:
    dl = deadlines(working_days=True)
    friday = at(2026, 6, 5, 17)
    assert add_days(friday, 1, dl) == at(2026, 6, 8, 17)  # Monday
    assert add_days(friday, 5, dl) == at(2026, 6, 12, 17)  # next Friday
    saturday = at(2026, 6, 6)
    assert add_days(saturday, 1, dl) == at(2026, 6, 8)
    assert add_days(saturday, 0, dl) == saturday
    # 15 working days from Monday 2026-06-01 = 3 whole weeks -> Monday 2026-06-22
    assert add_days(at(2026, 6, 1), 15, dl) == at(2026, 6, 22)


def test_working_days_skip_holidays_and_ranges() -> None:
    dl = deadlines(working_days=True, holidays=["2026-06-09", "2026-06-15..2026-06-17"])
    # Mon 8 -> Tue 9 is a holiday; Wed 10, Thu 11, Fri 12 | Mon 15-Wed 17 holidays | Thu 18, Fri 19
    assert add_days(at(2026, 6, 8), 1, dl) == at(2026, 6, 10)
    assert add_days(at(2026, 6, 8), 3, dl) == at(2026, 6, 12)
    assert add_days(at(2026, 6, 8), 4, dl) == at(2026, 6, 18)
    assert add_days(at(2026, 6, 8), 6, dl) == at(2026, 6, 22)
    assert parse_holidays(("2026-06-15..2026-06-17",)) == {date(2026, 6, 15), date(2026, 6, 16), date(2026, 6, 17)}
    assert not is_working_day(date(2026, 6, 16), dl)
    assert not is_working_day(date(2026, 6, 13), dl)  # Saturday
    assert is_working_day(date(2026, 6, 18), dl)


def test_algerian_weekend_friday_saturday() -> None:
    dl = deadlines(working_days=True, weekend=["fri", "sat"])
    thursday = at(2026, 6, 4)
    assert add_days(thursday, 1, dl) == at(2026, 6, 7)  # Sunday is a working day there
    assert add_days(thursday, 2, dl) == at(2026, 6, 8)
    assert is_working_day(date(2026, 6, 7), dl) and not is_working_day(date(2026, 6, 5), dl)


def test_per_kind_and_per_administration_overrides() -> None:
    dl = deadlines(per_kind={"suggestion": {"acknowledge_days": 30, "answer_days": 90}},
                   per_administration={"water_utility": {"answer_days": 30},
                                       "water_utility.oran": {"acknowledge_days": 5, "working_days": True},
                                       "health_ministry": {"acknowledge_days": 2}})
    assert rules_for(dl, "complaint", None) == (15, 60, False)
    assert rules_for(dl, "suggestion", None) == (30, 90, False)
    assert rules_for(dl, "complaint", "water_utility") == (15, 30, False)
    # the branch takes the national override, then its own
    assert rules_for(dl, "complaint", "water_utility.oran") == (5, 30, True)
    assert rules_for(dl, "complaint", "water_utility.algiers") == (15, 30, False)
    # the administration's override wins over the kind's
    assert rules_for(dl, "suggestion", "water_utility") == (30, 30, False)
    assert rules_for(dl, "suggestion", "health_ministry") == (2, 90, False)
    friday = at(2026, 6, 5)
    ack, answer = due_dates(friday, dl, "complaint", "water_utility.oran")
    assert ack == at(2026, 6, 12)  # 5 working days
    assert answer == at(2026, 7, 17)  # 30 working days: 6 weeks
    assert due_dates(friday, dl, "complaint", "health_ministry") == (at(2026, 6, 7), at(2026, 8, 4))


def test_created_complaints_carry_their_clocks(sqlite_url: str, make_gateway) -> None:  # type: ignore[no-untyped-def]
    from conversations.complaints import create_complaint

    gw = make_gateway(sqlite_url, config_overrides={"deadlines": {
        "working_days": True, "holidays": ["2026-06-08"],
        "per_administration": {"municipality": {"acknowledge_days": 3, "answer_days": 10}}}})
    with gw.db.session() as s:
        c = create_complaint(s, gw.config, now=at(2026, 6, 5), text="x", channel="phone", actor="agent",
                             contact_id=None, identity_id=None, category="waste", administration="municipality")
        assert c.ack_due_at == at(2026, 6, 11)  # Fri -> (Mon holiday) Tue, Wed, Thu
        assert c.answer_due_at == at(2026, 6, 22)


@pytest.mark.parametrize("table, fix", [({"holidays": ["2026-13-01"]}, "deadlines.holidays"),
                                        ({"holidays": ["soon"]}, "deadlines.holidays"),
                                        ({"weekend": ["friday", "caturday"]}, "deadlines.weekend")])
def test_bad_calendar_stops_start_up(table: dict, fix: str) -> None:
    with pytest.raises(ConfigError, match=fix):
        load_config(overrides={"deadlines": table})
