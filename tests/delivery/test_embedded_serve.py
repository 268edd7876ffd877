"""The embedded default as a user runs it: `gateway serve` on SQLite with sandbox providers."""
from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.processes import ROOT, free_port, gateway_env, wait_for


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return 0, ""


def test_serve_starts_on_embedded_defaults(tmp_path: Path, processes) -> None:
    port = free_port()
    proc = processes("serve", "--port", str(port), env=gateway_env(data_dir=str(tmp_path / "var")))
    status, body = wait_for(lambda: (r := _get(f"http://127.0.0.1:{port}/healthz"))[0] and r, timeout=60)
    assert status == 200 and json.loads(body)["checks"]["database"] == "ok", proc.output()
    assert (tmp_path / "var" / "gateway.sqlite3").exists()
    status, metrics = _get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and "gateway_outbox_backlog" in metrics
    # an unsigned webhook is refused even in the sandbox
    req = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/twilio/sms", data=b"From=%2B212612345678&Body=x",
                                 method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("an unsigned webhook was accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403
    assert "listening on" in proc.output()


def test_simulate_sms_prints_the_reply(tmp_path: Path) -> None:
    env = gateway_env(data_dir=str(tmp_path / "var"))
    run = [sys.executable, "-m", "gateway", "simulate", "sms", "--from", "0612345678"]
    first = subprocess.run([*run, "Pas d'eau au robinet depuis trois jours à Rabat"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "[sandbox]" in first.stdout and "référence" in first.stdout
    assert "0612345678" not in first.stderr and "612345678" not in first.stderr  # masked in logs
    second = subprocess.run([*run, "STATUS"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "Réclamation" in second.stdout, second.stdout
