"""Schemathesis against /api/v1/openapi.json on a running gateway: for every operation, as an
administrator and as an officer, generated requests never get a 5xx, and every response agrees
with the document (status code, content type, body schema)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from argon2 import PasswordHasher
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import gateway.users
from gateway.users import create_user
from tests.fuzz.test_webhook_fuzz import Served

PASSWORD = "correct horse battery staple"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from config.loader import load_config
    from config.settings import load_settings
    from gateway.context import build_gateway
    from store.migrate import upgrade
    from tests.conftest import PUBLIC_URL, SMS_NUMBER, TWILIO_SID, TWILIO_TOKEN

    gateway.users._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    url = f"sqlite:///{tmp_path_factory.mktemp('schemathesis') / 'gateway.sqlite3'}"
    upgrade(url)
    settings_ = load_settings(database_url=url, public_url=PUBLIC_URL, twilio_account_sid=TWILIO_SID,
                              twilio_auth_token=TWILIO_TOKEN, twilio_api_base="http://127.0.0.1:9",
                              sms_number=SMS_NUMBER)
    gw = build_gateway(settings_, load_config())
    create_user(gw.db, "admin", "admin", PASSWORD)
    create_user(gw.db, "water", "officer", PASSWORD, "water_utility")
    server = Served(gw)
    import json
    import urllib.request

    tokens = {}
    for user in ("admin", "water"):
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/v1/auth/token", method="POST",
                                         data=json.dumps({"username": user, "password": PASSWORD}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            tokens[user] = json.loads(resp.read())["token"]
    yield {"base": f"http://127.0.0.1:{server.port}", "tokens": tokens}
    server.stop()
    gw.db.close()




def test_api_matches_its_openapi_document(api_server: dict[str, Any]) -> None:
    """Every operation, as an administrator and as an officer (schemathesis's pytest plugin does
    not run under pytest 9, so operations are driven with Hypothesis directly)."""
    from hypothesis import given

    schema = schemathesis.openapi.from_url(api_server["base"] + "/api/v1/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            for who in ("admin", "water"):
                case.call_and_validate(base_url=api_server["base"], checks=CHECKS,
                                       headers={"Authorization": f"Bearer {api_server['tokens'][who]}"})

        try:
            run()
        except BaseException as exc:  # noqa: BLE001 — collect every failure (an exception group), then report
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    print(f"schemathesis: {operations} operations, {len(failures)} failing")
    assert operations >= 10
    assert not failures, "\n\n".join(failures)
