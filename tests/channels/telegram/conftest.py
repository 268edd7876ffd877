"""Telegram test fixtures: the fake Bot API and a gateway wired to it."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.context import Gateway
from tests.support.fake_telegram import TOKEN, FakeTelegram
from tests.support.telegram_updates import SECRET


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    fake = await FakeTelegram().start()
    yield fake
    await fake.stop()


@pytest.fixture
def make_tg(make_gateway: Callable[..., Gateway], fake_telegram: FakeTelegram) -> Callable[..., Gateway]:
    """A gateway on ``db_url`` with the fake Bot API; Telegram options go to ``[channels.telegram]``."""

    def make(db_url: str, *, token: str | None = TOKEN, options: dict[str, Any] | None = None,
             config_overrides: dict[str, Any] | None = None, **overrides: Any) -> Gateway:
        telegram = {"per_chat_interval": 0.0}
        telegram.update(options or {})
        config = {"channels": {"telegram": telegram}, **(config_overrides or {})}
        return make_gateway(db_url, config_overrides=config, telegram_bot_token=token, telegram_secret_token=SECRET,
                            telegram_api_base=fake_telegram.base_url, **overrides)

    return make
