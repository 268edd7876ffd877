"""``GET /api/v1/reports/performance`` (JSON, or CSV with ``format=csv``)."""
from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from aiohttp import web

from conversations.reports import FIELDS, GROUPS, performance
from gateway.api.common import ApiError, api, invalid, ok
from gateway.auth import require
from gateway.http import GATEWAY

MAX_DAYS = 3 * 366


def _date(request: web.Request, name: str) -> date:
    raw = request.query.get(name)
    if not raw:
        raise invalid(name, f"{name} is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise invalid(name, f"{name} must be a date YYYY-MM-DD") from exc


@api
async def performance_report(request: web.Request) -> web.StreamResponse:
    user = await require(request, "officer", "supervisor", "admin")
    gw = request.app[GATEWAY]
    start, end = _date(request, "from"), _date(request, "to")
    if end < start:
        raise invalid("to", "to must not be before from")
    if (end - start).days > MAX_DAYS:
        raise invalid("to", f"the range may span at most {MAX_DAYS} days")
    group_by = request.query.get("group_by", "administration")
    if group_by not in GROUPS:
        raise invalid("group_by", f"group_by must be one of {', '.join(GROUPS)}")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise invalid("format", "format must be json or csv")
    scope = user.administration if user.role == "officer" else None
    if user.role == "officer" and not scope:
        raise ApiError(403, "forbidden", "this officer has no administration")

    def work() -> list[dict[str, Any]]:
        with gw.db.engine.connect() as conn:
            return performance(conn, start=start, end=end, group_by=group_by, now=gw.core.clock.now(),
                               administration_scope=scope)

    rows = await gw.db.run(work)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[group_by, *FIELDS], lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)
        name = f"performance-{group_by}-{start.isoformat()}-{end.isoformat()}.csv"
        return web.Response(text=buffer.getvalue(), content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return ok({"from": start.isoformat(), "to": end.isoformat(), "group_by": group_by, "rows": rows})


def setup(app: web.Application) -> None:
    app.router.add_get("/api/v1/reports/performance", performance_report)
