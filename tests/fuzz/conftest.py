from tests.channels.telegram.conftest import fake_telegram, make_tg  # noqa: F401
