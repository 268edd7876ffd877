"""The OpenAPI 3 document of ``/api/v1``, written as data next to the handlers.

``tests/api/test_openapi.py`` checks that every ``/api/v1`` route the app serves is described
here and that every path and method described is served. Route modules of other areas describe
their own paths with ``register()``; the paths of other areas known from the design are kept in
``PARTNER_PATHS`` and published only when the app really serves them.
"""
from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from conversations.complaints import KINDS, STATUSES
from gateway.api.service import INTAKE_CHANNELS

JSON = "application/json"
_REGISTERED: dict[str, dict[str, Any]] = {}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def answer(description: str, schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {JSON: {"schema": schema}}
    out.update(extra)
    return out


def errors(*codes: int) -> dict[str, Any]:
    texts = {400: "Invalid input; `error.field` names the field", 401: "No, invalid, expired or revoked credentials",
             403: "The role may not do this (or a cookie request without its CSRF token)",
             404: "No such complaint, or not visible to this user (officers: other administrations)",
             409: "Not possible in the current state (e.g. an invalid status transition)",
             422: "Semantically invalid (e.g. a rejection without a reason, an Idempotency-Key reused)",
             429: "Too many failed logins; see Retry-After"}
    return {str(c): answer(texts[c], ref("Error")) for c in codes}


def op(summary: str, *, roles: str, ok_code: int = 200, ok: dict[str, Any] | None = None,
       request: dict[str, Any] | None = None, params: list[dict[str, Any]] | None = None,
       errs: tuple[int, ...] = (401, 403), public: bool = False, description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary, "description": (description + f"\n\nRoles: {roles}.").strip(),
                           "responses": {str(ok_code): ok or answer("OK"), **errors(*errs)}}
    if request is not None:
        out["requestBody"] = request
    if params:
        out["parameters"] = params
    if public:
        out["security"] = []
    return out


def q(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


REFERENCE = {"name": "reference", "in": "path", "required": True,
             "description": "Complaint reference, with or without separators (`4821-3307-5`, `482133075`)",
             "schema": {"type": "string", "example": "4821-3307-5"}}
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "description": "A retried request with the same key (per user) is answered from the first "
                              "answer and sends nothing again (header `Idempotent-Replayed: true`)",
               "schema": {"type": "string", "maxLength": 255}}
DT = {"type": "string", "format": "date-time", "nullable": True}
NSTR = {"type": "string", "nullable": True}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "field": {"type": "string", "description": "the invalid field, for validation errors"}}}}},
    "Clocks": {"type": "object", "properties": {k: DT for k in (
        "ack_due_at", "answer_due_at", "assigned_at", "acknowledged_at", "answered_at", "closed_at")}},
    "ComplaintSummary": {"type": "object", "properties": {
        "reference": {"type": "string", "pattern": r"^\d{4}-\d{4}-\d$", "example": "4821-3307-5",
                      "description": "Always the grouped form NNNN-NNNN-N (the last digit is a Damm check digit)"},
        "status": {"type": "string", "enum": list(STATUSES)}, "kind": {"type": "string", "enum": list(KINDS)},
        "category": NSTR, "administration": NSTR, "place": NSTR, "channel": {"type": "string"},
        "language": NSTR, "excerpt": {"type": "string"}, "received_at": DT, "updated_at": DT,
        "created_by": NSTR, "overdue": {"type": "boolean"}, "clocks": ref("Clocks")}},
    "Message": {"type": "object", "properties": {
        "id": {"type": "integer"}, "direction": {"type": "string", "enum": ["in", "out"]},
        "channel": {"type": "string"}, "kind": {"type": "string"}, "text": {"type": "string"}, "subject": NSTR,
        "language": NSTR, "status": {"type": "string", "description":
                                     "in: received; out: queued, sent, sandbox, delivered, read, failed, undelivered"},
        "error_code": NSTR, "address": {"type": "string", "description": "the citizen's address, masked"},
        "template": NSTR, "author": NSTR, "attachments": {"type": "array", "items": {"type": "object"}},
        "created_at": DT, "sent_at": DT, "delivered_at": DT}},
    "Event": {"type": "object", "properties": {
        "id": {"type": "integer"}, "at": DT, "actor": {"type": "string", "example": "user:amina"},
        "type": {"type": "string", "example": "status_changed"}, "from_status": NSTR, "to_status": NSTR,
        "note": NSTR, "data": {"type": "object"}}},
    "Complaint": {"allOf": [ref("ComplaintSummary"), {"type": "object", "properties": {
        "text": {"type": "string"}, "consent_sms": {"type": "boolean"}, "anonymous": {"type": "boolean"},
        "routing": {"type": "object"}, "rejected_reason": NSTR, "transfer_count": {"type": "integer"},
        "reopened_count": {"type": "integer"}, "citizen": {"type": "object", "nullable": True},
        "messages": {"type": "array", "items": ref("Message"), "description": "inbound and outbound, in order"},
        "events": {"type": "array", "items": ref("Event"), "description": "the audit trail, in order"}}}]},
    "ComplaintPage": {"type": "object", "properties": {
        "items": {"type": "array", "items": ref("ComplaintSummary")}, "total": {"type": "integer"},
        "limit": {"type": "integer"}, "offset": {"type": "integer"},
        "next_offset": {"type": "integer", "nullable": True}}},
    "Intake": {"type": "object", "required": ["text", "channel"], "properties": {
        "text": {"type": "string", "description": "what the citizen says"},
        "phone": {"type": "string", "description": "national or +international; read with GATEWAY_COUNTRY"},
        "email": {"type": "string", "format": "email"},
        "channel": {"type": "string", "enum": list(INTAKE_CHANNELS)},
        "kind": {"type": "string", "enum": list(KINDS), "default": "complaint"},
        "category": {"type": "string", "description": "when absent, the router suggests it"},
        "place": {"type": "string"}, "language": {"type": "string"},
        "consent_sms": {"type": "boolean", "default": True}},
        "description": "`phone` or `email` is required"},
    "IntakeResult": {"type": "object", "properties": {
        "reference": {"type": "string", "example": "4821-3307-5"}, "status": {"type": "string"},
        "category": NSTR, "administration": NSTR, "place": NSTR, "language": {"type": "string"},
        "notified": {"type": "boolean", "description": "the reference was queued to the citizen"},
        "routing": {"type": "object"}}},
    "ActionResult": {"type": "object", "properties": {
        "reference": {"type": "string"}, "status": {"type": "string"}, "changed": {"type": "boolean"},
        "notified": {"type": "boolean"}, "queued": {"type": "boolean"}, "event_id": {"type": "integer"},
        "message_id": {"type": "integer", "nullable": True}, "category": NSTR, "administration": NSTR}},
    "Token": {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "kind": {"type": "string", "enum": ["api", "session"]},
        "created_at": DT, "expires_at": DT, "last_used_at": DT, "revoked_at": DT,
        "token": {"type": "string", "description": "only when created"}}},
    "User": {"type": "object", "properties": {
        "id": {"type": "integer"}, "username": {"type": "string"},
        "role": {"type": "string", "enum": ["agent", "officer", "supervisor", "admin"]},
        "administration": NSTR, "language": {"type": "string"}, "active": {"type": "boolean"},
        "created_at": DT, "last_login_at": DT,
        "password": {"type": "string", "description": "only when generated at creation"}}},
    "Correction": {"type": "object", "properties": {
        "id": {"type": "string"}, "text": {"type": "string"}, "channel": {"type": "string"},
        "category": {"type": "string"}, "place": NSTR, "from_category": NSTR, "corrected_by": {"type": "string"},
        "reason": NSTR, "at": DT}},
    "Suggestion": {"type": "object", "properties": {
        "category": NSTR, "category_name": NSTR, "administration": NSTR, "administration_name": NSTR,
        "place": NSTR, "confidence": {"type": "number"}, "reasons": {"type": "array", "items": {"type": "string"}}}},
}

