"""The phone line's call flow (IVR): a state machine per call, kept in the ``calls`` table.

Language menu (remembered per caller for the next call), main menu (1 new complaint, 2 status,
3 agent, 9 repeat, 0 language), new complaint (category by keypad, then a recording that becomes
a complaint through ``Core.ingest``, its reference read digit by digit and sent by SMS), status by
keypad (Damm check digit, the caller's own complaints only), agent (queue or dial within opening
hours, otherwise a voicemail and a callback task). No input and invalid keys re-prompt a few times,
then the call ends politely. Answers are provider-neutral voice verbs; the channel renders them.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session, select

from conversations import calls as calls_repo
from conversations import reference as refs
from conversations.complaints import OPEN_STATUSES, add_event, create_complaint
from conversations.deadlines import due_dates
from conversations.dialogue import acknowledge
from conversations.ingest import DialogueContext
from conversations.ivr_options import IvrOptions, ivr_options
from conversations.messages import (
    Attachment,
    InboundMessage,
    VoiceDial,
    VoiceEnqueue,
    VoiceGather,
    VoiceHangup,
    VoiceLeave,
    VoicePause,
    VoiceRecord,
    VoiceRedirect,
    VoiceSay,
    VoiceStep,
    VoiceVerb,
    mask_urn,
)
from store.files import save_file
from store.models import Complaint, KeyValue, Message, StoredFile
from store.models_ivr import Call, CallbackTask

if TYPE_CHECKING:
    from conversations.core import Core

log = logging.getLogger(__name__)

OTHER = "other"


# -- prompts ------------------------------------------------------------------------------------
class Speaker:
    """Prompts in one language: configured audio if any, else text-to-speech, else the default
    language's text spoken with its voice."""

    def __init__(self, core: "Core", options: IvrOptions, language: str) -> None:
        self.core = core
        self.options = options
        self.language = language
        default = core.config.default_language
        self.text_language = language if language in options.voices else default
        self.voice = options.voices.get(self.text_language)

    def _say(self, text: str) -> VoiceSay:
        return VoiceSay(text=text, language=self.voice.locale if self.voice else None,
                        voice=self.voice.name if self.voice else None)

    def audio(self, key: str) -> str | None:
        return self.options.audio.get(self.language, {}).get(key)

    def say(self, key: str, *, audio_key: str | None = None, **values: Any) -> VoiceSay:
        audio = self.audio(audio_key or key)
        if audio:
            return VoiceSay(text="", audio_url=audio)
        return self._say(self.core.templates.render(self.text_language, f"ivr.{key}", **values))

    def text(self, key: str, **values: Any) -> str:
        """A general template (e.g. ``status.assigned``) in the spoken language."""
        return self.core.templates.render(self.text_language, key, **values)

    def phrase(self, text: str) -> VoiceSay:
        return self._say(text)

    def digits(self, digits: str) -> list[VoiceSay]:
        """Each digit on its own, so a reference is read ``4, 8, 2, 1`` and not as a number."""
        out = []
        for digit in digits:
            audio = self.audio(f"digit.{digit}")
            out.append(VoiceSay(text="", audio_url=audio) if audio else self._say(digit))
        return out


def _language_key(caller: str) -> str:
    # Hashed so the key table holds no phone numbers.
    return "ivr.language:" + hashlib.sha256(caller.encode()).hexdigest()[:40]


def remembered_language(session: Session, caller: str | None) -> str | None:
    if not caller:
        return None
    row = session.get(KeyValue, _language_key(caller))
    return str(row.value.get("language")) if row and row.value.get("language") else None


def remember_language(session: Session, caller: str | None, language: str, now: datetime) -> None:
    if not caller:
        return
    row = session.get(KeyValue, _language_key(caller))
    if row is None:
        session.add(KeyValue(key=_language_key(caller), value={"language": language}, updated_at=now))
    else:
        row.value = {"language": language}
        row.updated_at = now
        session.add(row)


