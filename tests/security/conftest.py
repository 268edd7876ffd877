from tests.channels.telegram.conftest import fake_telegram, make_tg  # noqa: F401
from tests.faults.conftest import provider  # noqa: F401
from tests.support.processes import processes  # noqa: F401
from tests.api.conftest import api_env, api_factory  # noqa: F401
