"""Logging of ``coldb-server``: the handler and format of the ``colibri_mm`` logger (and
so of every server module's ``logging.getLogger(__name__)``), and redaction of keys and
values.

:func:`configure_logging` applies the ``logging`` section of the configuration: level,
destination (standard error, or a file rotated by size), and format, either JSON lines
(one object per event: ``ts``, ``level``, ``logger``, ``msg``, the event's ``extra``
fields, and ``exc`` with the traceback if any) or text. Code that logs a key or a value
passes it through :func:`redact`, which hides it unless ``logging.redact`` is false;
as a second guard, bytes given as ``extra`` fields are redacted too.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from typing import Any

from .config import LoggingSection

LOGGER_NAME = "colibri_mm"
"""The logger configured here: the parent of every engine and server module's logger."""
HANDLER_NAME = "colibri_mm.server.logs"
"""Name of the handler :func:`configure_logging` installs (and replaces when called again)."""
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}
"""Attributes every log record has; the others came from ``extra=``."""

_redaction_enabled = True
"""Whether :func:`redact` hides its argument (``logging.redact``; on until configured)."""


def configure_logging(section: LoggingSection) -> None:
    """Send the ``colibri_mm`` logger's events where and how ``section`` says.

    Replaces the handler installed by an earlier call (closing it), sets the level,
    stops propagation to the root logger (so events are written once), and sets
    whether :func:`redact` hides data.

    Parameters
    ----------
    section : LoggingSection
        The ``logging`` section of a :class:`~colibri_mm.server.config.ServerConfig`.
    """
    global _redaction_enabled
    _redaction_enabled = section.redact
    handler: logging.Handler
    if section.file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.handlers.RotatingFileHandler(
            section.file, maxBytes=section.rotate_bytes, backupCount=section.rotate_keep,
            encoding="utf-8")
    handler.name = HANDLER_NAME
    handler.setFormatter(JsonLinesFormatter() if section.format == "json" else TextFormatter())
    logger = logging.getLogger(LOGGER_NAME)
    for previous in [h for h in logger.handlers if h.name == HANDLER_NAME]:
        logger.removeHandler(previous)
        previous.close()
    logger.addHandler(handler)
    logger.setLevel(section.level.upper())
    logger.propagate = False


def redact(value: bytes | bytearray | memoryview | str) -> str:
    """``value`` (a key or a value) as log text: ``<redacted N bytes>`` unless redaction
    is turned off (``logging.redact: false``), then the text itself, bytes decoded as
    UTF-8 with other bytes escaped (``\\xff``)."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if _redaction_enabled:
        return f"<redacted {len(data)} bytes>"
    return data.decode("utf-8", errors="backslashreplace")


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of ``record``."""
    return {name: value for name, value in vars(record).items() if name not in _RECORD_FIELDS}


class JsonLinesFormatter(logging.Formatter):
    """Formats an event as one JSON object: ``ts`` (UTC, ISO 8601, milliseconds),
    ``level`` (lower case), ``logger``, ``msg``, the ``extra`` fields, and ``exc`` (the
    traceback) when there is one. Values JSON cannot hold are written with ``str``,
    bytes through :func:`redact`."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line of ``record`` (without the newline)."""
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        event.update(event_fields(record))
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, default=_json_text, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Formats an event as ``<ts> <LEVEL> <logger>: <msg> key=value ...`` (bytes
    values through :func:`redact`), then the traceback if any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The text of ``record``."""
        text = super().format(record)
        fields = "".join(f" {name}={_json_text(value) if _is_bytes(value) else value}"
                         for name, value in event_fields(record).items())
        first_line, newline, rest = text.partition("\n")
        return first_line + fields + newline + rest


def _is_bytes(value: Any) -> bool:
    return isinstance(value, bytes | bytearray | memoryview)


def _json_text(value: Any) -> str:
    """A value JSON cannot hold, as text: bytes through :func:`redact`, others ``str``."""
    return redact(value) if _is_bytes(value) else str(value)
