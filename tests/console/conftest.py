"""The console tests use the API test environment (users of every role, tokens, doubles), served
with an http public URL: browsers and test clients keep ``Secure`` cookies off plain http."""
from __future__ import annotations

import pytest

from tests.api.conftest import ApiEnv, api_factory  # noqa: F401


@pytest.fixture
async def api_env(api_factory) -> ApiEnv:  # type: ignore[no-untyped-def]  # noqa: F811
    return await api_factory(public_url="http://console.test")
