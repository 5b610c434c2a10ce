"""Server logging: JSON lines and text, file rotation, levels, and redaction of keys and
values (on unless the configuration turns it off)."""

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from colibri_mm.server.config import LoggingSection, parse_config
from colibri_mm.server.logs import HANDLER_NAME, LOGGER_NAME, configure_logging, redact

LOG = logging.getLogger("colibri_mm.server.test")


def section(**keys: Any) -> LoggingSection:
    """A validated ``logging`` section with ``keys`` (paths given as strings)."""
    return parse_config(json.dumps({"logging": keys})).logging


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the ``colibri_mm`` logger back as it was, with redaction on."""
    logger = logging.getLogger(LOGGER_NAME)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    configure_logging(LoggingSection())  # the default turns redaction back on
    for handler in [h for h in logger.handlers if h.name == HANDLER_NAME]:
        logger.removeHandler(handler)
        handler.close()
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    configure_logging(section(file=str(path)))
    LOG.info("listening on %s:%d", "127.0.0.1", 7379, extra={"port": 7379, "tls": False})
    LOG.debug("not at level info")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        LOG.exception("request failed", extra={"command": "GET"})
    events = read_events(path)
    assert len(events) == 2
    first, second = events
    assert set(first) == {"ts", "level", "logger", "msg", "port", "tls"}
    assert first["msg"] == "listening on 127.0.0.1:7379"
    assert (first["level"], first["logger"], first["port"], first["tls"]) == \
        ("info", "colibri_mm.server.test", 7379, False)
    assert first["ts"].endswith("+00:00") and "T" in first["ts"]
    assert second["level"] == "error" and second["command"] == "GET"
    assert "RuntimeError: boom" in second["exc"]


def test_redacted_by_default(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    configure_logging(section(file=str(path)))
    secret_key, secret_value = b"user:42:ssn", "078-05-1120"
    LOG.info("set %s", redact(secret_key), extra={"value": redact(secret_value),
                                                  "raw": b"\x00secret bytes"})
    text = path.read_text()
    assert "ssn" not in text and "078" not in text and "secret" not in text
    event = read_events(path)[0]
    assert event["msg"] == "set <redacted 11 bytes>"
    assert event["value"] == "<redacted 11 bytes>"
    assert event["raw"] == "<redacted 13 bytes>"


def test_redaction_can_be_turned_off(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    configure_logging(section(file=str(path), redact=False))
    LOG.info("set %s", redact(b"user:\xff"), extra={"value": redact("v\u00e9")})
    event = read_events(path)[0]
    assert event["msg"] == "set user:\\xff" and event["value"] == "v\u00e9"


def test_redact_counts_bytes() -> None:
    assert redact("") == "<redacted 0 bytes>"
    assert redact("\u00e9") == "<redacted 2 bytes>"
    assert redact(memoryview(b"abc")) == "<redacted 3 bytes>"


def test_text_format(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    configure_logging(section(file=str(path), format="text", level="debug"))
    LOG.debug("client connected", extra={"client": "127.0.0.1:5000", "key": b"k"})
    (line,) = path.read_text().splitlines()
    assert line.endswith(" DEBUG colibri_mm.server.test: client connected "
                         "client=127.0.0.1:5000 key=<redacted 1 bytes>")


def test_level_filters(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    configure_logging(section(file=str(path), level="warning"))
    LOG.info("quiet")
    LOG.warning("loud")
    assert [e["msg"] for e in read_events(path)] == ["loud"]


def test_rotation(tmp_path: Path) -> None:
    path = tmp_path / "server.log"
    configure_logging(section(file=str(path), rotate_bytes=1000, rotate_keep=2))
    for i in range(100):
        LOG.info("event %d", i, extra={"padding": "x" * 50})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["server.log", "server.log.1", "server.log.2"]
    for name in names:
        assert (tmp_path / name).stat().st_size <= 1000
        read_events(tmp_path / name)  # whole JSON lines in every file
    assert read_events(path)[-1]["msg"] == "event 99"


def test_stderr_and_reconfiguring_replaces_the_handler(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(section())
    configure_logging(section())
    LOG.info("to stderr")
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert json.loads(line)["msg"] == "to stderr"
    logger = logging.getLogger(LOGGER_NAME)
    assert [h.name for h in logger.handlers].count(HANDLER_NAME) == 1
    assert logger.propagate is False
