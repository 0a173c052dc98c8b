"""Settings come from the environment and a TOML file, validated at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.settings import Settings, load_settings


def test_defaults() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite:///./tidewatch.db"
    assert settings.device == "auto"


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "tidewatch.toml"
    config.write_text('database_url = "postgresql://db/tw"\nport = 9000\nretention_days = 7\n')
    monkeypatch.setenv("TIDEWATCH_PORT", "9100")
    settings = load_settings(config)
    assert settings.database_url == "postgresql://db/tw"
    assert settings.port == 9100
    assert settings.retention_days == 7
    assert settings.config_file == config


def test_config_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text("max_batch_records = 42\n")
    monkeypatch.setenv("TIDEWATCH_CONFIG", str(config))
    assert load_settings().max_batch_records == 42


@pytest.mark.parametrize(
    "content",
    [
        'database_url = "mysql://x"',
        'device = "tpu"',
        "port = -1",
        "unknown_setting = 1",
        "retention_days = 0",
    ],
)
def test_invalid_settings_are_refused(tmp_path: Path, content: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content + "\n")
    with pytest.raises(ValidationError):
        load_settings(config)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "nope.toml")


def test_alert_channel_settings_that_cannot_work_are_refused() -> None:
    import pytest
    from pydantic import ValidationError

    from monitor.settings import Settings

    with pytest.raises(ValidationError, match="webhook_secret"):
        Settings(webhook_url="http://retrain.example.org/hook")
    with pytest.raises(ValidationError, match="not both"):
        Settings(smtp_host="mail", smtp_ssl=True, smtp_starttls=True)
    assert Settings(webhook_url="http://x/hook", webhook_secret="s").webhook_secret == "s"
