"""The console report pages: tables, inline SVG charts, the printable quarterly report, roles, languages."""
from __future__ import annotations

import re
from typing import Any

import pytest

from conversations.clock import FixedClock
from gateway.users import create_user
from store.models import Complaint
from tests.api.test_reports import FIXTURE, NOW, PASSWORD


@pytest.fixture
async def console(db_url: str, make_gateway: Any, start_client: Any) -> Any:
    gw = make_gateway(db_url, clock=FixedClock(NOW))
    with gw.db.session() as s:
        for row in FIXTURE:
            s.add(Complaint(**row.model_dump(exclude={"id"})))
    for name, role, admin in (("super", "supervisor", None), ("water", "officer", "water_utility"),
                              ("agent", "agent", None)):
        create_user(gw.db, name, role, PASSWORD, admin)
    client = await start_client(gw, background=False)
    tokens: dict[str, str] = {}

    async def get(who: str | None, path: str, **kw: Any) -> Any:
        headers = {}
        if who:
            if who not in tokens:
                resp = await client.post("/api/v1/auth/token", json={"username": who, "password": PASSWORD})
                tokens[who] = (await resp.json())["token"]
            headers["Authorization"] = f"Bearer {tokens[who]}"
        return await client.get(path, headers=headers, **kw)

    return get


async def test_reports_page_tables_and_charts(console: Any) -> None:
    resp = await console("super", "/console/reports?from=2026-04-01&to=2026-06-30&lang=en")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    assert '<html lang="en" dir="ltr">' in html
    assert "Water utility" in html and "Municipality" in html
    assert "66.7" in html and "393.6" in html  # water: acknowledged on time %, p90 hours
    assert html.count("<svg") == 2 and 'class="bar"' in html and 'class="bar1"' in html
    assert "/api/v1/reports/performance?from=2026-04-01&amp;to=2026-06-30&amp;group_by=administration&amp;format=csv" in html
    assert resp.cookies["lang"].value == "en"
    by_channel = await (await console("super", "/console/reports?from=2026-04-01&to=2026-06-30&group_by=channel"
                                               "&lang=fr")).text()
    assert "Canal" in by_channel and "<td>sms</td>" in by_channel


async def test_arabic_right_to_left(console: Any) -> None:
    html = await (await console("super", "/console/reports?from=2026-04-01&to=2026-06-30&lang=ar")).text()
    assert '<html lang="ar" dir="rtl">' in html and "تقارير الأداء" in html and "الوكالة المستقلة لتوزيع الماء" in html


async def test_roles(console: Any) -> None:
    assert (await console(None, "/console/reports")).status == 401
    assert (await console("agent", "/console/reports")).status == 403
    officer = await (await console("water", "/console/reports?from=2026-04-01&to=2026-06-30&lang=en")).text()
    assert "Water utility" in officer and "Municipality" not in officer
    assert (await console("super", "/console/reports?from=2026-04-31")).status == 400
    assert (await console("super", "/console/reports?group_by=nope")).status == 400


async def test_quarterly_report_per_place_ready_to_print(console: Any) -> None:
    resp = await console("super", "/console/reports/quarterly?year=2026&quarter=2&place=oran&lang=fr")
    assert resp.status == 200
    html = await resp.text()
    assert "Rapport trimestriel — Oran" in html and "2026-04-01 – 2026-06-30" in html
    assert "@media print" in html and "@page" in html
    assert "Régie de distribution d&#39;eau" in html and "Eau et assainissement" in html
    assert "Municipalité" not in html.split("<h2>")[2]  # the municipality complaint has no place
    summary = html.split("<h2>")[1]
    assert re.search(r"<td>Ensemble</td><td>4</td>", summary)  # 4 complaints in Oran this quarter
    assert html.count("<svg") == 1 and "2026-04" in html and "2026-06" in html
    empty = await (await console("super", "/console/reports/quarterly?year=2025&quarter=1&lang=en")).text()
    assert "No complaint received" in empty
    assert (await console("super", "/console/reports/quarterly?year=2026&quarter=5")).status == 400
    assert (await console("super", "/console/reports/quarterly?place=atlantis")).status == 400