# -- a turn of the call -----------------------------------------------------------------------------
@dataclass
class Turn:
    core: "Core"
    session: Session
    options: IvrOptions
    call: Call
    event: VoiceStep
    now: datetime

    @property
    def language(self) -> str:
        return self.call.language or self.core.config.default_language

    @property
    def speak(self) -> Speaker:
        return Speaker(self.core, self.options, self.language)

    @property
    def state(self) -> dict[str, Any]:
        return self.call.state

    def set_state(self, **values: Any) -> None:
        self.call.state = {**(self.call.state or {}), **values}
        flag_modified(self.call, "state")

    def retry(self, key: str, reason: str, again: Callable[["Turn"], list[VoiceVerb]]) -> list[VoiceVerb]:
        """Count a failed attempt at ``key``: re-prompt, or end politely after ``max_tries``."""
        tries = dict(self.state.get("tries", {}))
        tries[key] = tries.get(key, 0) + 1
        self.set_state(tries=tries)
        if tries[key] >= self.options.max_tries:
            log.info("call %s: %s failed %d times, ending", self.call.call_sid, key, tries[key])
            return [self.speak.say(reason), self.speak.say("goodbye"), VoiceHangup()]
        return [self.speak.say(reason), *again(self)]

    def succeeded(self, key: str) -> None:
        tries = dict(self.state.get("tries", {}))
        if tries.pop(key, None) is not None:
            self.set_state(tries=tries)


def _run_turn(core: "Core", event: VoiceStep, handler: Callable[[Turn], list[VoiceVerb]]) -> tuple[VoiceVerb, ...]:
    options = ivr_options(core.config)

    def work(session: Session) -> tuple[VoiceVerb, ...]:
        now = core.clock.now()
        call = calls_repo.get_or_create_call(session, event.call_sid, now, caller=event.caller,
                                             service_address=event.service_address)
        turn = Turn(core, session, options, call, event, now)
        verbs = handler(turn)
        call.updated_at = now
        session.add(call)
        return tuple(verbs)
    return calls_repo.transaction(core, work)


# -- menus --------------------------------------------------------------------------------------------
def _language_menu(turn: Turn) -> list[VoiceVerb]:
    turn.call.step = "language"
    options, default = turn.options, turn.core.config.default_language
    prompts: list[VoiceSay | VoicePause] = []
    for digit, lang in enumerate(options.languages, start=1):
        speaker = Speaker(turn.core, options, lang)
        if lang in options.voices or speaker.audio("choose_language"):
            prompts.append(speaker.say("choose_language", digit=digit))
        else:
            fallback = Speaker(turn.core, options, default)
            name = fallback.text(f"ivr.language_names.{lang}")
            prompts.append(fallback.say("choose_other_language", name=name, digit=digit))
    return [VoiceGather(action="language", prompts=tuple(prompts), num_digits=1,
                        timeout=turn.options.gather_timeout), VoiceRedirect("language")]


def _main_menu(turn: Turn) -> list[VoiceVerb]:
    turn.call.step = "menu"
    prompts = [turn.speak.say("main_menu")]
    if len(turn.options.languages) > 1:
        prompts.append(turn.speak.say("change_language"))
    return [VoiceGather(action="menu", prompts=tuple(prompts), num_digits=1, timeout=turn.options.gather_timeout),
            VoiceRedirect("menu")]


def _category_menu(turn: Turn) -> list[VoiceVerb]:
    turn.call.step = "category"
    speak, config = turn.speak, turn.core.config
    prompts = [speak.say("category_intro")]
    for digit, cat in enumerate(turn.options.categories, start=1):
        name = config.categories[cat].name(speak.text_language)
        prompts.append(speak.say("category_item", audio_key=f"category.{cat}", category=name, digit=digit))
    prompts.append(speak.say("category_other", audio_key=f"category.{OTHER}",
                             digit=len(turn.options.categories) + 1))
    prompts.append(speak.say("repeat"))
    return [VoiceGather(action="category", prompts=tuple(prompts), num_digits=1,
                        timeout=turn.options.gather_timeout), VoiceRedirect("category")]


def _record_prompt(turn: Turn) -> list[VoiceVerb]:
    turn.call.step = "record"
    transcribe = "transcription" if turn.options.transcribes(turn.language) else None
    return [turn.speak.say("record_prompt"),
            VoiceRecord(action="record", status_callback="recording", max_length=turn.options.max_recording_seconds,
                        finish_on_key="#", transcribe_callback=transcribe),
            VoiceRedirect("record")]  # reached only when nothing was recorded


