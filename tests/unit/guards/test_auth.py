"""Keys are stored hashed, limited per sliding minute, and come from the file or the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from router.cli.main import main
from router.config import API_KEYS_ENV, ApiKeyConfig, default_config_path, load_settings
from router.errors import ConfigError, RateLimited
from router.guards.auth import KeyRing, check_bind, hash_key, is_loopback


def entry(name: str, key: str, scopes: list[str], rate: int | None = None) -> dict:
    out: dict = {"name": name, "sha256": hash_key(key), "scopes": scopes}
    if rate is not None:
        out["rate_per_minute"] = rate
    return out


def test_at_most_the_rate_in_any_60_seconds_where_a_token_bucket_let_twice_through() -> None:
    now = [0.0]
    ring = KeyRing(clock=lambda: now[0])
    keys = [ApiKeyConfig.model_validate(entry("k", "secret", ["route"], rate=60))]
    let_through = []
    for step in range(240):  # a full burst at once, then one call every 0.5 s for two minutes
        now[0] = 0.0 if step < 120 else (step - 119) * 0.5
        try:
            ring.authenticate(keys, "secret", "route")
            let_through.append(now[0])
        except RateLimited as exc:
            assert exc.retry_after >= 1
    # a bucket of 60 refilling 1/s let 60 + 59 through in [0, 59.5]; the window lets 60
    for start in let_through:
        assert sum(1 for t in let_through if start <= t < start + 60) <= 60
    assert len([t for t in let_through if t < 60]) == 60
    assert len(let_through) == 61  # the first burst, and at t=60 the window has room again


def test_a_refused_call_is_told_when_the_oldest_call_leaves_the_window() -> None:
    now = [100.0]
    ring = KeyRing(clock=lambda: now[0])
    keys = [ApiKeyConfig.model_validate(entry("k", "secret", ["route"], rate=2))]
    ring.authenticate(keys, "secret", "route")
    now[0] = 110.0
    ring.authenticate(keys, "secret", "route")
    now[0] = 120.0
    with pytest.raises(RateLimited, match=r"limit of 2 requests per minute") as err:
        ring.authenticate(keys, "secret", "route")
    assert err.value.retry_after == 40  # the call at 100 leaves the window at 160
    now[0] = 160.0
    ring.authenticate(keys, "secret", "route")


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
