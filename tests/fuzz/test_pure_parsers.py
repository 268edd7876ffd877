"""Property tests on the pure parsers: they return a value or raise MalformedPayload, nothing else;
round trips hold (references, phone numbers); routing never fails on any text."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from channels.base import MalformedPayload
from channels.ivr.parse import parse_call_status, parse_step
from channels.sms.parse import normalise_number, parse_inbound, parse_status
from channels.telegram.parse import parse_update
from config.loader import load_config
from conversations import reference as refs
from conversations.routing import Router

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TWILIO_FIELDS = ["MessageSid", "SmsSid", "AccountSid", "From", "To", "Body", "NumMedia", "MediaUrl0",
                 "MediaContentType0", "MediaUrl1", "MessageStatus", "SmsStatus", "ErrorCode", "CallSid", "Caller",
                 "CallStatus", "Digits", "RecordingUrl", "RecordingSid", "RecordingDuration", "TranscriptionText",
                 "SpeechResult", "Timestamp", "Direction", "ApiVersion"]
VALUES = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["", "0", "1", "10", "11", "-1", "1e3", "+212612345678", "0612345678", "00212612345678",
                     "SM" + "1" * 32, "CA" + "2" * 32, "delivered", "failed", "completed", "https://api.twilio.com/x",
                     "http://169.254.169.254/latest/meta-data/", "١٢٣٤٥٦٧٨٩", "4821-3307-5", "\x00", "²³",
                     "12345678²", "STATUS 0000-0000-²"]),
)
FORMS = st.dictionaries(st.one_of(st.sampled_from(TWILIO_FIELDS), st.text(max_size=12)), VALUES, max_size=14)


def _only_malformed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    try:
        return fn(*args, **kwargs)
    except MalformedPayload:
        return None


@FUZZ
@given(FORMS)
def test_sms_parsers_return_or_refuse(form) -> None:  # type: ignore[no-untyped-def]
    message = _only_malformed(parse_inbound, form, "MA", NOW)
    if message is not None:
        assert message.sender.startswith("tel:+") and message.provider_message_id
        assert len(message.attachments) <= 10
    _only_malformed(parse_status, form)


@FUZZ
@given(FORMS)
def test_voice_parsers_return_or_refuse(form) -> None:  # type: ignore[no-untyped-def]
    _only_malformed(parse_step, form, "MA", NOW)
    _only_malformed(parse_call_status, form, "MA", NOW)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
                    max_leaves=25)
UPDATE_KEYS = ["update_id", "message", "edited_message", "callback_query", "channel_post", "my_chat_member"]
MESSAGE_KEYS = ["message_id", "from", "chat", "date", "text", "photo", "voice", "document", "location", "contact",
                "entities", "caption", "sticker", "reply_to_message"]


@st.composite
def telegram_updates(draw):  # type: ignore[no-untyped-def]
    message = draw(st.dictionaries(st.sampled_from(MESSAGE_KEYS), JSON, max_size=8))
    if draw(st.booleans()):
        message.update({"message_id": draw(st.integers()), "date": draw(st.integers(0, 2**31)),
                        "chat": {"id": draw(st.integers()), "type": draw(st.sampled_from(["private", "group", "x"]))},
                        "from": {"id": draw(st.integers()), "is_bot": draw(st.booleans()),
                                 "first_name": draw(st.text(max_size=20))}})
    update = draw(st.dictionaries(st.sampled_from(UPDATE_KEYS), JSON, max_size=3))
    update[draw(st.sampled_from(UPDATE_KEYS[1:]))] = message
    if draw(st.booleans()):
        update["update_id"] = draw(st.integers())
    return update


@FUZZ
@given(st.one_of(telegram_updates(), JSON))
def test_telegram_parser_returns_or_refuses(update) -> None:  # type: ignore[no-untyped-def]
    _only_malformed(parse_update, json.dumps(update).encode(), received_at=NOW, service_address="bot1")


@FUZZ
@given(st.binary(max_size=300))
def test_telegram_parser_on_any_bytes(payload: bytes) -> None:
    _only_malformed(parse_update, payload, received_at=NOW, service_address="bot1")


@FUZZ
@given(st.integers(0, 99_999_999), st.sampled_from(["", " ", "-", ".", "  ", " - "]))
def test_reference_format_parse_round_trip(body: int, sep: str) -> None:
    digits = f"{body:08d}"
    reference = digits + str(refs.damm_digit(digits))
    assert refs.parse(refs.format_reference(reference)) == reference
    assert refs.parse(sep.join([reference[:4], reference[4:8], reference[8:]])) == reference
    arabic = reference.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert refs.parse(arabic) == reference


@FUZZ
@given(st.integers(0, 99_999_999), st.integers(0, 8), st.integers(1, 9))
def test_reference_catches_single_digit_errors_and_transpositions(body: int, at: int, delta: int) -> None:
    digits = f"{body:08d}"
    reference = digits + str(refs.damm_digit(digits))
    wrong = reference[:at] + str((int(reference[at]) + delta) % 10) + reference[at + 1:]
    assert refs.parse(wrong) is None
    if at < 8 and reference[at] != reference[at + 1]:
        swapped = reference[:at] + reference[at + 1] + reference[at] + reference[at + 2:]
        assert refs.parse(swapped) is None


# Eight ASCII digits and one other Unicode digit-like character (Arabic-Indic, superscript, …).
DIGITISH = st.builds(lambda digits, odd, at: digits[:at] + odd + digits[at:],
                     st.text(alphabet="0123456789", min_size=8, max_size=8),
                     st.characters(categories=["Nd", "No"]), st.integers(0, 8))


@FUZZ
@given(st.one_of(st.text(max_size=40), DIGITISH))
def test_reference_parse_never_fails(text: str) -> None:
    parsed = refs.parse(text)
    assert parsed is None or (len(parsed) == refs.LENGTH and refs.is_valid(parsed))
    refs.looks_like_reference(text)


# Eight to ten digits of every script a citizen may type (and other Unicode digits), each
# followed by separators or other spaces.
SEPARATED_DIGITS = st.lists(
    st.tuples(st.one_of(st.sampled_from("0123456789٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹"), st.characters(categories=["Nd", "No"])),
              st.text(alphabet=st.one_of(st.sampled_from(" -./_\t"), st.characters(categories=["Zs"])), max_size=2)),
    min_size=8, max_size=10).map(lambda pairs: "".join(d + sep for d, sep in pairs))


@FUZZ
@given(st.one_of(st.text(max_size=40), DIGITISH, SEPARATED_DIGITS))
def test_looks_like_reference_is_nine_digits_once_cleaned(text: str) -> None:
    """The one-pattern check agrees with its definition: clean the text, nine ASCII digits remain."""
    digits = refs.clean(text)
    assert refs.looks_like_reference(text) == (len(digits) == refs.LENGTH and digits.isascii() and digits.isdigit())


@FUZZ
@given(st.sampled_from(["MA", "DZ", "TN", "FR"]), st.integers(0, 10**9))
def test_phone_e164_round_trip(region: str, seed: int) -> None:
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assume(example is not None)
    national = str(example.national_number)
    varied = national[:-4] + f"{seed % 10000:04d}"  # same length and prefix, other subscriber digits
    number = phonenumbers.parse(varied, region)
    assume(phonenumbers.is_possible_number(number))
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    assert normalise_number(e164, "MA") == e164
    assert normalise_number(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL), region) == e164
    assert normalise_number("00" + e164[1:], "MA") == e164 or region == "MA"
    assert normalise_number(normalise_number(e164, region), "MA") == e164


@FUZZ
@given(st.text(max_size=40))
def test_phone_normalisation_returns_e164_or_refuses(text: str) -> None:
    e164 = _only_malformed(normalise_number, text, "MA")
    if e164 is not None:
        assert e164.startswith("+") and e164[1:].isdigit() and normalise_number(e164, "MA") == e164


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_config(load_config())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300), st.sampled_from([None, "sms", "telegram", "email", "phone"]))
def test_routing_never_fails(router: Router, text: str, channel) -> None:  # type: ignore[no-untyped-def]
    config = router.config if hasattr(router, "config") else load_config()
    result = router.route(text, channel=channel)
    assert 0.0 <= result.confidence <= 1.0
    assert result.category is None or result.category in config.categories
    assert (result.category is None) == (result.administration is None) or result.category is not None
