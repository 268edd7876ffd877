"""`gateway user add`: password from stdin or generated; roles and administrations checked."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlmodel import select

from gateway.users import verify_password
from store.db import Database
from store.models import User
from tests.support.processes import ROOT, gateway_env


def run(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "user", "add", *args], cwd=ROOT, input=stdin,
                          env=gateway_env(data_dir=str(tmp_path)), capture_output=True, text=True, timeout=120)


def test_user_add(tmp_path: Path) -> None:
    made = run(tmp_path, "--username", "admin", "--role", "admin", stdin="a-long-secret-password\n")
    assert made.returncode == 0 and "password:" not in made.stdout
    generated = run(tmp_path, "--username", "oran", "--role", "officer", "--administration", "water_utility",
                    stdin="")
    assert generated.returncode == 0
    password = generated.stdout.split("password:")[1].strip()
    assert run(tmp_path, "--username", "x", "--role", "officer", stdin="").returncode == 1
    bad = run(tmp_path, "--username", "y", "--role", "officer", "--administration", "mars", stdin="")
    assert bad.returncode == 2 and "--administration" in bad.stderr
    assert run(tmp_path, "--username", "admin", "--role", "agent", stdin="another-password").returncode == 1
    assert run(tmp_path, "--username", "z", "--role", "king", stdin="").returncode == 2
    db = Database(f"sqlite:///{tmp_path / 'gateway.sqlite3'}")
    with db.session() as s:
        users = {u.username: u for u in s.exec(select(User))}
    db.close()
    assert set(users) == {"admin", "oran"}
    assert verify_password(users["admin"].password_hash, "a-long-secret-password")
    assert users["admin"].password_hash.startswith("$argon2")
    assert verify_password(users["oran"].password_hash, password) and users["oran"].administration == "water_utility"
