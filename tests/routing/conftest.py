"""Shared fixtures for the routing tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from config.loader import GatewayConfig, load_config
from conversations.routing import Router

REPO = Path(__file__).resolve().parents[2]
DEV_FILE = REPO.parent / "shared" / "data" / "routing_dev.jsonl"
OWN_FILE = Path(__file__).resolve().parent / "data" / "own_messages.jsonl"


@pytest.fixture(scope="session")
def config() -> GatewayConfig:
    return load_config()


@pytest.fixture(scope="session")
def router(config: GatewayConfig) -> Router:
    return Router.from_config(config)


@pytest.fixture(scope="session")
def dev_file() -> Path:
    """The shared labelled file; skipped when absent, except under CI where it must exist."""
    if not DEV_FILE.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{DEV_FILE} is missing (CI=true: the routing evaluation must run)")
        pytest.skip(f"{DEV_FILE} not present (outside CI the shared data may be absent)")
    return DEV_FILE
