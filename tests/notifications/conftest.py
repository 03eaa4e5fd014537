import pytest

from tests.notifications.helpers import Receiver


@pytest.fixture
def receiver():
    """make a receiver: receiver(statuses=(500, 200)) -> a live HTTP server on 127.0.0.1."""
    made = []

    def make(statuses=(), **kwargs):
        server = Receiver(statuses, **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture
def fast_backoff(settings):
    settings.NOTIFICATION_BACKOFF_SECONDS = 0.2
    settings.NOTIFICATION_BACKOFF_MAX_SECONDS = 5
    return settings
