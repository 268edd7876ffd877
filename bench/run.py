"""The load benchmark: a real ``gateway serve`` (and RQ workers) under signed SMS webhooks.

    .venv/bin/python -m bench.run --mode embedded|postgres-redis|all --duration 20

For each mode it starts a fake Twilio provider and the gateway as subprocesses, then runs a
closed-loop phase (saturation) and open-loop phases (Poisson arrivals at ``--rates``), waiting
after each for the backlog to drain. A bare aiohttp baseline is measured in the same run and
every figure is also printed as a ratio to it. After each mode the database and the provider
are checked: every acknowledged message has exactly one complaint or follow-up, one reply in
the outbox (sent) and exactly one reply received by the provider.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import (
    PUBLIC_URL,
    SMS_NUMBER,
    TWILIO_SID,
    TWILIO_TOKEN,
    Numbers,
    Proc,
    RequestFactory,
    ResourceMonitor,
    cpu_by_role,
    free_port,
    load_texts,
    percentile,
    spawn,
    wait_http,
)
from bench.loadgen import LoadResult, closed_loop, open_loop

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MODES = ("embedded", "postgres-redis")


@dataclass
class PhaseReport:
    mode: str
    phase: str
    sent: int
    acked: int
    errors: int
    ack_per_s: float
    ack_p50_ms: float | None
    ack_p95_ms: float | None
    ack_p99_ms: float | None
    e2e_p50_ms: float | None = None
    e2e_p99_ms: float | None = None
    delivered_per_s: float | None = None
    drain_s: float | None = None
    cpu_s: float = 0.0
    cpu_ms_per_msg: float | None = None
    peak_rss_mb: float = 0.0
    peak_rss_one_mb: float = 0.0
    ledger: str = "-"
    ledger_problems: dict[str, int] = field(default_factory=dict)
    # % of one core during the phase, by process: the gateway's and what shares the machine.
    cpu_share: dict[str, float] = field(default_factory=dict)


@dataclass
class Target:
    """A running system under test: where to send, which processes to watch, how to check."""

    name: str
    url: str
    procs: list[Proc]
    provider_url: str | None = None
    database_url: str | None = None
    provider: Proc | None = None

    @property
    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.procs]

    def roles(self) -> dict[str, list[int]]:
        """The processes by role, for the CPU breakdown: servers (with the processes they fork),
        RQ workers, the fake provider."""
        roles: dict[str, list[int]] = defaultdict(list)
        for proc in self.procs:
            roles["worker" if proc.name.startswith("worker") else "server"].append(proc.popen.pid)
        if self.provider is not None:
            roles["provider"].append(self.provider.popen.pid)
        return dict(roles)


# -- systems under test --------------------------------------------------------------------------
# The reply limits (SMS-pumping protection) are sized for this load: at the default 300 replies a
# minute the gateway would rightly stop answering a benchmark after the first seconds.
BENCH_CONFIG = """
[limits]
sender_replies = 1000
global_replies_per_minute = 1000000
"""


def _gateway_env(provider_url: str, work: Path) -> dict[str, str]:
    config = work / "gateway-bench.toml"
    config.write_text(BENCH_CONFIG)
    return {
        "GATEWAY_CONFIG": str(config),
        "GATEWAY_PUBLIC_URL": PUBLIC_URL, "GATEWAY_TWILIO_ACCOUNT_SID": TWILIO_SID,
        "GATEWAY_TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "GATEWAY_TWILIO_API_BASE": provider_url,
        "GATEWAY_SMS_NUMBER": SMS_NUMBER, "GATEWAY_COUNTRY": "MA", "GATEWAY_DATA_DIR": str(work / "var"),
        "GATEWAY_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
    }


@contextmanager
def _provider(work: Path) -> Iterator[tuple[Proc, str]]:
    port = free_port()
    proc = spawn("provider", ["-m", "bench.provider", "--port", str(port), "--account-sid", TWILIO_SID], {}, work)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", 20, proc)
        yield proc, url
    finally:
        proc.stop()


@contextmanager
def baseline_target(work: Path) -> Iterator[Target]:
    port = free_port()
    proc = spawn("baseline", ["-m", "bench.baseline", "--port", str(port)], {}, work)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", 20, proc)
        yield Target("baseline", url, [proc])
    finally:
        proc.stop()


@contextmanager
def embedded_target(work: Path, processes: int = 1) -> Iterator[Target]:
    with _provider(work) as (provider, provider_url):
        port = free_port()
        env = _gateway_env(provider_url, work)
        server = spawn("gateway-embedded", ["-m", "gateway", "serve", "--port", str(port),
                                            "--processes", str(processes)], env, work)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/healthz", 60, server)
            db = f"sqlite:///{(work / 'var' / 'gateway.sqlite3').resolve()}"
            yield Target("embedded", url, [server], provider_url, db, provider)
        finally:
            server.stop()


def _pg_admin(sql: str) -> None:
    from sqlalchemy import create_engine, text

    from store.db import normalise_url

    engine = create_engine(normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@contextmanager
def fresh_pg_database(prefix: str = "bench") -> Iterator[str]:
    """A new PostgreSQL database on the admin server, migrated, dropped afterwards."""
    from store.migrate import upgrade

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def postgres_redis_target(work: Path, workers: int, processes: int = 1) -> Iterator[Target]:
    from rq import Queue
    from redis import Redis

    queue_name = f"bench-{uuid.uuid4().hex[:12]}"
    with fresh_pg_database() as db_url, _provider(work) as (provider, provider_url):
        env = _gateway_env(provider_url, work)
        env.update({"GATEWAY_DATABASE_URL": db_url, "GATEWAY_REDIS_URL": REDIS_URL, "GATEWAY_QUEUE_NAME": queue_name})
        port = free_port()
        procs = [spawn("gateway-pg", ["-m", "gateway", "serve", "--port", str(port),
                                      "--processes", str(processes)], env, work)]
        try:
            procs += [spawn(f"worker-{i}", ["-m", "gateway", "worker"], env, work) for i in range(workers)]
            url = f"http://127.0.0.1:{port}"
            wait_http(url + "/healthz", 60, procs[0])
            time.sleep(1.0)  # the workers import and connect
            for proc in procs[1:]:
                if proc.popen.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            yield Target("postgres-redis", url, procs, provider_url, db_url, provider)
        finally:
            for proc in procs:
                proc.stop()
            try:
                redis = Redis.from_url(REDIS_URL)
                Queue(queue_name, connection=redis).delete(delete_jobs=True)
                redis.close()
            except Exception as exc:  # noqa: BLE001
                print(f"bench: could not delete RQ queue {queue_name}: {exc}", file=sys.stderr)


# -- measuring -----------------------------------------------------------------------------------
def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return json.loads(resp.read())


def provider_replies(target: Target) -> dict[str, list[float]]:
    return _get_json(f"{target.provider_url}/_bench/replies?prefix=%2B2126")  # type: ignore[return-value]


def wait_drained(target: Target, expected: int, timeout: float) -> bool:
    """Wait until the provider has received ``expected`` messages in total."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = _get_json(f"{target.provider_url}/_bench/count")["count"]  # type: ignore[index]
        if count >= expected:
            return True
        time.sleep(0.02)
    return False


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def summarise(mode: str, phase: str, load: LoadResult, replies: dict[str, list[float]] | None,
              cpu: float, rss: float) -> PhaseReport:
    acked = load.acked
    lat = [s.done - s.start for s in acked]
    span = max(load.stopped - load.started, 1e-9)
    report = PhaseReport(mode, phase, len(load.sent), len(acked), load.errors, len(acked) / span,
                         _ms(percentile(lat, 50)), _ms(percentile(lat, 95)), _ms(percentile(lat, 99)),
                         cpu_s=cpu, peak_rss_mb=rss, cpu_ms_per_msg=cpu * 1000 / len(acked) if acked else None)
    if replies is not None:
        firsts = [(s, replies[s.number][0]) for s in acked if replies.get(s.number)]
        e2e = [at - s.start for s, at in firsts]
        report.e2e_p50_ms, report.e2e_p99_ms = _ms(percentile(e2e, 50)), _ms(percentile(e2e, 99))
        if firsts:
            last = max(at for _, at in firsts)
            report.drain_s = max(0.0, last - load.stopped)
            report.delivered_per_s = len(firsts) / max(last - load.started, 1e-9)
    return report


