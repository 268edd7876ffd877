"""Voice verbs -> TwiML, with Twilio's ``VoiceResponse`` builder."""
from __future__ import annotations

from collections.abc import Sequence

from twilio.twiml.voice_response import Gather, VoiceResponse

from conversations.messages import (
    VoiceDial,
    VoiceEnqueue,
    VoiceGather,
    VoiceHangup,
    VoiceLeave,
    VoicePause,
    VoiceRecord,
    VoiceRedirect,
    VoiceSay,
    VoiceVerb,
)

VOICE_PATH = "/webhooks/twilio/voice"


def step_url(base_url: str | None, step: str) -> str:
    """The absolute URL Twilio requests for ``step`` (relative when no public URL is known)."""
    return f"{base_url or ''}{VOICE_PATH}/{step}"


def _speak(target: VoiceResponse | Gather, item: VoiceSay | VoicePause) -> None:
    if isinstance(item, VoicePause):
        target.pause(length=item.seconds)
    elif item.audio_url:
        target.play(item.audio_url)
    else:
        target.say(item.text, language=item.language, voice=item.voice)


def render(verbs: Sequence[VoiceVerb], base_url: str | None) -> str:
    """The TwiML document for ``verbs``; step names become URLs under ``base_url``."""
    response = VoiceResponse()
    for verb in verbs:
        if isinstance(verb, (VoiceSay, VoicePause)):
            _speak(response, verb)
        elif isinstance(verb, VoiceGather):
            gather = response.gather(input="dtmf", action=step_url(base_url, verb.action), method="POST",
                                     timeout=verb.timeout, num_digits=verb.num_digits,
                                     finish_on_key=verb.finish_on_key)
            for item in verb.prompts:
                _speak(gather, item)
        elif isinstance(verb, VoiceRecord):
            transcribe = verb.transcribe_callback is not None
            response.record(
                action=step_url(base_url, verb.action), method="POST", max_length=verb.max_length,
                timeout=verb.timeout, finish_on_key=verb.finish_on_key, play_beep=True,
                recording_status_callback=step_url(base_url, verb.status_callback),
                recording_status_callback_method="POST", recording_status_callback_event="completed",
                transcribe=True if transcribe else None,
                transcribe_callback=step_url(base_url, verb.transcribe_callback) if transcribe else None,
            )
        elif isinstance(verb, VoiceEnqueue):
            response.enqueue(verb.queue, action=step_url(base_url, verb.action), method="POST",
                             wait_url=step_url(base_url, verb.wait_url), wait_url_method="POST")
        elif isinstance(verb, VoiceDial):
            response.dial(verb.number, action=step_url(base_url, verb.action), method="POST",
                          timeout=verb.timeout)
        elif isinstance(verb, VoiceRedirect):
            response.redirect(step_url(base_url, verb.step), method="POST")
        elif isinstance(verb, VoiceLeave):
            response.leave()
        elif isinstance(verb, VoiceHangup):
            response.hangup()
        else:  # pragma: no cover - a new verb without a renderer is a programming error
            raise TypeError(f"no TwiML for {type(verb).__name__}")
    return str(response)


def empty() -> str:
    """An answer with nothing to do (status and recording callbacks)."""
    return str(VoiceResponse())


def apology(text: str, language: str | None, voice: str | None) -> str:
    """What Twilio hears when a step fails: an apology, then the call ends."""
    response = VoiceResponse()
    response.say(text, language=language, voice=voice)
    response.hangup()
    return str(response)
