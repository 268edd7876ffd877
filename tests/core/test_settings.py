"""Start-up validation: every configuration error names the setting and the fix."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.loader import load_config
from config.settings import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("overrides,names", [
    ({"country": "XX"}, "GATEWAY_COUNTRY"),
    ({"public_url": "gateway.example.org"}, "GATEWAY_PUBLIC_URL"),
    ({"twilio_api_base": "ftp://x"}, "GATEWAY_TWILIO_API_BASE"),
    ({"database_url": "mysql://root@localhost/x"}, "GATEWAY_DATABASE_URL"),
    ({"twilio_account_sid": "AC1"}, "GATEWAY_TWILIO_AUTH_TOKEN"),
    ({"twilio_account_sid": "AC1", "twilio_auth_token": "t"}, "GATEWAY_PUBLIC_URL"),
    ({"telegram_bot_token": "1:x"}, "GATEWAY_TELEGRAM_SECRET_TOKEN"),
    ({"imap_host": "127.0.0.1"}, "GATEWAY_IMAP_USER"),
    ({"delivery_concurrency": 0}, "GATEWAY_DELIVERY_CONCURRENCY"),
])
def test_setting_errors_name_the_setting(overrides: dict, names: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    assert names in str(info.value)


def test_secrets_are_never_printed() -> None:
    settings = load_settings(twilio_account_sid="AC1", twilio_auth_token="super-secret-token",
                             public_url="https://g.example.org")
    assert "super-secret-token" not in repr(settings) and "super-secret-token" not in str(settings)


def test_defaults_are_embedded_mode(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve() / 'gateway.sqlite3'}"
    assert settings.redis_url is None and not settings.twilio_configured and settings.country == "MA"


def test_default_config_has_the_shared_taxonomy_and_places() -> None:
    config = load_config()
    shared = ROOT.parent / "shared" / "data" / "categories.tsv"
    if shared.exists():
        ids = [line.split("\t")[0] for line in shared.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
        assert sorted(config.categories) == sorted(ids)
    assert config.administration_for("water") == "water_utility"
    assert "oran" in config.places and "وهران" in config.places["oran"].names
    for lang in ("ar", "fr", "en"):
        assert "ack_new" in config.templates[lang]


def test_config_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[categories.potholes]\nadministration = 'nobody'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"categories.potholes.administration.*\[administrations.nobody\]"):
        load_config(bad)
    bad.write_text("this is = = not toml", encoding="utf-8")
    with pytest.raises(ConfigError, match="GATEWAY_CONFIG"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


def test_config_file_adds_branch_and_category(tmp_path: Path) -> None:
    extra = tmp_path / "gateway.toml"
    extra.write_text(
        "[administrations.water_utility.branches.oran]\nid = 'water_utility.oran'\nname = { fr = 'SEOR Oran' }\n"
        "[administrations.ports]\nname = { en = 'Ports authority' }\n"
        "[categories.ports]\nadministration = 'ports'\nname = { en = 'Ports' }\n", encoding="utf-8")
    config = load_config(extra)
    assert config.administration_for("water", "oran") == "water_utility.oran"
    assert config.administration_for("water", "rabat") == "water_utility"
    assert config.administration_name("water_utility.oran", "fr") == "SEOR Oran"
    assert config.administration_for("ports") == "ports"


def test_serve_refuses_bad_config_with_a_clear_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(GATEWAY_COUNTRY="ZZ", GATEWAY_DATA_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "gateway", "serve", "--port", "0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "GATEWAY_COUNTRY" in proc.stderr
