"""Password hashes for AUTH: the encoded format, verification, and every malformed hash
refused with a message naming what is wrong."""

import base64
import re

import pytest

from colibri_mm.errors import ConfigError
from colibri_mm.server.passwords import (
    DEFAULT_ITERATIONS,
    DIGEST_BYTES,
    MIN_ITERATIONS,
    SALT_BYTES,
    hash_password,
    parse_hash,
    verify_password,
)

FAST = MIN_ITERATIONS
"""Iterations in these tests: the least accepted, to keep them quick."""


def test_hash_has_the_documented_format() -> None:
    encoded = hash_password("secret", iterations=FAST)
    scheme, iterations, salt, digest = encoded.split("$")
    assert (scheme, int(iterations)) == ("pbkdf2-sha256", FAST)
    assert len(base64.b64decode(salt, validate=True)) == SALT_BYTES
    assert len(base64.b64decode(digest, validate=True)) == DIGEST_BYTES
    parsed = parse_hash(encoded)
    assert parsed.iterations == FAST and parsed.encode() == encoded


def test_default_iterations() -> None:
    assert parse_hash(hash_password("x")).iterations == DEFAULT_ITERATIONS >= 600_000


def test_verify_accepts_only_the_password() -> None:
    encoded = hash_password("correct horse", iterations=FAST)
    assert verify_password("correct horse", encoded)
    assert verify_password(b"correct horse", encoded)
    for wrong in ("correct hors", "correct horse ", "", "Correct horse"):
        assert not verify_password(wrong, encoded)


def test_salt_differs_between_hashes() -> None:
    assert hash_password("same", iterations=FAST) != hash_password("same", iterations=FAST)


def test_non_ascii_password_is_utf8() -> None:
    encoded = hash_password("pässwörd", iterations=FAST)
    assert verify_password("pässwörd".encode(), encoded)


def test_refuses_empty_password_and_bad_iterations() -> None:
    with pytest.raises(ConfigError, match="empty"):
        hash_password("")
    with pytest.raises(ConfigError, match="iterations must be between"):
        hash_password("x", iterations=1000)


GOOD_SALT = base64.b64encode(b"s" * 16).decode()
GOOD_DIGEST = base64.b64encode(b"d" * 32).decode()


@pytest.mark.parametrize(("encoded", "complaint"), [
    ("", "4 fields"),
    ("pbkdf2-sha256$1$2", "4 fields"),
    (f"pbkdf2-sha256${FAST}${GOOD_SALT}${GOOD_DIGEST}$extra", "4 fields"),
    (f"bcrypt${FAST}${GOOD_SALT}${GOOD_DIGEST}", "scheme must be 'pbkdf2-sha256'"),
    (f"pbkdf2-sha256$many${GOOD_SALT}${GOOD_DIGEST}", "decimal integer"),
    (f"pbkdf2-sha256$-5${GOOD_SALT}${GOOD_DIGEST}", "decimal integer"),
    (f"pbkdf2-sha256$1000${GOOD_SALT}${GOOD_DIGEST}", "iterations must be between"),
    (f"pbkdf2-sha256$10000000000${GOOD_SALT}${GOOD_DIGEST}", "iterations must be between"),
    (f"pbkdf2-sha256${FAST}$not base64!${GOOD_DIGEST}", "salt is not valid base64"),
    (f"pbkdf2-sha256${FAST}${GOOD_SALT}$@@@@", "digest is not valid base64"),
    (f"pbkdf2-sha256${FAST}$c2FsdA==${GOOD_DIGEST}", "salt must be at least 8 bytes"),
    (f"pbkdf2-sha256${FAST}${GOOD_SALT}$ZGln", "digest must be at least 16 bytes"),
])
def test_parse_hash_names_what_is_wrong(encoded: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        parse_hash(encoded)
    with pytest.raises(ConfigError):
        verify_password("x", encoded)
