"""Shared fixtures: a migrated database per backend (SQLite and a fresh PostgreSQL database per
run), apps bound to it, HTTP clients, and users of each role.

Database-touching tests take the ``db_url`` fixture (directly or through ``app``/``client``) and
so run twice: on SQLite and on PostgreSQL. PostgreSQL and Redis are required: an unreachable
server fails the run, it is never skipped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from quantdesk.api import create_app
from quantdesk.auth import users as users_service
from quantdesk.auth.roles import Role
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.db.migrate import upgrade
from quantdesk.observability.audit import Actor
from quantdesk.observability.logging import configure_logging
from quantdesk.settings import Settings

PG_ADMIN_DSN = os.environ.get(
    "QUANTDESK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("QUANTDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
JWT_SECRET = "test-secret-" + "x" * 40
TEST_PASSWORD = "correct-horse-battery-9"


def pytest_configure(config: pytest.Config) -> None:
    # JSON logs at WARNING: failures show what went wrong without every request line.
    configure_logging("WARNING", json=True)


def _pg_url(dsn: str, database: str) -> str:
    base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


def _in_thread(fn: Callable[[], object]) -> object:
    """Run blocking set-up (which may start its own event loop) off the test loop's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn).result()


async def _admin_execute(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, migrated to head, dropped afterwards."""
    name = f"qd_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        _in_thread(lambda: asyncio.run(_admin_execute(f'CREATE DATABASE "{name}"')))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is required at {PG_ADMIN_DSN}: {exc}", pytrace=False)
    url = _pg_url(PG_ADMIN_DSN, name)
    _in_thread(lambda: upgrade(url))
    yield url
    _in_thread(
        lambda: asyncio.run(_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    )


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "quantdesk.db"
    url = f"sqlite+aiosqlite:///{path}"
    _in_thread(lambda: upgrade(url))
    return url


@pytest.fixture(
    scope="session",
    params=[pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)],
)
def db_url(request: pytest.FixtureRequest) -> str:
    """The migrated database of one backend; tests using it run once per backend."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database"))
    return str(request.getfixturevalue("sqlite_database"))


@pytest.fixture
def backend(db_url: str) -> str:
    return "postgres" if db_url.startswith("postgresql") else "sqlite"


def make_settings(db_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": db_url,
        "data_dir": data_dir,
        "jwt_secret": JWT_SECRET,
        "bcrypt_rounds": 4,
        "auto_migrate": False,
        "feed": "none",
        "log_json": True,
        "ui_dir": data_dir / "no-ui",
        # Tests run the risk monitor's checks themselves (RiskControl.evaluate).
        "risk_monitor_seconds": 300,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, tmp_path)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


def client_for(application: FastAPI, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=application, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as c:
        yield c


@dataclass
class AuthedUser:
    id: int
    username: str
    password: str
    role: Role
    access_token: str = ""
    refresh_token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


UserFactory = Callable[..., Awaitable[AuthedUser]]


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def make_user(settings: Settings, client: httpx.AsyncClient) -> UserFactory:
    """Create a user directly in the database and (by default) log it in through the API."""

    async def factory(
        role: Role = Role.TRADER, *, login: bool = True, name: str | None = None
    ) -> AuthedUser:
        username = name or unique_name(role.value)
        engine = create_engine(settings.resolved_database_url)
        try:
            async with create_sessionmaker(engine)() as db:
                user = await users_service.create_user(
                    db,
                    Actor(None, "test", None, None),
                    username=username,
                    password=TEST_PASSWORD,
                    role=role,
                    bcrypt_rounds=4,
                )
        finally:
            await engine.dispose()
        tu = AuthedUser(user.id, username, TEST_PASSWORD, role)
        if login:
            r = await client.post(
                "/api/v1/auth/login", json={"username": username, "password": TEST_PASSWORD}
            )
            assert r.status_code == 200, r.text
            tu.access_token = r.json()["access_token"]
            tu.refresh_token = r.json()["refresh_token"]
        return tu

    return factory


@pytest.fixture
async def admin(make_user: UserFactory) -> AuthedUser:
    return await make_user(Role.ADMIN)


@pytest.fixture
async def trader(make_user: UserFactory) -> AuthedUser:
    return await make_user(Role.TRADER)


@pytest.fixture
async def viewer(make_user: UserFactory) -> AuthedUser:
    return await make_user(Role.VIEWER)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis, or the run fails."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {REDIS_URL}: {exc}", pytrace=False)
    return REDIS_URL


@pytest.fixture
def redis_prefix() -> str:
    return f"qdtest:{uuid.uuid4().hex[:8]}:"


async def gather(*aws: Awaitable[object]) -> list[object]:
    return list(await asyncio.gather(*aws))
