"""Helpers for IVR tests: recorded Twilio Voice payloads, a simulated caller, TwiML reading."""
from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from tests.conftest import post_signed

FIXTURES = Path(__file__).resolve().parent.parent / "channels" / "ivr" / "fixtures"
VOICE = "/webhooks/twilio/voice"
CITIZEN = "+212612345678"
OTHER = "+212698765432"
HOTLINE = "+212522000100"
_ids = itertools.count(1)


def fixture(name: str) -> dict[str, str]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def new_sid(prefix: str) -> str:
    return f"{prefix}{next(_ids):032x}"


def call_params(fixture_name: str, call_sid: str, number: str | None = CITIZEN, **extra: str) -> dict[str, str]:
    """A recorded payload moved to another call and caller, with ``extra`` fields set."""
    params = fixture(fixture_name)
    params["CallSid"] = call_sid
    if number is not None:
        for key in ("From", "Caller"):
            if key in params:
                params[key] = number
    for key, value in extra.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return params


def says(root: ET.Element) -> list[ET.Element]:
    """Every <Say>, including those inside <Gather>, in document order."""
    return list(root.iter("Say"))


def spoken(root: ET.Element) -> str:
    return " ".join((s.text or "") for s in says(root))


def verbs(root: ET.Element) -> list[str]:
    return [child.tag for child in root]


class Call:
    """One simulated phone call: every request is signed like Twilio's and answered with TwiML."""

    def __init__(self, client: Any, number: str | None = CITIZEN, call_sid: str | None = None) -> None:
        self.client = client
        self.number = number
        self.sid = call_sid or new_sid("CA")

    async def post_raw(self, path: str, params: dict[str, str]) -> Any:
        return await post_signed(self.client, path, params)

    async def step(self, step: str = "", fixture_name: str = "gather_digits", **extra: Any) -> ET.Element:
        path = VOICE + (f"/{step}" if step else "")
        params = call_params(fixture_name, self.sid, self.number, **extra)
        if self.number is None:
            params["From"] = params["Caller"] = "anonymous"
        resp = await self.post_raw(path, params)
        body = await resp.text()
        assert resp.status == 200, body
        assert resp.content_type == "text/xml", resp.content_type
        root = ET.fromstring(body)
        assert root.tag == "Response"
        return root

    async def start(self) -> ET.Element:
        return await self.step("", "incoming_call")

    async def press(self, step: str, digits: str | None) -> ET.Element:
        """Keys typed at a Gather (``None``: nothing typed, Twilio followed the <Redirect>)."""
        return await self.step(step, "gather_digits", Digits=digits)
