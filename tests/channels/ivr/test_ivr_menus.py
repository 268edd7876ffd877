"""IVR menus through real signed HTTP requests: languages, main and category menus, no input and
invalid keys, withheld numbers, forged and malformed requests, the apology on failure."""
from __future__ import annotations

from sqlmodel import select

from conversations import ivr_dialogue
from store.models_ivr import Call as CallRow
from tests.conftest import post_signed
from tests.support.ivr import CITIZEN, OTHER, VOICE, Call, call_params, new_sid, says, spoken, verbs

URL = "https://gateway.example.org/webhooks/twilio/voice"


async def test_language_menu_lists_each_language_in_its_own_voice(db_url, make_gateway, start_client) -> None:
    client = await start_client(make_gateway(db_url), background=False)
    root = await Call(client).start()
    assert verbs(root) == ["Say", "Gather", "Redirect"]
    gather = root.find("Gather")
    assert gather.get("input") == "dtmf" and gather.get("numDigits") == "1"
    assert gather.get("action") == f"{URL}/language" and gather.get("method") == "POST"
    assert root.find("Redirect").text == f"{URL}/language"
    items = [(s.get("language"), s.text) for s in gather.iter("Say")]
    assert items[0] == ("ar-XA", "للعربية، اضغطوا على 1.")
    assert items[1] == ("fr-FR", "Pour le français, tapez 2.")
    assert items[2] == ("ar-XA", "للأمازيغية، اضغطوا على 3.")  # no Tamazight voice: said in Arabic
    assert items[3] == ("en-US", "For English, press 4.")
    assert all(s.get("voice") for s in gather.iter("Say"))


async def test_main_menu_in_french_and_english_and_language_remembered(db_url, make_gateway, start_client) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw, background=False)
    french = Call(client)
    await french.start()
    menu = await french.press("language", "2")
    gather = menu.find("Gather")
    assert gather.get("action") == f"{URL}/menu" and gather.get("numDigits") == "1"
    text = spoken(menu)
    assert "Pour déposer une nouvelle réclamation, tapez 1" in text and "tapez 9" in text
    assert {s.get("language") for s in says(menu)} == {"fr-FR"}

    english = Call(client, number=OTHER)
    await english.start()
    menu = await english.press("language", "4")
    assert "To file a new complaint, press 1" in spoken(menu)
    assert {s.get("language") for s in says(menu)} == {"en-US"}

    again = await Call(client).start()  # the French caller calls again: no language menu
    assert "Pour déposer une nouvelle réclamation" in spoken(again)
    assert again.find("Gather").get("action") == f"{URL}/menu"
    with gw.db.session() as s:
        rows = s.exec(select(CallRow).order_by(CallRow.id)).all()
        assert [r.language for r in rows] == ["fr", "en", "fr"]
        assert rows[0].caller == "tel:" + CITIZEN and rows[0].step == "menu"
    # 0 goes back to the language menu
    languages = await Call(client).press("menu", "0")
    assert languages.find("Gather").get("action") == f"{URL}/language"


async def test_repeat_and_category_menu_in_two_languages(db_url, make_gateway, start_client) -> None:
    client = await start_client(make_gateway(db_url), background=False)
    fr = Call(client)
    await fr.start()
    await fr.press("language", "2")
    repeat = await fr.press("menu", "9")
    assert "Pour déposer une nouvelle réclamation" in spoken(repeat)
    categories = await fr.press("menu", "1")
    gather = categories.find("Gather")
    assert gather.get("action") == f"{URL}/category"
    text = spoken(categories)
    assert "Pour Eau et assainissement, tapez 1." in text
    assert "Pour Éclairage public, tapez 5." in text and "Pour un autre sujet, tapez 6." in text

    en = Call(client, number=OTHER)
    await en.start()
    await en.press("language", "4")
    categories = await en.press("menu", "1")
    text = spoken(categories)
    assert "For Water and sanitation, press 1." in text and "For any other subject, press 6." in text
    record = await en.press("category", "2")
    assert verbs(record) == ["Say", "Record", "Redirect"]
    rec = record.find("Record")
    assert rec.get("maxLength") == "120" and rec.get("finishOnKey") == "#"
    assert rec.get("action") == f"{URL}/record"
    assert rec.get("recordingStatusCallback") == f"{URL}/recording"
    assert rec.get("transcribe") == "true" and rec.get("transcribeCallback") == f"{URL}/transcription"
    assert "After the beep" in spoken(record)


