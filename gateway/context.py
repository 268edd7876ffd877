"""The running gateway: settings, configuration, core, adapters and the delivery backend."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from channels.base import BaseAdapter
from channels.registry import build_adapters
from config.loader import GatewayConfig, load_config
from config.settings import Settings, load_settings
from conversations.clock import Clock
from conversations.core import Core, RouterProtocol
from conversations.delivery import Delivery
from conversations.ratelimit import ReplyLimits
from store.db import Database

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    settings: Settings
    config: GatewayConfig
    core: Core
    adapters: dict[str, BaseAdapter]
    delivery: Delivery
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Database:
        return self.core.db

    async def close(self) -> None:
        for adapter in self.adapters.values():
            await adapter.close()


def build_gateway(settings: Settings | None = None, config: GatewayConfig | None = None,
                  clock: Clock | None = None, router: RouterProtocol | None = None,
                  adapters: dict[str, BaseAdapter] | None = None) -> Gateway:
    """Everything but the HTTP app and background tasks; raises ``ConfigError`` on bad config."""
    settings = settings or load_settings()
    config = config or load_config(settings.config)
    ReplyLimits.from_config(config)  # validates [limits] at start-up
    db = Database(settings.effective_database_url)
    core = Core(settings, config, db, router=router, clock=clock)
    adapters = adapters if adapters is not None else build_adapters(settings, config)
    return Gateway(settings, config, core, adapters, Delivery(core, adapters))
