"""The server configuration: the sample file, defaults, every kind of bad input
reported with its dotted key (all problems at once), comments, overrides, engine
options and TLS."""

import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from self_signed import self_signed_certificate

from colibri_mm.errors import ConfigError
from colibri_mm.options import Options
from colibri_mm.server.config import (
    ConfigFileError,
    ServerConfig,
    apply_overrides,
    commented_default_config,
    config_keys,
    load_config,
    parse_config,
)
from colibri_mm.server.passwords import MIN_ITERATIONS, hash_password

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "colibridb.conf.json"


def problems_of(data: Any) -> list[str]:
    """The problems reported for the configuration ``data`` (a JSON value or text)."""
    text = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(ConfigFileError) as caught:
        parse_config(text, "test.json")
    assert str(caught.value).splitlines() == [f"test.json: {p}" for p in caught.value.problems]
    return caught.value.problems


def only_problem(data: Any) -> str:
    problems = problems_of(data)
    assert len(problems) == 1, problems
    return problems[0]


# -- the sample and the defaults ---------------------------------------------------------


def test_sample_file_loads_and_holds_the_defaults() -> None:
    config = load_config(SAMPLE)
    assert config == ServerConfig()
    assert config.data_dir == Path("./colibri-data")


def test_sample_file_has_every_key() -> None:
    sample = json.loads(SAMPLE.read_text())
    for key, _, default, _ in config_keys():
        *sections, name = key.split(".")
        section = sample
        for part in sections:
            section = section[part]
        assert name in section, key
        if key != "data_dir":
            assert section[name] == default, key


def test_every_key_is_described_and_documented() -> None:
    doc = (ROOT / "docs" / "CONFIG.md").read_text()
    for key, _, _, description in config_keys():
        assert description, key
        assert f"| `{key}` |" in doc, key


def test_empty_object_is_the_default_configuration() -> None:
    assert parse_config("{}") == ServerConfig()


def test_defaults() -> None:
    config = ServerConfig()
    assert config.server.host == "127.0.0.1"
    assert (config.server.resp_port, config.server.http_port,
            config.server.flight_port) == (7379, 7380, 7381)
    assert config.server.flushdb_enabled is False
    assert config.logging.redact is True and config.logging.file is None
    assert config.security.password_hash is None and config.ssl_context() is None


def test_a_partial_file_keeps_the_other_defaults() -> None:
    config = parse_config('{"server": {"resp_port": 6379}, "storage": {"durability": "off"}}')
    assert config.server.resp_port == 6379 and config.server.http_port == 7380
    assert config.storage.durability == "off" and config.storage.page_size == 65536


def test_config_is_immutable() -> None:
    config = ServerConfig()
    with pytest.raises(ValueError):
        config.server.resp_port = 1  # type: ignore[misc]


# -- generate-config output ---------------------------------------------------------------


def test_commented_default_round_trips() -> None:
    text = commented_default_config()
    assert parse_config(text) == ServerConfig()
    comments = [line for line in text.splitlines() if line.lstrip().startswith("//")]
    assert len(comments) > len(config_keys())
    for key, _, _, _ in config_keys():
        assert f'"{key.split(".")[-1]}":' in text


def test_comment_lines_are_ignored_and_keep_error_lines() -> None:
    text = '// header\n{\n  // "server": 5,\n    // indented\n  "data_dir": "d",\n  "bad" 1\n}'
    assert only_problem(text).startswith("line 6, column 9: invalid JSON:")
    config = parse_config('{\n  // "server": {"resp_port": "x"}\n  "data_dir": "d"\n}')
    assert config.data_dir == Path("d")


def test_comments_after_values_are_not_comments() -> None:
    assert only_problem('{"data_dir": "d" // trailing\n}').startswith("line 1, column 18")


# -- refusals ---------------------------------------------------------------------------


def test_unknown_top_level_key() -> None:
    assert only_problem({"data_dri": "x"}) == "data_dri: unknown key (did you mean 'data_dir'?)"
    assert only_problem({"zzz": 1}) == "zzz: unknown key"


def test_unknown_nested_key() -> None:
    assert only_problem({"server": {"resp_prot": 1}}) == \
        "server.resp_prot: unknown key (did you mean 'resp_port'?)"
    assert only_problem({"logging": {"colour": True}}) == "logging.colour: unknown key"


