"""One client connection of the RESP server: :class:`RespConnection`.

An ``asyncio.Protocol``: bytes received are split into requests by
:class:`~colibri_mm.server.resp_protocol.RequestReader`; requests are carried out in
order and their replies written in order, all the replies of one pass in one write.

- Reads run at once on a snapshot no older than the pass over the requests (shared
  by the connections while no commit is published:
  :meth:`~colibri_mm.server.resp_server.RespServer.begin_reads`), so they see every
  write acknowledged before them, the connection's own included.
- A write starts a *run*: it and the data commands queued after it go to the group
  committer as one unit (:mod:`colibri_mm.server.resp_group_commit`); the connection
  waits for the unit's replies (sent once durable) before its next request.
- Commands whose work grows with the database (KEYS, DBSIZE, INFO), password checks
  and read-only EXECs run in a worker thread; a failed AUTH waits
  ``auth_failure_delay_ms`` before its reply.
- The other commands (AUTH, HELLO, CLIENT, CONFIG, MULTI, EXEC, WATCH, ...) act on
  the :class:`~colibri_mm.server.resp_session.Session` here.

Reading pauses while many parsed requests wait, or while the client does not read
its replies (the transport's write buffer is full), so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, cast

from ..backup import backup_to
from ..errors import Error
from .resp_commands import (
    COMMANDS,
    CommandSpec,
    run_on_snapshot,
    unknown_command,
    wrong_arity,
)
from .resp_info import REDIS_VERSION, config_get, info_text
from .resp_protocol import (
    NULL_ARRAY,
    OK,
    QUEUED,
    ErrorReply,
    Reply,
    RequestReader,
    encode_reply,
)
from .resp_session import QueuedCommand, Session
from .resp_store import SnapshotKeys
from .resp_strings import SYNTAX_ERROR, count_keys, parse_int64

if TYPE_CHECKING:
    from .resp_server import RespServer

log = logging.getLogger(__name__)

MAX_QUEUED_REQUESTS = 1024
"""Parsed requests a connection may have waiting before it stops reading."""
FLUSH_BYTES = 256 << 10
"""Replies of one run of requests are written once they reach this many bytes."""
NOAUTH: Final = ErrorReply("NOAUTH Authentication required.")
WRONGPASS: Final = ErrorReply("WRONGPASS invalid username-password pair or user is disabled.")
NO_PASSWORD: Final = ErrorReply(
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?")
HELLO_NOAUTH: Final = ErrorReply(
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
    "select the RESP protocol version at the same time")
EXECABORT: Final = ErrorReply("EXECABORT Transaction discarded because of previous errors.")
NOT_IN_MULTI: Final = ErrorReply("ERR Command not allowed inside a transaction")
TRANSACTION_CONTROL: Final = frozenset({"multi", "exec", "discard", "watch", "quit"})
"""Commands carried out, not queued, between MULTI and EXEC (as in Redis)."""


class _Waiting:
    """The type of :data:`WAITING`."""


WAITING: Final = _Waiting()
"""What a step returns when its reply comes later (the connection waits for it)."""
Step = Reply | _Waiting


class RespConnection(asyncio.Protocol):
    """The protocol object of one client connection.

    Parameters
    ----------
    server
        The server it belongs to (settings, database, group committer, counters).
    """

    def __init__(self, server: RespServer) -> None:
        self._server = server
        self._settings = server.settings
        self._reader = RequestReader(server.settings.max_request_bytes)
        self._requests: deque[list[bytes]] = deque()
        self._transport: asyncio.Transport | None = None
        self.session = Session(0, "", "", False)
        self._waiting_for: list[str] | None = None
        """Names of the commands whose replies are awaited (None: not waiting)."""
        self._started = 0.0
        self._closing = False
        self._eof = False
        self._draining = False
        self._write_paused = False
        self._reading = True
        self._session_commands: dict[str, Callable[[list[bytes]], Step]] = {
            "auth": self._auth, "hello": self._hello, "client": self._client,
            "config": self._config, "info": self._info, "quit": self._quit,
            "multi": self._multi, "exec": self._exec, "discard": self._discard,
            "watch": self._watch, "unwatch": self._unwatch, "shutdown": self._shutdown,
            "coldb.stats": self._stats,
            "coldb.backup": self._backup,
        }

    # -- asyncio callbacks ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Admit the client, or refuse it when the server is full."""
        # A stream transport (uvloop's is not a subclass of asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)
        if not self._server.admit(self):
            self._transport.write(b"-ERR max number of clients reached\r\n")
            self._closing = True
            self._transport.close()
            return
        self.session = Session(self._server.next_client_id(),
                               _address(transport.get_extra_info("peername")),
                               _address(transport.get_extra_info("sockname")),
                               self._settings.password_check is None)
        log.debug("client %d connected from %s", self.session.client_id, self.session.address)

    def data_received(self, data: bytes) -> None:
        """Parse what arrived and carry out what is complete."""
        if self._closing:
            return
        self.session.last_active = time.monotonic()
        self._server.counters.net_input_bytes += len(data)
        self._requests.extend(self._reader.feed(data))
        if len(self._requests) >= MAX_QUEUED_REQUESTS or self._reader.violation is not None:
            self._update_reading()
        if self._waiting_for is None:
            self._run([])

    def eof_received(self) -> bool:
        """The client will send no more: finish its requests, then close."""
        self._eof = True
        return self._waiting_for is not None or bool(self._requests)

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the client (its pending replies, if any, are dropped)."""
        self._closing = True
        self._transport = None
        self._server.forget(self)
        self._server.watches.unwatch(self.session.watch)
        log.debug("client %d disconnected", self.session.client_id)

    def pause_writing(self) -> None:
        """The client is not reading its replies: stop carrying out its requests."""
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        """The client caught up with its replies."""
        self._write_paused = False
        self._update_reading()
        if self._waiting_for is None:
            self._run([])

    # -- for the server ------------------------------------------------------------

    def idle_seconds(self, now: float) -> float:
        """Seconds since the client last sent anything (0 while a reply is pending)."""
        return 0.0 if self._waiting_for is not None else now - self.session.last_active

    def drain(self) -> None:
        """Read no more requests; close once those received are answered."""
        self._draining = True
        self._update_reading()
        if self._waiting_for is None:
            self._run([])

    def close(self) -> None:
        """Close after writing what is buffered."""
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping what is buffered."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    # -- carrying out requests -----------------------------------------------------

    def _run(self, out: list[bytes]) -> None:
        """Carry out queued requests until one must wait; write the replies."""
        requests = self._requests
        reads = self._server.begin_reads()
        unwritten = 0
        while requests and self._waiting_for is None and not self._closing \
                and not self._write_paused:
            args = requests.popleft()
            self._started = time.perf_counter()
            spec = COMMANDS.get(args[0].lower())
            step = self._step(spec, args, reads)
            if not isinstance(step, _Waiting):
                self._reply(out, "unknown" if spec is None else spec.name, step)
                unwritten += len(out[-1])
                if unwritten >= FLUSH_BYTES and self._transport is not None:
                    # Written now, so a client that does not read its replies pauses
                    # this loop (pause_writing) before they pile up in memory.
                    self._write(self._transport, out)
                    unwritten = 0
        transport = self._transport
        if transport is None:
            return
        if self._waiting_for is None and not self._requests and not self._closing:
            if self._reader.violation is not None:
                out.append(encode_reply(ErrorReply(f"ERR Protocol error: {self._reader.violation}"),
                                        self.session.protocol))
                self._log_violation()
                self._closing = True
            elif self._eof or self._draining:
                self._closing = True
        if out:
            self._write(transport, out)
        if self._closing:
            transport.close()
        elif not self._reading:
            # Reading stops in data_received (and on drain, pause_writing, EOF); here
            # it may resume, the queue having shrunk.
            self._update_reading()

    def _write(self, transport: asyncio.Transport, out: list[bytes]) -> None:
        """Write the replies in ``out`` (and empty it)."""
        data = b"".join(out)
        out.clear()
        self._server.counters.net_output_bytes += len(data)
        transport.write(data)

    def _step(self, spec: CommandSpec | None, args: list[bytes], reads: SnapshotKeys) -> Step:
        """Carry out one request (more, for a run of writes) of the command ``spec``
        (None: unknown): its reply, or WAITING."""
        try:
            return self._dispatch(spec, args, reads)
        except Error as e:
            return ErrorReply(f"ERR {e}")
        except Exception as e:
            if self._settings.redact_logs:
                log.exception("command failed: %s", type(e).__name__)
            else:
                log.exception("command failed: %r", args[:8])
            return ErrorReply(f"ERR internal error ({type(e).__name__})")

    def _dispatch(self, spec: CommandSpec | None, args: list[bytes],
                  reads: SnapshotKeys) -> Step:
        session = self.session
        checked = self._validate(spec, args)
        if isinstance(checked, ErrorReply):
            if session.multi is not None:
                session.multi_refused = True
            return checked
        if session.multi is not None and checked.name not in TRANSACTION_CONTROL:
            return self._queue(checked, args)
        refusal = self._refusal(checked, args)
        if refusal is not None:
            return refusal
        if checked.write is not None:
            return self._submit_run(checked, args)
        if checked.threaded and checked.read is not None:
            read = checked.read
            return self._wait(self._in_thread(
                lambda keys: [read(args, keys, self._server.limits)]), [checked.name])
        if checked.read is not None or checked.reply is not None:
            return run_on_snapshot(checked, args, reads, self._server.limits)
        return self._session_commands[checked.name](args)

    def _validate(self, spec: CommandSpec | None,
                  args: list[bytes]) -> CommandSpec | ErrorReply:
        """``spec``, the command of ``args``, or the error for an unknown command
        (None), a wrong number of arguments or a client not authenticated yet."""
        if spec is None:
            return unknown_command(args)
        if not spec.arity_ok(args):
            return wrong_arity(spec.name)
        if not self.session.authenticated and "no-auth" not in spec.flags:
            return NOAUTH
        return spec

    def _refusal(self, spec: CommandSpec, args: list[bytes]) -> ErrorReply | None:
        """The error for a write to a read-only server or a key or value over the
        limits, else None."""
        if spec.write is not None and self._server.readonly:
            return self._server.readonly_reply
        max_key = self._server.max_key_bytes
        if spec.longest_key(args) > max_key:
            return ErrorReply(f"ERR key is larger than max_key_bytes ({max_key} bytes)")
        if spec.write is not None:
            max_value = self._server.limits.max_value_bytes
            if max(map(len, args)) > max_value:
                return ErrorReply(f"ERR value is larger than max_value_bytes "
                                  f"({max_value} bytes)")
        return None

    def _submit_run(self, spec: CommandSpec, args: list[bytes]) -> Step:
        """Send a write and the data commands queued after it as one unit."""
        commands: list[QueuedCommand] = [(spec, args)]
        while self._requests:
            following = self._requests[0]
            checked = self._validate(COMMANDS.get(following[0].lower()), following)
            if isinstance(checked, ErrorReply) or checked.threaded or \
                    (checked.read is None and checked.write is None) or \
                    self._refusal(checked, following) is not None:
                break
            commands.append((checked, self._requests.popleft()))
        self._waiting_for = [s.name for s, _ in commands]
        self._server.committer.submit(commands, self._resume)
        return WAITING

    def _in_thread(self, work: Callable[[SnapshotKeys], list[Reply]],
                   ) -> asyncio.Future[list[Reply]]:
        """Run ``work`` on a snapshot of its own in a worker thread."""
        def on_snapshot() -> list[Reply]:
            keys = SnapshotKeys(self._server.db)
            try:
                keys.open()
                return work(keys)
            finally:
                keys.close()
        return asyncio.get_running_loop().run_in_executor(None, on_snapshot)

    def _wait(self, future: asyncio.Future[list[Reply]], names: list[str]) -> Step:
        """Wait for ``future``'s replies (one per name) before the next request."""
        self._waiting_for = names
        future.add_done_callback(self._resume_with_result)
        return WAITING

    def _resume_with_result(self, future: asyncio.Future[list[Reply]]) -> None:
        try:
            replies = future.result()
        except Exception as e:
            log.error("a pending command failed: %s", type(e).__name__)
            replies = [ErrorReply(f"ERR internal error ({type(e).__name__})")] * \
                len(self._waiting_for or [])
        self._resume(replies)

    def _resume(self, replies: list[Reply]) -> None:
        """The awaited replies came: send them and carry on with the next requests."""
        names, self._waiting_for = self._waiting_for or [], None
        if self._transport is None:
            return
        out: list[bytes] = []
        for name, reply in zip(names, replies, strict=True):
            self._reply(out, name, reply)
        self._run(out)

    def _reply(self, out: list[bytes], name: str, reply: Reply) -> None:
        """Encode ``reply`` to the command ``name`` and count it."""
        out.append(encode_reply(reply, self.session.protocol))
        self.session.last_command = name
        counters = self._server.counters
        counters.commands_processed += 1
        error = reply.kind if isinstance(reply, ErrorReply) else None
        if error is not None:
            counters.error_replies += 1
        observer = self._settings.observer
        if observer is not None:
            observer(name, time.perf_counter() - self._started, error)

    def _update_reading(self) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        wanted = not (self._closing or self._draining or self._eof or self._write_paused or
                      self._reader.violation is not None or
                      len(self._requests) >= MAX_QUEUED_REQUESTS)
        if wanted != self._reading:
            self._reading = wanted
            if wanted:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _log_violation(self) -> None:
        if self._settings.redact_logs:
            log.info("client %d sent an invalid request; closing", self.session.client_id)
        else:
            log.info("client %d sent an invalid request (%s); closing",
                     self.session.client_id, self._reader.violation)

    # -- MULTI, EXEC, WATCH ----------------------------------------------------------

    def _queue(self, spec: CommandSpec, args: list[bytes]) -> Reply:
        session = self.session
        assert session.multi is not None
        refusal = NOT_IN_MULTI if spec.read is None and spec.write is None and \
            spec.reply is None else self._refusal(spec, args)
        size = sum(map(len, args))
        if refusal is None and session.multi_bytes + size > self._settings.max_request_bytes:
            refusal = ErrorReply(f"ERR the commands queued by MULTI exceed max_request_bytes "
                                 f"({self._settings.max_request_bytes} bytes)")
        if refusal is not None:
            session.multi_refused = True
            return refusal
        session.multi.append((spec, args))
        session.multi_bytes += size
        return QUEUED

    def _multi(self, args: list[bytes]) -> Step:
        if self.session.multi is not None:
            return ErrorReply("ERR MULTI calls can not be nested")
        self.session.begin_multi()
        return OK

    def _discard(self, args: list[bytes]) -> Step:
        if self.session.multi is None:
            return ErrorReply("ERR DISCARD without MULTI")
        self.session.end_multi()
        self._server.watches.unwatch(self.session.watch)
        return OK

    def _exec(self, args: list[bytes]) -> Step:
        session = self.session
        if session.multi is None:
            return ErrorReply("ERR EXEC without MULTI")
        refused = session.multi_refused
        commands = session.end_multi()
        watches = self._server.watches
        watch = session.watch
        if refused:
            watches.unwatch(watch)
            return EXECABORT
        if any(spec.write is not None for spec, _ in commands):
            def executed(replies: list[Reply]) -> None:
                watches.unwatch(watch)
                self._resume(replies)
            self._waiting_for = ["exec"]
            self._server.committer.submit(commands, executed, exec_watch=watch)
            return WAITING

        def exec_reads(keys: SnapshotKeys) -> list[Reply]:
            # The snapshot is open before the check: a write it sees was executed
            # before the check, so the check knows it.
            if watches.changed(watch):
                return [NULL_ARRAY]
            return [[run_on_snapshot(spec, args, keys, self._server.limits)
                     for spec, args in commands]]
        future = self._in_thread(exec_reads)
        future.add_done_callback(lambda _: watches.unwatch(watch))
        return self._wait(future, ["exec"])

    def _watch(self, args: list[bytes]) -> Step:
        if self.session.multi is not None:
            return ErrorReply("ERR WATCH inside MULTI is not allowed")
        self._server.watches.watch(self.session.watch, args[1:])
        return OK

    def _unwatch(self, args: list[bytes]) -> Step:
        self._server.watches.unwatch(self.session.watch)
        return OK

    # -- connection and server commands ----------------------------------------------

    def _quit(self, args: list[bytes]) -> Step:
        self._closing = True
        return OK

    def _shutdown(self, args: list[bytes]) -> Step:
        """SHUTDOWN [NOSAVE | SAVE | NOW | FORCE]: reply, close, ask the service to
        stop (every acknowledged write is durable whatever the option)."""
        on_shutdown = self._settings.on_shutdown
        if on_shutdown is None:
            return ErrorReply("ERR SHUTDOWN is not available on this server")
        if any(a.lower() not in (b"nosave", b"save", b"now", b"force") for a in args[1:]):
            return SYNTAX_ERROR
        log.info("SHUTDOWN requested by client %d", self.session.client_id)
        self._closing = True
        asyncio.get_running_loop().call_soon(on_shutdown)
        return OK

    def _stats(self, args: list[bytes]) -> Step:
        """COLDB.STATS: the server's figures as JSON (built in a worker thread)."""
        def document(keys: SnapshotKeys) -> list[Reply]:
            return [json.dumps(self._server.stats_document(), default=str).encode()]
        return self._wait(self._in_thread(document), ["coldb.stats"])

    def _backup(self, args: list[bytes]) -> Step:
        """COLDB.BACKUP <path>: an online backup to a path on this host (a directory,
        or a .tar.gz), in a worker thread; replies the manifest summary as JSON."""
        path = args[1].decode("utf-8", "surrogateescape")
        log.info("COLDB.BACKUP requested by client %d", self.session.client_id)

        def run() -> list[Reply]:
            try:
                return [json.dumps(backup_to(self._server.db, path)).encode()]
            except (Error, OSError) as e:
                return [ErrorReply("ERR backup failed: " + " ".join(str(e).splitlines()))]
        return self._wait(asyncio.get_running_loop().run_in_executor(None, run),
                          ["coldb.backup"])

    def _auth(self, args: list[bytes]) -> Step:
        if len(args) > 3:
            return SYNTAX_ERROR
        user, password = (b"default", args[1]) if len(args) == 2 else (args[1], args[2])
        if self._settings.password_check is None:
            return NO_PASSWORD
        return self._authenticate(user, password, "auth", lambda: OK)

    def _authenticate(self, user: bytes, password: bytes, name: str,
                      on_success: Callable[[], Reply]) -> Step:
        """Check the password in a worker thread; reply ``on_success()`` or, after
        the failure delay, WRONGPASS."""
        check = self._settings.password_check
        assert check is not None
        loop = asyncio.get_running_loop()
        result: asyncio.Future[list[Reply]] = loop.create_future()

        def verify() -> bool:
            # The password is checked even for an unknown user (same time taken).
            ok = check(password.decode("utf-8", "surrogateescape"))
            return ok and user == b"default"

        def checked(verified: asyncio.Future[bool]) -> None:
            if not verified.cancelled() and verified.exception() is None and verified.result():
                self.session.authenticated = True
                result.set_result([on_success()])
            else:
                refused: list[Reply] = [WRONGPASS]
                loop.call_later(self._settings.auth_failure_delay_ms / 1000,
                                result.set_result, refused)
        loop.run_in_executor(None, verify).add_done_callback(checked)
        return self._wait(result, [name])

    def _hello(self, args: list[bytes]) -> Step:
        session = self.session
        protocol = session.protocol
        i = 1
        if len(args) > 1:
            version = parse_int64(args[1])
            if version is None:
                return ErrorReply("ERR Protocol version is not an integer or out of range")
            if version not in (2, 3):
                return ErrorReply("NOPROTO unsupported protocol version")
            protocol, i = version, 2
        credentials: tuple[bytes, bytes] | None = None
        name: bytes | None = None
        while i < len(args):
            option = args[i].lower()
            if option == b"auth" and i + 2 < len(args):
                credentials, i = (args[i + 1], args[i + 2]), i + 3
            elif option == b"setname" and i + 1 < len(args):
                name, i = args[i + 1], i + 2
            else:
                return ErrorReply(f"ERR Syntax error in HELLO option "
                                  f"'{args[i].decode('utf-8', 'replace')}'")
        if name is not None and (bad_name := _name_error(name)) is not None:
            return bad_name

        def handshake() -> Reply:
            session.protocol = protocol
            if name is not None:
                session.name = name
            return {b"server": b"colibri-mm", b"version": REDIS_VERSION.encode(),
                    b"proto": protocol, b"id": session.client_id, b"mode": b"standalone",
                    b"role": b"master", b"modules": []}
        if credentials is not None and self._settings.password_check is not None:
            return self._authenticate(*credentials, "hello", handshake)
        if not session.authenticated:
            return HELLO_NOAUTH
        return handshake()

    def _client(self, args: list[bytes]) -> Step:
        session = self.session
        sub = args[1].lower().decode("utf-8", "replace")
        arities = {"id": 2, "getname": 2, "setname": 3, "setinfo": 4, "info": 2}
        if sub in arities and len(args) != arities[sub]:
            return wrong_arity(f"client|{sub}")
        if sub == "id":
            return session.client_id
        if sub == "getname":
            return session.name or None
        if sub == "setname":
            bad_name = _name_error(args[2])
            if bad_name is not None:
                return bad_name
            session.name = args[2]
            return OK
        if sub == "setinfo":
            attribute = args[2].lower()
            if attribute not in (b"lib-name", b"lib-ver"):
                return ErrorReply(f"ERR Unrecognized option "
                                  f"'{args[2].decode('utf-8', 'replace')}'")
            if _name_error(args[3]) is not None:
                return ErrorReply(f"ERR {attribute.decode()} cannot contain spaces, "
                                  "newlines or special characters.")
            if attribute == b"lib-name":
                session.library_name = args[3]
            else:
                session.library_version = args[3]
            return OK
        now = time.monotonic()
        if sub == "info":
            return (session.client_line(now) + "\n").encode()
        if sub == "list":
            return "".join(s.client_line(now) + "\n" for s in self._server.sessions()).encode()
        return ErrorReply(f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. "
                          "Try CLIENT HELP.")

    def _config(self, args: list[bytes]) -> Step:
        sub = args[1].lower()
        if sub == b"get":
            if len(args) < 3:
                return wrong_arity("config|get")
            return dict[bytes, Reply](config_get(self._server, args[2:]))
        if sub in (b"set", b"resetstat", b"rewrite"):
            return ErrorReply(f"ERR CONFIG {sub.decode().upper()} is not supported: the "
                              "server is configured by its configuration file")
        return ErrorReply(f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. "
                          "Try CONFIG HELP.")

    def _info(self, args: list[bytes]) -> Step:
        sections = {s.lower() for s in args[1:]}
        with_keys = not sections or bool(sections & {b"keyspace", b"default", b"all",
                                                     b"everything"})

        def info(keys: SnapshotKeys) -> list[Reply]:
            return [info_text(self._server, args[1:], count_keys(keys) if with_keys else None)]
        return self._wait(self._in_thread(info), ["info"])


def _name_error(name: bytes) -> ErrorReply | None:
    """Redis's refusal of a client name with spaces or special characters."""
    if any(byte < 0x21 or byte > 0x7E for byte in name):
        return ErrorReply("ERR Client names cannot contain spaces, newlines or special "
                          "characters.")
    return None


def _address(address: Any) -> str:
    """``host:port`` of a socket address (the path of a Unix socket)."""
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "")
