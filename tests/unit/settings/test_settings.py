"""Settings: the embedded default makes its own JWT secret once; production must be given one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from quantdesk.api import create_app
from quantdesk.settings import ConfigError, Settings


def test_embedded_default_uses_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path}/quantdesk.db"
    assert s.is_sqlite


def test_embedded_secret_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).jwt_key
    second = Settings(data_dir=tmp_path).jwt_key
    assert first == second and len(first) >= 48
    mode = stat.S_IMODE((tmp_path / "jwt_secret").stat().st_mode)
    assert mode == 0o600


def test_production_database_without_jwt_secret_refuses_to_start(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, database_url="postgresql+asyncpg://u@db/quantdesk")
    with pytest.raises(ConfigError, match="QUANTDESK_JWT_SECRET"):
        _ = s.jwt_key
    with pytest.raises(ConfigError):
        create_app(s)
    assert not (tmp_path / "jwt_secret").exists()


def test_short_jwt_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="32"):
        _ = Settings(data_dir=tmp_path, jwt_secret="short").jwt_key


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QUANTDESK_ACCESS_TOKEN_TTL_SECONDS", "120")
    monkeypatch.setenv("QUANTDESK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QUANTDESK_FEED", "none")
    s = Settings()
    assert s.access_token_ttl_seconds == 120
    assert s.data_dir == tmp_path


def test_secret_is_not_shown_in_the_settings_repr(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, jwt_secret="y" * 40)
    assert "y" * 40 not in repr(s)
