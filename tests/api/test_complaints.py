"""Listing, filtering, paging, reading and validating complaints through the API."""
from __future__ import annotations

from datetime import timedelta

from conversations import reference as refs
from conversations.clock import Clock
from tests.api.conftest import ApiEnv

WATER_ORAN = "Pas d'eau au robinet depuis trois jours à Oran"


async def test_read_one_with_or_without_separators(api_env: ApiEnv) -> None:
    env = api_env
    reference = await env.intake(WATER_ORAN)
    assert refs.parse(reference) and len(reference) == 11 and reference[4] == "-"
    for form in (reference, refs.clean(reference), reference.replace("-", " ")):
        status, body = await env.call("agent", "GET", f"/api/v1/complaints/{form}")
        assert status == 200 and body["reference"] == reference
    assert body["status"] == "assigned" and body["category"] == "water"
    assert body["administration"] == "water_utility.oran" and body["place"] == "oran"
    assert body["channel"] == "phone" and body["language"] == "fr" and body["kind"] == "complaint"
    assert body["clocks"]["ack_due_at"] and body["clocks"]["answer_due_at"]
    assert [m["direction"] for m in body["messages"]] == ["in", "out"]
    assert body["messages"][0]["text"] == WATER_ORAN and body["messages"][1]["status"] in ("queued", "sent")
    assert "612345678" not in str(body["citizen"])  # masked
    assert [e["type"] for e in body["events"]] == ["created", "routed"]
    digits = refs.clean(reference)
    wrong = digits[:-1] + str((int(digits[-1]) + 1) % 10)
    for bad in (wrong, "12", refs.generate()):
        status, body = await env.call("agent", "GET", f"/api/v1/complaints/{bad}")
        assert status == 404 and body["error"]["code"] == "not_found"


async def test_pagination_and_total(api_env: ApiEnv) -> None:
    env = api_env
    made = [await env.intake(f"Nid de poule numéro {i} sur la route de Kénitra", phone=f"06610000{i:02d}",
                             who="supervisor", category="roads") for i in range(7)]
    seen = []
    offset = 0
    while offset is not None:
        status, page = await env.call("supervisor", "GET", f"/api/v1/complaints?limit=3&offset={offset}")
        assert status == 200 and page["total"] == 7 and len(page["items"]) <= 3
        seen += [item["reference"] for item in page["items"]]
        offset = page["next_offset"]
    assert seen == list(reversed(made))  # newest first
    status, page = await env.call("supervisor", "GET", "/api/v1/complaints?sort=received_at&limit=2")
    assert [i["reference"] for i in page["items"]] == made[:2]
    for query, field in (("limit=0", "limit"), ("limit=500", "limit"), ("offset=-1", "offset"), ("limit=x", "limit"),
                         ("status=bogus", "status"), ("sort=text", "sort"), ("from=yesterday", "from"),
                         ("overdue=maybe", "overdue"), ("kind=rant", "kind"), ("category=nope", "category"),
                         ("phone=12", "phone")):
        status, body = await env.call("supervisor", "GET", f"/api/v1/complaints?{query}")
        assert status == 400 and body["error"]["field"] == field, (query, body)


async def test_filters(api_factory) -> None:
    clock = Clock()
    env: ApiEnv = await api_factory(clock=clock)
    old = await env.intake("Les ordures ne sont pas ramassées à Casablanca", phone="0661111111", category="waste",
                           place="casablanca", who="supervisor")
    clock.advance(timedelta(days=20))
    water = await env.intake(WATER_ORAN, phone="0662222222")
    suggestion = await env.intake("Proposition: installer des lampadaires solaires", email="Citoyen@Example.org",
                                  kind="suggestion", category="street_lighting", who="supervisor")
    triage = await env.intake("bonjour je voudrais parler à quelqu'un", phone="0663333333")
    day_old = (clock.now() - timedelta(days=20)).date().isoformat()
    today = clock.now().date().isoformat()

    async def refs_for(query: str, who: str = "supervisor") -> set[str]:
        status, page = await env.call(who, "GET", f"/api/v1/complaints?{query}")
        assert status == 200, page
        assert page["total"] == len(page["items"])
        return {item["reference"] for item in page["items"]}

    assert await refs_for("") == {old, water, suggestion, triage}
    assert await refs_for("status=new") == {triage}
    assert await refs_for("status=new,assigned") == {old, water, suggestion, triage}
    assert await refs_for("category=water") == {water}
    assert await refs_for("administration=water_utility") == {water}  # includes its Oran branch
    assert await refs_for("administration=water_utility.oran") == {water}
    assert await refs_for("place=casablanca") == {old}
    assert await refs_for("channel=phone") == {old, water, suggestion, triage}
    assert await refs_for("channel=sms") == set()
    assert await refs_for("kind=suggestion") == {suggestion}
    assert await refs_for(f"from={today}") == {water, suggestion, triage}
    assert await refs_for(f"to={day_old}") == {old}
    assert await refs_for(f"from={day_old}&to={day_old}") == {old}
    assert await refs_for("overdue=true") == {old}  # acknowledgement was due after 15 days
    assert await refs_for("overdue=false") == {water, suggestion, triage}
    assert await refs_for("q=ROBINET") == {water}
    assert await refs_for(f"q={refs.clean(old)}") == {old}
    assert await refs_for(f"q={old}") == {old}
    assert await refs_for("q=100%25") == set()  # LIKE wildcards are literal
    assert await refs_for("phone=%2B212662222222") == {water}
    assert await refs_for("phone=0662222222") == {water}
    assert await refs_for("email=citoyen@example.org") == {suggestion}
    assert await refs_for("created_by=amina") == {water, triage}
    # officers: only their administration, whatever they ask
    assert await refs_for("", who="officer") == {water}
    assert await refs_for("", who="branch_officer") == {water}
    assert await refs_for("", who="other_officer") == {old, suggestion}  # waste and lighting: municipal
    assert await refs_for("administration=water_utility", who="other_officer") == set()
    # lookup with personal data in the body
    status, page = await env.call("agent", "POST", "/api/v1/complaints/lookup", {"phone": "+212 662-222222"})
    assert status == 200 and [i["reference"] for i in page["items"]] == [water]
    status, page = await env.call("agent", "POST", "/api/v1/complaints/lookup", {"reference": refs.clean(water)})
    assert [i["reference"] for i in page["items"]] == [water]
    status, page = await env.call("other_officer", "POST", "/api/v1/complaints/lookup", {"reference": water})
    assert status == 200 and page["items"] == []  # as if it did not exist
    status, body = await env.call("agent", "POST", "/api/v1/complaints/lookup", {})
    assert status == 400 and body["error"]["field"] == "reference"