def check_ledger(database_url: str, loads: Sequence[LoadResult], replies: dict[str, list[float]]) -> list[dict[str, int]]:
    """Per load, the problems found (an empty dict: the ledger is exact)."""
    from sqlalchemy import create_engine, text

    from store.db import normalise_url

    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            inbound: dict[str, list[tuple[int, int | None]]] = defaultdict(list)
            for urn, mid, cid in conn.execute(text(
                    "SELECT urn, id, complaint_id FROM messages WHERE direction = 'in' AND channel = 'sms'")):
                inbound[urn].append((mid, cid))
            created = dict(conn.execute(text(
                "SELECT i.urn, count(*) FROM complaints c JOIN identities i ON i.id = c.identity_id GROUP BY i.urn")).all())
            followed = dict(conn.execute(text(
                "SELECT i.urn, count(*) FROM complaint_events e JOIN complaints c ON c.id = e.complaint_id "
                "JOIN identities i ON i.id = c.identity_id WHERE e.type = 'citizen_message' GROUP BY i.urn")).all())
            outbox: dict[str, list[str]] = defaultdict(list)
            for key, status in conn.execute(text("SELECT intent_key, status FROM outbox WHERE intent_key LIKE 'reply:%'")):
                outbox[key.split(":")[1]].append(status)
    finally:
        engine.dispose()
    all_numbers = {s.number for load in loads for s in load.sent}
    results = []
    for load in loads:
        problems: Counter[str] = Counter()
        for s in load.sent:
            urn = "tel:" + s.number
            got = len(replies.get(s.number, []))
            rows = inbound.get(urn, [])
            if s.status != 200:
                if got > 1 or len(rows) > 1:
                    problems["duplicate_after_error"] += 1
                continue
            if len(rows) != 1:
                problems["inbound_rows_not_1"] += 1
                continue
            mid, cid = rows[0]
            if cid is None:
                problems["no_complaint"] += 1
            if created.get(urn, 0) + followed.get(urn, 0) != 1:
                problems["complaint_or_followup_not_1"] += 1
            statuses = outbox.get(str(mid), [])
            if len(statuses) != 1:
                problems["outbox_replies_not_1"] += 1
            elif statuses[0] != "sent":
                problems[f"outbox_{statuses[0]}"] += 1
            if got == 0:
                problems["reply_missing"] += 1
            elif got > 1:
                problems["reply_duplicated"] += 1
        results.append(dict(problems))
    strays = sum(1 for number in replies if number not in all_numbers)
    if strays and results:
        results[-1]["reply_to_unknown_number"] = strays
    return results


