"""Fail loudly, before pytest starts, when the PostgreSQL or Redis used by the tests is down.

The suite runs its postgres/redis tests on real servers and never skips them, so a missing
server must stop the run here with a message that says what to start, not as a pile of
fixture errors later. URLs: QUANTDESK_TEST_PG_URL and QUANTDESK_TEST_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import redis.asyncio as aioredis

PG_URL = os.environ.get("QUANTDESK_TEST_PG_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = os.environ.get("QUANTDESK_TEST_REDIS_URL") or "redis://127.0.0.1:6379/0"


def _redact(url: str) -> str:
    # Never print a password that may sit in the URL.
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at:
        return url
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in creds else url


async def check_pg() -> str | None:
    # SQLAlchemy spelling (postgresql+asyncpg://) -> what asyncpg itself accepts.
    dsn = PG_URL.replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn), timeout=5)
    except Exception as exc:
        return f"PostgreSQL at {_redact(PG_URL)}: {type(exc).__name__}: {exc}"
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
    return None


async def check_redis() -> str | None:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=5, socket_timeout=5)
    try:
        await client.ping()
    except Exception as exc:
        return f"Redis at {_redact(REDIS_URL)}: {type(exc).__name__}: {exc}"
    finally:
        await client.aclose()
    return None


async def main() -> int:
    problems = [p for p in await asyncio.gather(check_pg(), check_redis()) if p]
    if not problems:
        print(f"PostgreSQL ({_redact(PG_URL)}) and Redis ({_redact(REDIS_URL)}) answer.")
        return 0
    bar = "!" * 78
    print(f"\n{bar}", file=sys.stderr)
    print("The test suite needs PostgreSQL and Redis, and they do not answer:", file=sys.stderr)
    for p in problems:
        print(f"  - {p}", file=sys.stderr)
    print(
        "\nStart them (or point QUANTDESK_TEST_PG_URL / QUANTDESK_TEST_REDIS_URL at running ones):"
        "\n  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        '\n  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'
        "\nTests that need them are never skipped, so the run stops here.",
        file=sys.stderr,
    )
    print(f"{bar}\n", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
