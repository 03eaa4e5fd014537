# The Chromium fixtures of the browser tests, for tests/dashboard/test_browser.py.
from tests.browser.conftest import browser, page  # noqa: F401
