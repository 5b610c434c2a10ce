"""The server's Arrow Flight port: :class:`FlightService`, tables read and written as
Arrow streams over gRPC (``pyarrow.flight``).

- ``list_flights``: one ``FlightInfo`` per table (descriptor path ``[name]``, schema,
  rows);
- ``get_flight_info``: for a descriptor path ``[name]`` (the whole table) or a
  command descriptor holding a ticket's JSON (columns, filter), the schema, the rows
  (-1 when filtered: not counted in advance) and one endpoint with its ticket;
- ``do_get``: the ticket is JSON ``{"table": name, "columns": [...] | null,
  "filter": "expr" | null}``; the filter is the language of ``coldb export
  --where`` (:mod:`colibri_mm.tables.where`, parsed, never evaluated); rows stream from
  a snapshot taken at the call, chunk by chunk;
- ``do_put``: imports the stream with ``db.import_arrow`` in one transaction. The
  descriptor is a path ``[name]`` (mode ``create``) or a command, JSON
  ``{"table": name, "mode": "create|append|upsert|replace", "primary_key": [...] |
  name | null}``; the reply's metadata is JSON of the import (table, rows, bytes,
  seconds);
- ``do_action``: ``checkpoint`` (runs one, returns its JSON report) and ``stats``
  (``db.stats()`` as JSON); ``list_actions`` lists them.

Refusals are Flight errors with a message naming what was wrong:
``FlightServerError`` whose ``extra_info`` is the kind (``TableNotFoundError``,
``FlightRequestError`` for a malformed ticket, descriptor or action,
``WhereSyntaxError``, ``SchemaError``, ``ConstraintError`` ...);
``FlightUnauthorizedError`` for writes to a read-only server or database;
``FlightUnauthenticatedError`` without a valid password; ``FlightInternalError``
for anything unexpected (logged with its traceback, which the client does not get).

With a password check, every call needs an ``authorization`` header: ``Basic``
(any user name, the server's password) or the ``Bearer`` token a handshake with
basic credentials returns (``client.authenticate_basic_token(user, password)``).
The protocol is in ``docs/FLIGHT.md``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.flight as flight

from ..errors import Error, ReadOnlyError
from ..tables import where
from ..tables.table import Table

if TYPE_CHECKING:
    from ..database import Database

log = logging.getLogger("colibri_mm.server")

RequestObserver = Callable[[str, float, str | None], None]
"""``observe(command, seconds, error_kind)``: see ``ServerMetrics.observe_request``."""
ACTIONS = {
    "checkpoint": "Write the changes since the last checkpoint into the data file; "
                  "returns the checkpoint's report as JSON.",
    "stats": "The database's counters and state (db.stats()) as JSON.",
}


class FlightRequestError(ValueError):
    """A ticket, descriptor or action the service cannot use (the message says why)."""


# -- what clients send -----------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """What a ticket asks for: rows of ``table``, only ``columns`` (None: all), where
    ``filter`` (an expression of :mod:`colibri_mm.tables.where`; None: every row)."""

    table: str
    columns: tuple[str, ...] | None = None
    filter: str | None = None

    @classmethod
    def from_json(cls, data: bytes) -> Query:
        """The query a ticket (or a command descriptor) holds.

        Raises
        ------
        FlightRequestError
            The bytes are not JSON of an object with a string ``table``, a list of
            strings or null ``columns`` and a string or null ``filter``.
        """
        fields = _json_object(data, "ticket", {"table", "columns", "filter"})
        table = fields.get("table")
        columns = fields.get("columns")
        filter_text = fields.get("filter")
        if not isinstance(table, str):
            raise FlightRequestError("ticket: \"table\" must be the name of a table")
        if columns is not None and not (isinstance(columns, list) and
                                        all(isinstance(c, str) for c in columns)):
            raise FlightRequestError("ticket: \"columns\" must be a list of column names "
                                     "or null")
        if filter_text is not None and not isinstance(filter_text, str):
            raise FlightRequestError("ticket: \"filter\" must be an expression (a string) "
                                     "or null")
        return cls(table, None if columns is None else tuple(columns), filter_text)

    def ticket(self) -> flight.Ticket:
        """The ticket of this query."""
        columns = None if self.columns is None else list(self.columns)
        return flight.Ticket(json.dumps({"table": self.table, "columns": columns,
                                         "filter": self.filter}).encode())

    def reader(self, table: Table) -> pa.RecordBatchReader:
        """The rows of ``table`` this query selects, streamed from a snapshot taken now."""
        filter_expression = None if self.filter is None else \
            where.parse(self.filter, table.schema)
        return table.to_arrow_reader(
            columns=None if self.columns is None else list(self.columns),
            filter=filter_expression)

    def schema(self, table: Table) -> pa.Schema:
        """The schema of the rows this query selects from ``table`` (the filter is
        checked against it too)."""
        schema = table.schema
        if self.filter is not None:
            where.parse(self.filter, schema)
        if self.columns is None:
            return schema
        missing = [c for c in self.columns if schema.get_field_index(c) < 0]
        if missing:
            raise FlightRequestError(f"table {self.table!r} has no column "
                                     f"{', '.join(map(repr, missing))}")
        return pa.schema([schema.field(c) for c in self.columns], metadata=schema.metadata)


@dataclass(frozen=True)
class PutCommand:
    """Where and how ``do_put`` imports: table, mode and primary key (the arguments
    of ``db.import_arrow``)."""

    table: str
    mode: str = "create"
    primary_key: str | tuple[str, ...] | None = None

    @classmethod
    def of(cls, descriptor: flight.FlightDescriptor) -> PutCommand:
        """The command a ``do_put`` descriptor gives: a path ``[table]`` creates the
        table; a command is JSON ``{"table", "mode", "primary_key"}``."""
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            return cls(_one_table(descriptor))
        fields = _json_object(descriptor.command, "do_put command",
                              {"table", "mode", "primary_key"})
        table = fields.get("table")
        mode = fields.get("mode", "create")
        key = fields.get("primary_key")
        if not isinstance(table, str):
            raise FlightRequestError("do_put command: \"table\" must be the name of a "
                                     "table")
        if not isinstance(mode, str):
            raise FlightRequestError("do_put command: \"mode\" must be one of create, "
                                     "append, upsert, replace")
        if isinstance(key, list) and all(isinstance(c, str) for c in key):
            return cls(table, mode, tuple(key))
        if key is not None and not isinstance(key, str):
            raise FlightRequestError("do_put command: \"primary_key\" must be a column "
                                     "name, a list of them, or null")
        return cls(table, mode, key)


def _json_object(data: bytes, what: str, keys: set[str]) -> dict[str, Any]:
    try:
        fields = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FlightRequestError(f"{what} is not JSON: {e}") from None
    if not isinstance(fields, dict):
        raise FlightRequestError(f"{what} must be a JSON object")
    unknown = sorted(set(fields) - keys)
    if unknown:
        raise FlightRequestError(f"{what}: unknown key {', '.join(map(repr, unknown))} "
                                 f"(known: {', '.join(sorted(keys))})")
    return fields


def _one_table(descriptor: flight.FlightDescriptor) -> str:
    path = descriptor.path or []
    if len(path) != 1:
        raise FlightRequestError(f"a descriptor path is one table name, got {len(path)} "
                                 "parts")
    try:
        return str(path[0].decode())
    except UnicodeDecodeError:
        raise FlightRequestError("the table name in the descriptor path is not UTF-8") \
            from None


# -- authentication ----------------------------------------------------------------------


class _Handshake(flight.ServerAuthHandler):  # type: ignore[misc]
    """Lets ``Handshake`` calls through; :class:`_PasswordMiddleware` checks them
    (``authenticate_basic_token`` sends its credentials as a header)."""

    def authenticate(self, outgoing: Any, incoming: Any) -> None:
        """Nothing to exchange: the credentials came as a header."""

    def is_valid(self, token: bytes) -> str:
        """Every call: the header was checked by the middleware."""
        return ""


class _PasswordMiddleware(flight.ServerMiddleware):  # type: ignore[misc]
    """Sends a bearer token back to a call that authenticated with a password."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def sending_headers(self) -> dict[str, str]:
        """The token header, for a call that brought basic credentials."""
        return {} if self.token is None else {"authorization": f"Bearer {self.token}"}