ALL = "agent, officer, supervisor, admin"
LIST_PARAMS = [
    q("status", "one status or several separated by commas", {"type": "string", "example": "new,assigned"}),
    q("category", "category id"), q("administration", "administration id (includes its regional branches)"),
    q("place", "place id"), q("channel", "channel of origin (sms, telegram, email, ivr, phone, walk_in, register)"),
    q("kind", "complaint, observation or suggestion", {"type": "string", "enum": list(KINDS)}),
    q("from", "received on or after (YYYY-MM-DD or date-time, UTC)"),
    q("to", "received on or before (YYYY-MM-DD: the whole day)"),
    q("overdue", "true: open and past a due date; false: the others", {"type": "boolean"}),
    q("q", "text search over the complaint text and reference"),
    q("phone", "the citizen's number (prefer POST /api/v1/complaints/lookup: no personal data in URLs)"),
    q("email", "the citizen's e-mail (prefer POST /api/v1/complaints/lookup)"),
    q("created_by", "username of the agent who logged it"),
    q("sort", "order", {"type": "string", "enum": ["-received_at", "received_at", "answer_due_at", "-updated_at"]}),
    q("limit", "page size (1-200, default 50)", {"type": "integer", "default": 50}),
    q("offset", "items to skip", {"type": "integer", "default": 0}),
]

PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/openapi.json": {"get": op("This document", roles="anyone", public=True, errs=())},
    "/api/v1/auth/token": {
        "post": op("Log in: exchange a username and password for a bearer token", roles="anyone", public=True,
                   request=body({"type": "object", "required": ["username", "password"], "properties": {
                       "username": {"type": "string"}, "password": {"type": "string", "format": "password"},
                       "name": {"type": "string"}}}),
                   ok=answer("A bearer token", {"type": "object", "properties": {
                       "token": {"type": "string"}, "token_type": {"type": "string"}, "id": {"type": "integer"},
                       "expires_at": DT, "user": ref("User")}}), errs=(400, 401, 429),
                   description="Failed logins are throttled per username and per client address "
                               "(default 5 failures in 15 minutes, then 429 with Retry-After)."),
        "delete": op("Log out: revoke the token used for this request", roles=ALL, ok_code=204,
                     ok=answer("Revoked"), errs=(401,)),
    },
    "/api/v1/me": {"get": op("The authenticated user", roles=ALL, ok=answer("User", ref("User")), errs=(401,))},
    "/api/v1/tokens": {
        "get": op("The user's tokens and console sessions (never the secrets)", roles=ALL, errs=(401,),
                  ok=answer("Tokens", {"type": "object", "properties": {
                      "items": {"type": "array", "items": ref("Token")}}})),
        "post": op("Create a named API token (the secret is shown once)", roles=ALL, ok_code=201,
                   request=body({"type": "object", "required": ["name"], "properties": {
                       "name": {"type": "string"}, "expires_in_days": {"type": "number", "default": 30}}}),
                   ok=answer("Created", ref("Token")), errs=(400, 401)),
    },
    "/api/v1/tokens/{id}": {"delete": op(
        "Revoke a token (one's own; an admin any)", roles=ALL, ok_code=204, ok=answer("Revoked"), errs=(401, 404),
        params=[{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}])},
    "/api/v1/users": {
        "get": op("List users", roles="admin", ok=answer("Users", {"type": "object", "properties": {
            "items": {"type": "array", "items": ref("User")}}})),
        "post": op("Create a user (the password is generated and returned when not given)", roles="admin",
                   ok_code=201, ok=answer("Created", ref("User")), errs=(400, 401, 403, 409),
                   request=body({"type": "object", "required": ["username", "role"], "properties": {
                       "username": {"type": "string"},
                       "role": {"type": "string", "enum": ["agent", "officer", "supervisor", "admin"]},
                       "administration": {"type": "string", "description": "required for officers; may be a "
                                          "regional branch id like water_utility.oran"},
                       "password": {"type": "string", "minLength": 8}, "language": {"type": "string"}}})),
    },
    "/api/v1/users/{username}/deactivate": {"post": op(
        "Deactivate a user and revoke their tokens and sessions", roles="admin", ok=answer("User", ref("User")),
        errs=(401, 403, 404), params=[{"name": "username", "in": "path", "required": True,
                                       "schema": {"type": "string"}}])},
    "/api/v1/users/{username}/activate": {"post": op(
        "Reactivate a user", roles="admin", ok=answer("User", ref("User")), errs=(401, 403, 404),
        params=[{"name": "username", "in": "path", "required": True, "schema": {"type": "string"}}])},
    "/api/v1/complaints": {
        "get": op("List and filter complaints (officers: their administration only)", roles=ALL,
                  params=LIST_PARAMS, ok=answer("A page", ref("ComplaintPage")), errs=(400, 401)),
        "post": op("Agent intake: log a complaint told by phone, at a desk or from a paper register",
                   roles="agent, supervisor, admin", ok_code=201, ok=answer("Created", ref("IntakeResult")),
                   request=body(ref("Intake")), params=[IDEMPOTENCY], errs=(400, 401, 403, 422),
                   description="The router suggests the category when none is given. The citizen receives the "
                               "reference by SMS (when consent_sms) or e-mail through the outbox. The agent is "
                               "recorded as created_by and as the actor of the events."),
    },
    "/api/v1/complaints/lookup": {"post": op(
        "Look up by reference, phone number or e-mail (personal data in the body, not the URL)", roles=ALL,
        request=body({"type": "object", "properties": {"reference": {"type": "string"}, "phone": {"type": "string"},
                                                        "email": {"type": "string"}}}),
        ok=answer("Matches (a reference not visible to the user gives none)", ref("ComplaintPage")),
        errs=(400, 401))},
    "/api/v1/complaints/{reference}": {"get": op(
        "One complaint with its messages (with delivery status) and events", roles=ALL, params=[REFERENCE],
        ok=answer("The complaint", ref("Complaint")), errs=(401, 404))},
    "/api/v1/complaints/{reference}/status": {"post": op(
        "Change the status; the citizen is told once per change on their channel, in their language",
        roles="officer, supervisor, admin", params=[REFERENCE, IDEMPOTENCY],
        request=body({"type": "object", "required": ["status"], "properties": {
            "status": {"type": "string", "enum": list(STATUSES)},
            "note": {"type": "string", "description": "sent to the citizen; required (the reason) for rejected"}}}),
        ok=answer("Done; `changed` is false when it already had this status (nothing is sent)", ref("ActionResult")),
        errs=(400, 401, 403, 404, 409, 422))},
    "/api/v1/complaints/{reference}/replies": {"post": op(
        "Answer the citizen on their channel, in their language, through the outbox",
        roles="officer, supervisor, admin", ok_code=201, params=[REFERENCE, IDEMPOTENCY],
        request=body({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}),
        ok=answer("Queued", ref("ActionResult")), errs=(400, 401, 403, 404, 422))},
    "/api/v1/complaints/{reference}/transfer": {"post": op(
        "Transfer to another administration, back to triage, or correct the routing (with a category)",
        roles="officer, supervisor, admin (category: supervisor, admin)", params=[REFERENCE, IDEMPOTENCY],
        request=body({"type": "object", "required": ["reason"], "properties": {
            "administration": {"type": "string", "description": "target; omitted with no category: back to triage"},
            "category": {"type": "string", "description": "a routing correction (supervisors); the administration "
                                                          "follows from it unless given"},
            "reason": {"type": "string"}}}),
        ok=answer("Transferred", ref("ActionResult")), errs=(400, 401, 403, 404, 409, 422),
        description="Officers send a complaint back as \"not ours\" with a reason. Corrections are recorded "
                    "with who and why and exported by GET /api/v1/routing/corrections.")},
    "/api/v1/complaints/{reference}/notes": {"post": op(
        "Add an internal note (never sent to the citizen)", roles=ALL, ok_code=201, params=[REFERENCE, IDEMPOTENCY],
        request=body({"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}),
        ok=answer("Added", ref("ActionResult")), errs=(400, 401, 403, 404))},
    "/api/v1/routing/corrections": {"get": op(
        "Routing corrections as labelled data", roles="supervisor, admin",
        params=[q("format", "json (with who and why) or jsonl (lines {id, text, channel, category, place}, the "
                  "labelled file format)", {"type": "string", "enum": ["json", "jsonl"]}),
                q("from", "corrections made on or after this date")],
        ok=answer("Corrections", {"type": "object", "properties": {
            "items": {"type": "array", "items": ref("Correction")}, "total": {"type": "integer"}}},
            ), errs=(400, 401, 403))},
    "/api/v1/routing/suggest": {"post": op(
        "Suggest a category, administration and place for a text (the intake form calls it while typing)",
        roles=ALL, request=body({"type": "object", "required": ["text"], "properties": {
            "text": {"type": "string"}, "place": {"type": "string"}, "language": {"type": "string"}}}),
        ok=answer("Suggestion (category null: human triage)", ref("Suggestion")), errs=(400, 401))},
}
PATHS["/api/v1/routing/corrections"]["get"]["responses"]["200"]["content"]["application/x-ndjson"] = {
    "schema": {"type": "string"}}

# Other areas' /api/v1 routes (DESIGN.md and their issues), published only when served.
PARTNER_PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/calls": {"get": op("Recent calls to the hotline", roles="agent, supervisor, admin",
                                params=[q("limit", "page size"), q("offset", "items to skip")], errs=(400, 401, 403))},
    "/api/v1/callbacks": {"get": op("Callback tasks for agents", roles="agent, supervisor, admin",
                                    params=[q("status", "open, done or all"), q("limit", "page size"),
                                            q("offset", "items to skip")], errs=(400, 401, 403))},
    "/api/v1/callbacks/{id}/done": {"post": op(
        "Mark a callback task done", roles="agent, supervisor, admin", errs=(400, 401, 403, 404),
        params=[{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
        request=body({"type": "object", "properties": {"note": {"type": "string"}}}, required=False))},
    "/api/v1/reports/performance": {"get": op(
        "Performance per administration, category, channel or place (JSON, or CSV with format=csv)",
        roles="officer (their administration only), supervisor, admin",
        params=[q("from", "YYYY-MM-DD"), q("to", "YYYY-MM-DD"),
                q("group_by", "administration, category, channel or place"), q("format", "json or csv")],
        errs=(400, 401, 403))},
}


def register(paths: dict[str, dict[str, Any]]) -> None:
    """Describe another module's ``/api/v1`` paths (called from its ``setup``)."""
    _REGISTERED.update(paths)


def served(app: web.Application) -> set[tuple[str, str]]:
    """(path, method) pairs the app routes under /api/v1."""
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/v1") and route.method not in ("HEAD", "OPTIONS", "*"):
            out.add((path, route.method.lower()))
    return out


def document(app: web.Application, server_url: str | None = None) -> dict[str, Any]:
    paths = copy.deepcopy(PATHS)
    present = served(app)
    for extra in (PARTNER_PATHS, _REGISTERED):
        for path, methods in extra.items():
            for method, spec in methods.items():
                if (path, method) in present and method not in paths.get(path, {}):
                    paths.setdefault(path, {})[method] = copy.deepcopy(spec)
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "Complaints gateway API", "version": "1",
                 "description": "Work-side API for agents, officers, supervisors and administrators. Errors are "
                                "`{\"error\": {\"code\", \"message\", \"field\"?}}`. Officers only see their "
                                "administration's complaints (and its regional branches); any other reference "
                                "answers 404. Every change is recorded in the complaint's events as "
                                "`user:<username>`."},
        "servers": [{"url": server_url or "/"}],
        "security": [{"bearerAuth": []}, {"cookieAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "POST /api/v1/auth/token, or a named token from /api/v1/tokens"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "gw_session",
                               "description": "The console session; unsafe methods also need X-CSRF-Token"},
            },
            "schemas": SCHEMAS,
        },
    }
    return doc


async def serve(request: web.Request) -> web.StreamResponse:
    from gateway.api.common import ok
    from gateway.http import GATEWAY

    return ok(document(request.app, request.app[GATEWAY].settings.public_url))
