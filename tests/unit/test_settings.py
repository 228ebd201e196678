"""Settings precedence (defaults < env < flags) and validation messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from backend.main import build_parser, main, settings_from_args
from backend.server import ready_line
from backend.settings import Settings


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_ENGINE_PORT", "8123")
    monkeypatch.setenv("PEFT_ENGINE_LOG_LEVEL", "debug")
    settings = settings_from_args(build_parser().parse_args(["--port", "9000"]))
    assert settings.port == 9000
    assert settings.log_level == "debug"


def test_defaults_generate_a_token_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PEFT_ENGINE_TOKEN", raising=False)
    first, second = Settings(), Settings()
    assert first.token != second.token and len(first.token) >= 32
    assert first.host == "127.0.0.1" and first.port == 0


def test_cors_allowlist_from_env_and_no_wildcard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEFT_ENGINE_CORS_ORIGINS", "http://localhost:5173, app://peft-studio")
    assert Settings().cors_origins == ("http://localhost:5173", "app://peft-studio")
    monkeypatch.setenv("PEFT_ENGINE_CORS_ORIGINS", "*")
    with pytest.raises(ValidationError, match="wildcard"):
        Settings()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("port", 70000, "less than or equal to 65535"),
    ("token", "short", "at least 16"),
    ("log_level", "loud", "'debug', 'info', 'warning' or 'error'"),
    ("unknown_option", 1, "Extra inputs"),
])
def test_invalid_settings_name_the_problem(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})


def test_non_loopback_host_needs_explicit_opt_in() -> None:
    with pytest.raises(ValueError, match="PEFT_ENGINE_ALLOW_REMOTE"):
        Settings(host="0.0.0.0").check_host()
    Settings(host="0.0.0.0", allow_remote=True).check_host()
    Settings(host="[::1]").check_host()


def test_main_exits_2_on_invalid_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "99999"]) == 2
    assert "invalid settings" in capsys.readouterr().err


def test_ready_line_is_one_json_object() -> None:
    import json

    line = ready_line(port=1234, version="9.9", mode="source", token="t" * 20)
    assert "\n" not in line
    data = json.loads(line)
    assert data["event"] == "ready" and data["port"] == 1234 and {"pid", "version", "mode", "token"} <= data.keys()
