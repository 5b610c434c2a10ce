"""Password hashes for the server's AUTH: salted PBKDF2-SHA256, encoded as one string.

The configuration stores the hash, never the password (``security.password_hash``);
``coldb hash-password`` makes one. The encoded form is four fields separated by ``$``::

    pbkdf2-sha256$<iterations>$<salt>$<digest>

``iterations`` is a decimal integer (at least :data:`MIN_ITERATIONS`), ``salt`` and
``digest`` are standard base64 (RFC 4648 section 4, with ``=`` padding) of the random
salt (at least :data:`MIN_SALT_BYTES`) and of the PBKDF2-HMAC-SHA256 output (its
length is the derived key length, :data:`DIGEST_BYTES` when made here). Passwords are
UTF-8 encoded before hashing.

Verifying costs as much as hashing (about a third of a second at the default
iterations), on purpose: callers in an event loop run :func:`verify_password` in a
thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass

from ..errors import ConfigError

SCHEME = "pbkdf2-sha256"
"""First field of an encoded hash."""
DEFAULT_ITERATIONS = 600_000
"""PBKDF2-HMAC-SHA256 iterations of a new hash (OWASP's 2023 recommendation)."""
MIN_ITERATIONS = 100_000
"""Fewest iterations accepted, in a new hash or a configured one."""
MAX_ITERATIONS = 100_000_000
"""Most iterations accepted: more would make each AUTH take minutes (a typo, surely)."""
SALT_BYTES = 16
"""Bytes of random salt in a new hash."""
MIN_SALT_BYTES = 8
"""Fewest salt bytes accepted in a configured hash."""
DIGEST_BYTES = 32
"""Bytes of PBKDF2 output in a new hash (the SHA-256 size)."""
MIN_DIGEST_BYTES = 16
"""Fewest digest bytes accepted in a configured hash."""


@dataclass(frozen=True)
class PasswordHash:
    """The parts of an encoded password hash (see the module docstring)."""

    iterations: int
    salt: bytes
    digest: bytes

    def encode(self) -> str:
        """The ``pbkdf2-sha256$<iterations>$<salt>$<digest>`` form."""
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        return f"{SCHEME}${self.iterations}${salt}${digest}"


def hash_password(password: str | bytes, iterations: int = DEFAULT_ITERATIONS) -> str:
    """Hash ``password`` with a fresh random salt.

    Parameters
    ----------
    password : str or bytes
        The password (a str is UTF-8 encoded). Must not be empty.
    iterations : int
        PBKDF2 iterations, from :data:`MIN_ITERATIONS` to :data:`MAX_ITERATIONS`.

    Returns
    -------
    str
        The encoded hash, for ``security.password_hash``.

    Raises
    ------
    ConfigError
        The password is empty or ``iterations`` is out of range.
    """
    secret = _password_bytes(password)
    if not secret:
        raise ConfigError("the password must not be empty")
    _check_iterations(iterations)
    salt = os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", secret, salt, iterations, DIGEST_BYTES)
    return PasswordHash(iterations, salt, digest).encode()


def verify_password(password: str | bytes, encoded: str) -> bool:
    """Whether ``password`` is the one hashed into ``encoded`` (compared in constant time).

    Raises
    ------
    ConfigError
        ``encoded`` is not a valid hash (see :func:`parse_hash`).
    """
    stored = parse_hash(encoded)
    digest = hashlib.pbkdf2_hmac("sha256", _password_bytes(password), stored.salt,
                                 stored.iterations, len(stored.digest))
    return hmac.compare_digest(digest, stored.digest)


def parse_hash(encoded: str) -> PasswordHash:
    """The parts of an encoded hash.

    Raises
    ------
    ConfigError
        The message names what is wrong: the number of fields, the scheme, the
        iterations, or the base64 or length of the salt or digest.
    """
    fields = encoded.split("$")
    if len(fields) != 4:
        raise ConfigError(f"a password hash has 4 fields separated by '$' "
                          f"({SCHEME}$<iterations>$<salt>$<digest>); got {len(fields)}")
    scheme, iterations_text, salt_text, digest_text = fields
    if scheme != SCHEME:
        raise ConfigError(f"password hash scheme must be {SCHEME!r}; got {scheme!r}")
    if not iterations_text.isdigit():
        raise ConfigError(f"password hash iterations must be a decimal integer; "
                          f"got {iterations_text!r}")
    iterations = int(iterations_text)
    _check_iterations(iterations)
    salt = _base64_field("salt", salt_text, MIN_SALT_BYTES)
    digest = _base64_field("digest", digest_text, MIN_DIGEST_BYTES)
    return PasswordHash(iterations, salt, digest)


def _password_bytes(password: str | bytes) -> bytes:
    return password.encode("utf-8") if isinstance(password, str) else password


def _check_iterations(iterations: int) -> None:
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ConfigError(f"password hash iterations must be between {MIN_ITERATIONS} and "
                          f"{MAX_ITERATIONS}; got {iterations}")


def _base64_field(name: str, text: str, min_bytes: int) -> bytes:
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"password hash {name} is not valid base64") from None
    if len(value) < min_bytes:
        raise ConfigError(f"password hash {name} must be at least {min_bytes} bytes; "
                          f"got {len(value)}")
    return value
