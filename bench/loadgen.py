"""The load generator: Twilio-signed inbound-SMS webhooks, closed loop or open loop (aiohttp).

Closed loop: ``connections`` clients each send the next request as soon as the previous one is
answered (saturation). Open loop: Poisson arrivals at ``rate`` per second, each request sent at
its scheduled time whatever happened to the others; its latency is counted from the SCHEDULED
time, so a stalled server cannot hide its queueing delay (no coordinated omission).
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field

import aiohttp

from bench.common import RequestFactory, SignedRequest


@dataclass
class Sent:
    number: str
    start: float  # monotonic: the send time (closed loop) or the scheduled time (open loop)
    done: float = 0.0
    status: int = 0  # HTTP status, 0 for a connection error or timeout


@dataclass
class LoadResult:
    kind: str  # "closed" / "open"
    target: float  # connections (closed) or rate (open)
    started: float
    stopped: float  # when the last request was answered
    sent: list[Sent] = field(default_factory=list)

    @property
    def acked(self) -> list[Sent]:
        return [s for s in self.sent if s.status == 200]

    @property
    def errors(self) -> int:
        return sum(1 for s in self.sent if s.status != 200)


def _session(connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections, force_close=False,
                                     enable_cleanup_closed=False, ttl_dns_cache=None)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30),
                                 skip_auto_headers=("User-Agent",))


async def _post(session: aiohttp.ClientSession, url: str, req: SignedRequest, rec: Sent) -> None:
    try:
        async with session.post(url, data=req.body, headers=req.headers) as resp:
            await resp.read()
            rec.status = resp.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
        rec.status = 0
    rec.done = time.monotonic()


async def closed_loop(base_url: str, factory: RequestFactory, connections: int, duration: float) -> LoadResult:
    url = base_url + "/webhooks/twilio/sms"
    result = LoadResult("closed", connections, time.monotonic(), 0.0)
    async with _session(connections) as session:
        end = result.started + duration

        async def client() -> None:
            while time.monotonic() < end:
                req = factory.make()
                rec = Sent(req.number, time.monotonic())
                result.sent.append(rec)
                await _post(session, url, req, rec)

        await asyncio.gather(*(client() for _ in range(connections)))
    result.stopped = max((s.done for s in result.sent), default=time.monotonic())
    return result


async def open_loop(base_url: str, factory: RequestFactory, rate: float, duration: float,
                    seed: int = 11, max_connections: int = 512) -> LoadResult:
    url = base_url + "/webhooks/twilio/sms"
    rng = random.Random(seed)
    offsets: list[float] = []
    t = rng.expovariate(rate)
    while t < duration:
        offsets.append(t)
        t += rng.expovariate(rate)
    requests = [factory.make() for _ in offsets]  # signed up front: the schedule is not slowed down
    tasks: list[asyncio.Task[None]] = []
    async with _session(max_connections) as session:
        started = time.monotonic() + 0.05
        result = LoadResult("open", rate, started, 0.0)
        i = 0
        while i < len(offsets):
            now = time.monotonic()
            while i < len(offsets) and started + offsets[i] <= now:
                rec = Sent(requests[i].number, started + offsets[i])
                result.sent.append(rec)
                tasks.append(asyncio.create_task(_post(session, url, requests[i], rec)))
                i += 1
            if i < len(offsets):
                await asyncio.sleep(max(0.0, started + offsets[i] - time.monotonic()))
        await asyncio.gather(*tasks)
    result.stopped = max((s.done for s in result.sent), default=time.monotonic())
    return result
