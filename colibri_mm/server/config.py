"""The configuration of ``coldb-server``: its keys, their validation, and loading it.

:class:`ServerConfig` is a pydantic model with one section model per group of keys
(``server``, ``limits``, ``storage``, ``logging``, ``security``) besides ``data_dir``.
Unknown keys, wrong JSON types (no coercion: ``"7379"`` is not a port, ``true`` is
not a number) and impossible values are refused; every key's description says what
it does and where it takes effect, and is the comment ``coldb generate-config``
writes above it and the text of ``docs/CONFIG.md``.

The file is JSON whose full-line ``//`` comments are ignored (lines whose first
non-blank characters are ``//``; comments after a value are not supported).
:func:`load_config` reports every problem at once, each naming its dotted key, in a
:class:`ConfigFileError`. Relative paths are relative to the server's working
directory, as redis-server's are.
"""

from __future__ import annotations

import difflib
import json
import os
import ssl
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from ..errors import ConfigError
from ..options import MAX_PAGE_SIZE, MIN_PAGE_SIZE, Options
from ..wal.writer import DURABILITY_MODES
from .passwords import parse_hash

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("json", "text")
COMMENT_PREFIX = "//"
"""A line whose first non-blank characters are this is a comment."""

_Number = TypeVar("_Number", int, float)


class ConfigFileError(ConfigError):
    """A configuration cannot be used: ``problems`` lists every reason, each starting
    with the dotted key it is about (or the line and column of a JSON syntax error);
    ``source`` names the file (or ``command-line options``). The message is one line
    ``<source>: <problem>`` per problem."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        super().__init__("\n".join(f"{source}: {problem}" for problem in problems))
        self.source = source
        self.problems = list(problems)


class CrossKeyError(ValueError):
    """Raised by a section's cross-key check: ``(key, message)`` pairs, each key
    relative to the section, so each problem is reported under its own dotted key."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))
        self.problems = list(problems)


def _in_range(low: float, high: float | None = None) -> AfterValidator:
    """A validator refusing numbers below ``low`` or (if given) above ``high``."""

    def check(value: _Number) -> _Number:
        if high is not None and not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        if value < low:
            raise ValueError(f"must be at least {low}, got {value}")
        return value

    return AfterValidator(check)


def _one_of(choices: Sequence[str]) -> AfterValidator:
    """A validator refusing strings other than ``choices``."""

    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {json.dumps(value)}")
        return value

    return AfterValidator(check)


def _not_empty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _existing_file(path: Path | None) -> Path | None:
    if path is not None and not path.is_file():
        raise ValueError(f"no such file: {json.dumps(str(path))}")
    return path


def _file_in_existing_directory(path: Path | None) -> Path | None:
    if path is None:
        return None
    if path.is_dir():
        raise ValueError(f"{json.dumps(str(path))} is a directory, not a file")
    directory = path.parent
    if not directory.is_dir():
        raise ValueError(f"directory {json.dumps(str(directory))} does not exist")
    return path


def _power_of_two_page_size(size: int) -> int:
    if not MIN_PAGE_SIZE <= size <= MAX_PAGE_SIZE or size & (size - 1):
        raise ValueError(f"must be a power of two from {MIN_PAGE_SIZE} to {MAX_PAGE_SIZE}, "
                         f"got {size}")
    return size


def _valid_password_hash(encoded: str | None) -> str | None:
    if encoded is not None:
        parse_hash(encoded)  # ConfigError is a ValueError: pydantic reports its message
    return encoded


def _server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or later) presenting ``cert`` with private ``key``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=cert, keyfile=key)
    return context


Port = Annotated[int, _in_range(1, 65535)]
FilePath = Annotated[Path | None, Strict(False), AfterValidator(_existing_file)]
"""A path (a JSON string) to an existing file, or null."""


