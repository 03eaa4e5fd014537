"""Fixtures of the self-healing tests against the real engine: the container level's (the watcher
process, images under this session's tags, a cleaned-up name prefix)."""
from tests.containers.conftest import watcher  # noqa: F401
from tests.schedulers.conftest import ct_images, engine, local_engine_spec, prefix  # noqa: F401
