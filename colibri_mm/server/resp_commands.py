"""The RESP command table: every command the server knows, its arity, flags and key
positions (Redis's conventions), and the replies of COMMAND built from it.

A data command carries its handler (:mod:`colibri_mm.server.resp_strings`): a
``read`` handler runs on a snapshot, a ``write`` handler inside a batch's write
transaction. A few commands reply from their arguments alone (``reply``). These
three kinds may be queued by MULTI. The other commands act on the connection and
the server and are carried out by :mod:`colibri_mm.server.resp_connection`, by
name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import resp_strings as strings
from .resp_protocol import OK, PONG, ErrorReply, Reply, SimpleString
from .resp_store import KeyReader, KeyWriter


@dataclass(frozen=True)
class CommandSpec:
    """One command.

    Attributes
    ----------
    name
        Lower-case name.
    arity
        Redis's convention, counting the name: ``n`` exactly n arguments, ``-n`` at
        least n.
    flags
        Redis's command flags (``write``, ``readonly``, ``fast``, ``no-auth``, ...).
    first_key, last_key, key_step
        Positions of the keys (``last_key=-1``: the last argument; all 0: no keys).
    group, summary, since
        What COMMAND DOCS says about it.
    read, write
        The handler of a data command that reads, or writes.
    reply
        The handler of a command whose reply depends only on its arguments (PING,
        ECHO, SELECT, COMMAND). A command with none of the three handlers acts on
        the connection or the server.
    threaded
        Whether its work grows with the database (a scan of every key): it runs in a
        worker thread so the event loop keeps serving others.
    """

    name: str
    arity: int
    flags: tuple[str, ...]
    first_key: int
    last_key: int
    key_step: int
    group: str
    summary: str
    since: str = "1.0.0"
    read: strings.ReadHandler | None = None
    write: strings.WriteHandler | None = None
    reply: Callable[[list[bytes]], Reply] | None = None
    threaded: bool = False
    name_bytes: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "name_bytes", self.name.encode())

    def arity_ok(self, args: list[bytes]) -> bool:
        """Whether ``args`` (the name included) has an allowed length."""
        n = len(args)
        return n == self.arity if self.arity > 0 else n >= -self.arity

    def key_positions(self, argc: int) -> range:
        """Indexes of the keys among ``argc`` arguments."""
        if self.first_key == 0:
            return range(0)
        last = argc + self.last_key if self.last_key < 0 else self.last_key
        return range(self.first_key, last + 1, self.key_step)

    def longest_key(self, args: list[bytes]) -> int:
        """Length of the longest key among ``args`` (0: none)."""
        if self.first_key == self.last_key:
            # One key (GET, SET, INCR, ...), or none: checked once per request, so
            # without building a range.
            return len(args[self.first_key]) if self.first_key else 0
        return max((len(args[i]) for i in self.key_positions(len(args))), default=0)

    def info(self) -> list[Reply]:
        """This command's entry in the reply of COMMAND / COMMAND INFO (Redis 7 form)."""
        categories = ["@write" if "write" in self.flags else "@read"
                      if "readonly" in self.flags else "@connection", f"@{self.group}"]
        return [self.name_bytes, self.arity, [SimpleString(f) for f in self.flags],
                self.first_key, self.last_key, self.key_step,
                [SimpleString(c) for c in categories], [], [], []]

    def docs(self) -> dict[bytes, Reply]:
        """This command's entry in the reply of COMMAND DOCS."""
        return {b"summary": self.summary.encode(), b"since": self.since.encode(),
                b"group": self.group.encode(), b"complexity": b"",
                b"arguments": []}


def ping(args: list[bytes]) -> Reply:
    """PING [message]."""
    if len(args) > 2:
        return wrong_arity("ping")
    return PONG if len(args) == 1 else args[1]


def echo(args: list[bytes]) -> Reply:
    """ECHO message."""
    return args[1]


def select(args: list[bytes]) -> Reply:
    """SELECT index: only database 0 exists."""
    index = strings.parse_int64(args[1])
    if index is None:
        return strings.NOT_AN_INTEGER
    return OK if index == 0 else ErrorReply("ERR DB index is out of range")