def _status_prompt(turn: Turn) -> list[VoiceVerb]:
    turn.call.step = "status"
    return [VoiceGather(action="status-ref", prompts=(turn.speak.say("status_prompt"),), finish_on_key="#",
                        timeout=turn.options.reference_timeout), VoiceRedirect("status-ref")]


def _goodbye(turn: Turn, *before: str) -> list[VoiceVerb]:
    turn.call.step = "done"
    return [*(turn.speak.say(key) for key in before), turn.speak.say("goodbye"), VoiceHangup()]


# -- steps --------------------------------------------------------------------------------------------
def step_start(turn: Turn) -> list[VoiceVerb]:
    """A new call: welcome, then the remembered language's main menu or the language menu."""
    options = turn.options
    if turn.call.step not in (None, "language", "menu"):
        log.info("call %s: start requested again at step %s", turn.call.call_sid, turn.call.step)
    remembered = remembered_language(turn.session, turn.call.caller) if options.remember_language else None
    if len(options.languages) == 1:
        remembered = options.languages[0]
    if remembered in options.languages:
        turn.call.language = remembered
        return [turn.speak.say("welcome"), *_main_menu(turn)]
    welcome = Speaker(turn.core, options, turn.core.config.default_language).say("welcome")
    return [welcome, *_language_menu(turn)]


def step_language(turn: Turn) -> list[VoiceVerb]:
    digits, options = turn.event.digits, turn.options
    if digits and digits.isdigit() and 1 <= int(digits) <= len(options.languages):
        language = options.languages[int(digits) - 1]
        turn.call.language = language
        turn.succeeded("language")
        if options.remember_language:
            remember_language(turn.session, turn.call.caller, language, turn.now)
        return _main_menu(turn)
    return turn.retry("language", "invalid" if digits else "no_input", _language_menu)


def step_menu(turn: Turn) -> list[VoiceVerb]:
    digits = turn.event.digits
    if not digits:
        return turn.retry("menu", "no_input", _main_menu)
    if digits in ("1", "2", "3", "9", "0"):
        turn.succeeded("menu")
    if digits == "1":
        if turn.call.caller is None:
            return turn.retry("menu", "hidden_number", _main_menu)
        return _category_menu(turn)
    if digits == "2":
        if turn.call.caller is None:
            return turn.retry("menu", "hidden_number", _main_menu)
        return _status_prompt(turn)
    if digits == "3":
        return step_agent(turn)
    if digits == "9":
        return _main_menu(turn)
    if digits == "0" and len(turn.options.languages) > 1:
        return _language_menu(turn)
    return turn.retry("menu", "invalid", _main_menu)


def step_category(turn: Turn) -> list[VoiceVerb]:
    digits, cats = turn.event.digits, turn.options.categories
    if digits == "9":
        return _category_menu(turn)
    if digits and digits.isdigit() and 1 <= int(digits) <= len(cats) + 1:
        choice = cats[int(digits) - 1] if int(digits) <= len(cats) else OTHER
        turn.set_state(category=choice)
        turn.succeeded("category")
        return _record_prompt(turn)
    return turn.retry("category", "invalid" if digits else "no_input", _category_menu)


def step_status_reference(turn: Turn) -> list[VoiceVerb]:
    if turn.call.caller is None:
        return _goodbye(turn, "hidden_number")
    typed = (turn.event.digits or "").replace("#", "").replace("*", "")
    if not typed:
        return turn.retry("status", "no_input", _status_prompt)
    if not (len(typed) == refs.LENGTH and refs.is_valid(typed)):
        return turn.retry("status", "ref_invalid", _status_prompt)
    turn.succeeded("status")
    complaint = turn.session.exec(select(Complaint).where(Complaint.reference == typed)).first()
    identity_contact = _caller_contact_id(turn.session, turn.call.caller)
    if complaint is None or identity_contact is None or complaint.contact_id != identity_contact:
        log.info("call %s: status asked for a reference not of this caller", turn.call.call_sid)
        return [turn.speak.say("ref_not_found"), *_main_menu(turn)]
    return [_status_speech(turn, complaint), *_main_menu(turn)]


def _caller_contact_id(session: Session, caller: str | None) -> int | None:
    from conversations.identities import find_identity

    identity = find_identity(session, caller) if caller else None
    return identity.contact_id if identity else None