class _Section(BaseModel):
    """Shared rules of every section: unknown keys refused, JSON types exact, no NaN."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class ServerSection(_Section):
    """``server``: listeners and per-connection limits (read by the server's listeners)."""

    host: Annotated[str, AfterValidator(_not_empty)] = Field(
        default="127.0.0.1",
        description="Address every listener (RESP, HTTP, Flight) binds. 0.0.0.0 listens "
                    "on every interface; set security.password_hash before doing so.")
    resp_port: Port = Field(
        default=7379,
        description="TCP port of the Redis-protocol (RESP) listener.")
    http_port: Port = Field(
        default=7380,
        description="TCP port of the HTTP listener (/healthz, /readyz, /metrics, "
                    "/stats).")
    flight_port: Annotated[int, _in_range(0, 65535)] = Field(
        default=7381,
        description="TCP port of the Arrow Flight listener; 0 turns Flight off.")
    max_connections: Annotated[int, _in_range(1, 1_000_000)] = Field(
        default=1024,
        description="Most RESP clients connected at once; one more gets an error "
                    "reply and is disconnected.")
    max_request_bytes: Annotated[int, _in_range(1024, 1 << 30)] = Field(
        default=64 << 20,
        description="Largest RESP request (one command with its arguments) in "
                    "bytes; a client sending a bigger one gets an error and is "
                    "disconnected before it is buffered. At least "
                    "limits.max_key_bytes + limits.max_value_bytes.")
    idle_timeout_seconds: Annotated[float, _in_range(0, 7 * 86400)] = Field(
        default=0.0,
        description="Seconds a RESP client may stay silent (or stall mid-request) "
                    "before it is disconnected; 0 never disconnects idle clients.")
    shutdown_timeout_seconds: Annotated[float, _in_range(0.1, 3600)] = Field(
        default=30.0,
        description="On SIGTERM, SIGINT or `coldb shutdown`: seconds to finish "
                    "in-flight requests and checkpoint before exiting.")
    flushdb_enabled: bool = Field(
        default=False,
        description="Whether FLUSHDB (delete every key) is served; refused "
                    "with an error when false.")
    keys_limit: Annotated[int, _in_range(1, 100_000_000)] = Field(
        default=100_000,
        description="Most keys one KEYS command returns; a pattern matching more "
                    "gets an error telling to use SCAN.")
    readonly: bool = Field(
        default=False,
        description="Open the database read-only: write commands are refused "
                    "(and the engine takes no write lock).")

    @model_validator(mode="after")
    def _distinct_ports(self) -> ServerSection:
        listeners = [("resp_port", self.resp_port), ("http_port", self.http_port)]
        if self.flight_port:
            listeners.append(("flight_port", self.flight_port))
        problems = [(name, f"must differ from server.{earlier} (both {port})")
                    for i, (name, port) in enumerate(listeners)
                    for earlier, other in listeners[:i] if port == other]
        if problems:
            raise CrossKeyError(problems)
        return self


class LimitsSection(_Section):
    """``limits``: sizes of keys and values (enforced by the engine and the RESP server)."""

    max_key_bytes: Annotated[int, _in_range(1, 1 << 20)] = Field(
        default=1024,
        description="Largest key in bytes; bigger keys are refused with an error "
                    "(engine option max_key_size).")
    max_value_bytes: Annotated[int, _in_range(1, 512 << 20)] = Field(
        default=16 << 20,
        description="Largest value in bytes; bigger values are refused with an "
                    "error (engine option max_value_size).")


class StorageSection(_Section):
    """``storage``: how the database is written (engine options, see
    :class:`colibri_mm.options.Options`)."""

    page_size: Annotated[int, AfterValidator(_power_of_two_page_size)] = Field(
        default=65536,
        description="Page size in bytes of a database created by the server: a "
                    "power of two from 4096 to 1048576. An existing database keeps "
                    "the page size it was created with.")
    durability: Annotated[str, _one_of(DURABILITY_MODES)] = Field(
        default="full",
        description="When a commit is acknowledged: full (after the WAL is "
                    "fsynced), normal (after it is written; fsynced every "
                    "wal_sync_interval_ms) or off (never fsynced).")
    wal_sync_interval_ms: Annotated[float, _in_range(0.1, 60_000)] = Field(
        default=10.0,
        description="Milliseconds between WAL fsyncs in durability normal.")
    checkpoint_wal_bytes: Annotated[int, _in_range(1)] = Field(
        default=256 << 20,
        description="Bytes of WAL written since the last checkpoint that "
                    "trigger one.")
    max_dirty_bytes: Annotated[int, _in_range(1)] = Field(
        default=256 << 20,
        description="Bytes of keys and values changed since the last "
                    "checkpoint that trigger one: bounds the memory held by "
                    "changes not yet in the data file.")
    free_space_warning_bytes: Annotated[int, _in_range(0)] = Field(
        default=1 << 30,
        description="coldb health says warn when the file system holding the "
                    "database has less free space than this (0: never). Commits "
                    "fail with DiskFullError when it is full.")


class LoggingSection(_Section):
    """``logging``: where and how the server logs (applied by
    :func:`colibri_mm.server.logs.configure_logging`)."""

    level: Annotated[str, _one_of(LOG_LEVELS)] = Field(
        default="info",
        description="Least severe level logged: debug, info, warning, error or "
                    "critical.")
    file: Annotated[Path | None, Strict(False),
                    AfterValidator(_file_in_existing_directory)] = Field(
        default=None,
        description="Log file (its directory must exist); null logs to standard "
                    "error.")
    format: Annotated[str, _one_of(LOG_FORMATS)] = Field(
        default="json",
        description="json: one JSON object per line (ts, level, logger, msg and "
                    "the event's fields); text: one human-readable line per "
                    "event.")
    rotate_bytes: Annotated[int, _in_range(0)] = Field(
        default=64 << 20,
        description="Size in bytes at which the log file is rotated (renamed "
                    "to file.1, file.2, ...); 0 never rotates. Ignored when "
                    "logging to standard error.")
    rotate_keep: Annotated[int, _in_range(1, 1000)] = Field(
        default=5,
        description="Rotated log files kept; the oldest is deleted.")
    redact: bool = Field(
        default=True,
        description="Write <redacted N bytes> in place of keys and values in logs. "
                    "Turn off only to debug: logs then contain your data.")


class SecuritySection(_Section):
    """``security``: AUTH and TLS (read by the RESP and HTTP listeners)."""

    password_hash: Annotated[str | None, AfterValidator(_valid_password_hash)] = Field(
        default=None,
        description="PBKDF2 hash of the password clients must give to AUTH before "
                    "any other command (make one with `coldb hash-password`); null "
                    "serves clients without AUTH.")
    auth_failure_delay_ms: Annotated[float, _in_range(0, 60_000)] = Field(
        default=100.0,
        description="Milliseconds a client waits after a failed AUTH before its "
                    "reply, throttling password guessing.")
    tls_cert: FilePath = Field(
        default=None,
        description="PEM certificate chain file; with tls_key, the RESP, HTTP and Flight "
                    "listeners speak TLS (Flight as grpc+tls). Both or neither.")
    tls_key: FilePath = Field(
        default=None,
        description="PEM private key file of tls_cert. Both or neither.")

    @model_validator(mode="after")
    def _tls_both_or_neither(self) -> SecuritySection:
        if self.tls_cert is None and self.tls_key is None:
            return self
        if self.tls_cert is None or self.tls_key is None:
            missing = "tls_cert" if self.tls_cert is None else "tls_key"
            given = "tls_key" if self.tls_cert is None else "tls_cert"
            raise CrossKeyError([(missing, f"must be set when security.{given} is "
                                         f"(both or neither)")])
        try:
            _server_ssl_context(self.tls_cert, self.tls_key)
        except ssl.SSLError as e:
            raise CrossKeyError([("tls_cert", f"cannot load the certificate with "
                                            f"security.tls_key: {e.reason or e}")]) from None
        return self


class ServerConfig(_Section):
    """The whole configuration of ``coldb-server`` (see the module docstring).

    Every field has a default, so ``ServerConfig()`` is the default configuration and
    a file needs only the keys it changes.
    """

    data_dir: Annotated[Path, Strict(False)] = Field(
        default=Path("colibri-data"),
        description="Database directory; created (with storage.page_size) if it does "
                    "not hold a database yet.")
    server: ServerSection = Field(default_factory=ServerSection,
                                  description="Listeners and per-connection limits.")
    limits: LimitsSection = Field(default_factory=LimitsSection,
                                  description="Sizes of keys and values.")
    storage: StorageSection = Field(default_factory=StorageSection,
                                    description="How the database is written.")
    logging: LoggingSection = Field(default_factory=LoggingSection,
                                    description="Where and how the server logs.")
    security: SecuritySection = Field(default_factory=SecuritySection,
                                      description="Password (AUTH) and TLS.")

    @model_validator(mode="after")
    def _request_fits_largest_value(self) -> ServerConfig:
        largest = self.limits.max_key_bytes + self.limits.max_value_bytes
        if self.server.max_request_bytes < largest:
            raise CrossKeyError([("server.max_request_bytes",
                                f"must be at least limits.max_key_bytes + "
                                f"limits.max_value_bytes ({largest}), or the largest "
                                f"value cannot be sent; got {self.server.max_request_bytes}")])
        return self

    def engine_options(self, readonly: bool | None = None) -> Options:
        """The engine options of the served database.

        Parameters
        ----------
        readonly : bool, optional
            Open read-only; default ``server.readonly``.
        """
        return Options(
            durability=self.storage.durability,
            page_size=self.storage.page_size,
            wal_sync_interval_ms=self.storage.wal_sync_interval_ms,
            checkpoint_wal_bytes=self.storage.checkpoint_wal_bytes,
            max_dirty_bytes=self.storage.max_dirty_bytes,
            max_key_size=self.limits.max_key_bytes,
            max_value_size=self.limits.max_value_bytes,
            readonly=self.server.readonly if readonly is None else readonly,
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the listeners, or None when TLS is not configured.

        Raises
        ------
        ConfigError
            The files cannot be loaded (changed since the configuration was validated).
        """
        cert, key = self.security.tls_cert, self.security.tls_key
        if cert is None or key is None:
            return None
        try:
            return _server_ssl_context(cert, key)
        except (ssl.SSLError, OSError) as e:
            raise ConfigError(f"security.tls_cert: cannot load the certificate {str(cert)!r} "
                              f"with key {str(key)!r}: {e}") from None


def load_config(path: str | os.PathLike[str]) -> ServerConfig:
    """Read and validate the configuration file ``path``.

    Raises
    ------
    ConfigFileError
        (a :class:`~colibri_mm.errors.ConfigError`) naming the file and listing every
        problem: missing or unreadable file, JSON syntax (line and column), unknown
        keys, wrong types, impossible values.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(source, ["no such file"]) from None
    except UnicodeDecodeError as e:
        raise ConfigFileError(source, [f"not UTF-8 text (byte {e.start})"]) from None
    except OSError as e:
        raise ConfigFileError(source, [f"cannot read: {e.strerror or e}"]) from None
    return parse_config(text, source)


def parse_config(text: str, source: str = "<config>") -> ServerConfig:
    """Validate the configuration in ``text`` (JSON with full-line ``//`` comments).

    ``source`` names it in the problems; raises :class:`ConfigFileError` like
    :func:`load_config`.
    """
    try:
        data = json.loads(_without_comments(text), object_pairs_hook=_JsonObject)
    except json.JSONDecodeError as e:
        raise ConfigFileError(source, [f"line {e.lineno}, column {e.colno}: invalid JSON: "
                                       f"{e.msg}"]) from None
    return _validated(data, source, _duplicate_key_problems(data, ()))


def apply_overrides(config: ServerConfig, *, data_dir: str | os.PathLike[str] | None = None,
                    host: str | None = None, resp_port: int | None = None,
                    http_port: int | None = None, flight_port: int | None = None,
                    durability: str | None = None, readonly: bool | None = None,
                    log_file: str | os.PathLike[str] | None = None) -> ServerConfig:
    """``config`` with the command-line flags that were given (not None) in place of
    its keys, redis-server style, validated again.

    The flags set ``data_dir``, ``server.host``, ``server.resp_port``,
    ``server.http_port``, ``server.flight_port`` (0 turns Flight off),
    ``storage.durability``, ``server.readonly`` and ``logging.file``.

    Raises
    ------
    ConfigFileError
        The result is invalid (source ``command-line options``).
    """
    data = config.model_dump()
    flags: dict[tuple[str, ...], Any] = {
        ("data_dir",): data_dir, ("server", "host"): host, ("server", "resp_port"): resp_port,
        ("server", "http_port"): http_port, ("server", "flight_port"): flight_port,
        ("storage", "durability"): durability, ("server", "readonly"): readonly,
        ("logging", "file"): log_file,
    }
    for (*sections, key), value in flags.items():
        if value is not None:
            section = data
            for name in sections:
                section = section[name]
            section[key] = value
    return _validated(data, "command-line options", [])


def commented_default_config() -> str:
    """The default configuration as JSON, each key preceded by ``//`` lines saying what
    it does (what ``coldb generate-config`` prints; :func:`load_config` reads it)."""
    lines = [
        f"{COMMENT_PREFIX} colibri-mm server configuration: coldb-server --config FILE",
        f"{COMMENT_PREFIX} Every key is optional (missing keys take the defaults shown);",
        f"{COMMENT_PREFIX} unknown keys are refused. Check a file with",
        f"{COMMENT_PREFIX} `coldb validate-config --file FILE`. Lines starting with "
        f"{COMMENT_PREFIX} are comments.",
        "{",
    ]
    _append_section(lines, ServerConfig(), depth=1)
    lines.append("}")
    return "\n".join(lines) + "\n"


def config_keys() -> list[tuple[str, str, Any, str]]:
    """Every leaf key as ``(dotted key, JSON type, JSON default, description)``, in
    file order (the table of ``docs/CONFIG.md``)."""
    keys: list[tuple[str, str, Any, str]] = []

    def visit(model: type[BaseModel], defaults: dict[str, Any], prefix: str) -> None:
        for name, field in model.model_fields.items():
            section = _section_model(field.annotation)
            if section is not None:
                visit(section, defaults[name], f"{prefix}{name}.")
            else:
                keys.append((prefix + name, _json_type(field.annotation), defaults[name],
                             field.description or ""))

    visit(ServerConfig, ServerConfig().model_dump(mode="json"), "")
    return keys


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a field that is a section, else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


# -- reading ---------------------------------------------------------------------------


class _JsonObject(dict[str, Any]):
    """A parsed JSON object that remembers the keys it held more than once."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        names = [name for name, _ in pairs]
        self.duplicate_keys = sorted({name for name in names if names.count(name) > 1})


def _without_comments(text: str) -> str:
    """``text`` with comment lines emptied (so JSON errors keep their line numbers)."""
    return "\n".join("" if line.lstrip().startswith(COMMENT_PREFIX) else line
                     for line in text.split("\n"))


def _duplicate_key_problems(value: Any, path: tuple[str, ...]) -> list[str]:
    if not isinstance(value, _JsonObject):
        return []
    problems = [f"{_dotted((*path, name))}: given more than once (only the last would count)"
                for name in value.duplicate_keys]
    for name, item in value.items():
        problems += _duplicate_key_problems(item, (*path, name))
    return problems


def _validated(data: Any, source: str, problems: list[str]) -> ServerConfig:
    """``data`` as a :class:`ServerConfig`, or :class:`ConfigFileError` listing
    ``problems`` and every validation error."""
    try:
        config = ServerConfig.model_validate(data)
    except ValidationError as e:
        problems = problems + [line for error in e.errors() for line in _described(error)]
    if problems:
        raise ConfigFileError(source, problems)
    return config


def _described(error: ErrorDetails) -> list[str]:
    """One pydantic error as ``<dotted key>: <what is wrong>`` lines."""
    location = tuple(str(part) for part in error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, CrossKeyError):
        return [f"{_dotted((*location, key))}: {message}" for key, message in cause.problems]
    if isinstance(cause, ValueError):
        return [f"{_dotted(location)}: {cause}"]
    kind, given = error["type"], _shown(error["input"])
    if kind == "extra_forbidden":
        return [f"{_dotted(location)}: unknown key{_suggestion(location)}"]
    if kind in _TYPE_NAMES:
        return [f"{_dotted(location)}: must be {_TYPE_NAMES[kind]}, got {given}"]
    return [f"{_dotted(location)}: {error['msg']}, got {given}"]


_TYPE_NAMES = {
    "int_type": "an integer", "float_type": "a number", "bool_type": "true or false",
    "string_type": "a string", "path_type": "a string (a path)",
    "model_type": "an object", "dict_type": "an object",
    "finite_number": "a finite number",
}
"""What a value must be, by pydantic error type."""


def _dotted(location: tuple[str, ...]) -> str:
    return ".".join(location) or "(top level)"


def _shown(value: Any) -> str:
    """``value`` as JSON, shortened."""
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggestion(location: tuple[str, ...]) -> str:
    """`` (did you mean "x"?)`` for an unknown key close to a known one, else ``""``."""
    model: type[BaseModel] | None = ServerConfig
    for name in location[:-1]:
        model = _section_model(model.model_fields[name].annotation) if model else None
    if model is None:
        return ""
    close = difflib.get_close_matches(location[-1], list(model.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- writing ---------------------------------------------------------------------------


def _append_section(lines: list[str], section: BaseModel, depth: int) -> None:
    """Append the keys of ``section`` (commented, indented ``depth`` levels) to ``lines``."""
    indent = "  " * depth
    fields = type(section).model_fields
    for i, (name, field) in enumerate(fields.items()):
        comma = "," if i < len(fields) - 1 else ""
        lines += textwrap.wrap(field.description or "", width=88,
                               initial_indent=f"{indent}{COMMENT_PREFIX} ",
                               subsequent_indent=f"{indent}{COMMENT_PREFIX} ")
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            lines.append(f"{indent}{json.dumps(name)}: {{")
            _append_section(lines, value, depth + 1)
            lines.append(f"{indent}}}{comma}")
        else:
            shown = json.dumps(section.model_dump(mode="json", include={name})[name])
            lines.append(f"{indent}{json.dumps(name)}: {shown}{comma}")


_JSON_TYPE_NAMES: dict[Any, str] = {int: "integer", float: "number", bool: "boolean",
                                    str: "string", Path: "string (path)"}


def _json_type(annotation: Any) -> str:
    """The JSON type of a field annotation (``... or null`` for optional fields)."""
    if annotation in _JSON_TYPE_NAMES:
        return _JSON_TYPE_NAMES[annotation]
    arguments = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    if len(arguments) == 1 and arguments[0] in _JSON_TYPE_NAMES:
        return f"{_JSON_TYPE_NAMES[arguments[0]]} or null"
    raise TypeError(f"no JSON type for {annotation!r}")

