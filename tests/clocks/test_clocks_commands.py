"""`gateway clocks tick` / `gateway scheduler --once` and the RQ job run one pass with the lease."""
from __future__ import annotations

import json
from typing import Any

import pytest

import gateway.worker
from conversations.clock import FixedClock
from gateway.cli import main
from gateway.clocks_service import tick_job
from tests.clocks.helpers import T0, events, new_complaint
from tests.support.db import service_missing


@pytest.fixture
def env_db(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", sqlite_url)
    for name in ("GATEWAY_TWILIO_ACCOUNT_SID", "GATEWAY_TWILIO_AUTH_TOKEN", "GATEWAY_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    return sqlite_url


def test_cli_tick(env_db: str, make_gateway: Any, capsys: pytest.CaptureFixture[str]) -> None:
    gw = make_gateway(env_db, clock=FixedClock(T0))
    cid = new_complaint(gw)  # received in March 2026: long overdue by the real clock
    assert main(["clocks", "tick"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["ran"] is True and out["escalated"] == 1 and out["overdue"] == 2
    assert [e.type for e in events(gw, cid, "escalated")] == ["escalated"]
    assert main(["scheduler", "--once"]) == 0  # the same, and nothing is left to do
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["ran"] is True and again["escalated"] == 0


def test_rq_job(env_db: str, make_gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    gw = make_gateway(env_db, clock=FixedClock(T0))
    cid = new_complaint(gw)
    monkeypatch.setattr(gateway.worker, "_state", {})
    result = tick_job()
    assert result["ran"] is True and result["escalated"] == 1
    assert len(events(gw, cid, "escalated")) == 1
    runtime = gateway.worker._state.get("gateway")
    if runtime is not None:
        runtime.db.close()


def test_rq_job_reschedules_itself(env_db: str, make_gateway: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from redis import Redis
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    url = "redis://127.0.0.1:6379/13"
    try:
        Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        service_missing("Redis at 127.0.0.1:6379", exc)
    monkeypatch.setenv("GATEWAY_REDIS_URL", url)
    monkeypatch.setenv("GATEWAY_QUEUE_NAME", "clocks-test")
    monkeypatch.setattr(gateway.worker, "_state", {})
    connection = Redis.from_url(url)
    connection.flushdb()
    try:
        assert tick_job(every=60)["ran"] is True
        queue = Queue("clocks-test", connection=connection)
        registry = ScheduledJobRegistry(queue=queue)
        [job_id] = registry.get_job_ids()
        job = queue.fetch_job(job_id)
        assert job.func_name == "gateway.clocks_service.tick_job" and job.args == (60,)
    finally:
        connection.flushdb()
        runtime = gateway.worker._state.get("gateway")
        if runtime is not None:
            runtime.db.close()
