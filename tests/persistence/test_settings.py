"""Wrong configuration stops start-up with a sentence that says what to set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from persistence.settings import ConfigurationError, Settings, load_settings, usable_cores


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for key in list(os.environ):
        if key.startswith(("AITASKS_", "OPENAI_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(str(tmp_path))  # no stray .env file


def test_defaults_run_offline_on_the_demo_model() -> None:
    settings = load_settings()

    assert settings.effective_default_model == "demo"
    assert settings.prompt_max_chars == 32_000
    assert settings.allowed_models == {"demo"}


def test_the_standard_openai_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AITASKS_MODELS", "a, b")

    settings = load_settings()

    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-x"
    assert settings.openai_base_url == "http://127.0.0.1:9/v1"
    assert settings.effective_default_model == "gpt-4o-mini"
    assert settings.allowed_models == {"a", "b", "demo", "gpt-4o-mini"}


@pytest.mark.parametrize(
    ("variable", "value", "sentence"),
    [
        ("AITASKS_DATABASE_URL", "mysql://db/x", "must be a PostgreSQL URL"),
        ("AITASKS_REDIS_URL", "memcached://x", "must be a Redis URL"),
        ("AITASKS_PROMPT_MAX_CHARS", "-1", "AITASKS_PROMPT_MAX_CHARS: Input should be greater"),
        ("AITASKS_PORT", "http", "AITASKS_PORT"),
        ("AITASKS_DEFAULT_MODEL", "gpt-4o", "set OPENAI_API_KEY"),
        ("AITASKS_VISIBILITY_TIMEOUT_SECONDS", "10", "must be larger than"),
    ],
)
def test_a_wrong_setting_is_refused_with_what_to_set(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, sentence: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError, match=sentence):
        load_settings()


def test_the_api_refuses_to_start_without_a_database_and_says_what_to_set() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "graphql_app.cli", "api"],
        capture_output=True,
        text=True,
        timeout=60,
        env={key: value for key, value in os.environ.items() if not key.startswith("AITASKS_")},
    )

    assert result.returncode != 0
    assert "AITASKS_DATABASE_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "sentence"),
    [
        ("AITASKS_DATABASE_URL", "postgresql://app@db:5432/aitasks", "has no password"),
        ("AITASKS_DATABASE_URL", "postgresql://app:postgres@db/aitasks", "well-known password"),
        ("AITASKS_REDIS_URL", "redis://redis:6379/0", "AITASKS_REDIS_URL has no password"),
        ("AITASKS_REDIS_URL", "redis://:changeme@redis:6379/0", "well-known password"),
        ("AITASKS_AUTH", "off", "allowed only in development"),
    ],
)
def test_production_refuses_a_missing_or_default_secret(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, sentence: str
) -> None:
    monkeypatch.setenv("AITASKS_ENV", "production")
    monkeypatch.setenv("AITASKS_DATABASE_URL", "postgresql://app:Xk2-9fQ@db/aitasks")
    monkeypatch.setenv("AITASKS_REDIS_URL", "redis://:Xk2-9fQ@redis:6379/0")
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigurationError, match=sentence):
        load_settings()


def test_production_accepts_real_passwords_and_local_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AITASKS_ENV", "production")
    monkeypatch.setenv("AITASKS_DATABASE_URL", "postgresql:///aitasks?host=/run/postgresql")
    monkeypatch.setenv("AITASKS_REDIS_URL", "redis://:Xk2-9fQ@redis:6379/0")

    settings = load_settings()

    assert settings.introspection_enabled is False and settings.graphiql_enabled is False


def test_api_workers_default_to_one_in_development_and_one_per_core_in_production() -> None:
    development = Settings(_env_file=None, env="development")  # type: ignore[call-arg]
    production = Settings(_env_file=None, env="production")  # type: ignore[call-arg]
    chosen = Settings(_env_file=None, env="production", api_workers=3)  # type: ignore[call-arg]

    assert development.effective_api_workers == 1
    assert production.effective_api_workers == usable_cores() >= 1
    assert chosen.effective_api_workers == 3


def test_every_setting_is_documented_in_the_configuration_table() -> None:
    table = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()

    missing = [name for name in Settings.model_fields if f"`AITASKS_{name.upper()}`" not in table]

    assert not missing, f"add to docs/configuration.md: {missing}"
