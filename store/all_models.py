"""Imports every module that defines tables, so metadata and migrations see them all."""
from store import models  # noqa: F401
from store import models_ivr  # noqa: F401
from store import models_telegram  # noqa: F401,E402
from store import models_email  # noqa: F401
from store import models_api  # noqa: F401