async def _count_loop(url: str, factory: RequestFactory, n: int) -> LoadResult:
    import aiohttp

    from bench.loadgen import Sent, _post

    result = LoadResult("warmup", 8, time.monotonic(), 0.0)
    async with aiohttp.ClientSession() as session:
        async def client(k: int) -> None:
            for _ in range(k):
                req = factory.make()
                rec = Sent(req.number, time.monotonic())
                result.sent.append(rec)
                await _post(session, url + "/webhooks/twilio/sms", req, rec)
        await asyncio.gather(*(client(n // 8) for _ in range(8)))
    result.stopped = time.monotonic()
    return result


@dataclass
class Plan:
    duration: float = 20.0
    connections: int = 32
    rates: tuple[float, ...] = (400.0,)
    closed: bool = True
    warmup: int = 200
    drain_timeout: float = 60.0
    workers: int = 1
    processes: int = 1
    profile: Path | None = None

    def phases(self) -> list[tuple[str, str, float]]:
        out = [("closed", f"closed c={self.connections}", float(self.connections))] if self.closed else []
        return out + [("open", f"open {r:g}/s", r) for r in self.rates]


def _profilers(target: Target, directory: Path | None) -> list[subprocess.Popen[bytes]]:
    """py-spy on every process of ``target`` (collapsed stacks, readable with ``bench.flame``)."""
    if directory is None:
        return []
    directory.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return [subprocess.Popen([spy, "record", "--pid", str(p.popen.pid), "--subprocesses", "--format", "raw", "--rate", "250",
                              "--nonblocking", "-o", str(directory / f"{p.name}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in target.procs]


def run_target(target: Target, plan: Plan, factory: RequestFactory, log: bool = True) -> list[PhaseReport]:
    """Run the plan's phases against ``target``; gateway targets get e2e, drain and the ledger."""
    monitor = ResourceMonitor(target.pids).start()
    profilers = _profilers(target, plan.profile) if target.provider_url else []
    end_to_end = target.provider_url is not None
    loads: list[LoadResult] = []
    reports: list[PhaseReport] = []
    expected = 0
    try:
        if plan.warmup:
            warm = asyncio.run(_count_loop(target.url, factory, plan.warmup))
            loads.append(warm)
            expected += len(warm.acked)
            if end_to_end:
                wait_drained(target, expected, plan.drain_timeout)
        for kind, label, value in plan.phases():
            monitor.reset_peak()
            shares0, started = cpu_by_role(target.roles()), time.monotonic()
            if kind == "closed":
                load = asyncio.run(closed_loop(target.url, factory, int(value), plan.duration))
            else:
                load = asyncio.run(open_loop(target.url, factory, value, plan.duration))
            loads.append(load)
            expected += len(load.acked)
            if end_to_end and not wait_drained(target, expected, plan.drain_timeout):
                print(f"bench: {target.name} {label}: backlog not drained within {plan.drain_timeout}s",
                      file=sys.stderr)
            shares, elapsed = cpu_by_role(target.roles()), time.monotonic() - started
            used = {role: max(0.0, seconds - shares0.get(role, 0.0)) for role, seconds in shares.items()}
            cpu = used.get("server", 0.0) + used.get("worker", 0.0)  # the gateway's processes
            replies = provider_replies(target) if end_to_end else None
            report = summarise(target.name, label, load, replies, cpu, monitor.peak_mb)
            report.peak_rss_one_mb = monitor.peak_one_mb
            report.cpu_share = {role: 100 * seconds / elapsed for role, seconds in used.items()}
            reports.append(report)
            if log:
                print(f"  {target.name:15} {label:14} acked {report.acked:6d} at {report.ack_per_s:7.0f}/s, "
                      f"p99 ack {_fmt(report.ack_p99_ms)} ms" + (f", e2e p99 {_fmt(report.e2e_p99_ms)} ms, "
                                                                 f"drain {_fmt(report.drain_s, 2)} s"
                                                                 if end_to_end else ""), file=sys.stderr)
        if end_to_end and target.database_url:
            replies = provider_replies(target)
            problems = check_ledger(target.database_url, loads, replies)
            for report, found in zip(reports, problems[1 if plan.warmup else 0:]):
                report.ledger_problems = found
                report.ledger = "exact" if not found else ", ".join(f"{k}={v}" for k, v in sorted(found.items()))
            if plan.warmup and problems[0]:
                for report in reports:
                    report.ledger += f" (warm-up: {problems[0]})"
    finally:
        monitor.stop()
        for spy in profilers:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    return reports


# -- printing ------------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


COLUMNS = [("mode", 15), ("phase", 14), ("sent", 7), ("acked", 7), ("err", 5), ("ack/s", 8), ("ack p50", 8),
           ("p95", 7), ("p99 ms", 7), ("e2e p50", 8), ("p99 ms", 8), ("deliv/s", 8), ("drain s", 8),
           ("CPU s", 7), ("CPU ms/msg", 10), ("RSS MB (max)", 12), ("ledger", 6)]


def _row(r: PhaseReport) -> list[str]:
    return [r.mode, r.phase, str(r.sent), str(r.acked), str(r.errors), f"{r.ack_per_s:.0f}", _fmt(r.ack_p50_ms),
            _fmt(r.ack_p95_ms), _fmt(r.ack_p99_ms), _fmt(r.e2e_p50_ms), _fmt(r.e2e_p99_ms),
            _fmt(r.delivered_per_s, 0), _fmt(r.drain_s, 2), f"{r.cpu_s:.1f}", _fmt(r.cpu_ms_per_msg, 2),
            f"{r.peak_rss_mb:.0f}" + (f" ({r.peak_rss_one_mb:.0f})"
                                      if round(r.peak_rss_one_mb) < round(r.peak_rss_mb) else ""),
            r.ledger]


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or not b:
        return "-"
    return f"x{a / b:.2f}"


def _ratio_row(r: PhaseReport, base: PhaseReport) -> list[str]:
    return [r.mode, r.phase, "", "", "", _ratio(r.ack_per_s, base.ack_per_s), _ratio(r.ack_p50_ms, base.ack_p50_ms),
            _ratio(r.ack_p95_ms, base.ack_p95_ms), _ratio(r.ack_p99_ms, base.ack_p99_ms),
            _ratio(r.e2e_p50_ms, base.ack_p50_ms), _ratio(r.e2e_p99_ms, base.ack_p99_ms), "", "",
            _ratio(r.cpu_s, base.cpu_s), _ratio(r.cpu_ms_per_msg, base.cpu_ms_per_msg),
            _ratio(r.peak_rss_mb, base.peak_rss_mb), ""]


def render_table(reports: Sequence[PhaseReport]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.rjust(w) if i > 1 and i < len(COLUMNS) - 1 else c.ljust(w)
                         for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS))).rstrip()

    out = [line([name for name, _ in COLUMNS]), line(["-" * w for _, w in COLUMNS])]
    out += [line(_row(r)) for r in reports]
    baseline = {r.phase: r for r in reports if r.mode == "baseline"}
    ratios = [line(_ratio_row(r, baseline[r.phase])) for r in reports if r.mode != "baseline" and r.phase in baseline]
    if ratios:
        out += ["", "relative to the baseline (same phase; e2e is compared with the baseline's acknowledgement):",
                line([name for name, _ in COLUMNS]), *ratios]
    roles = [role for role in ("server", "worker", "postgres", "redis", "load generator", "provider")
             if any(role in r.cpu_share for r in reports)]
    if roles:
        out += ["", "CPU by process, % of one core over the phase (its load and drain): the gateway's and what "
                    "shares the machine with it", "  ".join(["mode".ljust(15), "phase".ljust(14),
                                                            *(role.rjust(max(len(role), 6)) for role in roles)])]
        out += ["  ".join([r.mode.ljust(15), r.phase.ljust(14), *(
            (f"{r.cpu_share[role]:.0f}" if role in r.cpu_share else "-").rjust(max(len(role), 6)) for role in roles)])
            for r in reports]
    return "\n".join(out)


def machine() -> str:
    model = "?"
    try:
        for text_line in Path("/proc/cpuinfo").read_text().splitlines():
            if text_line.startswith("model name"):
                model = text_line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {sys.version.split()[0]}"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def run(modes: Sequence[str], plan: Plan, baseline: bool = True, log: bool = True) -> list[PhaseReport]:
    factory = RequestFactory(load_texts(), Numbers())
    reports: list[PhaseReport] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        work = Path(os.environ.get("BENCH_KEEP_DIR") or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if baseline:
            with baseline_target(work) as target:
                reports += run_target(target, plan, factory, log)
        for mode in modes:
            mode_dir = work / mode
            mode_dir.mkdir(exist_ok=True)
            if mode == "embedded":
                context = embedded_target(mode_dir, plan.processes)
            else:
                context = postgres_redis_target(mode_dir, plan.workers, plan.processes)
            with context as target:
                reports += run_target(target, plan, factory, log)
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=[*MODES, "all"], default="all")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per phase (default 20)")
    parser.add_argument("--connections", type=int, default=32, help="closed-loop connections (default 32)")
    parser.add_argument("--rates", default="400", help="open-loop rates, comma-separated (default 400)")
    parser.add_argument("--no-closed", action="store_true", help="skip the closed-loop phase")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare aiohttp baseline")
    parser.add_argument("--workers", type=int, default=1,
                        help="RQ worker processes in postgres-redis mode (default 1: each sends its jobs' messages "
                             "concurrently; on two cores a second one cost more CPU a message than it added)")
    parser.add_argument("--processes", type=int, default=1,
                        help="`gateway serve --processes N`: server processes (default 1)")
    parser.add_argument("--warmup", type=int, default=200, help="requests sent before measuring (default 200)")
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument("--profile", type=Path, help="record py-spy profiles of the gateway processes here")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    rates = tuple(float(r) for r in args.rates.split(",") if r.strip())
    plan = Plan(duration=args.duration, connections=args.connections, rates=rates, closed=not args.no_closed,
                warmup=args.warmup, drain_timeout=args.drain_timeout, workers=args.workers,
                processes=args.processes, profile=args.profile)
    modes = list(MODES) if args.mode == "all" else [args.mode]
    load_before = load_average()
    print(f"machine: {machine()}; load average {load_before}", file=sys.stderr)
    reports = run(modes, plan, baseline=not args.no_baseline)
    print(f"\n{machine()}; load average before {load_before}, after {load_average()}; {args.duration:g} s per phase, closed loop c={args.connections}, "
          f"open loop at {args.rates}/s, {args.workers} RQ workers, {args.processes} server process(es)")
    print(render_table(reports))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=2))
    return 0 if all(r.ledger in ("exact", "-") for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
