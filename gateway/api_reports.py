"""``POST /api/v1/complaints/{reference}/link``: an officer links a complaint as a duplicate.

Body ``{"original": "<reference>"}`` (``duplicate_of`` is accepted too). Both complaints must
be visible to the user (officers: their administration); otherwise 404. The answer is
``{"reference", "duplicate_of", "linked", "probable_duplicate_of"}``; ``linked`` is false when
the link already existed. From then on, the citizen of the duplicate receives the original's
status updates.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlmodel import Session, select

from conversations import reference as refs
from conversations.duplicates import LinkError, link_duplicate
from gateway.api.common import api, invalid, not_found, ok, read_json, text_field
from gateway.api.openapi import REFERENCE, answer, body, op, register
from gateway.auth import require, visible_to
from gateway.http import GATEWAY
from store.models import Complaint, User

ROLES = ("officer", "supervisor", "admin")


def _visible(session: Session, reference: str, user: User, what: str) -> Complaint:
    digits = refs.clean(reference)
    complaint = session.exec(select(Complaint).where(Complaint.reference == digits)).first() if digits else None
    if complaint is None or not visible_to(user, complaint):
        raise not_found(what)
    return complaint


def _ref_of(session: Session, complaint_id: int | None) -> str | None:
    if complaint_id is None:
        return None
    other = session.get(Complaint, complaint_id)
    return refs.format_reference(other.reference) if other else None


@api
async def link(request: web.Request) -> web.Response:
    user = await require(request, *ROLES)
    gw = request.app[GATEWAY]
    data = await read_json(request)
    name = "original" if "original" in data or "duplicate_of" not in data else "duplicate_of"
    original_ref = text_field(data, name, required=True, max_length=40)

    def work() -> dict[str, Any]:
        with gw.db.session() as session:
            complaint = _visible(session, request.match_info["reference"], user, "complaint")
            original = _visible(session, original_ref or "", user, "original complaint")
            try:
                linked = link_duplicate(session, complaint, original, f"user:{user.username}", gw.core.clock.now())
            except LinkError as exc:
                raise invalid(name, str(exc)) from exc
            session.flush()
            return {"reference": refs.format_reference(complaint.reference),
                    "duplicate_of": _ref_of(session, complaint.duplicate_of_id), "linked": linked,
                    "probable_duplicate_of": _ref_of(session, complaint.probable_duplicate_of_id)}

    return ok(await gw.db.run(work))


register({"/api/v1/complaints/{reference}/link": {"post": op(
    "Link the complaint as a duplicate of another (both must be visible to the user)",
    roles="officer (their administration), supervisor, admin", errs=(400, 401, 403, 404),
    ok=answer("Linked", {"type": "object", "properties": {
        "reference": {"type": "string"}, "duplicate_of": {"type": "string"}, "linked": {"type": "boolean"},
        "probable_duplicate_of": {"type": "string", "nullable": True}}}),
    request=body({"type": "object", "required": ["original"], "properties": {"original": {"type": "string"}}}),
    params=[REFERENCE])}})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/v1/complaints/{reference}/link", link)
