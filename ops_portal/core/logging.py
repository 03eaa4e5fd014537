"""Log records with the current request id, as text or as JSON lines (python-json-logger)."""
import contextvars
import logging

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

request_id_var = contextvars.ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object per line: time, level, logger, message, request id and any extras."""

    def __init__(self, **kwargs):
        super().__init__(
            "{levelname}{name}{message}{request_id}", style="{", timestamp="time", json_ensure_ascii=False,
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception"}, **kwargs,
        )

    def add_fields(self, log_data, record, message_dict):
        super().add_fields(log_data, record, message_dict)
        if log_data.get("request_id") is None:  # a handler without RequestIdFilter
            log_data["request_id"] = request_id_var.get()