class _PasswordCheck(flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Refuses every call without a valid ``authorization`` header.

    Bearer tokens are a random nonce and its HMAC-SHA256 under a key made at start,
    so they need no table and die with the process.
    """

    def __init__(self, password_check: Callable[[str], bool]) -> None:
        self.password_check = password_check
        self._key = secrets.token_bytes(32)

    def start_call(self, info: Any, headers: dict[str, list[str]]) -> _PasswordMiddleware:
        """Check the call's credentials (raises ``FlightUnauthenticatedError``)."""
        values = headers.get("authorization", [])
        scheme, _, credentials = (values[0] if values else "").partition(" ")
        if scheme.lower() == "basic" and self._password_in(credentials):
            return _PasswordMiddleware(self._new_token())
        if scheme.lower() == "bearer" and self._valid_token(credentials):
            return _PasswordMiddleware(None)
        raise flight.FlightUnauthenticatedError(
            "a password is required: send basic credentials (any user name) or the "
            "bearer token authenticate_basic_token returns")

    def _password_in(self, credentials: str) -> bool:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self.password_check(decoded.partition(":")[2])

    def _signature(self, nonce: str) -> str:
        return hmac.new(self._key, nonce.encode(), hashlib.sha256).hexdigest()

    def _new_token(self) -> str:
        nonce = secrets.token_urlsafe(16)
        return f"{nonce}.{self._signature(nonce)}"

    def _valid_token(self, token: str) -> bool:
        nonce, _, signature = token.partition(".")
        return hmac.compare_digest(signature, self._signature(nonce))


# -- the service ---------------------------------------------------------------------------


class FlightService(flight.FlightServerBase):  # type: ignore[misc]
    """The Flight server of one database (see the module docstring).

    It listens from construction; :meth:`start` serves in a thread of its own and
    :meth:`shutdown` stops it, waiting for calls in progress.

    Parameters
    ----------
    database
        The database served.
    host, port
        Where to listen; port 0 picks a free port (see :attr:`port`).
    password_check
        Whether a password is the server's; None serves without authentication.
    readonly
        Refuse ``do_put`` (``FlightUnauthorizedError``).
    tls
        Paths of a PEM certificate (chain) and its private key: serve
        ``grpc+tls``. None serves plain ``grpc``.
    observe_request
        Called as ``observe_request(command, seconds, error_kind)`` after every
        call (command ``flight_do_get`` etc.; for ``do_get`` the time until the
        stream starts), e.g. ``ServerMetrics.observe_request``.
    """

    def __init__(self, database: Database, host: str, port: int, *,
                 password_check: Callable[[str], bool] | None = None,
                 readonly: bool = False, tls: tuple[str | Path, str | Path] | None = None,
                 observe_request: RequestObserver | None = None) -> None:
        if tls is None:
            location = flight.Location.for_grpc_tcp(host, port)
            certificates = []
        else:
            location = flight.Location.for_grpc_tls(host, port)
            certificates = [flight.CertKeyPair(Path(tls[0]).read_bytes(),
                                               Path(tls[1]).read_bytes())]
        auth: dict[str, Any] = {} if password_check is None else {
            "auth_handler": _Handshake(),
            "middleware": {"password": _PasswordCheck(password_check)}}
        super().__init__(location, tls_certificates=certificates, **auth)
        self.database = database
        self.readonly = readonly
        self.observe_request = observe_request
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a daemon thread (the port is open from construction)."""
        self._thread = threading.Thread(target=self.serve, name="colibri-flight",
                                        daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving: refuse new calls, wait for those in progress, close."""
        super().shutdown()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- reading ---------------------------------------------------------------------

    def list_flights(self, context: flight.ServerCallContext,
                     criteria: bytes) -> Iterator[flight.FlightInfo]:
        """One ``FlightInfo`` per table, in name order (``criteria`` is ignored)."""
        with self._answering("flight_list_flights"), self.database.snapshot() as snap:
            infos = [self._info(Query(name), snap.table(name), None)
                     for name in snap.tables()]
        yield from infos

    def get_flight_info(self, context: flight.ServerCallContext,
                        descriptor: flight.FlightDescriptor) -> flight.FlightInfo:
        """Schema, rows and the ticket of a table (path ``[name]``) or of a query
        (command: a ticket's JSON)."""
        with self._answering("flight_get_flight_info"):
            if descriptor.descriptor_type == flight.DescriptorType.PATH:
                query = Query(_one_table(descriptor))
            else:
                query = Query.from_json(descriptor.command)
            return self._info(query, self.database.table(query.table), descriptor)

    def _info(self, query: Query, table: Table,
              descriptor: flight.FlightDescriptor | None) -> flight.FlightInfo:
        """The ``FlightInfo`` of ``query`` over ``table`` (described by ``descriptor``;
        None: the table's path)."""
        schema = query.schema(table)
        rows = table.describe()["rows"] if query.filter is None else -1
        if descriptor is None:
            descriptor = flight.FlightDescriptor.for_path(query.table)
        # No locations: the ticket is redeemed at the service that issued it.
        endpoint = flight.FlightEndpoint(query.ticket(), [])
        return flight.FlightInfo(schema, descriptor, [endpoint], rows, -1)

    def do_get(self, context: flight.ServerCallContext,
               ticket: flight.Ticket) -> flight.RecordBatchStream:
        """Stream the rows a ticket's query selects."""
        with self._answering("flight_do_get"):
            query = Query.from_json(ticket.ticket)
            return flight.RecordBatchStream(query.reader(self.database.table(query.table)))

    # -- writing ---------------------------------------------------------------------

    def do_put(self, context: flight.ServerCallContext,
               descriptor: flight.FlightDescriptor,
               reader: flight.MetadataRecordBatchReader,
               writer: flight.FlightMetadataWriter) -> None:
        """Import the stream into a table (see :class:`PutCommand`); the reply's
        metadata is the import's JSON report."""
        with self._answering("flight_do_put"):
            if self.readonly:
                raise flight.FlightUnauthorizedError("the server is read-only: do_put is "
                                                     "refused")
            command = PutCommand.of(descriptor)
            primary_key = list(command.primary_key) \
                if isinstance(command.primary_key, tuple) else command.primary_key
            result = self.database.import_arrow(command.table, reader.to_reader(),
                                                mode=command.mode, primary_key=primary_key)
            writer.write(pa.py_buffer(json.dumps(asdict(result)).encode()))

    def list_actions(self, context: flight.ServerCallContext) -> list[tuple[str, str]]:
        """``checkpoint`` and ``stats``."""
        return list(ACTIONS.items())

    def do_action(self, context: flight.ServerCallContext,
                  action: flight.Action) -> Iterator[bytes]:
        """Run ``checkpoint`` or ``stats``; one result, JSON."""
        with self._answering(f"flight_action_{action.type}"
                             if action.type in ACTIONS else "flight_action_unknown"):
            if action.type == "checkpoint":
                report = self.database.checkpoint()
            elif action.type == "stats":
                report = self.database.stats()
            else:
                raise FlightRequestError(f"unknown action {action.type!r} (actions: "
                                         f"{', '.join(ACTIONS)})")
        yield json.dumps(report, default=str).encode()

    # -- errors ----------------------------------------------------------------------

    @contextmanager
    def _answering(self, command: str) -> Iterator[None]:
        """Turn the engine's refusals into Flight errors, and observe the call."""
        started = time.perf_counter()
        error: str | None = None
        try:
            yield
        except flight.FlightError as e:
            error = type(e).__name__
            raise
        except ReadOnlyError as e:
            error = type(e).__name__
            raise flight.FlightUnauthorizedError(str(e)) from None
        except (Error, ValueError, KeyError) as e:
            error = type(e).__name__
            raise flight.FlightServerError(str(e), extra_info=error.encode()) from None
        except Exception as e:
            error = type(e).__name__
            log.exception("flight %s failed", command)
            raise flight.FlightInternalError(f"internal error: {error}: {e}") from None
        finally:
            if self.observe_request is not None:
                self.observe_request(command, time.perf_counter() - started, error)