async def test_officer_sees_other_administrations_as_missing(api_env: ApiEnv) -> None:
    env = api_env
    reference = await env.intake(WATER_ORAN)
    for method, suffix, body in (("GET", "", None), ("POST", "/status", {"status": "in_progress"}),
                                 ("POST", "/replies", {"text": "x"}), ("POST", "/notes", {"text": "x"}),
                                 ("POST", "/transfer", {"reason": "x"})):
        status, answer = await env.call("other_officer", method, f"/api/v1/complaints/{reference}{suffix}", body)
        assert status == 404 and answer["error"]["code"] == "not_found"
        unknown = refs.format_reference(refs.generate())
        status, answer2 = await env.call("other_officer", method, f"/api/v1/complaints/{unknown}{suffix}", body)
        assert (status, answer2) == (404, answer)  # indistinguishable from a reference that does not exist


async def test_validation_errors_name_the_field(api_env: ApiEnv) -> None:
    env = api_env
    cases = [
        ({"phone": "0612345678", "channel": "phone"}, "text"),
        ({"text": "x", "channel": "phone"}, "phone"),
        ({"text": "x", "phone": "12", "channel": "phone"}, "phone"),
        ({"text": "x", "phone": "not a number", "channel": "phone"}, "phone"),
        ({"text": "x", "email": "nobody", "channel": "phone"}, "email"),
        ({"text": "x", "phone": "0612345678", "channel": "fax"}, "channel"),
        ({"text": "x", "phone": "0612345678"}, "channel"),
        ({"text": "x", "phone": "0612345678", "channel": "phone", "kind": "rant"}, "kind"),
        ({"text": "x", "phone": "0612345678", "channel": "phone", "category": "weather"}, "category"),
        ({"text": "x", "phone": "0612345678", "channel": "phone", "place": "atlantis"}, "place"),
        ({"text": "x", "phone": "0612345678", "channel": "phone", "consent_sms": "yes"}, "consent_sms"),
        ({"text": 5, "phone": "0612345678", "channel": "phone"}, "text"),
    ]
    for body, field in cases:
        status, answer = await env.call("agent", "POST", "/api/v1/complaints", body)
        assert status == 400 and answer["error"]["field"] == field, (body, answer)
        assert answer["error"]["code"] == "invalid" and answer["error"]["message"]
    resp = await env.client.post("/api/v1/complaints", data="{not json", headers=env.headers("agent"))
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"
    reference = await env.intake(WATER_ORAN)
    for path, body, field in (("status", {}, "status"), ("status", {"status": "done"}, "status"),
                              ("replies", {"text": ""}, "text"), ("transfer", {"administration": "x"}, "reason"),
                              ("transfer", {"administration": "nasa", "reason": "r"}, "administration"),
                              ("notes", {}, "text")):
        status, answer = await env.call("supervisor", "POST", f"/api/v1/complaints/{reference}/{path}", body)
        assert status == 400 and answer["error"]["field"] == field, (path, answer)


async def test_status_transitions(api_env: ApiEnv) -> None:
    env = api_env
    reference = await env.intake(WATER_ORAN)
    status, body = await env.call("officer", "POST", f"/api/v1/complaints/{reference}/status", {"status": "closed"})
    assert status == 409 and body["error"]["code"] == "invalid_transition" and "assigned" in body["error"]["message"]
    status, body = await env.call("officer", "POST", f"/api/v1/complaints/{reference}/status", {"status": "rejected"})
    assert status == 422 and body["error"]["field"] == "note"
    status, body = await env.call("officer", "POST", f"/api/v1/complaints/{reference}/status",
                                  {"status": "rejected", "note": "outside our remit"})
    assert status == 200 and body["status"] == "rejected" and body["changed"] is True
    status, detail = await env.call("officer", "GET", f"/api/v1/complaints/{reference}")
    assert detail["rejected_reason"] == "outside our remit"
    event = detail["events"][-1]
    assert event["actor"] == "user:omar" and event["to_status"] == "rejected" and event["note"] == "outside our remit"
