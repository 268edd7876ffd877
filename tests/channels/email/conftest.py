"""Fixtures for the email tests: a real Dovecot, an aiosmtpd listener, gateways wired to both."""
from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import Dovecot, Mailbox, SmtpServer, find_dovecot  # noqa: E402

from tests.support.db import service_missing  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MAILBOX_ADDRESS = "reclamations@chikaya.example.org"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    binary = find_dovecot()
    if binary is None:
        service_missing("Dovecot (apt-get install dovecot-imapd)", FileNotFoundError("dovecot"))
    server = Dovecot(binary)  # type: ignore[arg-type]
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001
        server.stop()
        service_missing("Dovecot", exc)
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> Mailbox:
    """A fresh, empty IMAP account for this test."""
    return Mailbox(dovecot.port, dovecot.add_user())


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServer]:
    server = await SmtpServer().start()
    yield server
    await server.stop()


@pytest.fixture
def make_email_gateway(make_gateway: Callable[..., Any], mailbox: Mailbox, smtp_server: SmtpServer,
                       tmp_path: Path) -> Callable[..., Any]:
    """A gateway reading ``mailbox`` over IMAP and sending through the aiosmtpd listener."""

    def make(database_url: str, *, email: dict[str, Any] | None = None, smtp: bool = True, **overrides: Any) -> Any:
        options: dict[str, Any] = {"poll_seconds": 0.5, "timeout": 10}
        options.update(email or {})
        values: dict[str, Any] = dict(
            imap_host="127.0.0.1", imap_port=mailbox.port, imap_user=mailbox.user, imap_password=mailbox.password,
            imap_tls=False, email_address=MAILBOX_ADDRESS, data_dir=tmp_path / "data",
        )
        if smtp:
            values.update(smtp_host="127.0.0.1", smtp_port=smtp_server.port, smtp_tls=False)
        values.update(overrides)
        config = overrides.pop("config_overrides", None) or {}
        config = {**config, "channels": {**config.get("channels", {}), "email": options}}
        values.pop("config_overrides", None)
        return make_gateway(database_url, config_overrides=config, **values)

    return make