def unknown_command(args: list[bytes]) -> ErrorReply:
    """Redis's reply to a command it does not know (arguments quoted, 128 bytes at
    most)."""
    quoted = ""
    for argument in args[1:]:
        if len(quoted) >= 128:
            break
        quoted += "'" + argument.decode("utf-8", "replace")[:128 - len(quoted)] + "' "
    name = args[0].decode("utf-8", "replace")[:128]
    return ErrorReply(f"ERR unknown command '{name}', with args beginning with: {quoted}")


def wrong_arity(name: str) -> ErrorReply:
    """Redis's reply to a command (or ``command|subcommand``) with the wrong number of
    arguments."""
    return ErrorReply(f"ERR wrong number of arguments for '{name}' command")


def command_reply(args: list[bytes]) -> Reply:
    """The reply to COMMAND and its subcommands COUNT, DOCS, INFO and LIST."""
    if len(args) == 1:
        return [spec.info() for spec in COMMANDS.values()]
    sub = args[1].lower()
    names = [name.lower() for name in args[2:]]
    if sub == b"count" and len(args) == 2:
        return len(COMMANDS)
    if sub == b"list" and len(args) == 2:
        return list[Reply](COMMANDS)
    if sub == b"info":
        return [COMMANDS[name].info() if name in COMMANDS else None
                for name in names or COMMANDS]
    if sub == b"docs":
        return {name: COMMANDS[name].docs() for name in names or COMMANDS if name in COMMANDS}
    if sub in (b"count", b"list"):
        return wrong_arity(f"command|{sub.decode()}")
    return ErrorReply(f"ERR unknown subcommand '{args[1].decode('utf-8', 'replace')}'. "
                      "Try COMMAND HELP.")


def run_on_snapshot(spec: CommandSpec, args: list[bytes], keys: KeyReader,
                    limits: strings.DataLimits) -> Reply:
    """Carry out a command that does not write (a read or a ``reply`` command)."""
    if spec.read is not None:
        return spec.read(args, keys, limits)
    assert spec.reply is not None, f"{spec.name} cannot run on a snapshot"
    return spec.reply(args)


def run_in_transaction(spec: CommandSpec, args: list[bytes], keys: KeyWriter,
                       limits: strings.DataLimits) -> Reply:
    """Carry out a command that MULTI may queue inside a write transaction."""
    if spec.write is not None:
        return spec.write(args, keys, limits)
    return run_on_snapshot(spec, args, keys, limits)


_READ = ("readonly", "fast")
_WRITE = ("write", "denyoom")
_CONNECTION = ("fast", "loading", "stale")

