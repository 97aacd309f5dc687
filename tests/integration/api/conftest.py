"""Fixtures for the API safety tests: one app per backend and module, tokens minted straight
into the database (so a test never depends on the login endpoint or its throttle), and row
counters for "nothing was written" checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from apisafety import Minter
from fastapi import FastAPI

from quantdesk.api import create_app
from quantdesk.api.state import AppState
from quantdesk.settings import Settings

ROOT_CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"


@pytest.fixture(scope="session")
def root_conftest(pytestconfig: pytest.Config) -> ModuleType:
    """tests/conftest.py as a module, for its plain helpers (make_settings, client_for, ...).

    ``import conftest`` is ambiguous with several conftest.py files on sys.path."""
    plugin = pytestconfig.pluginmanager.get_plugin(str(ROOT_CONFTEST))
    assert plugin is not None, f"{ROOT_CONFTEST} is not loaded"
    return plugin  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def make_settings_fn(root_conftest: ModuleType) -> Callable[..., Settings]:
    return root_conftest.make_settings  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def client_for_fn(root_conftest: ModuleType) -> Callable[..., httpx.AsyncClient]:
    return root_conftest.client_for  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def test_password(root_conftest: ModuleType) -> str:
    return str(root_conftest.TEST_PASSWORD)


@pytest.fixture(scope="module")
async def module_settings(
    db_url: str, tmp_path_factory: pytest.TempPathFactory, make_settings_fn: Callable[..., Settings]
) -> Settings:
    return make_settings_fn(db_url, tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
async def module_app(module_settings: Settings) -> AsyncIterator[FastAPI]:
    """One started app per backend for the whole module (a fresh app per test would cost an
    engine and a connection pool each time)."""
    application = create_app(module_settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="module")
async def module_client(
    module_app: FastAPI, client_for_fn: Callable[..., httpx.AsyncClient]
) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for_fn(module_app) as c:
        yield c


def app_state(application: FastAPI) -> AppState:
    state: AppState = application.state.qd
    return state


@pytest.fixture(scope="module")
def minter(module_app: FastAPI) -> Minter:
    state = app_state(module_app)
    return Minter(state.sessionmaker, state.settings)
