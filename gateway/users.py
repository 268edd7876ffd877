"""Console/API users: password hashing (argon2) and ``gateway user add``."""
from __future__ import annotations

import argparse
import secrets
import sys

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlmodel import select

from config.loader import load_config
from config.settings import ConfigError, Settings
from store.db import Database
from store.models import User

ROLES = ("agent", "officer", "supervisor", "admin")
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def create_user(db: Database, username: str, role: str, password: str, administration: str | None = None,
                language: str = "fr") -> User:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == "officer" and not administration:
        raise ValueError("an officer needs --administration (the administration or branch id)")
    if len(password) < 8:
        raise ValueError("the password must have at least 8 characters")
    with db.session() as session:
        if session.exec(select(User.id).where(User.username == username)).first() is not None:
            raise ValueError(f"user {username!r} already exists")
        user = User(username=username, role=role, administration=administration,
                    password_hash=hash_password(password), language=language)
        session.add(user)
        session.flush()
        return user


def add_user_command(settings: Settings, args: argparse.Namespace) -> int:
    config = load_config(settings.config)
    if args.administration:
        national = args.administration.partition(".")[0]
        known = set(config.administrations) | {b.id for a in config.administrations.values()
                                                for b in a.branches.values()}
        if args.administration not in known and national not in config.administrations:
            raise ConfigError(f"--administration {args.administration!r} is not in the administrations directory")
    generated = False
    password = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read().strip()
    if not password:
        password, generated = secrets.token_urlsafe(12), True
    db = Database(settings.effective_database_url)
    try:
        create_user(db, args.username, args.role, password, args.administration)
    except ValueError as exc:
        print(f"gateway user add: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    print(f"user {args.username} created with role {args.role}")
    if generated:
        print(f"password: {password}")
    return 0
