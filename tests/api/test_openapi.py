"""The OpenAPI document matches what the server routes under /api/v1, both ways."""
from __future__ import annotations

import re

from aiohttp import web

from gateway.api import openapi
from gateway.app import create_app


async def test_document_matches_routes(sqlite_url, make_gateway, start_client) -> None:
    gw = make_gateway(sqlite_url)
    client = await start_client(gw, background=False)
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    doc = await resp.json()
    assert doc["openapi"].startswith("3.") and doc["info"]["title"]
    documented = {(path, method) for path, methods in doc["paths"].items() for method in methods}
    served = openapi.served(client.server.app)
    assert served - documented == set(), f"served but not documented: {served - documented}"
    assert documented - served == set(), f"documented but not served: {documented - served}"
    for path, methods in doc["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, spec in methods.items():
            declared = {p["name"] for p in spec.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, method)
            assert spec["responses"], (path, method)
            for answer in spec["responses"].values():
                for media in answer.get("content", {}).values():
                    _check_refs(media["schema"], doc)


def _check_refs(schema: object, doc: dict) -> None:
    if isinstance(schema, dict):
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[1]
            assert name in doc["components"]["schemas"], name
        for value in schema.values():
            _check_refs(value, doc)
    elif isinstance(schema, list):
        for value in schema:
            _check_refs(value, doc)


def test_partner_paths_only_when_served(sqlite_url, make_gateway) -> None:
    app = web.Application()
    app.router.add_get("/api/v1/calls", lambda r: web.Response())
    doc = openapi.document(app)
    assert "/api/v1/calls" in doc["paths"] and "/api/v1/reports/performance" not in doc["paths"]
    full = create_app(make_gateway(sqlite_url), background=False)
    reports = ("/api/v1/reports/performance", "get") in openapi.served(full)
    assert ("/api/v1/reports/performance" in openapi.document(full)["paths"]) == reports
    reference = openapi.PATHS["/api/v1/complaints/{reference}"]["get"]["responses"]["200"]
    assert reference["content"]["application/json"]["schema"]["$ref"].endswith("/Complaint")
    assert openapi.SCHEMAS["ComplaintSummary"]["properties"]["reference"]["pattern"] == r"^\d{4}-\d{4}-\d$"
