"""Notification events of the notifications app itself (loaded at start-up by core.declarations)."""
from .registry import register

register("test", "A test message sent from the channel's test action")
