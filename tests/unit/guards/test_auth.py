"""Keys are stored hashed, counted in a token bucket, and come from the file or the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from router.cli.main import main
from router.config import API_KEYS_ENV, default_config_path, load_settings
from router.errors import ConfigError
from router.guards.auth import TokenBucket, check_bind, hash_key, is_loopback


def entry(name: str, key: str, scopes: list[str], rate: int | None = None) -> dict:
    out: dict = {"name": name, "sha256": hash_key(key), "scopes": scopes}
    if rate is not None:
        out["rate_per_minute"] = rate
    return out


def test_token_bucket_bursts_then_refills_per_minute() -> None:
    bucket = TokenBucket(60, now=0.0)
    assert all(bucket.take(0.0) == 0.0 for _ in range(60))
    assert bucket.take(0.0) == pytest.approx(1.0)  # one token a second
    assert bucket.take(0.5) == pytest.approx(0.5)
    assert bucket.take(1.0) == 0.0
    assert bucket.take(1000.0) == 0.0 and bucket.tokens == 59.0  # never above the burst


def test_keys_from_the_environment_add_to_the_file(tmp_path: Path) -> None:
    raw = yaml.safe_load(default_config_path().read_text())
    raw["auth"] = {"keys": [entry("file", "k1", ["admin"])]}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {API_KEYS_ENV: json.dumps([entry("env", "k2", ["route"], rate=5)])}
    keys = load_settings(path, environ=env).auth.keys
    assert [(k.name, k.scopes, k.rate_per_minute) for k in keys] == [
        ("file", ["admin"], None), ("env", ["route"], 5)]
    assert load_settings(path, environ={}).auth.keys[0].sha256 == hash_key("k1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"name": "x"}', "must be a JSON list"),
        ('[{"name": "x", "sha256": "abc", "scopes": ["route"]}]', "auth.keys.0.sha256"),
        (json.dumps([{"name": "x", "sha256": "a" * 64, "scopes": ["root"]}]), "scopes"),
        (json.dumps([entry("x", "k", ["route"]), entry("x", "j", ["route"])]), "unique"),
    ],
)
def test_bad_key_entries_are_refused(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(None, environ={API_KEYS_ENV: value})


def test_open_service_binds_to_loopback_only() -> None:
    open_settings = load_settings(None, environ={})
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host)
        check_bind(open_settings, host)
    for host in ("0.0.0.0", "192.168.1.4", "::", "example.org"):
        with pytest.raises(ConfigError, match="no API keys are configured"):
            check_bind(open_settings, host)
    keyed = load_settings(None, environ={API_KEYS_ENV: json.dumps([entry("a", "k", ["route"])])})
    check_bind(keyed, "0.0.0.0")


def test_hash_key_cli_reads_stdin(monkeypatch, capsys) -> None:
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("my-secret\n"))
    assert main(["hash-key", "--name", "ci", "--scope", "route", "--scope", "feedback",
                 "--rate-per-minute", "60"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == [{"name": "ci", "sha256": hash_key("my-secret"),
                        "scopes": ["route", "feedback"], "rate_per_minute": 60}]
    assert "my-secret" not in json.dumps(printed)


def test_hash_key_cli_generates_a_key(capsys) -> None:
    assert main(["hash-key", "--generate"]) == 0
    out = capsys.readouterr().out
    key = next(line[2:] for line in out.splitlines() if line.startswith("# trk_"))
    assert yaml.safe_load(out)[0]["sha256"] == hash_key(key)


def test_serve_refuses_a_public_address_without_keys(monkeypatch, caplog) -> None:
    calls: list = []
    monkeypatch.setattr("router.serving.logs.configure_logging", lambda *a, **k: None)
    monkeypatch.setattr("router.serving.logs.progress_bars_only_on_a_terminal", lambda: True)
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: calls.append(k))
    monkeypatch.delenv(API_KEYS_ENV, raising=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert calls == [] and "refusing to start" in caplog.text
    assert main(["serve", "--host", "127.0.0.1", "--port", "0"]) == 0
    assert "the service is open, so it binds to loopback (127.0.0.1) only" in caplog.text
    monkeypatch.setenv(API_KEYS_ENV, json.dumps([entry("a", "k", ["route"])]))
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 0
    assert calls[1]["host"] == "0.0.0.0"


def test_stray_environment_variables_change_nothing(monkeypatch) -> None:
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("AUTH", json.dumps({"keys": [entry("sneaky", "k", ["admin"])]}))
    settings = load_settings(None, environ={})
    assert settings.port == 8000 and settings.auth.keys == []
