"""Real gateway processes (``python -m gateway ...``) for tests, always cleaned up."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.db import service_missing

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gateway_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update({f"GATEWAY_{k.upper()}": str(v) for k, v in values.items() if v is not None})
    env["PYTHONPATH"] = str(ROOT)
    return env


class GatewayProcess:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", *args], cwd=ROOT, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def processes(tmp_path: Path):  # type: ignore[no-untyped-def]
    started: list[GatewayProcess] = []

    def start(*args: str, env: dict[str, str]) -> GatewayProcess:
        proc = GatewayProcess(list(args), env, tmp_path / f"proc-{len(started)}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


@pytest.fixture
def redis_queue():  # type: ignore[no-untyped-def]
    """A real Redis and a queue name of this test's own; fails under CI if Redis is away."""
    from redis import Redis

    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        service_missing("Redis at 127.0.0.1:6379", exc)
    name = f"gw-test-{uuid.uuid4().hex[:10]}"
    yield REDIS_URL, name
    for key in client.scan_iter(f"rq:*{name}*"):
        client.delete(key)
    client.close()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