COMMANDS: dict[bytes, CommandSpec] = {spec.name_bytes: spec for spec in [
    CommandSpec("get", 2, _READ, 1, 1, 1, "string", "Get the value of a key",
                read=strings.get),
    CommandSpec("mget", -2, _READ, 1, -1, 1, "string", "Get the values of keys",
                read=strings.mget),
    CommandSpec("strlen", 2, _READ, 1, 1, 1, "string", "Length of a key's value",
                "2.2.0", read=strings.strlen),
    CommandSpec("exists", -2, _READ, 1, -1, 1, "generic", "Count the keys that exist",
                read=strings.exists),
    CommandSpec("type", 2, _READ, 1, 1, 1, "generic", "Type of a key (string or none)",
                read=strings.key_type),
    CommandSpec("scan", -2, ("readonly",), 0, 0, 0, "generic",
                "Iterate over keys (the cursor is the last key visited)", "2.8.0",
                read=strings.scan),
    CommandSpec("keys", 2, ("readonly",), 0, 0, 0, "generic",
                "Keys matching a pattern (refused above keys_limit)",
                read=strings.keys_matching, threaded=True),
    CommandSpec("dbsize", 1, _READ, 0, 0, 0, "server", "Number of keys",
                read=strings.dbsize, threaded=True),
    CommandSpec("set", -3, _WRITE, 1, 1, 1, "string",
                "Set a key's value (NX, XX, GET; no expiry)", write=strings.set_value),
    CommandSpec("mset", -3, _WRITE, 1, -1, 2, "string", "Set several keys",
                "1.0.1", write=strings.mset),
    CommandSpec("getdel", 2, ("write", "fast"), 1, 1, 1, "string",
                "Get a key's value and delete the key", "6.2.0", write=strings.getdel),
    CommandSpec("append", 3, (*_WRITE, "fast"), 1, 1, 1, "string",
                "Append to a key's value", "2.0.0", write=strings.append),
    CommandSpec("incr", 2, (*_WRITE, "fast"), 1, 1, 1, "string", "Add one to an integer",
                write=strings.incr),
    CommandSpec("decr", 2, (*_WRITE, "fast"), 1, 1, 1, "string",
                "Subtract one from an integer", write=strings.decr),
    CommandSpec("incrby", 3, (*_WRITE, "fast"), 1, 1, 1, "string",
                "Add to an integer", write=strings.incrby),
    CommandSpec("decrby", 3, (*_WRITE, "fast"), 1, 1, 1, "string",
                "Subtract from an integer", write=strings.decrby),
    CommandSpec("del", -2, ("write",), 1, -1, 1, "generic", "Delete keys",
                write=strings.delete),
    CommandSpec("flushdb", -1, ("write",), 0, 0, 0, "server",
                "Delete every key (when enabled)", write=strings.flushdb),
    CommandSpec("ping", -1, _CONNECTION, 0, 0, 0, "connection", "Ping the server",
                reply=ping),
    CommandSpec("echo", 2, ("fast",), 0, 0, 0, "connection", "Echo a message",
                reply=echo),
    CommandSpec("select", 2, _CONNECTION, 0, 0, 0, "connection",
                "Select database 0 (the only one)", reply=select),
    CommandSpec("quit", -1, ("no-auth", "fast", "loading", "stale"), 0, 0, 0,
                "connection", "Close the connection"),
    CommandSpec("auth", -2, ("no-auth", "fast", "loading", "stale", "no-multi"), 0, 0, 0,
                "connection", "Authenticate (password, or default and password)"),
    CommandSpec("hello", -1, ("no-auth", "fast", "loading", "stale", "no-multi"), 0, 0, 0,
                "connection", "Handshake: protocol version, AUTH, SETNAME", "6.0.0"),
    CommandSpec("client", -2, ("loading", "stale"), 0, 0, 0, "connection",
                "CLIENT ID, GETNAME, SETNAME, SETINFO, INFO, LIST", "2.4.0"),
    CommandSpec("command", -1, ("loading", "stale"), 0, 0, 0, "server",
                "COMMAND, COMMAND COUNT, COMMAND DOCS, COMMAND INFO, COMMAND LIST",
                "2.8.13", reply=command_reply),
    CommandSpec("config", -2, ("admin", "loading", "stale"), 0, 0, 0, "server",
                "CONFIG GET of a few parameters", "2.0.0"),
    CommandSpec("info", -1, ("loading", "stale"), 0, 0, 0, "server",
                "Information and statistics about the server"),
    CommandSpec("coldb.stats", 1, ("loading", "stale"), 0, 0, 0, "server",
                "The server's figures as a JSON document (what coldb stats reads)",
                "0.1.0"),
    CommandSpec("coldb.backup", 2, ("admin", "noscript", "loading", "stale", "no-multi"),
                0, 0, 0, "server",
                "Online backup to a path on the server's host (what coldb --server ... "
                "backup sends)", "0.1.0"),
    CommandSpec("shutdown", -1, ("admin", "noscript", "loading", "stale", "no-multi"),
                0, 0, 0, "server", "Stop the server gracefully", "1.0.0"),
    CommandSpec("multi", 1, ("no-multi", "fast", "loading", "stale"), 0, 0, 0,
                "transactions", "Start a transaction", "1.2.0"),
    CommandSpec("exec", 1, ("no-multi", "loading", "stale"), 0, 0, 0, "transactions",
                "Run the queued commands as one engine transaction", "1.2.0"),
    CommandSpec("discard", 1, ("no-multi", "fast", "loading", "stale"), 0, 0, 0,
                "transactions", "Discard the queued commands", "2.0.0"),
    CommandSpec("watch", -2, ("no-multi", "fast", "loading", "stale"), 1, -1, 1,
                "transactions", "Make the next EXEC fail if a key changes", "2.2.0"),
    CommandSpec("unwatch", 1, ("no-multi", "fast", "loading", "stale"), 0, 0, 0,
                "transactions", "Forget the watched keys", "2.2.0"),
]}
"""Every command, by lower-case name."""
