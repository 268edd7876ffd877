from tests.support.processes import processes, redis_queue  # noqa: F401
