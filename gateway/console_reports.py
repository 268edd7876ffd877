"""Console report pages: ``/console/reports`` and the printable ``/console/reports/quarterly``.

Server-rendered HTML (Jinja templates in ``gateway/templates_reports/``) with inline SVG charts,
no JavaScript; Arabic (right to left), French and English by ``?lang=`` (remembered in a
``lang`` cookie), else the user's language. Authentication is ``gateway.auth.authenticate``;
supervisors and admins see every administration, officers their own, agents none (403).
The figures come from ``conversations.reports`` (SQL aggregates).
"""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from conversations.reports import FIELDS, GROUPS, performance, volumes
from gateway.auth import authenticate
from gateway.http import GATEWAY
from store.models import User

TEMPLATES = Path(__file__).resolve().parent / "templates_reports"
ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
LANGUAGES = ("ar", "fr", "en")
ROLES = ("officer", "supervisor", "admin")
MAX_DAYS = 3 * 366

LABELS: dict[str, dict[str, str]] = {
    "en": {"title": "Performance reports", "from": "From", "to": "To", "group_by": "Group by", "show": "Show",
           "csv": "Download CSV", "quarterly": "Quarterly report", "volumes": "Complaints received over time",
           "on_time": "On-time rates by administration", "ack": "acknowledged on time", "ans": "answered on time",
           "administration": "Administration", "category": "Category", "channel": "Channel", "place": "Place",
           "received": "Received", "acknowledged_on_time_pct": "Acknowledged on time (%)",
           "answered_on_time_pct": "Answered on time (%)", "median_hours_to_acknowledge": "Median hours to acknowledge",
           "median_hours_to_answer": "Median hours to answer", "p90_hours_to_acknowledge": "90th pct. hours to acknowledge",
           "p90_hours_to_answer": "90th pct. hours to answer", "overdue": "Overdue now", "reopened_pct": "Reopened (%)",
           "transferred_pct": "Transferred (%)", "satisfaction": "Satisfaction (1-5)", "satisfaction_count": "Ratings",
           "none": "No complaint received in this period.", "total": "All", "quarter": "Quarter",
           "year": "Year", "print": "Print", "region": "Region", "generated": "Generated on",
           "all_places": "all places", "forbidden": "Reports are for officers, supervisors and administrators.",
           "login": "Please sign in to the console first.", "bad": "Invalid request", "unknown": "(not set)",
           "summary": "Summary", "by_administration": "By administration", "by_category": "By category",
           "by_channel": "By channel", "monthly": "Complaints received per month", "definitions": "How figures are computed",
           "definitions_text": "Complaints received in the period (UTC dates). On time: acknowledged or answered by "
                               "the legal deadline, among those whose deadline has passed or that were handled. "
                               "Hours are counted from receipt; medians and 90th percentiles over those handled. "
                               "Overdue: still open and past a deadline today."},
    "fr": {"title": "Rapports de performance", "from": "Du", "to": "Au", "group_by": "Regrouper par",
           "show": "Afficher", "csv": "Télécharger le CSV", "quarterly": "Rapport trimestriel",
           "volumes": "Réclamations reçues dans le temps", "on_time": "Respect des délais par administration",
           "ack": "accusé dans le délai", "ans": "répondu dans le délai", "administration": "Administration",
           "category": "Catégorie", "channel": "Canal", "place": "Lieu", "received": "Reçues",
           "acknowledged_on_time_pct": "Accusé dans le délai (%)", "answered_on_time_pct": "Répondu dans le délai (%)",
           "median_hours_to_acknowledge": "Heures médianes avant accusé", "median_hours_to_answer": "Heures médianes avant réponse",
           "p90_hours_to_acknowledge": "90e centile (h) avant accusé", "p90_hours_to_answer": "90e centile (h) avant réponse",
           "overdue": "En retard", "reopened_pct": "Rouvertes (%)", "transferred_pct": "Transférées (%)",
           "satisfaction": "Satisfaction (1-5)", "satisfaction_count": "Notes",
           "none": "Aucune réclamation reçue sur cette période.", "total": "Ensemble", "quarter": "Trimestre",
           "year": "Année", "print": "Imprimer", "region": "Région", "generated": "Établi le",
           "all_places": "tous les lieux", "forbidden": "Les rapports sont réservés aux agents des administrations, "
           "superviseurs et administrateurs.", "login": "Veuillez d'abord vous connecter à la console.",
           "bad": "Requête invalide", "unknown": "(non renseigné)", "summary": "Synthèse",
           "by_administration": "Par administration", "by_category": "Par catégorie", "by_channel": "Par canal",
           "monthly": "Réclamations reçues par mois", "definitions": "Mode de calcul",
           "definitions_text": "Réclamations reçues sur la période (dates UTC). Dans le délai : accusé ou réponse au "
                               "plus tard à l'échéance légale, parmi celles dont l'échéance est passée ou qui ont "
                               "été traitées. Heures comptées depuis la réception ; médianes et 90e centiles sur "
                               "celles traitées. En retard : encore ouvertes et au-delà d'une échéance aujourd'hui."},
    "ar": {"title": "تقارير الأداء", "from": "من", "to": "إلى", "group_by": "التجميع حسب", "show": "عرض",
           "csv": "تحميل CSV", "quarterly": "التقرير الفصلي", "volumes": "الشكايات المتوصل بها عبر الزمن",
           "on_time": "احترام الآجال حسب الإدارة", "ack": "إشعار داخل الأجل", "ans": "جواب داخل الأجل",
           "administration": "الإدارة", "category": "الصنف", "channel": "القناة", "place": "المكان",
           "received": "المتوصل بها", "acknowledged_on_time_pct": "الإشعار داخل الأجل (%)",
           "answered_on_time_pct": "الجواب داخل الأجل (%)", "median_hours_to_acknowledge": "الوسيط (ساعات) قبل الإشعار",
           "median_hours_to_answer": "الوسيط (ساعات) قبل الجواب", "p90_hours_to_acknowledge": "المئين 90 (ساعات) قبل الإشعار",
           "p90_hours_to_answer": "المئين 90 (ساعات) قبل الجواب", "overdue": "متأخرة حاليا", "reopened_pct": "أعيد فتحها (%)",
           "transferred_pct": "محولة (%)", "satisfaction": "الرضا (1-5)", "satisfaction_count": "التقييمات",
           "none": "لا توجد شكايات في هذه الفترة.", "total": "المجموع", "quarter": "الفصل", "year": "السنة",
           "print": "طباعة", "region": "الجهة", "generated": "أنجز بتاريخ", "all_places": "كل الأماكن",
           "forbidden": "التقارير مخصصة لموظفي الإدارات والمشرفين والمسؤولين.", "login": "المرجو تسجيل الدخول أولا.",
           "bad": "طلب غير صالح", "unknown": "(غير محدد)", "summary": "ملخص", "by_administration": "حسب الإدارة",
           "by_category": "حسب الصنف", "by_channel": "حسب القناة", "monthly": "الشكايات المتوصل بها شهريا",
           "definitions": "طريقة الحساب",
           "definitions_text": "الشكايات المتوصل بها خلال الفترة (تواريخ UTC). داخل الأجل: الإشعار أو الجواب قبل "
                               "انتهاء الأجل القانوني، من بين الشكايات التي انتهى أجلها أو عولجت. الساعات محسوبة "
                               "منذ التوصل؛ الوسيط والمئين 90 على الشكايات المعالجة. متأخرة: مفتوحة وتجاوزت أجلا."},
}