def _status_speech(turn: Turn, complaint: Complaint) -> VoiceSay:
    speak, core = turn.speak, turn.core
    lang = speak.text_language
    admin = core.config.administration_name(complaint.administration, lang)
    status = speak.text(f"status.{complaint.status}", administration=admin)
    if complaint.status == "rejected" and complaint.rejected_reason:
        detail = speak.text("rejected_detail", reason=complaint.rejected_reason)
    elif complaint.status in OPEN_STATUSES and complaint.answer_due_at:
        detail = speak.text("due_detail", answer_due=core.format_date(complaint.answer_due_at, lang))
    else:
        detail = ""
    return speak.say("status", audio_key=f"status.{complaint.status}", status=status, detail=detail)


def step_agent(turn: Turn) -> list[VoiceVerb]:
    """Queue (or dial) the call centre inside opening hours; otherwise offer a voicemail."""
    options, call = turn.options, turn.call
    if options.is_open(turn.now):
        call.step = "queue"
        turn.set_state(queued_at=turn.now.isoformat())
        if options.agent_number:
            return [turn.speak.say("agent_connecting"),
                    VoiceDial(options.agent_number, action="agent-result", timeout=options.dial_timeout)]
        return [turn.speak.say("agent_connecting"),
                VoiceEnqueue(options.agent_queue, action="agent-result", wait_url="queue-wait")]
    call.agent_outcome = "out_of_hours"
    if call.caller is None:
        return _goodbye(turn, "closed", "hours")
    calls_repo.open_callback(turn.session, caller=call.caller, reason="out_of_hours", now=turn.now,
                             call_sid=call.call_sid, language=turn.language)
    call.step = "voicemail"
    return [turn.speak.say("closed"), turn.speak.say("hours"), turn.speak.say("voicemail_prompt"),
            VoiceRecord(action="voicemail", status_callback="voicemail-recording",
                        max_length=turn.options.max_recording_seconds, finish_on_key="#"),
            turn.speak.say("goodbye"), VoiceHangup()]


def step_queue_wait(turn: Turn) -> list[VoiceVerb]:
    """What a caller hears in the queue; after the longest wait, the call leaves the queue."""
    waited = turn.event.queue_time or 0
    if waited >= turn.options.max_queue_wait_seconds:
        return [VoiceLeave()]
    if turn.options.hold_music_url:
        return [turn.speak.say("queue_wait"), VoiceSay(text="", audio_url=turn.options.hold_music_url)]
    return [turn.speak.say("queue_wait"), VoicePause(15)]


def step_agent_result(turn: Turn) -> list[VoiceVerb]:
    """The queue or the dial ended: answered, or a callback task for a missed/abandoned call."""
    event, call = turn.event, turn.call
    if event.queue_time is not None:
        call.queue_seconds = max(event.queue_time, 0)
    result = event.queue_result or event.dial_status or ""
    if result in ("bridged", "completed", "answered"):
        outcome = "answered"
    elif result in ("hangup", "canceled"):
        outcome = "abandoned"
    else:
        outcome = "missed"
    call.agent_outcome = outcome
    call.step = "done"
    calls_repo.update_times(turn.session, call)
    if outcome == "answered":
        return [VoiceHangup()]
    calls_repo.open_callback(turn.session, caller=call.caller, reason=outcome, now=turn.now,
                             call_sid=call.call_sid, language=turn.language)
    if outcome == "abandoned":
        return [VoiceHangup()]
    return _goodbye(turn, "agent_unavailable")


def step_voicemail(turn: Turn) -> list[VoiceVerb]:
    call, recording = turn.call, turn.event.recording
    call.step = "done"
    if recording is None or call.caller is None:
        return _goodbye(turn)
    task = calls_repo.open_callback(turn.session, caller=call.caller, reason="voicemail", now=turn.now,
                                    call_sid=call.call_sid, language=turn.language)
    call.agent_outcome = "voicemail"
    if task is not None and task.recording_sid is None:
        task.recording_sid = recording.provider_id
        turn.session.add(task)
    return _goodbye(turn, "voicemail_thanks")


def step_record_missing(turn: Turn) -> list[VoiceVerb]:
    return turn.retry("record", "no_recording", _record_prompt)


SYNC_STEPS: dict[str, Callable[[Turn], list[VoiceVerb]]] = {
    "start": step_start, "language": step_language, "menu": step_menu, "category": step_category,
    "status-ref": step_status_reference, "agent": step_agent, "queue-wait": step_queue_wait,
    "agent-result": step_agent_result, "voicemail": step_voicemail,
}
STEPS = frozenset({*SYNC_STEPS, "record", "recording", "transcription", "voicemail-recording"})


