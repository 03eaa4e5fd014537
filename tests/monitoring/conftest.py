import pytest

from tests import factories

# The Chromium fixtures of the browser tests, for tests/monitoring/test_browser.py.
from tests.browser.conftest import browser, page  # noqa: F401


@pytest.fixture
def host(env):
    """web-1, a host of the `env` fixture's environment."""
    return factories.host(env, "web-1")
