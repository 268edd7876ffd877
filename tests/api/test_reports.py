"""The performance report on a fixture of known complaints; every figure checked by hand."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any

import pytest

from conversations.clock import FixedClock
from conversations.reference import generate
from gateway.users import create_user
from store.models import Complaint

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=timezone.utc)


def complaint(admin: str, channel: str, received: datetime, ack_due: datetime, answer_due: datetime, *,
              acknowledged: datetime | None = None, answered: datetime | None = None, status: str = "assigned",
              satisfaction: int | None = None, reopened: int = 0, transfers: int = 0,
              category: str = "water", place: str | None = "oran") -> Complaint:
    return Complaint(reference=generate(), administration=admin, channel=channel, received_at=received,
                     ack_due_at=ack_due, answer_due_at=answer_due, acknowledged_at=acknowledged,
                     answered_at=answered, status=status, satisfaction=satisfaction, reopened_count=reopened,
                     transfer_count=transfers, category=category, place=place, text="(fixture)")


FIXTURE = [
    complaint("water_utility", "sms", at(4, 1), at(4, 16), at(5, 31), acknowledged=at(4, 2), answered=at(4, 11),
              status="answered", satisfaction=4, transfers=1),
    complaint("water_utility", "sms", at(4, 10), at(4, 25), at(6, 9), acknowledged=at(4, 30), answered=at(6, 19),
              status="closed", satisfaction=2, reopened=1),
    complaint("water_utility", "sms", at(6, 20), at(7, 5), at(8, 19)),
    complaint("water_utility", "email", at(5, 1), at(5, 16), at(6, 30), acknowledged=at(5, 3), status="in_progress"),
    complaint("municipality", "ivr", at(4, 5), at(4, 20), at(6, 4), status="new", category="waste", place=None),
    complaint("water_utility", "sms", at(3, 31, 23), at(4, 15), at(5, 30)),  # received before the range
]


@pytest.fixture
async def report(db_url: str, make_gateway: Any, start_client: Any) -> Any:
    gw = make_gateway(db_url, clock=FixedClock(NOW))
    with gw.db.session() as s:
        for row in FIXTURE:
            s.add(Complaint(**row.model_dump(exclude={"id"})))
    for name, role, admin in (("super", "supervisor", None), ("water", "officer", "water_utility"),
                              ("agent", "agent", None)):
        create_user(gw.db, name, role, PASSWORD, admin)
    client = await start_client(gw, background=False)

    async def get(who: str, query: str) -> Any:
        token = (await (await client.post("/api/v1/auth/token", json={"username": who, "password": PASSWORD}))
                 .json())["token"]
        return await client.get(f"/api/v1/reports/performance?{query}", headers={"Authorization": f"Bearer {token}"})

    return get


async def test_every_figure_by_administration(report: Any) -> None:
    resp = await report("super", "from=2026-04-01&to=2026-06-30&group_by=administration")
    assert resp.status == 200
    body = await resp.json()
    assert (body["from"], body["to"], body["group_by"]) == ("2026-04-01", "2026-06-30", "administration")
    rows = {r["administration"]: r for r in body["rows"]}
    assert list(rows) == ["municipality", "water_utility"]
    water = rows["water_utility"]
    assert water == {
        "administration": "water_utility",
        "received": 4,
        "acknowledged_on_time_pct": 66.7,   # 2 of the 3 decided (one not yet due)
        "answered_on_time_pct": 33.3,       # 1 of 3 (one past due, unanswered)
        "median_hours_to_acknowledge": 48.0,  # 24, 48, 480
        "p90_hours_to_acknowledge": 393.6,    # 48 + 0.8 * (480 - 48)
        "median_hours_to_answer": 960.0,      # 240, 1680
        "p90_hours_to_answer": 1536.0,        # 240 + 0.9 * 1440
        "overdue": 1,
        "reopened_pct": 25.0,
        "transferred_pct": 25.0,
        "satisfaction": 3.0,
        "satisfaction_count": 2,
    }
    assert rows["municipality"] == {
        "administration": "municipality", "received": 1, "acknowledged_on_time_pct": 0.0,
        "answered_on_time_pct": 0.0, "median_hours_to_acknowledge": None, "p90_hours_to_acknowledge": None,
        "median_hours_to_answer": None, "p90_hours_to_answer": None, "overdue": 1, "reopened_pct": 0.0,
        "transferred_pct": 0.0, "satisfaction": None, "satisfaction_count": 0,
    }


async def test_other_groupings(report: Any) -> None:
    by_channel = {r["channel"]: r["received"] for r in
                  (await (await report("super", "from=2026-04-01&to=2026-06-30&group_by=channel")).json())["rows"]}
    assert by_channel == {"email": 1, "ivr": 1, "sms": 3}
    by_category = {r["category"]: r["received"] for r in
                   (await (await report("super", "from=2026-04-01&to=2026-06-30&group_by=category")).json())["rows"]}
    assert by_category == {"waste": 1, "water": 4}
    by_place = {r["place"]: r["received"] for r in
                (await (await report("super", "from=2026-04-01&to=2026-06-30&group_by=place")).json())["rows"]}
    assert by_place == {None: 1, "oran": 4}
    march = (await (await report("super", "from=2026-03-01&to=2026-03-31")).json())["rows"]
    assert [(r["administration"], r["received"]) for r in march] == [("water_utility", 1)]


async def test_csv_export(report: Any) -> None:
    resp = await report("super", "from=2026-04-01&to=2026-06-30&group_by=administration&format=csv")
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["administration"] for r in rows] == ["municipality", "water_utility"]
    assert rows[1]["received"] == "4" and rows[1]["acknowledged_on_time_pct"] == "66.7"
    assert rows[1]["median_hours_to_answer"] == "960.0" and rows[0]["median_hours_to_answer"] == ""
    assert list(rows[0]) == ["administration", "received", "acknowledged_on_time_pct", "answered_on_time_pct",
                             "median_hours_to_acknowledge", "median_hours_to_answer", "p90_hours_to_acknowledge",
                             "p90_hours_to_answer", "overdue", "reopened_pct", "transferred_pct", "satisfaction",
                             "satisfaction_count"]


async def test_roles_and_validation(report: Any) -> None:
    officer = await (await report("water", "from=2026-04-01&to=2026-06-30")).json()
    assert [r["administration"] for r in officer["rows"]] == ["water_utility"]
    assert (await report("agent", "from=2026-04-01&to=2026-06-30")).status == 403
    for query, field in (("to=2026-06-30", "from"), ("from=2026-04-01", "to"), ("from=2026-13-01&to=2026-06-30", "from"),
                         ("from=2026-06-01&to=2026-04-01", "to"), ("from=2026-04-01&to=2026-06-30&group_by=x", "group_by"),
                         ("from=2026-04-01&to=2026-06-30&format=pdf", "format")):
        resp = await report("super", query)
        assert resp.status == 400 and (await resp.json())["error"]["field"] == field, query
