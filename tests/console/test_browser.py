"""The console in real headless Chromium (Playwright, /usr/bin/chromium from Debian): an agent
logs a phone complaint, the officer it was routed to replies and sees the delivery status
change live; the Arabic console renders right to left. Screenshots go to test-artifacts/."""
from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from tests.api.conftest import PASSWORD, ApiEnv
from tests.conftest import post_signed, wait_until
from tests.support.db import IN_CI

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CITIZEN = "+212612345678"
TIMEOUT_MS = 15_000


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (apt-get install chromium; scripts/test.sh does it)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.async_api import async_playwright  # noqa: PLC0415

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def open_as(browser: Any, base: str, username: str, lang: str = "fr") -> Any:
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale=lang,
                                        base_url=base)
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(f"/console/lang/{lang}?next=/console/login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("button[type=submit].primary")
    await page.wait_for_url(re.compile(r"/console/queue"))
    return page


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.slow
async def test_agent_logs_a_call_and_the_officer_replies(api_factory: Any, fake_twilio: Any, browser: Any) -> None:
    env: ApiEnv = await api_factory(public_url="http://console.test")
    base = str(env.client.make_url("/")).rstrip("/")

    agent = await open_as(browser, base, "amina")
    assert await agent.locator("#calls-panel").is_visible() and await agent.locator("#callbacks-panel").is_visible()
    await shot(agent, "agent-queue")
    await agent.click("#nav-intake")
    await agent.fill("#intake-phone", "0612345678")
    await agent.fill("#intake-text", "Le citoyen appelle : pas d'eau au robinet depuis trois jours à Oran, quartier "
                                     "Es Seddikia")
    await expect(agent.locator("#suggestion")).to_contain_text("Eau", timeout=TIMEOUT_MS)
    suggestion = await agent.text_content("#suggestion")
    assert "Eau et assainissement" in suggestion and "Oran" in suggestion
    await agent.select_option("#intake-channel", "phone")
    await shot(agent, "agent-intake")
    await agent.click("#intake-submit")
    await agent.wait_for_url(re.compile(r"/console/complaints/\d{4}-\d{4}-\d"))
    reference = re.search(r"\d{4}-\d{4}-\d", agent.url).group(0)
    assert reference in await agent.text_content("#flash")
    await shot(agent, "agent-complaint")
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 1)
    assert reference in fake_twilio.to(CITIZEN)[0]["body"]

    officer = await open_as(browser, base, "olga")  # the Oran branch of the water utility
    link = officer.locator(f"a.ref:text('{reference}')")
    await link.wait_for()
    await shot(officer, "officer-inbox")
    await link.click()
    await officer.wait_for_url(re.compile(reference))
    await officer.select_option("#canned", index=2)
    assert "équipe" in await officer.input_value("#reply-text")
    await officer.fill("#reply-text", "Une équipe passe demain matin réparer la conduite.")
    await officer.click("#send-reply")
    await officer.wait_for_url(re.compile(r"done=reply"))
    outgoing = officer.locator("li.msg-out").last
    assert "Une équipe passe demain matin" in await outgoing.text_content()
    await wait_until(lambda: len(fake_twilio.to(CITIZEN)) == 2)
    assert "Une équipe passe demain matin" in fake_twilio.to(CITIZEN)[1]["body"]
    # the provider reports delivery: the page shows it without a reload
    sid = fake_twilio.to(CITIZEN)[1]["sid"]
    await wait_until(lambda: _sent(env, sid))
    resp = await post_signed(env.client, "/webhooks/twilio/sms/status",
                             {"MessageSid": sid, "MessageStatus": "delivered", "AccountSid": "AC" + "1" * 32},
                             base="http://console.test")
    assert resp.status == 200
    await officer.wait_for_selector("li.msg-out:last-child [data-delivery='delivered']")
    await shot(officer, "officer-complaint-delivered")

    # the agent's open page shows the officer's reply arriving live too
    await expect(agent.locator("li.msg-out")).to_have_count(2, timeout=TIMEOUT_MS)

    # Arabic: right to left
    await officer.goto(f"/console/lang/ar?next=/console/complaints/{reference}")
    assert await officer.evaluate("document.documentElement.dir") == "rtl"
    assert await officer.evaluate("document.documentElement.lang") == "ar"
    assert await officer.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert "المحادثة" in await officer.text_content("main")
    await shot(officer, "officer-complaint-ar")
    await officer.goto("/console/queue")
    assert await officer.evaluate("getComputedStyle(document.querySelector('main')).direction") == "rtl"
    await shot(officer, "officer-inbox-ar")
    for page in (agent, officer):
        await page.context.close()


def _sent(env: ApiEnv, sid: str) -> bool:
    from sqlmodel import select

    from store.models import Message

    with env.gw.db.session() as s:
        return s.exec(select(Message).where(Message.provider_message_id == sid)).first() is not None


@pytest.mark.slow
async def test_supervisor_triage_and_login_page(api_factory: Any, browser: Any) -> None:
    env: ApiEnv = await api_factory(public_url="http://console.test")
    base = str(env.client.make_url("/")).rstrip("/")
    reference = await env.intake("Bonjour, je voudrais parler à quelqu'un de mon dossier", who="agent")
    context = await browser.new_context(viewport={"width": 1280, "height": 720}, base_url=base, locale="en")
    context.set_default_timeout(TIMEOUT_MS)
    login = await context.new_page()
    await login.goto("/console/lang/en?next=/console/login")
    await shot(login, "login-en")
    await login.fill("#username", "sara")
    await login.fill("#password", "wrong password")
    await login.click("button[type=submit].primary")
    assert "Wrong username or password" in await login.text_content("[role=alert]")
    await login.fill("#username", "sara")
    await login.fill("#password", PASSWORD)
    await login.click("button[type=submit].primary")
    await login.wait_for_url(re.compile(r"/console/queue"))
    link = login.locator(f"a.ref:text('{reference}')")
    await link.wait_for()
    await shot(login, "supervisor-triage")
    await link.click()
    await login.wait_for_url(re.compile(reference))
    await login.select_option("#transfer-form select[name=category]", "civil_status")
    await login.fill("#transfer-form input[name=reason]", "asks about a birth certificate file")
    await login.click("#transfer-form button[type=submit]")
    await login.wait_for_url(re.compile(r"done=transfer"))
    assert "Civil registry" in await login.text_content("#fact-administration")
    await shot(login, "supervisor-complaint")
    await context.close()