@pytest.mark.parametrize(("data", "problem"), [
    ({"server": {"resp_port": "7379"}}, 'server.resp_port: must be an integer, got "7379"'),
    ({"server": {"resp_port": 7379.0}}, "server.resp_port: must be an integer, got 7379.0"),
    ({"server": {"max_connections": True}},
     "server.max_connections: must be an integer, got true"),
    ({"server": {"flushdb_enabled": 1}}, "server.flushdb_enabled: must be true or false, got 1"),
    ({"server": {"flushdb_enabled": "yes"}},
     'server.flushdb_enabled: must be true or false, got "yes"'),
    ({"server": {"host": 127}}, "server.host: must be a string, got 127"),
    ({"storage": {"wal_sync_interval_ms": "10"}},
     'storage.wal_sync_interval_ms: must be a number, got "10"'),
    ({"storage": {"wal_sync_interval_ms": False}},
     "storage.wal_sync_interval_ms: must be a number, got false"),
    ({"data_dir": 5}, "data_dir: must be a string (a path), got 5"),
    ({"data_dir": None}, "data_dir: must be a string (a path), got null"),
    ({"logging": {"file": 3}}, "logging.file: must be a string (a path), got 3"),
    ({"security": {"password_hash": 1}}, "security.password_hash: must be a string, got 1"),
    ({"server": 7379}, "server: must be an object, got 7379"),
    ({"limits": []}, "limits: must be an object, got []"),
    ([], "(top level): must be an object, got []"),
])
def test_wrong_types(data: Any, problem: str) -> None:
    assert only_problem(data) == problem


@pytest.mark.parametrize(("data", "problem"), [
    ({"server": {"resp_port": 70000}}, "server.resp_port: must be between 1 and 65535, got 70000"),
    ({"server": {"resp_port": 0}}, "server.resp_port: must be between 1 and 65535, got 0"),
    ({"server": {"http_port": -1}}, "server.http_port: must be between 1 and 65535, got -1"),
    ({"server": {"flight_port": 65536}},
     "server.flight_port: must be between 0 and 65535, got 65536"),
    ({"server": {"host": ""}}, "server.host: must not be empty"),
    ({"server": {"max_connections": 0}},
     "server.max_connections: must be between 1 and 1000000, got 0"),
    ({"server": {"idle_timeout_seconds": -1}},
     "server.idle_timeout_seconds: must be between 0 and 604800, got -1.0"),
    ({"storage": {"page_size": 5000}},
     "storage.page_size: must be a power of two from 4096 to 1048576, got 5000"),
    ({"storage": {"page_size": 2048}},
     "storage.page_size: must be a power of two from 4096 to 1048576, got 2048"),
    ({"storage": {"page_size": 1 << 21}},
     "storage.page_size: must be a power of two from 4096 to 1048576, got 2097152"),
    ({"storage": {"durability": "fast"}},
     'storage.durability: must be one of full, normal, off, got "fast"'),
    ({"storage": {"wal_sync_interval_ms": 0}},
     "storage.wal_sync_interval_ms: must be between 0.1 and 60000, got 0.0"),
    ({"storage": {"checkpoint_wal_bytes": 0}},
     "storage.checkpoint_wal_bytes: must be at least 1, got 0"),
    ({"storage": {"max_dirty_bytes": -5}}, "storage.max_dirty_bytes: must be at least 1, got -5"),
    ({"limits": {"max_key_bytes": 0}},
     "limits.max_key_bytes: must be between 1 and 1048576, got 0"),
    ({"logging": {"level": "verbose"}},
     'logging.level: must be one of debug, info, warning, error, critical, got "verbose"'),
    ({"logging": {"level": "INFO"}},
     'logging.level: must be one of debug, info, warning, error, critical, got "INFO"'),
    ({"logging": {"format": "xml"}}, 'logging.format: must be one of json, text, got "xml"'),
    ({"logging": {"rotate_keep": 0}}, "logging.rotate_keep: must be between 1 and 1000, got 0"),
    ({"logging": {"file": "/nonexistent-dir/server.log"}},
     'logging.file: directory "/nonexistent-dir" does not exist'),
    ({"security": {"auth_failure_delay_ms": -1}},
     "security.auth_failure_delay_ms: must be between 0 and 60000, got -1.0"),
    ({"server": {"max_request_bytes": 4096}},
     "server.max_request_bytes: must be at least limits.max_key_bytes + "
     "limits.max_value_bytes (16778240), or the largest value cannot be sent; got 4096"),
])
def test_impossible_values(data: Any, problem: str) -> None:
    assert only_problem(data) == problem


