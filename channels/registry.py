"""The explicit registry of channel adapters, keyed by channel name (no directory scanning)."""
from __future__ import annotations

from config.loader import GatewayConfig
from config.settings import Settings
from channels.base import BaseAdapter
from channels.ivr.adapter import IvrAdapter
from channels.email.adapter import EmailAdapter
from channels.sms.adapter import SmsAdapter
from channels.telegram.adapter import TelegramAdapter

REGISTRY: dict[str, type[BaseAdapter]] = {
    SmsAdapter.name: SmsAdapter,
    IvrAdapter.name: IvrAdapter,
    TelegramAdapter.name: TelegramAdapter,
    EmailAdapter.name: EmailAdapter,
}


def build_adapters(settings: Settings, config: GatewayConfig) -> dict[str, BaseAdapter]:
    """One adapter per registered channel, each validating its own settings."""
    return {name: cls.from_settings(settings, config) for name, cls in REGISTRY.items()}
