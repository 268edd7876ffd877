"""``gateway telegram set-webhook``: register ``GATEWAY_PUBLIC_URL``/webhooks/telegram with the secret."""
from __future__ import annotations

import argparse
import asyncio
import sys

from config.loader import load_config
from config.settings import ConfigError, Settings
from conversations.messages import DeliveryError

ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "channel_post", "my_chat_member"]


def webhook_url(settings: Settings) -> str:
    return f"{settings.public_url}/webhooks/telegram"


def set_webhook_command(settings: Settings, args: argparse.Namespace) -> int:
    from channels.telegram.adapter import TelegramAdapter

    missing = [name for name, value in (("GATEWAY_TELEGRAM_BOT_TOKEN", settings.telegram_bot_token),
                                        ("GATEWAY_TELEGRAM_SECRET_TOKEN", settings.telegram_secret_token),
                                        ("GATEWAY_PUBLIC_URL", settings.public_url)) if not value]
    if missing:
        raise ConfigError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: "
                          "`gateway telegram set-webhook` registers GATEWAY_PUBLIC_URL + /webhooks/telegram with "
                          "Telegram, authenticated by GATEWAY_TELEGRAM_SECRET_TOKEN, using the bot token from "
                          "@BotFather")
    adapter = TelegramAdapter.from_settings(settings, load_config(settings.config))
    url = webhook_url(settings)
    if not url.startswith("https://"):
        print(f"gateway: warning: Telegram only calls https:// webhooks; {url} may be refused", file=sys.stderr)

    async def run() -> bool:
        try:
            return await adapter.set_webhook(url, allowed_updates=ALLOWED_UPDATES,
                                             max_connections=args.max_connections)
        finally:
            await adapter.close()

    try:
        ok = asyncio.run(run())
    except DeliveryError as exc:
        print(f"gateway: Telegram refused setWebhook: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return 1
    if not ok:
        print("gateway: Telegram did not confirm setWebhook", file=sys.stderr)
        return 1
    print(f"Telegram webhook set to {url}")
    return 0
