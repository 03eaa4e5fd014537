"""The registry of notification events. Every event a channel can subscribe to is registered once,
by the app that sends it, in its notification_events module (loaded by core.declarations):

    register("job.succeeded", "A job succeeded", also=("job.finished",))

`also` names broader events whose subscribers receive this one too: a channel subscribed to
"job.finished" gets job.succeeded and job.failed deliveries as well as plain job.finished ones.
"""
import re
from dataclasses import dataclass

NAME = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*\Z")


@dataclass(frozen=True)
class NotificationEvent:
    name: str
    description: str
    also: tuple[str, ...] = ()


EVENTS: dict[str, NotificationEvent] = {}


class UnknownEvent(LookupError):
    pass


def register(name: str, description: str, *, also=()) -> str:
    """Declare an event; registering the same event again with the same definition is harmless."""
    if not NAME.match(name) or len(name) > 64:
        raise ValueError(f"notification event name {name!r} must be dotted lower-case words (at most 64)")
    for broader in also:
        if broader not in EVENTS:
            raise ValueError(f"register {broader!r} before {name!r}, which it covers")
    event = NotificationEvent(name, description, tuple(also))
    existing = EVENTS.get(name)
    if existing is not None and existing != event:
        raise ValueError(f"notification event {name!r} is registered twice with different definitions")
    EVENTS[name] = event
    return name


def get(name: str) -> NotificationEvent:
    try:
        return EVENTS[name]
    except KeyError:
        raise UnknownEvent(f"unknown notification event {name!r}") from None


def is_registered(name) -> bool:
    return isinstance(name, str) and name in EVENTS


def all_events() -> dict[str, str]:
    """Event name -> description, sorted by name."""
    return {name: EVENTS[name].description for name in sorted(EVENTS)}


def subscriptions_for(name: str) -> frozenset[str]:
    """The subscriptions that receive `name`: the event itself and the broader events it is part of."""
    event = get(name)
    return frozenset({event.name, *event.also})