async def answer(core: "Core", step: str, event: VoiceStep) -> tuple[VoiceVerb, ...]:
    """The voice verbs answering ``event`` at ``step`` (one of ``SYNC_STEPS`` or ``record``)."""
    if step == "record":
        return await _record(core, event)
    handler = SYNC_STEPS[step]
    return await core.db.run(_run_turn, core, event, handler)


# -- the recording becomes a complaint ---------------------------------------------------------------
@dataclass(frozen=True)
class CallInfo:
    caller: str | None
    service_address: str | None
    language: str
    category: str | None


def _call_info(core: "Core", event: VoiceStep) -> CallInfo:
    with core.db.session() as session:
        call = calls_repo.find_call(session, event.call_sid)
        caller = (call.caller if call else None) or event.caller
        service = (call.service_address if call else None) or event.service_address
        language = (call.language if call else None) or core.config.default_language
        category = (call.state or {}).get("category") if call else None
        return CallInfo(caller, service, language, category)


async def ensure_complaint(core: "Core", event: VoiceStep, transcript: str | None = None) -> tuple[int, str] | None:
    """The complaint of this call's recording, created once whichever callback comes first
    (Core.ingest deduplicates on the recording id); None when the caller's number is withheld."""
    recording = event.recording
    assert recording is not None and recording.provider_id
    info = await core.db.run(_call_info, core, event)
    if info.caller is None:
        log.warning("call %s: a recording from a withheld number cannot become a complaint", event.call_sid)
        return None
    inbound = InboundMessage(
        channel="ivr", provider_message_id=recording.provider_id, sender=info.caller,
        service_address=info.service_address, text=transcript or "", received_at=event.received_at, kind="voice",
        attachments=(recording,), thread_ref=event.call_sid, language=info.language,
        raw={"CallSid": event.call_sid, "RecordingSid": recording.provider_id,
             "RecordingDuration": event.recording_duration},
        meta={"category": info.category or OTHER, "call_sid": event.call_sid,
              "duration": event.recording_duration, "transcribed": bool(transcript)},
    )
    result = await core.ingest(inbound)
    if result.complaint_id is None:
        return None
    return await core.db.run(_link_call, core, event.call_sid, result.complaint_id)


def _link_call(core: "Core", call_sid: str, complaint_id: int) -> tuple[int, str]:
    with core.db.session() as session:
        complaint = session.get(Complaint, complaint_id)
        assert complaint is not None
        call = calls_repo.find_call(session, call_sid)
        if call is not None and call.complaint_id is None:
            call.complaint_id = complaint_id
            session.add(call)
        return complaint_id, complaint.reference


def voice_dialogue(ctx: DialogueContext) -> None:
    """The ingest dialogue of the ``ivr`` channel: a recording creates a complaint routed by the
    category chosen on the keypad (or by content for "other"), acknowledged by SMS."""
    inbound = ctx.inbound
    if inbound.kind != "voice":
        ctx.action = "ignored"
        return
    core = ctx.core
    choice = str(inbound.meta.get("category") or OTHER)
    hint = None if choice == OTHER else choice
    routed = core.router.route(inbound.text, channel="ivr", category_hint=hint)
    complaint = create_complaint(
        ctx.session, core.config, now=ctx.now, text=inbound.text, channel="ivr", actor="citizen",
        contact_id=ctx.contact.id, identity_id=ctx.identity.id, conversation_id=ctx.conversation.id,
        kind="complaint", category=routed.category, administration=routed.administration,
        place=routed.place if inbound.text else None, language=ctx.language, confidence=routed.confidence,
        reasons=routed.reasons,
        extra={"ivr": {"call_sid": inbound.meta.get("call_sid"), "recording_sid": inbound.provider_message_id,
                       "duration": inbound.meta.get("duration"), "category_choice": choice,
                       "transcribed": bool(inbound.meta.get("transcribed"))}},
    )
    ctx.complaint = complaint
    ctx.created_complaint = True
    ctx.action = "new_complaint"
    acknowledge(ctx, complaint)  # the reference by SMS, through the outbox, to the caller's number


