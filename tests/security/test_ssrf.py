"""SSRF: URLs in payloads are never fetched unless they are the provider's own. SMS (MMS) media
URLs are stored as references, never fetched by the gateway; Telegram files are fetched only
through the Bot API by file id; IVR recordings only from the configured Twilio API (tested in
tests/channels/ivr)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from sqlmodel import select

from store.models import Message, StoredFile
from tests.channels.sms.test_sms_flow import sms
from tests.conftest import post_signed
from tests.support.telegram_updates import fresh, post_update


@pytest.fixture
async def trap() -> AsyncIterator[tuple[str, list[str]]]:
    """A server that records any request the gateway makes to it."""
    hits: list[str] = []

    async def record(request: web.Request) -> web.Response:
        hits.append(f"{request.method} {request.path_qs}")
        return web.Response(body=b"\x89PNG secret internal data", content_type="image/png")
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", hits  # type: ignore[union-attr]
    await runner.cleanup()


async def test_mms_media_urls_are_never_fetched(sqlite_url, make_gateway, start_client, trap) -> None:
    base, hits = trap
    gw = make_gateway(sqlite_url)
    client = await start_client(gw)
    params = {**sms("Voici la photo de la fuite à Oran"), "NumMedia": "3",
              "MediaUrl0": f"{base}/latest/meta-data/iam/security-credentials/", "MediaContentType0": "image/png",
              "MediaUrl1": "http://169.254.169.254/latest/meta-data/", "MediaContentType1": "image/jpeg",
              "MediaUrl2": "file:///etc/passwd", "MediaContentType2": "text/plain"}
    assert (await post_signed(client, "/webhooks/twilio/sms", params)).status == 200
    await asyncio.sleep(1.0)
    assert hits == []
    with gw.db.session() as s:
        inbound = s.exec(select(Message).where(Message.direction == "in")).one()
        assert len(inbound.attachments) == 3 and s.exec(select(StoredFile)).all() == []


async def test_telegram_file_urls_in_updates_are_not_followed(sqlite_url, make_tg, start_client, fake_telegram,
                                                               trap) -> None:
    base, hits = trap
    client = await start_client(make_tg(sqlite_url))
    update = fresh("photo")
    for size in update["message"]["photo"]:
        size["file_path"] = f"{base}/steal"  # Telegram never sends this; a forger might
        size["file_url"] = f"{base}/steal"
    update["message"]["caption"] = f"regardez {base}/caption-link"
    assert (await post_update(client, update)).status == 200
    await asyncio.sleep(1.5)
    assert hits == []
