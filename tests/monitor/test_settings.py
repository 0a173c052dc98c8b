"""Settings come from the environment and a TOML file, validated at start-up."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from monitor.cli import app
from monitor.settings import NOT_SETTINGS, Settings, load_settings


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


def test_unknown_environment_variable_is_refused_with_the_close_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDEWATCH_SMTP_PASSWRD", "hunter2")
    with pytest.raises(ValidationError) as info:
        load_settings()
    message = str(info.value)
    assert "unknown setting TIDEWATCH_SMTP_PASSWRD (did you mean TIDEWATCH_SMTP_PASSWORD?)" in (
        message
    )
    assert "hunter2" not in message  # the value may be a secret
    with pytest.raises(ValidationError, match="TIDEWATCH_SMTP_PASSWRD"):
        Settings()  # built directly, as the app's callers do, it is refused too


def test_unknown_variable_without_a_close_match_and_in_lower_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDEWATCH_ZEBRA_CROSSING", "1")
    monkeypatch.setenv("tidewatch_prot", "9000")  # pydantic-settings reads any case
    with pytest.raises(ValidationError) as info:
        load_settings()
    message = str(info.value)
    assert "unknown setting TIDEWATCH_ZEBRA_CROSSING [type=unknown_setting]" in message
    assert "unknown setting tidewatch_prot (did you mean TIDEWATCH_PORT?)" in message
    assert info.value.error_count() == 2


@pytest.mark.parametrize("name", sorted(NOT_SETTINGS))
def test_variables_read_elsewhere_are_allowed(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert name.removeprefix("TIDEWATCH_").lower() not in Settings.model_fields
    if name == "TIDEWATCH_CONFIG":
        monkeypatch.delenv(name, raising=False)  # a value would name a TOML file to read
    else:
        monkeypatch.setenv(name, "x")
    assert load_settings().port == 8000


def test_a_correct_variable_still_sets_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEWATCH_SMTP_PASSWORD", "s3cret")
    monkeypatch.setenv("TIDEWATCH_SPOOL_DIR", "/tmp/spool")  # read by collectors, not a setting
    assert load_settings().smtp_password == "s3cret"


# how the code reads a TIDEWATCH_* variable outside Settings: os.environ, typer's envvar=, or
# compose's ${NAME} interpolation
READ_ELSEWHERE = re.compile(
    r"""(?:environ(?:\.get\(|\[)\s*["']|envvar=["']|\$\{)(TIDEWATCH_[A-Z0-9_]+)"""
)


def test_every_variable_the_code_reads_is_a_setting_or_allowed() -> None:
    """A variable newly read with os.environ elsewhere would stop the service's start: it must
    join NOT_SETTINGS."""
    root = Path(__file__).resolve().parents[2]
    folders = ["monitor", "collectors", "alerts", "dashboards", "benchmarks", "tests", "deploy"]
    found: set[str] = set()
    for folder in folders:
        for path in (root / folder).rglob("*"):
            if path.suffix in (".py", ".yaml", ".yml") and path.is_file():
                found.update(READ_ELSEWHERE.findall(path.read_text(encoding="utf-8")))
    assert {"TIDEWATCH_URL", "TIDEWATCH_SPOOL_DIR", "TIDEWATCH_TEST_PG"} <= found  # it looks
    fields = {f"TIDEWATCH_{name.upper()}" for name in Settings.model_fields}
    assert found - fields - NOT_SETTINGS == set()


def test_cli_reports_an_unknown_variable_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "tidewatch.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "t.db"}"\n')
    result = CliRunner().invoke(
        app, ["status", "-c", str(config)], env={"TIDEWATCH_SMTP_PASSWRD": "x"}
    )
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())  # rich wraps long lines at the terminal's width
    assert "invalid settings" in output
    assert "unknown setting TIDEWATCH_SMTP_PASSWRD (did you mean TIDEWATCH_SMTP_PASSWORD?)" in (
        output
    )
    assert not (tmp_path / "t.db").exists()  # refused before touching the database
    ok = CliRunner().invoke(
        app, ["db", "upgrade", "-c", str(config)], env={"TIDEWATCH_SMTP_PASSWORD": "x"}
    )
    assert ok.exit_code == 0, ok.output


def test_settings_refuse_an_unusable_oidc_provider() -> None:
    good = {"oidc_client_id": "c", "oidc_client_secret": "s"}
    with pytest.raises(ValidationError, match="https"):
        Settings(oidc_issuer="http://id.example.org", **good)
    with pytest.raises(ValidationError, match="oidc_client_id and oidc_client_secret"):
        Settings(oidc_issuer="https://id.example.org", oidc_client_id="c")
    with pytest.raises(ValidationError, match="openid"):
        Settings(oidc_issuer="https://id.example.org", oidc_scopes="email", **good)
    fine = Settings(oidc_issuer="https://id.example.org", **good)
    assert fine.oidc_allowed_email_domains == [] and fine.oidc_allowed_groups == []


def test_oidc_rule_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEWATCH_OIDC_ALLOWED_EMAIL_DOMAINS", "Example.org, @ocean.example")
    monkeypatch.setenv("TIDEWATCH_OIDC_ALLOWED_GROUPS", '["plankton", "coral reef"]')
    settings = Settings()
    assert settings.oidc_allowed_email_domains == ["example.org", "ocean.example"]
    assert settings.oidc_allowed_groups == ["plankton", "coral reef"]
