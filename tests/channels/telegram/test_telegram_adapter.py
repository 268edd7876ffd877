"""The adapter against the fake Bot API: markup, errors, limits, files; and `gateway telegram set-webhook`."""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from channels.base import ForgedRequest
from channels.telegram.adapter import FileTooLarge, RateLimiter, TelegramAdapter
from config.loader import load_config
from config.settings import ConfigError, load_settings
from conversations.messages import Button, OutboundMessage, PermanentDeliveryError, TransientDeliveryError
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.telegram_updates import SECRET

CHAT = 5108342071


def adapter_for(fake: FakeTelegram, **kwargs: Any) -> TelegramAdapter:
    kwargs.setdefault("per_chat_interval", 0.0)
    return TelegramAdapter(token=TOKEN, secret_token=SECRET, api_base=fake.base_url, **kwargs)


def out(text: str = "Bonjour", **kwargs: Any) -> OutboundMessage:
    return OutboundMessage(message_id=1, channel="telegram", to=f"telegram:{CHAT}", text=text, **kwargs)


def test_verify_secret_token() -> None:
    adapter = TelegramAdapter(token=None, secret_token=SECRET, api_base="http://127.0.0.1:1")
    adapter.verify(SECRET)
    for header in (None, "", "wrong", SECRET + "x"):
        with pytest.raises(ForgedRequest):
            adapter.verify(header)
    with pytest.raises(ForgedRequest, match="GATEWAY_TELEGRAM_SECRET_TOKEN"):
        TelegramAdapter(token=None, secret_token=None, api_base="http://127.0.0.1:1").verify(SECRET)


def test_configuration_errors_name_the_setting() -> None:
    config = load_config()
    with pytest.raises(ConfigError, match="GATEWAY_TELEGRAM_SECRET_TOKEN"):
        TelegramAdapter.from_settings(load_settings(telegram_secret_token="has spaces!"), config)
    with pytest.raises(ConfigError, match=r"\[channels.telegram\] max_file_bytes"):
        TelegramAdapter.from_settings(load_settings(), load_config(overrides={"channels": {"telegram": {
            "max_file_bytes": "big"}}}))
    adapter = TelegramAdapter.from_settings(load_settings(), load_config(overrides={"channels": {"telegram": {
        "max_file_bytes": 1234}}}))
    assert adapter.sandbox and adapter.max_file_bytes == 1234


async def test_send_with_inline_and_reply_keyboards(fake_telegram: FakeTelegram) -> None:
    adapter = adapter_for(fake_telegram)
    try:
        result = await adapter.send(out(buttons=((Button("✅ Oui", "cat:7:water"),), (Button("✏️", "cats:7"),))))
        await adapter.send(out("Partagez", meta={"keyboard": "contact_location",
                                                "keyboard_labels": {"contact": "📱", "location": "📍"}}))
        await adapter.send(out("x" * 5000))  # longer than Telegram takes: two messages, nothing cut
    finally:
        await adapter.close()
    first, second, *long = fake_telegram.to(CHAT)
    assert result.provider_message_id == f"{CHAT}:{1000}"
    assert first["reply_markup"]["inline_keyboard"][0][0] == {"text": "✅ Oui", "callback_data": "cat:7:water"}
    keyboard = second["reply_markup"]["keyboard"]
    assert keyboard[0][0]["request_location"] is True and keyboard[1][0]["request_contact"] is True
    assert [len(m["text"]) for m in long] == [4096, 904]
    # python-telegram-bot posts form-encoded bodies.
    assert {c.content_type for c in fake_telegram.calls if c.method == "sendMessage"} == {
        "application/x-www-form-urlencoded"}


async def test_errors_become_typed_delivery_errors(fake_telegram: FakeTelegram) -> None:
    adapter = adapter_for(fake_telegram)
    try:
        fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
        with pytest.raises(TransientDeliveryError) as transient:
            await adapter.send(out())
        assert transient.value.retry_after == 7
        fake_telegram.block_next()
        with pytest.raises(PermanentDeliveryError) as blocked:
            await adapter.send(out())
        assert blocked.value.unreachable and blocked.value.code == "403"
        fake_telegram.fail_next("sendMessage", 400, "Bad Request: message text is empty")
        with pytest.raises(PermanentDeliveryError) as bad:
            await adapter.send(out())
        assert not bad.value.unreachable
        fake_telegram.fail_next("sendMessage", 400, "Bad Request: chat not found")
        with pytest.raises(PermanentDeliveryError) as gone:
            await adapter.send(out())
        assert gone.value.unreachable
        fake_telegram.fail_next("sendMessage", 500, "Internal Server Error")
        with pytest.raises(TransientDeliveryError):
            await adapter.send(out())
        fake_telegram.fail_next("answerCallbackQuery", 400, "Bad Request: query is too old")
        with pytest.raises(PermanentDeliveryError) as old:
            await adapter.send(out("", meta={"method": "answer_callback_query", "callback_query_id": "42"}))
        assert not old.value.unreachable  # an old button never makes the citizen unreachable
    finally:
        await adapter.close()
    wrong = TelegramAdapter(token="7000000001:wrong", secret_token=SECRET, api_base=fake_telegram.base_url)
    try:
        with pytest.raises(TransientDeliveryError) as rejected:
            await wrong.send(out())
        assert "GATEWAY_TELEGRAM_BOT_TOKEN" in rejected.value.reason and "wrong" not in rejected.value.reason
    finally:
        await wrong.close()
    closed = TelegramAdapter(token=TOKEN, secret_token=SECRET, api_base="http://127.0.0.1:9", request_timeout=2)
    try:
        with pytest.raises(TransientDeliveryError) as unreachable_api:
            await closed.send(out())
        assert TOKEN not in unreachable_api.value.reason
    finally:
        await closed.close()


