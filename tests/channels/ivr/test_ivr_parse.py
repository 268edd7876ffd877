"""Pure parts of the IVR: recorded Twilio Voice payloads parsed, TwiML rendered, the recording
host allow-list, options validation and opening hours. No database, no HTTP."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest

from channels.base import MalformedPayload
from channels.ivr.adapter import IvrAdapter, RecordingRefused
from channels.ivr.parse import caller_urn, parse_call_status, parse_step
from channels.ivr.render import apology, render
from config.loader import load_config
from config.settings import ConfigError, load_settings
from conversations.ivr_options import ivr_options
from conversations.messages import (
    VoiceDial,
    VoiceEnqueue,
    VoiceGather,
    VoiceHangup,
    VoicePause,
    VoiceRecord,
    VoiceRedirect,
    VoiceSay,
)
from tests.support.ivr import fixture

NOW = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)
SID = "AC" + "1" * 32
BASE = "https://gateway.example.org"


def test_incoming_call_and_gather() -> None:
    step = parse_step(fixture("incoming_call"), "MA", NOW)
    assert step.call_sid == "CA3f9c2e8b1d7a4c6e9b0f1a2d3c4b5e6f"
    assert step.caller == "tel:+212612345678" and step.service_address == "+212522000100"
    assert step.digits is None and step.recording is None
    gather = parse_step(fixture("gather_digits"), "MA", NOW)
    assert gather.digits == "2"


def test_record_action_and_callbacks() -> None:
    record = parse_step(fixture("record_action"), "MA", NOW)
    assert record.recording is not None and record.recording.provider_id == "RE7a1b2c3d4e5f60718293a4b5c6d7e8f9"
    assert record.recording.url.startswith("https://api.twilio.com/2010-04-01/Accounts/")
    assert record.recording_duration == 14 and record.digits == "#"
    status = parse_step(fixture("recording_status"), "MA", NOW)
    assert status.recording_status == "completed" and status.caller is None  # Twilio sends no From here
    transcript = parse_step(fixture("transcription"), "MA", NOW)
    assert transcript.transcription_status == "completed" and transcript.transcription_text.startswith("Hello")
    queue = parse_step(fixture("queue_result"), "MA", NOW)
    assert (queue.queue_result, queue.queue_time) == ("hangup", 37)
    dial = parse_step(fixture("dial_result"), "MA", NOW)
    assert (dial.dial_status, dial.dial_duration) == ("no-answer", 0)
    hung_up = parse_step(dict(fixture("record_action"), Digits="hangup"), "MA", NOW)
    assert hung_up.digits == "hangup"


def test_numbers_are_normalised_and_withheld_numbers_are_none() -> None:
    assert caller_urn("0612345678", "MA") == "tel:+212612345678"
    assert caller_urn("0551234567", "DZ") == "tel:+213551234567"
    for withheld in ("anonymous", "Restricted", "+266696687", "", "unknown", "12"):
        assert caller_urn(withheld, "MA") is None
    step = parse_step(fixture("incoming_call_withheld"), "MA", NOW)
    assert step.caller is None


@pytest.mark.parametrize("change", [
    {"CallSid": ""}, {"CallSid": "CA/../x"}, {"Digits": "12a"}, {"RecordingSid": "RE1", "RecordingUrl": ""},
    {"RecordingDuration": "ten"}, {"QueueTime": "1.5"}, {"RecordingStatus": "exploded"},
    {"TranscriptionStatus": "maybe"},
])
def test_malformed_steps(change: dict[str, str]) -> None:
    with pytest.raises(MalformedPayload):
        parse_step({**fixture("record_action"), **change}, "MA", NOW)


def test_call_status() -> None:
    update = parse_call_status(fixture("call_status_completed"), "MA", NOW)
    assert (update.status, update.sequence, update.duration) == ("completed", 3, 95)
    assert update.timestamp == datetime(2026, 11, 18, 9, 15, 41, tzinfo=timezone.utc)
    assert update.caller == "tel:+212612345678"
    answered = parse_call_status(dict(fixture("call_status_completed"), CallStatus="answered"), "MA", NOW)
    assert answered.status == "in-progress"
    for bad in ({"CallStatus": "exploded"}, {"SequenceNumber": "-2"}, {"Timestamp": "soon"}, {"CallStatus": ""}):
        with pytest.raises(MalformedPayload):
            parse_call_status({**fixture("call_status_completed"), **bad}, "MA", NOW)


def test_render_every_verb() -> None:
    say = VoiceSay("Bonjour", language="fr-FR", voice="Google.fr-FR-Standard-A")
    xml = render([
        say, VoicePause(2), VoiceSay("", audio_url="https://cdn.example.org/a.mp3"),
        VoiceGather("menu", prompts=(say,), num_digits=1, timeout=6),
        VoiceGather("status-ref", prompts=(say,), finish_on_key="#", timeout=15),
        VoiceRecord("record", status_callback="recording", max_length=90, transcribe_callback="transcription"),
        VoiceEnqueue("hotline", action="agent-result", wait_url="queue-wait"),
        VoiceDial("+212522000199", action="agent-result", timeout=20),
        VoiceRedirect("menu"), VoiceHangup(),
    ], BASE)
    root = ET.fromstring(xml)
    assert [c.tag for c in root] == ["Say", "Pause", "Play", "Gather", "Gather", "Record", "Enqueue", "Dial",
                                     "Redirect", "Hangup"]
    first = root[0]
    assert (first.text, first.get("language"), first.get("voice")) == ("Bonjour", "fr-FR", "Google.fr-FR-Standard-A")
    menu, ref = root.findall("Gather")
    assert menu.get("action") == f"{BASE}/webhooks/twilio/voice/menu" and menu.get("input") == "dtmf"
    assert menu.get("numDigits") == "1" and menu.get("timeout") == "6" and menu.find("Say").text == "Bonjour"
    assert ref.get("finishOnKey") == "#" and ref.get("numDigits") is None
    record = root.find("Record")
    assert record.get("maxLength") == "90" and record.get("finishOnKey") == "#" and record.get("playBeep") == "true"
    assert record.get("recordingStatusCallback") == f"{BASE}/webhooks/twilio/voice/recording"
    assert record.get("recordingStatusCallbackEvent") == "completed"
    assert record.get("transcribe") == "true"
    assert root.find("Enqueue").get("waitUrl") == f"{BASE}/webhooks/twilio/voice/queue-wait"
    assert root.find("Dial").text == "+212522000199"
    no_transcript = ET.fromstring(render([VoiceRecord("voicemail", status_callback="voicemail-recording")], BASE))
    assert no_transcript.find("Record").get("transcribe") is None
    sorry = ET.fromstring(apology("Désolé", "fr-FR", None))
    assert [c.tag for c in sorry] == ["Say", "Hangup"]


def _adapter(api_base: str = "https://api.twilio.com", **kw: object) -> IvrAdapter:
    return IvrAdapter(account_sid=SID, auth_token="token", api_base=api_base, public_url=BASE,  # type: ignore[arg-type]
                      country="MA", **kw)


def test_recordings_only_from_twilio() -> None:
    rec = "RE" + "a" * 32
    adapter = _adapter("http://127.0.0.1:8999")
    good = f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/{rec}"
    assert adapter.recording_media_url(good, rec) == good + ".mp3"
    local = f"http://127.0.0.1:8999/2010-04-01/Accounts/{SID}/Recordings/{rec}"
    assert adapter.recording_media_url(local, rec) == local + ".mp3"
    refused = [
        f"http://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/{rec}",  # not HTTPS
        f"https://api.twilio.com.evil.example/2010-04-01/Accounts/{SID}/Recordings/{rec}",
        f"https://evil.example/2010-04-01/Accounts/{SID}/Recordings/{rec}",
        f"https://user:pw@api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/{rec}",
        f"http://127.0.0.1:8998/2010-04-01/Accounts/{SID}/Recordings/{rec}",  # the fake's host, another port
        f"https://api.twilio.com/2010-04-01/Accounts/AC{'2' * 32}/Recordings/{rec}",  # another account
        f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/RE{'b' * 32}",  # not the announced one
        f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages/{rec}",
        f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Recordings/{rec}/../../Calls",
        "file:///etc/passwd", "",
    ]
    for url in refused:
        with pytest.raises(RecordingRefused):
            adapter.recording_media_url(url, rec)
    sandbox = IvrAdapter(account_sid=None, auth_token=None, api_base="https://api.twilio.com", public_url=None,
                         country="MA")
    with pytest.raises(RecordingRefused):
        sandbox.recording_media_url(good, rec)
    extra = _adapter(recording_hosts=("api.twilio.com", "recordings.example.net"), recording_format="wav")
    other = f"https://recordings.example.net/2010-04-01/Accounts/{SID}/Recordings/{rec}"
    assert extra.recording_media_url(other, rec).endswith(".wav")


def test_options_defaults_and_validation() -> None:
    options = ivr_options(load_config())
    assert options.languages == ("ar", "fr", "tzm", "en") and options.agent_queue == "hotline"
    assert "tzm" not in options.voices and options.voices["ar"].locale == "ar-XA"
    wednesday_10 = datetime(2026, 11, 18, 9, 0, tzinfo=timezone.utc)  # 10:00 in Casablanca
    assert options.is_open(wednesday_10)
    assert not options.is_open(datetime(2026, 11, 18, 15, 45, tzinfo=timezone.utc))  # 16:45
    assert not options.is_open(datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc))  # Saturday
    holiday = ivr_options(load_config(overrides={"deadlines": {"holidays": ["2026-11-18"]}}))
    assert not holiday.is_open(wednesday_10)
    bad = [
        {"languages": ["xx"]}, {"categories": ["nope"]}, {"categories": ["water"] * 8}, {"timezone": "Mars/Olympus"},
        {"hours": {"mon": ["8-17"]}}, {"hours": {"someday": ["08:00-12:00"]}}, {"hours": {"mon": ["12:00-08:00"]}},
        {"agent_number": "not a number"}, {"max_tries": 0}, {"voices": {"tzm": {"voice": "x"}}},
        {"audio": {"tzm": {"main_menu": "ftp://x"}}},
    ]
    for ivr in bad:
        with pytest.raises(ConfigError, match="channels.ivr"):
            ivr_options(load_config(overrides={"channels": {"ivr": ivr}}))
    with pytest.raises(ConfigError, match="recording_hosts"):
        IvrAdapter.from_settings(load_settings(),
                                 load_config(overrides={"channels": {"ivr": {"recording_hosts": "api.twilio.com"}}}))
