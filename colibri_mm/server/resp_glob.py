"""Redis glob patterns (KEYS, SCAN MATCH, CONFIG GET): :class:`GlobPattern`.

The semantics are those of Redis's ``stringmatchlen``, byte-wise and case-sensitive:
``*`` any run of bytes, ``?`` one byte, ``[abc]`` ``[a-z]`` ``[^a-z]`` a class (a
reversed range ``[z-a]`` is the same range; an unterminated class ends at the end
of the pattern), and ``\\x`` the byte ``x`` itself, in or out of a class. A pattern
is translated once into a ``re`` expression over bytes.
"""

from __future__ import annotations

import re


class GlobPattern:
    """A compiled Redis glob pattern.

    Parameters
    ----------
    pattern
        The pattern as the client sent it.
    """

    def __init__(self, pattern: bytes) -> None:
        self.pattern = pattern
        expression, self.literal_prefix = _translate(pattern)
        self._regex = re.compile(expression, re.DOTALL)
        self.matches_everything = pattern == b"*"

    def matches(self, subject: bytes) -> bool:
        """Whether ``subject`` matches the whole pattern."""
        return self.matches_everything or self._regex.fullmatch(subject) is not None


def _byte(value: int) -> bytes:
    return re.escape(bytes([value]))


def _translate(pattern: bytes) -> tuple[bytes, bytes]:
    """The ``re`` expression of ``pattern``, and the literal bytes every match starts
    with (to narrow a scan)."""
    parts: list[bytes] = []
    prefix = bytearray()
    literal_so_far = True
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == ord("*"):
            while i < n and pattern[i] == ord("*"):
                i += 1
            parts.append(b".*")
            literal_so_far = False
            continue
        if c == ord("?"):
            parts.append(b".")
            literal_so_far = False
            i += 1
            continue
        if c == ord("["):
            expression, i = _translate_class(pattern, i + 1)
            parts.append(expression)
            literal_so_far = False
            continue
        if c == ord("\\") and i + 1 < n:
            i += 1
            c = pattern[i]
        parts.append(_byte(c))
        if literal_so_far:
            prefix.append(c)
        i += 1
    return b"".join(parts), bytes(prefix)


def _translate_class(pattern: bytes, i: int) -> tuple[bytes, int]:
    """The expression of the class starting at ``pattern[i]`` (just after ``[``) and
    the index after its ``]``."""
    n = len(pattern)
    negate = i < n and pattern[i] == ord("^")
    if negate:
        i += 1
    members: list[bytes] = []
    while i < n and pattern[i] != ord("]"):
        c = pattern[i]
        if c == ord("\\") and i + 1 < n:
            members.append(_byte(pattern[i + 1]))
            i += 2
        elif i + 2 < n and pattern[i + 1] == ord("-"):
            low, high = sorted((c, pattern[i + 2]))
            members.append(_byte(low) + b"-" + _byte(high))
            i += 3
        else:
            members.append(_byte(c))
            i += 1
    i += 1  # past the ']' (or the end of an unterminated class)
    if not members:
        return (b"." if negate else b"(?!)"), i
    return b"[" + (b"^" if negate else b"") + b"".join(members) + b"]", i
