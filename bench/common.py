"""What the benchmark processes share: data, signed requests, ports, subprocesses, statistics."""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

PUBLIC_URL = "https://gateway.bench.example.org"
TWILIO_SID = "AC" + "b" * 32
TWILIO_TOKEN = "bench-auth-token-0123456789abcdef"
SMS_NUMBER = "+212522000000"
WEBHOOK_PATH = "/webhooks/twilio/sms"


def data_dir() -> Path:
    """``/work/shared/data`` or the repository's ``../shared/data``."""
    for candidate in (Path(os.environ.get("BENCH_DATA_DIR", "")), REPO.parent / "shared" / "data",
                      Path("/work/shared/data")):
        if str(candidate) and (candidate / "routing_dev.jsonl").exists():
            return candidate
    raise FileNotFoundError("routing_dev.jsonl not found: set BENCH_DATA_DIR to the shared data directory")


def load_texts() -> list[str]:
    """Realistic citizen messages (Arabic, Darija, French, English) from the routing dev set."""
    with open(data_dir() / "routing_dev.jsonl", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh if line.strip()]
    return [t for t in texts if t.strip()]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Numbers:
    """Distinct Moroccan mobile numbers, never reused within one run (replies match by number)."""

    def __init__(self, start: int = 10_000_000) -> None:
        self._next = start
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            n = self._next
            self._next += 1
        return f"+2126{n:08d}"


@dataclass(frozen=True)
class SignedRequest:
    number: str
    body: bytes
    headers: dict[str, str]


class RequestFactory:
    """Twilio-shaped inbound-SMS forms, signed with Twilio's own RequestValidator.

    Each text is a dev-set text with a number after it, so no two messages of a run are the same
    string (citizens in a storm write alike, not identically; a repeated string would be served
    from the router's memory). The number changes neither the routing nor the language."""

    def __init__(self, texts: Sequence[str], numbers: Numbers, seed: int = 7) -> None:
        self.texts = list(texts)
        self.numbers = numbers
        self.validator = RequestValidator(TWILIO_TOKEN)
        self.url = PUBLIC_URL + WEBHOOK_PATH
        self.rng = random.Random(seed)
        self._sid = 0

    def make(self) -> SignedRequest:
        number = self.numbers.take()
        self._sid += 1
        sid = f"SM{os.getpid():08x}{self._sid:08x}{self.rng.getrandbits(64):016x}"
        form = {
            "ToCountry": "MA", "ToState": "", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "", "FromZip": "",
            "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "",
            "Body": f"{self.rng.choice(self.texts)} {number[-6:]}", "FromCountry": "MA", "To": SMS_NUMBER, "ToZip": "",
            "NumSegments": "1", "MessageSid": sid, "AccountSid": TWILIO_SID, "From": number,
            "ApiVersion": "2010-04-01",
        }
        signature = self.validator.compute_signature(self.url, form)
        return SignedRequest(number, urlencode(form).encode(), {
            "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass
class Proc:
    """A child process of the benchmark, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(name: str, args: Sequence[str], env: dict[str, str], log_dir: Path) -> Proc:
    log_path = log_dir / f"{name}.log"
    full_env = dict(os.environ)
    full_env.update(env)
    full_env["PYTHONPATH"] = str(REPO) + (os.pathsep + full_env["PYTHONPATH"] if full_env.get("PYTHONPATH") else "")
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    log = open(log_path, "wb")
    popen = subprocess.Popen([PYTHON, *args], cwd=str(REPO), env=full_env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    log.close()
    return Proc(name, popen, log_path)


def process_tree(pids: Sequence[int]) -> list[Any]:
    """The processes ``pids`` with their children (``gateway serve --processes N`` forks its
    servers: they count with their parent); those that ended are left out. Finding children reads
    every process's ``/proc`` entry: done once per call."""
    import psutil

    tree: list[Any] = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            tree += [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
    return tree


def _cpu_seconds(proc: Any) -> float:
    import psutil

    try:
        times = proc.cpu_times()
        return float(times.user + times.system)
    except psutil.Error:
        return 0.0


def cpu_by_role(roles: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user+sys) used so far by each role's processes and their children, and by
    what else shares the machine with them: PostgreSQL's and Redis's server processes (found by
    name) and this process, the load generator. A process that ended is no longer counted."""
    import psutil

    used = {role: sum(_cpu_seconds(proc) for proc in process_tree(pids)) for role, pids in roles.items()}
    servers = {"postgres": 0.0, "redis": 0.0}
    for proc in psutil.process_iter(["name"]):
        name = proc.info["name"] or ""
        role = "postgres" if name.startswith("postgres") else "redis" if name.startswith("redis-server") else None
        if role:
            servers[role] += _cpu_seconds(proc)
    used.update(servers)
    used["load generator"] = _cpu_seconds(psutil.Process())
    return used


@dataclass
class ResourceMonitor:
    """Peak RSS of a set of processes and their children, sampled in a thread.

    The sampling runs in the load generator's process, on the machine under test: the process
    tree is looked up again only every ``tree_every`` seconds (looked up on every 0.1 s sample, it
    cost the load generator about half of its CPU)."""

    pids: list[int]
    interval: float = 0.1
    tree_every: float = 2.0
    _peak: float = 0.0
    _peak_one: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _tree: list[Any] = field(default_factory=list)
    _tree_at: float = -1e9

    def rss_mb(self) -> float:
        """The processes' resident memory in MB, summed; also tracks the largest single one."""
        if time.monotonic() - self._tree_at >= self.tree_every:
            self._tree, self._tree_at = process_tree(self.pids), time.monotonic()
        total = 0
        for proc in self._tree:
            try:
                rss = proc.memory_info().rss
            except Exception:
                continue
            total += rss
            self._peak_one = max(self._peak_one, rss / 1e6)
        return total / 1e6

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self.rss_mb())

    @property
    def peak_one_mb(self) -> float:
        return self._peak_one

    def start(self) -> "ResourceMonitor":
        self._peak_one = 0.0
        self._peak = self.rss_mb()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="resource-monitor")
        self._thread.start()
        return self

    def reset_peak(self) -> None:
        self._peak_one = 0.0
        self._peak = self.rss_mb()

    @property
    def peak_mb(self) -> float:
        return max(self._peak, self.rss_mb())

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)


def wait_http(url: str, timeout: float, proc: Proc | None = None) -> None:
    """Poll ``url`` until it answers 200 (the child started), or fail with the child's log."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout}s" + (f":\n{proc.tail()}" if proc else ""))