async def test_fetch_file_and_limit(fake_telegram: FakeTelegram) -> None:
    adapter = adapter_for(fake_telegram, max_file_bytes=10)
    fake_telegram.add_file("small", b"12345", "voice/file_1.oga")
    fake_telegram.add_file("large", b"x" * 11, "documents/file_2.pdf")
    fake_telegram.add_file("liar", b"x" * 11, "documents/file_3.pdf", report_size=False)
    try:
        fetched = await adapter.fetch_file("small")
        assert fetched.data == b"12345" and fetched.file_path == "voice/file_1.oga"
        for file_id in ("large", "liar"):
            with pytest.raises(FileTooLarge):
                await adapter.fetch_file(file_id)
        with pytest.raises(PermanentDeliveryError):
            await adapter.fetch_file("unknown")
    finally:
        await adapter.close()
    assert "documents/file_2.pdf" not in fake_telegram.downloads  # refused from getFile's size


async def test_sandbox_records_without_sending(fake_telegram: FakeTelegram) -> None:
    adapter = TelegramAdapter(token=None, secret_token=SECRET, api_base=fake_telegram.base_url)
    result = await adapter.send(out())
    assert result.status == "sandbox" and fake_telegram.calls == []


async def test_rate_limiter_queues_per_chat_and_overall() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(round(seconds, 3))
        now[0] += seconds

    limiter = RateLimiter(per_second=30, per_chat_interval=1.0, clock=lambda: now[0], sleep=sleep)
    order: list[str] = []
    for chat in ("a", "a", "b", "a"):
        async with limiter.slot(chat):
            order.append(chat)
    assert order == ["a", "a", "b", "a"]  # nobody dropped
    # the 2nd message to "a" waits a second; "b" only the overall spacing (1/30 s); the 3rd "a" the rest of its second.
    assert waits == [1.0, 0.033, 0.967]


async def test_fake_accepts_json_bodies(fake_telegram: FakeTelegram) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake_telegram.base_url}/bot{TOKEN}/sendMessage",
                                json={"chat_id": CHAT, "text": "hi", "reply_markup": {"inline_keyboard": []}}) as r:
            assert r.status == 200 and (await r.json())["result"]["chat"]["id"] == CHAT
    assert fake_telegram.calls[0].content_type == "application/json"
    assert fake_telegram.to(CHAT)[0]["reply_markup"] == {"inline_keyboard": []}


async def test_set_webhook_command(fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from gateway.cli import main as cli_main

    def main(argv: list[str]) -> Any:  # the command runs its own event loop; the fake serves on this one
        return asyncio.to_thread(cli_main, argv)

    for name in list(__import__("os").environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GATEWAY_TELEGRAM_API_BASE", fake_telegram.base_url)
    assert await main(["telegram", "set-webhook"]) == 2
    err = capsys.readouterr().err
    assert "GATEWAY_TELEGRAM_BOT_TOKEN" in err and "GATEWAY_TELEGRAM_SECRET_TOKEN" in err and "GATEWAY_PUBLIC_URL" in err
    monkeypatch.setenv("GATEWAY_TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("GATEWAY_TELEGRAM_SECRET_TOKEN", SECRET)
    assert await main(["telegram", "set-webhook"]) == 2
    assert "GATEWAY_PUBLIC_URL is not set" in capsys.readouterr().err
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", "https://gateway.example.org")
    assert await main(["telegram", "set-webhook"]) == 0
    assert "https://gateway.example.org/webhooks/telegram" in capsys.readouterr().out
    hook = fake_telegram.webhook
    assert hook["url"] == "https://gateway.example.org/webhooks/telegram" and hook["secret_token"] == SECRET
    assert "callback_query" in hook["allowed_updates"] and "edited_message" in hook["allowed_updates"]
    fake_telegram.fail_next("setWebhook", 400, "Bad Request: bad webhook: Failed to resolve host")
    assert await main(["telegram", "set-webhook"]) == 1
    assert "failed to resolve host" in capsys.readouterr().err.lower()