async def _record(core: "Core", event: VoiceStep) -> tuple[VoiceVerb, ...]:
    if event.recording is None:
        return await core.db.run(_run_turn, core, event, step_record_missing)
    created = await ensure_complaint(core, event)

    def done(turn: Turn) -> list[VoiceVerb]:
        if created is None:
            return _goodbye(turn, "hidden_number")
        complaint_id, reference = created
        turn.call.complaint_id = turn.call.complaint_id or complaint_id
        turn.succeeded("record")
        log.info("call %s: complaint %s registered from %s", turn.call.call_sid, complaint_id,
                 mask_urn(turn.call.caller or ""))
        return [turn.speak.say("registered"), *turn.speak.digits(reference), VoicePause(1),
                turn.speak.say("reference_sms"), *_goodbye(turn)]
    return await core.db.run(_run_turn, core, event, done)


# -- recordings and transcripts arriving later --------------------------------------------------------
@dataclass(frozen=True)
class RecordingTarget:
    """A recording to fetch from the provider, and where its bytes belong."""

    url: str
    recording_sid: str
    message_id: int | None = None
    complaint_id: int | None = None
    task_id: int | None = None


async def complaint_recording(core: "Core", event: VoiceStep) -> RecordingTarget | None:
    """A completed complaint recording: make sure the complaint exists, then say what to fetch
    (None when its bytes are already stored or there is nothing to fetch)."""
    if event.recording is None or event.recording_status not in (None, "completed"):
        log.info("call %s: recording status %s, nothing to fetch", event.call_sid, event.recording_status)
        return None
    if await ensure_complaint(core, event) is None:
        return None
    return await core.db.run(_complaint_target, core, event.recording)


def _complaint_target(core: "Core", recording: Attachment) -> RecordingTarget | None:
    with core.db.session() as session:
        message = _recording_message(session, recording.provider_id or "")
        if message is None or _stored(session, message.id):
            return None
        return RecordingTarget(url=recording.url or "", recording_sid=recording.provider_id or "",
                               message_id=message.id, complaint_id=message.complaint_id)


def _recording_message(session: Session, recording_sid: str) -> Message | None:
    return session.exec(select(Message).where(Message.channel == "ivr",
                                              Message.provider_message_id == recording_sid)).first()


def _stored(session: Session, message_id: int | None) -> bool:
    return session.exec(select(StoredFile.id).where(StoredFile.message_id == message_id)).first() is not None


def store_recording(core: "Core", target: RecordingTarget, fetched: Attachment) -> int | None:
    """Keep the fetched bytes, attached to the complaint (or to the callback task); the file id."""
    assert fetched.content is not None
    with core.db.session() as session:
        now = core.clock.now()
        # Row locks (PostgreSQL) so two concurrent callbacks for one recording store it once.
        if target.task_id is not None:
            task = session.get(CallbackTask, target.task_id, with_for_update=True)
            if task is None or task.recording_file_id is not None:
                return None
            row = save_file(session, core.settings.data_dir, fetched.content, content_type=fetched.content_type,
                            filename=fetched.filename)
            task.recording_file_id, task.recording_sid = row.id, target.recording_sid
            session.add(task)
            return row.id
        message = session.get(Message, target.message_id, with_for_update=True) if target.message_id else None
        if message is None or _stored(session, target.message_id):
            return None
        row = save_file(session, core.settings.data_dir, fetched.content, content_type=fetched.content_type,
                        filename=fetched.filename, message_id=target.message_id, complaint_id=target.complaint_id)
        message.attachments = [{**a, "file_id": row.id, "content_type": fetched.content_type,
                                "size": row.size} if a.get("provider_id") == target.recording_sid else a
                               for a in (message.attachments or [])]
        session.add(message)
        complaint = session.get(Complaint, target.complaint_id) if target.complaint_id else None
        if complaint is not None:
            add_event(session, complaint, "system", "recording_stored", at=now,
                      data={"file_id": row.id, "size": row.size, "content_type": fetched.content_type})
        return row.id


def recording_failed(core: "Core", target: RecordingTarget, reason: str) -> None:
    """Note on the complaint that its recording could not be fetched (never the URL)."""
    with core.db.session() as session:
        complaint = session.get(Complaint, target.complaint_id) if target.complaint_id else None
        if complaint is not None:
            add_event(session, complaint, "system", "recording_unavailable", at=core.clock.now(),
                      data={"reason": reason[:200], "recording_sid": target.recording_sid})