def test_not_a_number_is_refused() -> None:
    assert only_problem('{"storage": {"wal_sync_interval_ms": NaN}}') == \
        "storage.wal_sync_interval_ms: must be a finite number, got NaN"
    assert only_problem('{"server": {"idle_timeout_seconds": Infinity}}') == \
        "server.idle_timeout_seconds: must be a finite number, got Infinity"


def test_log_file_that_is_a_directory(tmp_path: Path) -> None:
    assert only_problem({"logging": {"file": str(tmp_path)}}) == \
        f'logging.file: "{tmp_path}" is a directory, not a file'


def test_small_request_limit_allowed_with_small_values() -> None:
    config = parse_config(json.dumps({"server": {"max_request_bytes": 4096},
                                      "limits": {"max_key_bytes": 96, "max_value_bytes": 4000}}))
    assert config.server.max_request_bytes == 4096


@pytest.mark.parametrize(("ports", "problems"), [
    ({"resp_port": 7000, "http_port": 7000},
     ["server.http_port: must differ from server.resp_port (both 7000)"]),
    ({"resp_port": 7000, "flight_port": 7000},
     ["server.flight_port: must differ from server.resp_port (both 7000)"]),
    ({"http_port": 7000, "flight_port": 7000},
     ["server.flight_port: must differ from server.http_port (both 7000)"]),
    ({"resp_port": 7000, "http_port": 7000, "flight_port": 7000},
     ["server.http_port: must differ from server.resp_port (both 7000)",
      "server.flight_port: must differ from server.resp_port (both 7000)",
      "server.flight_port: must differ from server.http_port (both 7000)"]),
])
def test_port_collisions(ports: dict[str, int], problems: list[str]) -> None:
    assert problems_of({"server": ports}) == problems


def test_flight_port_zero_turns_flight_off() -> None:
    assert parse_config('{"server": {"flight_port": 0}}').server.flight_port == 0


def test_duplicate_keys_are_refused() -> None:
    text = '{"server": {"resp_port": 1, "resp_port": 2}, "data_dir": "a", "data_dir": "b"}'
    assert problems_of(text) == [
        "data_dir: given more than once (only the last would count)",
        "server.resp_port: given more than once (only the last would count)",
    ]


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of({
        "bogus": 1,
        "server": {"resp_port": 70000, "http_port": "80", "resp_prot": 1},
        "storage": {"page_size": 5000, "durability": "fast"},
        "logging": {"level": 3},
        "security": {"password_hash": "nope"},
    })
    assert [p.split(":")[0] for p in problems] == [
        "server.resp_port", "server.http_port", "server.resp_prot", "storage.page_size",
        "storage.durability", "logging.level", "security.password_hash", "bogus"]


@pytest.mark.parametrize(("text", "where"), [
    ('{"server": {"resp_port": 1,}}', "line 1, column 28: invalid JSON:"),
    ('{\n  "server": {\n    "resp_port" 1\n  }\n}', "line 3, column 17: invalid JSON:"),
    ("", "line 1, column 1: invalid JSON:"),
    ('{"data_dir": "x"', "line 1, column 17: invalid JSON:"),
    ("{'data_dir': 'x'}", "line 1, column 2: invalid JSON:"),
])
def test_json_syntax_error_gives_line_and_column(text: str, where: str) -> None:
    assert only_problem(text).startswith(where)


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "server.json"
    path.write_text('{"server": {"resp_port": 70000}}')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == \
        f"{path}: server.resp_port: must be between 1 and 65535, got 70000"


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_config(tmp_path / "absent.json")
    assert str(caught.value) == f"{tmp_path / 'absent.json'}: no such file"
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_config(tmp_path)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b'{"data_dir": "\xff"}')
    with pytest.raises(ConfigFileError, match=r"not UTF-8 text \(byte 14\)"):
        load_config(binary)


