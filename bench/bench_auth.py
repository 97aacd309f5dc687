"""Login and authenticated-request latency, against references measured in the same process.

    python bench/bench_auth.py [--backend sqlite|postgres] [--rounds 12] [-n 50]

References: one raw ``bcrypt.checkpw`` at the same cost (what a login cannot go below), and
``GET /healthz`` through the same stack (what an authenticated request adds to).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import bcrypt
import httpx

from quantdesk.api import create_app
from quantdesk.auth import users
from quantdesk.auth.roles import Role
from quantdesk.db.engine import create_engine, create_sessionmaker
from quantdesk.db.migrate import upgrade
from quantdesk.observability.audit import Actor
from quantdesk.observability.logging import configure_logging
from quantdesk.settings import Settings

PASSWORD = "timing-password-123"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def fmt(name: str, ms: list[float]) -> str:
    return (
        f"{name:<34} p50 {statistics.median(ms):8.2f} ms   p99 {pct(ms, 99):8.2f} ms   n={len(ms)}"
    )


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def make_db(backend: str, tmp: Path) -> str:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
    else:
        name = f"qd_bench_{int(time.time())}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    upgrade(url)
    return url


async def run(url: str, rounds: int, n: int, tmp: Path) -> None:
    settings = Settings(
        database_url=url, data_dir=tmp, jwt_secret="b" * 48, bcrypt_rounds=rounds, feed="none"
    )
    engine = create_engine(url)
    async with create_sessionmaker(engine)() as db:
        await users.create_user(
            db,
            Actor(None, "bench", None, None),
            username="bench",
            password=PASSWORD,
            role=Role.TRADER,
            bcrypt_rounds=rounds,
        )
    await engine.dispose()

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds))
    raw = []
    for _ in range(max(5, n // 5)):
        t = time.perf_counter()
        bcrypt.checkpw(PASSWORD.encode(), hashed)
        raw.append((time.perf_counter() - t) * 1000)

    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as c:
            login, health, me = [], [], []
            token = ""
            for _ in range(n):
                t = time.perf_counter()
                r = await c.post(
                    "/api/v1/auth/login", json={"username": "bench", "password": PASSWORD}
                )
                login.append((time.perf_counter() - t) * 1000)
                token = r.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            for _ in range(n * 10):
                t = time.perf_counter()
                await c.get("/healthz")
                health.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                await c.get("/api/v1/auth/me", headers=headers)
                me.append((time.perf_counter() - t) * 1000)
    print(fmt(f"bcrypt.checkpw (rounds={rounds})", raw))
    print(fmt("POST /auth/login", login))
    print(fmt("GET /healthz (reference)", health))
    print(fmt("GET /auth/me (token + user + session)", me))
    print(
        f"login / raw bcrypt: {statistics.median(login) / statistics.median(raw):.2f}x;  "
        f"me / healthz: {statistics.median(me) / statistics.median(health):.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("-n", type=int, default=30)
    args = ap.parse_args()
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory() as d:
        url = make_db(args.backend, Path(d))
        print(f"backend={args.backend} url={url.split('@')[-1]}")
        try:
            asyncio.run(run(url, args.rounds, args.n, Path(d)))
        finally:
            if args.backend == "postgres":
                name = url.rsplit("/", 1)[1]
                asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