def voicemail_target(core: "Core", event: VoiceStep) -> RecordingTarget | None:
    """A completed voicemail: the callback task it belongs to, if its recording is not stored yet."""
    recording = event.recording
    if recording is None or event.recording_status not in (None, "completed"):
        return None

    def work(session: Session) -> RecordingTarget | None:
        now = core.clock.now()
        call = calls_repo.get_or_create_call(session, event.call_sid, now, caller=event.caller)
        task = calls_repo.open_callback(session, caller=call.caller, reason="voicemail", now=now,
                                        call_sid=call.call_sid, language=call.language)
        if task is None or task.recording_file_id is not None:
            return None
        task.recording_sid = recording.provider_id
        session.add(task)
        session.flush()
        return RecordingTarget(url=recording.url or "", recording_sid=recording.provider_id or "", task_id=task.id)
    return calls_repo.transaction(core, work)


async def transcription(core: "Core", event: VoiceStep) -> str:
    """A transcript of a complaint recording: kept on the message and the complaint; a complaint
    filed under "other" and still in triage is routed by its content."""
    if event.recording is None:
        return "ignored"
    if event.transcription_status != "completed" or not event.transcription_text:
        return await core.db.run(_transcription_failed, core, event)
    found = await core.db.run(_find_recording_message, core, event.recording.provider_id or "")
    if not found:
        created = await ensure_complaint(core, event, transcript=event.transcription_text)
        if created is None:
            return "ignored"
    return await core.db.run(_apply_transcript, core, event)


def _find_recording_message(core: "Core", recording_sid: str) -> bool:
    with core.db.session() as session:
        return _recording_message(session, recording_sid) is not None


def _transcription_failed(core: "Core", event: VoiceStep) -> str:
    with core.db.session() as session:
        message = _recording_message(session, event.recording.provider_id or "") if event.recording else None
        complaint = session.get(Complaint, message.complaint_id) if message and message.complaint_id else None
        if complaint is not None:
            add_event(session, complaint, "system", "transcription_failed", at=core.clock.now(),
                      data={"status": event.transcription_status})
    return "failed"


def _apply_transcript(core: "Core", event: VoiceStep) -> str:
    text = event.transcription_text or ""
    with core.db.session() as session:
        now = core.clock.now()
        message = _recording_message(session, event.recording.provider_id or "") if event.recording else None
        complaint = session.get(Complaint, message.complaint_id) if message and message.complaint_id else None
        if message is None or complaint is None:
            return "ignored"
        ivr = dict((complaint.extra or {}).get("ivr", {}))
        if ivr.get("transcribed") and complaint.text:
            return "duplicate"
        if not message.text:
            message.text = text
            session.add(message)
        if not complaint.text.strip():
            complaint.text = text
        ivr["transcribed"] = True
        complaint.extra = {**(complaint.extra or {}), "ivr": ivr}
        choice = ivr.get("category_choice", OTHER)
        routed = core.router.route(text, channel="ivr", category_hint=None if choice == OTHER else choice)
        if complaint.place is None and routed.place:
            complaint.place = routed.place
        rerouted = False
        if choice == OTHER and complaint.category is None and complaint.status == "new" and routed.category:
            rerouted = True
            complaint.category, complaint.administration = routed.category, routed.administration
            complaint.routing_confidence, complaint.routing_reasons = routed.confidence, list(routed.reasons)
            if routed.administration:
                complaint.status, complaint.assigned_at = "assigned", now
                complaint.ack_due_at, complaint.answer_due_at = due_dates(
                    complaint.received_at, core.config.deadlines, complaint.kind, routed.administration)
        complaint.updated_at = now
        session.add(complaint)
        add_event(session, complaint, "system", "transcribed", at=now,
                  data={"recording_sid": message.provider_message_id, "characters": len(text),
                        "place": complaint.place, "rerouted": rerouted})
        if rerouted:
            add_event(session, complaint, "router", "routed", at=now,
                      from_status="new", to_status=complaint.status,
                      data={"category": complaint.category, "administration": complaint.administration,
                            "place": complaint.place, "confidence": routed.confidence,
                            "reasons": list(routed.reasons), "source": "transcript"})
        return "rerouted" if rerouted else "stored"