# -- security ---------------------------------------------------------------------------


def test_password_hash_is_checked() -> None:
    encoded = hash_password("pw", iterations=MIN_ITERATIONS)
    config = parse_config(json.dumps({"security": {"password_hash": encoded}}))
    assert config.security.password_hash == encoded
    assert only_problem({"security": {"password_hash": "sha1$1$2$3"}}) == \
        "security.password_hash: password hash scheme must be 'pbkdf2-sha256'; got 'sha1'"


def test_tls_half_configured(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    assert only_problem({"security": {"tls_cert": str(cert)}}) == \
        "security.tls_key: must be set when security.tls_cert is (both or neither)"
    assert only_problem({"security": {"tls_key": str(cert)}}) == \
        "security.tls_cert: must be set when security.tls_key is (both or neither)"


def test_tls_files_must_exist(tmp_path: Path) -> None:
    assert problems_of({"security": {"tls_cert": str(tmp_path / "c.pem"),
                                     "tls_key": str(tmp_path / "k.pem")}}) == [
        f'security.tls_cert: no such file: "{tmp_path / "c.pem"}"',
        f'security.tls_key: no such file: "{tmp_path / "k.pem"}"',
    ]


def test_tls_files_must_hold_a_certificate_and_key(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("not a certificate")
    key.write_text("not a key")
    problem = only_problem({"security": {"tls_cert": str(cert), "tls_key": str(key)}})
    assert problem.startswith("security.tls_cert: cannot load the certificate with "
                              "security.tls_key: ")


def test_tls_context(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    config = parse_config(json.dumps({"security": {"tls_cert": str(cert),
                                                   "tls_key": str(key)}}))
    context = config.ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    key.write_text("gone bad")
    with pytest.raises(ConfigError, match=r"security\.tls_cert: cannot load"):
        config.ssl_context()


# -- engine options and overrides --------------------------------------------------------


def test_engine_options() -> None:
    config = parse_config(json.dumps({
        "limits": {"max_key_bytes": 100, "max_value_bytes": 2000},
        "storage": {"page_size": 4096, "durability": "normal", "wal_sync_interval_ms": 5,
                    "checkpoint_wal_bytes": 1 << 20, "max_dirty_bytes": 1 << 21},
        "server": {"readonly": True}}))
    assert config.engine_options() == Options(
        durability="normal", page_size=4096, wal_sync_interval_ms=5.0,
        checkpoint_wal_bytes=1 << 20, max_dirty_bytes=1 << 21, max_key_size=100,
        max_value_size=2000, readonly=True)
    assert config.engine_options(readonly=False).readonly is False


def test_default_engine_options_match_the_engine_defaults() -> None:
    assert ServerConfig().engine_options() == Options()


def test_overrides_replace_keys_and_keep_the_rest(tmp_path: Path) -> None:
    config = parse_config('{"server": {"keys_limit": 10}}')
    changed = apply_overrides(config, data_dir=str(tmp_path), host="0.0.0.0", resp_port=6379,
                              http_port=8080, flight_port=0, durability="off", readonly=True,
                              log_file=tmp_path / "server.log")
    assert changed.data_dir == tmp_path
    assert (changed.server.host, changed.server.resp_port, changed.server.http_port,
            changed.server.flight_port) == ("0.0.0.0", 6379, 8080, 0)
    assert changed.storage.durability == "off" and changed.server.readonly is True
    assert changed.logging.file == tmp_path / "server.log"
    assert changed.server.keys_limit == 10
    assert config.server.resp_port == 7379  # the original is unchanged
    assert apply_overrides(config) == config


def test_overrides_are_validated() -> None:
    with pytest.raises(ConfigFileError) as caught:
        apply_overrides(ServerConfig(), resp_port=70000, http_port=7381, durability="fast")
    assert caught.value.problems == [
        "server.resp_port: must be between 1 and 65535, got 70000",
        "storage.durability: must be one of full, normal, off, got \"fast\"",
    ]
    assert str(caught.value).startswith("command-line options: ")
    with pytest.raises(ConfigFileError, match=r"server\.flight_port: must differ from "
                                              r"server\.http_port"):
        apply_overrides(ServerConfig(), flight_port=7380)
