"""The Redis wire protocol: requests read with ``hiredis``, replies encoded in RESP2 or
RESP3.

:class:`RequestReader` wraps ``hiredis.Reader`` (the parser is hiredis's, not ours)
and bounds what one partial request may buffer. Replies are Python values, encoded
by :func:`encode_reply` for the connection's protocol version:

============================  ======================  ==================
value                         RESP2                   RESP3
============================  ======================  ==================
``bytes``                     bulk string             bulk string
``int``                       integer                 integer
``None``                      null bulk ``$-1``       null ``_``
:data:`NULL_ARRAY`            null array ``*-1``      null ``_``
:class:`SimpleString`         ``+text``               ``+text``
:class:`ErrorReply`           ``-text``               ``-text``
``list``                      array                   array
``dict``                      flat array of pairs     map ``%``
``float``                     bulk string             double ``,``
============================  ======================  ==================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

import hiredis

CRLF: Final = b"\r\n"


@dataclass(frozen=True, slots=True)
class SimpleString:
    """A status reply such as ``+OK``."""

    text: str


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error reply; ``text`` starts with its kind (``ERR``, ``WRONGPASS``, ...)."""

    text: str

    @property
    def kind(self) -> str:
        """The first word of the error (what metrics count errors by)."""
        return self.text.split(" ", 1)[0]


class NullArray:
    """The type of :data:`NULL_ARRAY` (an aborted EXEC)."""

    __slots__ = ()


NULL_ARRAY: Final = NullArray()

Reply: TypeAlias = (bytes | int | float | SimpleString | ErrorReply | NullArray
                    | list["Reply"] | dict[bytes, "Reply"] | None)
"""Any reply value :func:`encode_reply` encodes."""

OK: Final = SimpleString("OK")
PONG: Final = SimpleString("PONG")
QUEUED: Final = SimpleString("QUEUED")

_SIMPLE_CACHE: dict[str, bytes] = {}


def encode_reply(reply: Reply, protocol: int) -> bytes:
    """The bytes of ``reply`` in RESP ``protocol`` (2 or 3)."""
    if isinstance(reply, bytes):
        return b"$%d\r\n%b\r\n" % (len(reply), reply)
    if reply is None:
        return b"_\r\n" if protocol == 3 else b"$-1\r\n"
    if isinstance(reply, SimpleString):
        encoded = _SIMPLE_CACHE.get(reply.text)
        if encoded is None:
            encoded = b"+" + _one_line(reply.text) + CRLF
            if len(_SIMPLE_CACHE) < 64:
                _SIMPLE_CACHE[reply.text] = encoded
        return encoded
    if isinstance(reply, ErrorReply):
        return b"-" + _one_line(reply.text) + CRLF
    if isinstance(reply, bool):
        raise TypeError("booleans are not replies (use 0 or 1)")
    if isinstance(reply, int):
        return b":%d\r\n" % reply
    if isinstance(reply, list):
        return b"".join([b"*%d\r\n" % len(reply), *(encode_reply(r, protocol) for r in reply)])
    if isinstance(reply, dict):
        header = b"%%%d\r\n" % len(reply) if protocol == 3 else b"*%d\r\n" % (2 * len(reply))
        return b"".join([header, *(encode_reply(k, protocol) + encode_reply(v, protocol)
                                   for k, v in reply.items())])
    if isinstance(reply, NullArray):
        return b"_\r\n" if protocol == 3 else b"*-1\r\n"
    if isinstance(reply, float):
        text = repr(reply).encode()
        return b",%b\r\n" % text if protocol == 3 else b"$%d\r\n%b\r\n" % (len(text), text)
    raise TypeError(f"cannot encode a reply of type {type(reply).__name__}")


def _one_line(text: str) -> bytes:
    """``text`` as the payload of a status or error line (CR and LF become spaces)."""
    return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")


class RequestReader:
    """Splits a client's byte stream into requests (lists of bulk-string arguments).

    Parameters
    ----------
    max_request_bytes
        Largest request accepted. The bytes fed since the last complete request are
        counted, so a request announcing a huge bulk (or a huge array of small ones)
        is refused once this many bytes have arrived, not after buffering it all.

    Attributes
    ----------
    violation
        Why the stream is not valid RESP requests (None: it is so far). Once set,
        nothing more is read; the connection replies ``-ERR Protocol error: ...``
        and closes.
    """

    def __init__(self, max_request_bytes: int) -> None:
        self._reader = hiredis.Reader()
        self._max_request_bytes = max_request_bytes
        self._partial_bytes = 0
        self.violation: str | None = None

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Add ``data``; return the requests it completes (empty requests skipped),
        up to a violation if there is one."""
        if self.violation is not None:
            return []
        self._partial_bytes += len(data)
        self._reader.feed(data)
        requests: list[list[bytes]] = []
        try:
            while (request := self._reader.gets()) is not False:
                if not request:
                    continue  # *0 or *-1: Redis ignores them too
                if type(request) is not list or \
                        not all(type(argument) is bytes for argument in request):
                    self.violation = "expected an array of bulk strings"
                    return requests
                requests.append(request)
        except hiredis.ProtocolError as e:
            self.violation = str(e)
            return requests
        if requests:
            # What remains buffered is the start of the next request (hiredis keeps
            # under 1 KiB of consumed bytes besides).
            self._partial_bytes = self._reader.len()
        if self._partial_bytes > self._max_request_bytes:
            self.violation = \
                f"request larger than max_request_bytes ({self._max_request_bytes} bytes)"
        return requests