class PageError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _language(request: web.Request, user: User | None) -> str:
    for candidate in (request.query.get("lang"), request.cookies.get("lang"), user.language if user else None):
        if candidate in LANGUAGES:
            return candidate  # type: ignore[return-value]
    return "fr"


def _page(request: web.Request, template: str, lang: str, status: int = 200, **values: Any) -> web.Response:
    keep = [(k, v) for k, v in request.query.items() if k != "lang"]
    values.setdefault("request_query", urlencode(keep) + "&" if keep else "")
    html = ENV.get_template(template).render(lang=lang, dir="rtl" if lang == "ar" else "ltr", t=LABELS[lang],
                                             **values)
    response = web.Response(text=html, content_type="text/html", charset="utf-8", status=status,
                            headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
    if request.query.get("lang") in LANGUAGES:
        response.set_cookie("lang", request.query["lang"], max_age=365 * 86400, samesite="Lax", httponly=True)
    return response


async def _user(request: web.Request) -> User:
    try:
        user = await authenticate(request)
    except web.HTTPUnauthorized as exc:
        raise PageError(401, LABELS[_language(request, None)]["login"]) from exc
    if user.role not in ROLES:
        raise PageError(403, LABELS[_language(request, user)]["forbidden"])
    return user


def _date(request: web.Request, name: str, default: date) -> date:
    raw = request.query.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise PageError(400, f"{name}: YYYY-MM-DD") from exc


def _int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if not raw:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise PageError(400, f"{name}: {lo}-{hi}")
    return int(raw)


def _names(gw: Any, group_by: str, key: str | None, lang: str) -> str:
    t = LABELS[lang]
    if group_by == "total":
        return t["total"]
    if key is None:
        return t["unknown"]
    if group_by == "administration":
        return gw.config.administration_name(key, lang) or key
    if group_by == "category" and key in gw.config.categories:
        return gw.config.categories[key].name(lang)
    if group_by == "place" and key in gw.config.places and gw.config.places[key].names:
        return gw.config.places[key].names[0]
    return key


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def bar_chart(points: list[tuple[str, float]], *, width: int = 720, height: int = 220, unit: str = "",
              max_value: float | None = None, label: str = "") -> Markup:
    """A vertical bar chart as inline SVG (labels escaped)."""
    if not points:
        return Markup("")
    top = max_value or max(v for _, v in points) or 1
    left, bottom, gap = 40, 40, 2
    plot_w, plot_h = width - left - 10, height - bottom - 10
    bar_w = max(plot_w / len(points) - gap, 1)
    parts = [f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
             f'width="100%" xmlns="http://www.w3.org/2000/svg" direction="ltr">']
    for i in range(5):
        y = 10 + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
                     f'{top * i / 4:.0f}{escape(unit)}</text>')
    step = max(len(points) // 12, 1)
    for i, (name, value) in enumerate(points):
        h = plot_h * (value / top) if top else 0
        x = left + i * (bar_w + gap)
        parts.append(f'<rect x="{x:.1f}" y="{10 + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" class="bar">'
                     f'<title>{escape(name)}: {value:g}{escape(unit)}</title></rect>')
        if i % step == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle" '
                         f'class="axis">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def rate_chart(rows: list[tuple[str, float | None, float | None]], labels: tuple[str, str], *,
               width: int = 720, label: str = "") -> Markup:
    """Horizontal paired bars (two percentages per row) as inline SVG."""
    if not rows:
        return Markup("")
    row_h, name_w = 34, 230
    height = row_h * len(rows) + 30
    plot_w = width - name_w - 60
    parts = [f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
             f'width="100%" xmlns="http://www.w3.org/2000/svg" direction="ltr">']
    for i, (name, first, second) in enumerate(rows):
        y = 10 + i * row_h
        parts.append(f'<text x="{name_w - 6}" y="{y + 16}" text-anchor="end" class="axis">{escape(name[:40])}</text>')
        for j, value in enumerate((first, second)):
            w = plot_w * (value or 0) / 100
            parts.append(f'<rect x="{name_w}" y="{y + j * 13}" width="{w:.1f}" height="11" class="bar{j + 1}">'
                         f'<title>{escape(name)} — {escape(labels[j])}: {_fmt(value)} %</title></rect>'
                         f'<text x="{name_w + w + 4:.1f}" y="{y + j * 13 + 10}" class="axis">{_fmt(value)} %</text>')
    legend_y = height - 8
    parts.append(f'<rect x="{name_w}" y="{legend_y - 9}" width="10" height="10" class="bar1"/>'
                 f'<text x="{name_w + 14}" y="{legend_y}" class="axis">{escape(labels[0])}</text>'
                 f'<rect x="{name_w + 200}" y="{legend_y - 9}" width="10" height="10" class="bar2"/>'
                 f'<text x="{name_w + 214}" y="{legend_y}" class="axis">{escape(labels[1])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _table(gw: Any, rows: list[dict[str, Any]], group_by: str, lang: str) -> list[dict[str, Any]]:
    return [{"name": _names(gw, group_by, r[group_by], lang), "key": r[group_by],
             "cells": [_fmt(r[f]) for f in FIELDS]} for r in rows]


async def _error_page(request: web.Request, exc: PageError) -> web.Response:
    lang = _language(request, None)
    return _page(request, "error.html", lang, status=exc.status, message=exc.message)


async def reports_page(request: web.Request) -> web.Response:
    try:
        user = await _user(request)
        gw = request.app[GATEWAY]
        lang = _language(request, user)
        today = gw.core.clock.now().date()
        start = _date(request, "from", today - timedelta(days=89))
        end = _date(request, "to", today)
        if end < start or (end - start).days > MAX_DAYS:
            raise PageError(400, "to")
        group_by = request.query.get("group_by", "administration")
        if group_by not in GROUPS:
            raise PageError(400, "group_by")
    except PageError as exc:
        return await _error_page(request, exc)
    scope = user.administration or "\x00" if user.role == "officer" else None
    bucket = "day" if (end - start).days <= 92 else "month"
    now = gw.core.clock.now()

    def work() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        with gw.db.engine.connect() as conn:
            kw = {"start": start, "end": end, "now": now, "administration_scope": scope}
            return (performance(conn, group_by=group_by, **kw), performance(conn, group_by="total", **kw),
                    performance(conn, group_by="administration", **kw) if group_by != "administration" else [],
                    volumes(conn, start=start, end=end, bucket=bucket, administration_scope=scope))

    rows, total, by_admin, vols = await gw.db.run(work)
    by_admin = by_admin or rows
    t = LABELS[lang]
    query = {"from": start.isoformat(), "to": end.isoformat(), "group_by": group_by}
    quarter = (end.month - 1) // 3 + 1
    return _page(
        request, "reports.html", lang, user=user, start=start, end=end, group_by=group_by, groups=list(GROUPS),
        fields=FIELDS, rows=_table(gw, rows, group_by, lang), total=_table(gw, total, "total", lang),
        csv_url="/api/v1/reports/performance?" + urlencode({**query, "format": "csv"}),
        quarterly_url="/console/reports/quarterly?" + urlencode({"year": end.year, "quarter": quarter, "lang": lang}),
        volume_chart=bar_chart([(v["bucket"], v["received"]) for v in vols], label=t["volumes"]),
        rate_chart=rate_chart([(_names(gw, "administration", r["administration"], lang),
                                r["acknowledged_on_time_pct"], r["answered_on_time_pct"]) for r in by_admin],
                              (t["ack"], t["ans"]), label=t["on_time"]))


async def quarterly_page(request: web.Request) -> web.Response:
    try:
        user = await _user(request)
        gw = request.app[GATEWAY]
        lang = _language(request, user)
        today = gw.core.clock.now().date()
        year = _int(request, "year", today.year, 2000, 2100)
        quarter = _int(request, "quarter", (today.month - 1) // 3 + 1, 1, 4)
        place = request.query.get("place") or None
        if place is not None and place not in gw.config.places:
            raise PageError(400, "place")
    except PageError as exc:
        return await _error_page(request, exc)
    start = date(year, 3 * quarter - 2, 1)
    end = (date(year + (quarter == 4), (3 * quarter) % 12 + 1, 1)) - timedelta(days=1)
    scope = user.administration or "\x00" if user.role == "officer" else None
    now = gw.core.clock.now()

    def work() -> dict[str, list[dict[str, Any]]]:
        with gw.db.engine.connect() as conn:
            kw = {"start": start, "end": end, "now": now, "administration_scope": scope, "place": place}
            return {g: performance(conn, group_by=g, **kw) for g in ("total", "administration", "category", "channel")} \
                | {"volumes": volumes(conn, start=start, end=end, bucket="month", administration_scope=scope,
                                      place=place)}

    data = await gw.db.run(work)
    t = LABELS[lang]
    place_name = _names(gw, "place", place, lang) if place else t["all_places"]
    return _page(
        request, "quarterly.html", lang, user=user, year=year, quarter=quarter, start=start, end=end,
        place=place, place_name=place_name, fields=FIELDS, generated=now.date(),
        total=_table(gw, data["total"], "total", lang),
        sections=[(t["by_administration"], _table(gw, data["administration"], "administration", lang)),
                  (t["by_category"], _table(gw, data["category"], "category", lang)),
                  (t["by_channel"], _table(gw, data["channel"], "channel", lang))],
        volume_chart=bar_chart([(v["bucket"], v["received"]) for v in data["volumes"]], label=t["monthly"]))


def setup(app: web.Application) -> None:
    app.router.add_get("/console/reports", reports_page)
    app.router.add_get("/console/reports/quarterly", quarterly_page)
