r"""Keys and values between bytes and the command line: arguments in, one line out.

Arguments are UTF-8 encoded (:func:`argument_bytes`). Output (:func:`render`) is
binary-safe and reversible: bytes that are printable UTF-8 text are shown as that
text; everything else is escaped the way Python bytes literals escape it: ``\\`` for
a backslash, ``\t`` ``\n`` ``\r``, and ``\xNN`` for every other byte that is not
part of a printable UTF-8 character (invalid UTF-8, control and other non-printable
characters). So a rendering never holds a raw tab or newline, and
``codecs.escape_decode`` turns it back into the original bytes.
"""

from __future__ import annotations

HELP = (
    "Keys and values are shown as text when they are printable UTF-8. Otherwise they "
    "are escaped like Python bytes literals: \\\\ for a backslash, \\t \\n \\r, and "
    "\\xNN for each byte that is not part of a printable UTF-8 character. The "
    "rendering is reversible and never contains a raw tab or newline."
)

_NAMED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_UNDECODABLE_LOW = 0xDC80
_UNDECODABLE_HIGH = 0xDCFF
"""``surrogateescape`` decodes an invalid byte ``b`` to the code point ``0xDC00 + b``."""


def render(data: bytes) -> str:
    """``data`` as one line of text (see the module docstring)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "surrogateescape")
    else:
        if text.isprintable() and "\\" not in text:
            return text
    return "".join(map(_render_character, text))


def _render_character(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if _UNDECODABLE_LOW <= code <= _UNDECODABLE_HIGH:
        return f"\\x{code - 0xDC00:02x}"
    if ch.isprintable():
        return ch
    return "".join(f"\\x{byte:02x}" for byte in ch.encode("utf-8"))


def argument_bytes(text: str) -> bytes:
    """A key or value given on the command line, as bytes.

    Text is UTF-8 encoded (as the API encodes ``str``); bytes of the command line
    that were not valid UTF-8 are kept as they were.
    """
    return text.encode("utf-8", "surrogateescape")