async def test_no_input_and_invalid_keys_reprompt_then_end_politely(db_url, make_gateway, start_client) -> None:
    client = await start_client(make_gateway(db_url), background=False)
    call = Call(client)
    await call.start()
    silent = await call.press("language", None)  # the Gather timed out, Twilio followed the Redirect
    assert "لم نتوصل باختياركم" in spoken(silent)
    assert silent.find("Gather").get("action") == f"{URL}/language"
    await call.press("language", "2")
    first = await call.press("menu", "7")
    assert "Ce choix n'est pas valide." in spoken(first) and first.find("Gather") is not None
    second = await call.press("menu", None)
    assert "Nous n'avons pas reçu votre choix." in spoken(second) and second.find("Gather") is not None
    third = await call.press("menu", "*")
    assert verbs(third)[-1] == "Hangup" and third.find("Gather") is None
    assert "Au revoir" in spoken(third)
    # a good key resets the count for the next menu
    other = Call(client)
    await other.start()
    await other.press("menu", "8")
    await other.press("menu", "9")
    assert (await other.press("menu", "8")).find("Gather") is not None


async def test_tamazight_plays_configured_audio(db_url, make_gateway, start_client) -> None:
    audio = {"channels": {"ivr": {"audio": {"tzm": {"choose_language": "https://cdn.example.org/tzm/choose.mp3",
                                                    "main_menu": "https://cdn.example.org/tzm/menu.mp3"}}}}}
    client = await start_client(make_gateway(db_url, config_overrides=audio), background=False)
    call = Call(client)
    root = await call.start()
    assert [p.text for p in root.iter("Play")] == ["https://cdn.example.org/tzm/choose.mp3"]
    menu = await call.press("language", "3")
    assert [p.text for p in menu.iter("Play")] == ["https://cdn.example.org/tzm/menu.mp3"]
    # prompts without audio fall back to the default language's voice
    assert {s.get("language") for s in says(menu)} == {"ar-XA"}


async def test_tamazight_without_audio_speaks_the_default_language(db_url, make_gateway, start_client) -> None:
    client = await start_client(make_gateway(db_url), background=False)
    call = Call(client)
    await call.start()
    menu = await call.press("language", "3")
    assert not list(menu.iter("Play"))
    assert "لتقديم شكاية جديدة" in spoken(menu) and {s.get("language") for s in says(menu)} == {"ar-XA"}


async def test_withheld_number_cannot_file_but_hears_why(db_url, make_gateway, start_client) -> None:
    gw = make_gateway(db_url)
    client = await start_client(gw, background=False)
    call = Call(client, number=None)
    resp = await post_signed(client, VOICE, call_params("incoming_call_withheld", call.sid, None))
    assert resp.status == 200
    await call.press("language", "4")
    root = await call.press("menu", "1")
    assert "Your number is hidden" in spoken(root) and root.find("Gather") is not None
    with gw.db.session() as s:
        assert s.exec(select(CallRow)).one().caller is None


async def test_forged_malformed_and_failing_steps(db_url, make_gateway, start_client, monkeypatch) -> None:
    client = await start_client(make_gateway(db_url), background=False)
    params = call_params("incoming_call", new_sid("CA"))
    forged = await post_signed(client, VOICE, params, token="not-the-auth-token")
    assert forged.status == 403
    unsigned = await post_signed(client, f"{VOICE}/menu", params, signature="")
    assert unsigned.status == 403
    moved = await post_signed(client, f"{VOICE}/menu", params, signature=None, base="https://evil.example.org")
    assert moved.status == 403
    bad = dict(params, Digits="12<script>")
    assert (await post_signed(client, f"{VOICE}/menu", bad)).status == 400
    no_sid = {k: v for k, v in params.items() if k != "CallSid"}
    assert (await post_signed(client, f"{VOICE}/menu", no_sid)).status == 400

    def boom(turn):  # type: ignore[no-untyped-def]
        raise RuntimeError("database on fire")
    monkeypatch.setitem(ivr_dialogue.SYNC_STEPS, "menu", boom)
    root = await Call(client).press("menu", "1")
    assert verbs(root) == ["Say", "Hangup"]
    assert "خلل تقني" in spoken(root)
