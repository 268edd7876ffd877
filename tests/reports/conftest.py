import pytest
from argon2 import PasswordHasher

import gateway.users


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with production cost makes every login ~0.1-0.5 s; the tests only need it to be argon2."""
    monkeypatch.setattr(gateway.users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
