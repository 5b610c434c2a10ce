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
HEADER_PEEK: Final = 24
"""Bytes of a request's start read to find its ``*N`` header (N has at most 20
digits)."""


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
        self._fed = 0
        """Stream offset of the end of the bytes fed so far."""
        self._next_request = 0
        """Stream offset where the next request begins (requests are counted in their
        canonical encoding; a client that encodes otherwise turns the check off)."""
        self._checked = -1
        """Stream offset of the request whose array header was checked last."""
        self._header = b""
        """The start of the next request's header when it came in pieces."""
        self._checked_count: int | None = None
        """N of the header checked last (the request parsed there must have N
        arguments, or the offsets are off: checking stops)."""

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Add ``data``; return the requests it completes (empty requests skipped),
        up to a violation if there is one."""
        if self.violation is not None:
            return []
        start = self._fed
        self._fed += len(data)
        self._partial_bytes += len(data)
        self._reader.feed(data)
        requests: list[list[bytes]] = []
        try:
            while self._array_header_fits(data, start) and \
                    (request := self._reader.gets()) is not False:
                if request and (type(request) is not list or
                                not all(type(argument) is bytes for argument in request)):
                    self.violation = "expected an array of bulk strings"
                    return requests
                self._passed(request)
                if request:  # *0 and *-1 are skipped: Redis ignores them too
                    requests.append(request)
        except hiredis.ProtocolError as e:
            self.violation = str(e)
            return requests
        if self.violation is not None:
            return requests
        if requests:
            # What remains buffered is the start of the next request (hiredis keeps
            # under 1 KiB of consumed bytes besides).
            self._partial_bytes = self._reader.len()
        if self._partial_bytes > self._max_request_bytes:
            self.violation = \
                f"request larger than max_request_bytes ({self._max_request_bytes} bytes)"
        return requests

    def _array_header_fits(self, data: bytes, start: int) -> bool:
        """Check the next request's ``*N`` header before hiredis parses it: hiredis
        makes a list of N slots as soon as it reads the header, so a client sending
        ``*1000000000`` would reserve gigabytes. Each element takes at least 4 bytes
        (``$0``, CRLF, CRLF), so N may not exceed max_request_bytes / 4. False (and a
        violation) when it does."""
        if self._checked == self._next_request or self._next_request < 0:
            return True
        if self._next_request >= start:
            offset = self._next_request - start
            head = data[offset : offset + HEADER_PEEK]
        else:  # the header began in an earlier piece
            head = (self._header + data)[:HEADER_PEEK]
        self._header = b""
        if not head:  # the request has not begun to arrive
            return True
        if head[:1] != b"*":
            self._checked = self._next_request  # hiredis judges anything else
            return True
        end = head.find(CRLF)
        if end < 0:
            if len(head) < HEADER_PEEK:  # the rest of the header has not come yet;
                self._header = head      # hiredis cannot parse it either
                return True
            end = len(head)
        count = head[1:end]
        self._checked = self._next_request
        self._checked_count = int(count) if count.isdigit() else None
        if count.isdigit() and int(count) > self._max_request_bytes // 4:
            self.violation = (f"request larger than max_request_bytes "
                              f"({self._max_request_bytes} bytes): an array of {int(count)} "
                              "elements")
            return False
        return True

    def _passed(self, request: object) -> None:
        """Move the next request's offset past ``request`` (as encoded canonically; a
        list is one of bulk strings, as :meth:`feed` checked)."""
        if self._next_request < 0:
            return
        if request is None:  # *-1 (or $-1)
            self._next_request += len(b"*-1\r\n")
        elif type(request) is list and self._checked_count in (None, len(request)):
            self._next_request += len(b"*%d\r\n" % len(request)) + sum(
                len(b"$%d\r\n" % len(a)) + len(a) + 2 for a in request)
        else:
            self._next_request = -1
        if self._next_request > self._fed:
            self._next_request = -1  # not encoded canonically: stop checking headers
