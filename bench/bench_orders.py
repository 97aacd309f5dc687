"""Orders per second end to end over HTTP on PostgreSQL, beside pgbench on the same machine.

    .venv/bin/python bench/bench_orders.py [--orders 1000] [--concurrency 32] [--users 8]
        [--rate ORDERS_PER_S] [--baskets 5] [--basket-size 50] [--feed-interval 0.02]
        [--pgbench-seconds 15]
        [--pgbench-scale 10] [--profile server.prof] [--server-prefix CMD] [--json]

What it does, all in one run (one and a half minutes or so with the defaults):

1. Creates a fresh PostgreSQL database (``QUANTDESK_TEST_PG_URL``, default
   ``postgresql://postgres@127.0.0.1:5432/postgres``), migrates it, loads one instrument
   (NSE:INFY from the demo universe) and an admin through ``quantdesk users create``.
2. Starts a real ``quantdesk serve`` subprocess on it: random feed for that one instrument every
   ``--feed-interval`` seconds (the quotes the paper broker fills on), in-process bus, paper
   session always open, log level WARNING. The server runs under a thin wrapper (this file,
   ``_serve``) that counts SQL statements, pool checkouts, commits and rollbacks through
   SQLAlchemy events and, with ``--profile``, runs cProfile over the whole server.
3. Creates ``--users`` traders through the admin API, funds them with
   ``POST /admin/users/{id}/deposits``, logs them in, and subscribes a WebSocket per trader to
   its ``orders`` channel.
4. Places ``--orders`` MARKET CNC buys of one share from ``--concurrency`` workers over one
   keep-alive ``httpx.AsyncClient``, and times each order from the POST to (a) the 201 and
   (b) the WebSocket event with its terminal status (FILLED: the order, trade, position and
   ledger entries are committed, since the OMS publishes only after the commit).
5. Reports placements/s, filled orders/s, p50/p99 of both latencies, PostgreSQL transactions
   and statements per order (``pg_stat_database`` deltas and the server's own counts), the CPU
   each process used (``/proc/<pid>/stat`` deltas: server, postgres backends, this client), and
   the final order statuses read straight from the database. Orders with no terminal event
   ``--stall-timeout`` seconds after the last one are reported as never terminal (an engine
   that lost them), not waited for. ``--rate`` offers a fixed load instead of back-to-back
   requests, to find the rate the engine keeps up with.
6. Before the measured orders (after the warm-up, on the idle server; not counted in the
   figures above), sends ``--baskets`` baskets (default 5) of ``--basket-size`` market buys
   (default 50) through ``POST /orders/batch``, one after the other, and times each from the
   POST to the answer and to its last order's terminal WebSocket event.
7. Drops the database, then runs pgbench (TPC-B-like) on a scratch database with the same
   client count (``pgbench -i -s 10``, then ``pgbench -c <concurrency> -j 2 -T 15``) and prints
   its tps beside ours.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import websockets
from rich.console import Console
from rich.table import Table

PG_ADMIN_DSN = os.environ.get(
    "QUANTDESK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
JWT_SECRET = "bench-orders-" + "k" * 40
PASSWORD = "bench-orders-password-9"
SYMBOL = "NSE:INFY"
TERMINAL = frozenset({"FILLED", "CANCELLED", "REJECTED", "EXPIRED"})
CLK_TCK = os.sysconf("SC_CLK_TCK")
QD = [sys.executable, "-m", "quantdesk.cli"]
THIS_FILE = Path(__file__).resolve()


# --- small helpers ----------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def _pg_url(database: str) -> str:
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


def _libpq(database: str) -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _pg_fetch(database: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(_libpq(database), timeout=10)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- CPU accounting from /proc ----------------------------------------------------------------


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process, or None once it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def system_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    total = sum(parts[:8])
    return (total - idle) / CLK_TCK, total / CLK_TCK


class CpuMeter:
    """CPU used by named processes and by PostgreSQL between start and stop: the backends
    connected to ``database`` plus the server's background processes (WAL writer,
    checkpointer, ...), not the backends of other databases (other work on a shared server).

    Postgres backends come and go (pool overflow), so they are sampled while the meter runs and
    each one's last sample counts; a backend born during the run starts from zero.
    """

    def __init__(self, pids: dict[str, int], database: str) -> None:
        self.pids = pids
        self.database = database
        self._base: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._pg_base: dict[int, float] = {}
        self._pg_last: dict[int, float] = {}
        self._sys_base = (0.0, 0.0)
        self._t0 = 0.0
        self._task: asyncio.Task[None] | None = None
        self.result: dict[str, float] = {}

    def _pg_pids(self) -> list[int]:
        out = []
        for p in os.listdir("/proc"):
            if not p.isdigit() or _comm(p) != "postgres":
                continue
            try:
                title = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            # A client backend's title is "postgres: <user> <database> <host>(<port>) <state>".
            if "(" not in title or f" {self.database} " in title:
                out.append(int(p))
        return out

    def _sample_pg(self) -> None:
        for pid in self._pg_pids():
            cpu = proc_cpu(pid)
            if cpu is not None:
                self._pg_last[pid] = cpu
        for key, pid in self.pids.items():
            cpu = proc_cpu(pid)
            if cpu is not None:  # a process that has exited keeps its last sample
                self._last[key] = cpu

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self._sample_pg()

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._sys_base = system_cpu()
        self._base = {k: proc_cpu(p) or 0.0 for k, p in self.pids.items()}
        self._last = dict(self._base)
        for pid in self._pg_pids():
            self._pg_base[pid] = proc_cpu(pid) or 0.0
        self._pg_last = dict(self._pg_base)
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample_pg()
        wall = time.perf_counter() - self._t0
        busy, total = system_cpu()
        out = {"wall_s": wall}
        for key in self.pids:
            out[f"{key}_cpu_s"] = self._last[key] - self._base[key]
        out["postgres_cpu_s"] = sum(
            cpu - self._pg_base.get(pid, 0.0) for pid, cpu in self._pg_last.items()
        )
        out["machine_busy_s"] = busy - self._sys_base[0]
        out["machine_total_s"] = total - self._sys_base[1]
        self.result = out
        return out


# --- the server wrapper (runs inside the server subprocess) -----------------------------------


_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", re.I)


def _statement_kind(statement: str) -> str:
    """``stmt:SELECT orders``: the verb and the first table a statement names."""
    verb = statement.lstrip().split(None, 1)[0].upper()
    table = _TABLE.search(statement)
    return f"stmt:{verb} {table.group(1) if table else '-'}"


def serve_wrapper(argv: list[str]) -> None:
    """``bench_orders.py _serve <stats.json> <profile or -> serve ...``: the real ``quantdesk
    serve`` with SQL statement counters (written to ``stats.json`` on SIGUSR1 and at exit)
    and, optionally, cProfile over the whole process."""
    import cProfile

    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    stats_path, profile_path, *cli_args = argv
    counts: Counter[str] = Counter()

    @event.listens_for(Engine, "before_cursor_execute")
    def _statement(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        counts[_statement_kind(statement)] += 1

    @event.listens_for(Engine, "commit")
    def _commit(conn: Any) -> None:
        counts["commit"] += 1

    @event.listens_for(Engine, "rollback")
    def _rollback(conn: Any) -> None:
        counts["rollback"] += 1

    @event.listens_for(Pool, "checkout")
    def _checkout(*_: Any) -> None:
        counts["checkout"] += 1

    def dump(*_: Any) -> None:
        tmp = Path(stats_path + ".tmp")
        tmp.write_text(json.dumps({"at": time.monotonic_ns(), "counts": dict(counts)}))
        tmp.replace(stats_path)

    signal.signal(signal.SIGUSR1, dump)
    # uvicorn re-raises the SIGTERM it shut down on once it is done: exit through `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    profiler = cProfile.Profile() if profile_path != "-" else None
    sys.argv = ["quantdesk", *cli_args]
    from quantdesk.cli import main

    try:
        if profiler is not None:
            profiler.enable()
        main()
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
        dump()


# --- the run ----------------------------------------------------------------------------------


@dataclass
class OrderSample:
    user: int
    sent: float
    answered: float = 0.0
    status: int = 0
    order_id: str | None = None
    error: str | None = None


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path
    stats: Path
    pid: int  # the Python process (proc itself unless a --server-prefix wraps it)

    async def counts(self) -> dict[str, int]:
        """The server's SQL counters now (asks it to dump them with SIGUSR1)."""
        before = self.stats.stat().st_mtime_ns if self.stats.exists() else 0
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.stats.exists() and self.stats.stat().st_mtime_ns != before:
                with contextlib.suppress(ValueError):
                    return dict(json.loads(self.stats.read_text())["counts"])
            await asyncio.sleep(0.02)
        return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)  # the server, not a wrapper, so both end
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@dataclass
class Trader:
    id: int
    username: str
    token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Ended:
    """Terminal order events seen on the WebSockets: order id -> (time, status)."""

    at: dict[str, tuple[float, str]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


def server_env(db_url: str, data_dir: Path, feed_interval: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTDESK_")}
    env.update(
        QUANTDESK_DATABASE_URL=db_url,
        QUANTDESK_DATA_DIR=str(data_dir),
        QUANTDESK_UI_DIR=str(data_dir / "no-ui"),
        QUANTDESK_JWT_SECRET=JWT_SECRET,
        QUANTDESK_BCRYPT_ROUNDS="4",
        QUANTDESK_FEED="random",
        QUANTDESK_FEED_INTERVAL_SECONDS=str(feed_interval),
        QUANTDESK_PAPER_SESSION="always",
        QUANTDESK_LOG_LEVEL="WARNING",
        QUANTDESK_AUTO_MIGRATE="false",
        QUANTDESK_ACCESS_TOKEN_TTL_SECONDS="3600",
    )
    return env


async def prepare_database(db_url: str, env: dict[str, str], cwd: Path) -> None:
    """Migrate, load NSE:INFY only (so the random feed quotes one instrument), add an admin."""
    from quantdesk.db.engine import create_engine, create_sessionmaker
    from quantdesk.db.migrate import upgrade
    from quantdesk.market.instruments import ImportReport, demo_universe, upsert_rows

    await asyncio.to_thread(upgrade, db_url)
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as db:
            rows = [r for r in demo_universe() if str(r.ref) == SYMBOL]
            await upsert_rows(db, rows, ImportReport())
            await db.commit()
    finally:
        await engine.dispose()
    r = await asyncio.to_thread(
        subprocess.run,
        [*QD, "users", "create", "benchadmin", "--role", "admin"],
        env={**env, "QUANTDESK_PASSWORD": PASSWORD},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if r.returncode != 0:
        raise RuntimeError(f"quantdesk users create failed: {r.stderr}")


def _spawn(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)


def _python_pid(pid: int) -> int:
    """``pid``, or its first descendant running Python when it is a wrapper (py-spy)."""
    for _ in range(100):
        if "python" in _comm(str(pid)):
            return pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        kids = children.read_text().split() if children.exists() else []
        if not kids:
            time.sleep(0.05)
            continue
        pid = int(kids[0])
    return pid


async def start_server(
    env: dict[str, str], cwd: Path, profile: str | None, prefix: str | None
) -> Server:
    port = _free_port()
    log = cwd / "serve.log"
    stats = cwd / "serve-stats.json"
    cmd = [
        *shlex.split(prefix or ""),
        sys.executable,
        str(THIS_FILE),
        "_serve",
        str(stats),
        profile or "-",
        "serve",
        "--port",
        str(port),
        "--no-demo",
    ]
    proc = _spawn(cmd, env, cwd, log)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    async with httpx.AsyncClient(timeout=2) as c:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if (await c.get(f"{base}/readyz")).status_code == 200:
                    return Server(base, proc, log, stats, _python_pid(proc.pid))
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start:\n" + log.read_text())


async def make_traders(c: httpx.AsyncClient, n: int) -> list[Trader]:
    r = await c.post("/api/v1/auth/login", json={"username": "benchadmin", "password": PASSWORD})
    r.raise_for_status()
    admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
    traders = []
    for i in range(n):
        name = f"trader{i}"
        r = await c.post(
            "/api/v1/admin/users",
            json={"username": name, "password": PASSWORD, "role": "trader"},
            headers=admin,
        )
        r.raise_for_status()
        t = Trader(int(r.json()["id"]), name)
        r = await c.post(
            f"/api/v1/admin/users/{t.id}/deposits",
            json={"amount": "1000000000.00", "currency": "INR", "note": "bench"},
            headers=admin,
        )
        r.raise_for_status()
        r = await c.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
        r.raise_for_status()
        t.token = r.json()["access_token"]
        traders.append(t)
    return traders


async def follow_orders(base: str, trader: Trader, ended: Ended, ready: asyncio.Event) -> None:
    url = base.replace("http://", "ws://") + f"/api/v1/ws?token={trader.token}"
    async with websockets.connect(url, max_queue=None, max_size=None) as ws:
        await ws.recv()  # welcome
        await ws.send(json.dumps({"op": "subscribe", "channels": ["orders"]}))
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("type") == "subscribed":
                ready.set()
            elif msg.get("channel") == "orders":
                data = msg["data"]
                if data.get("status") in TERMINAL and data["id"] not in ended.at:
                    ended.at[data["id"]] = (time.perf_counter(), data["status"])
                    ended.changed.set()
            elif msg.get("type") == "error":
                raise RuntimeError(f"WebSocket error for {trader.username}: {msg}")


async def place_orders(
    c: httpx.AsyncClient,
    traders: list[Trader],
    n: int,
    concurrency: int,
    tag: str,
    rate: float | None = None,
) -> list[OrderSample]:
    """``n`` market buys from ``concurrency`` workers: back to back (closed loop), or, with
    ``rate``, order ``i`` is sent at ``i / rate`` seconds (open loop, while a worker is free)."""
    samples: list[OrderSample] = []
    counter = iter(range(n))
    start = time.perf_counter()

    async def worker() -> None:
        for i in counter:
            if rate:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            t = traders[i % len(traders)]
            s = OrderSample(user=t.id, sent=time.perf_counter())
            samples.append(s)
            try:
                r = await c.post(
                    "/api/v1/orders",
                    json={
                        "client_order_id": f"{tag}{i}",
                        "symbol": SYMBOL,
                        "side": "BUY",
                        "quantity": 1,
                        "order_type": "MARKET",
                        "product": "CNC",
                    },
                    headers=t.headers,
                )
                s.answered, s.status = time.perf_counter(), r.status_code
                if r.status_code == 201:
                    s.order_id = r.json()["id"]
                else:
                    s.error = r.text[:200]
            except httpx.HTTPError as exc:
                s.answered, s.error = time.perf_counter(), repr(exc)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples


async def wait_ended(ended: Ended, ids: list[str], limit: float, stall: float) -> float:
    """Wait until every id has a terminal event, or ``limit`` seconds passed, or no order ended
    for ``stall`` seconds (orders the engine lost would never end); the time the wait ended."""
    deadline = time.perf_counter() + limit
    seen, progress_at = -1, time.perf_counter()
    while time.perf_counter() < deadline:
        if all(i in ended.at for i in ids):
            break
        if len(ended.at) != seen:
            seen, progress_at = len(ended.at), time.perf_counter()
        elif time.perf_counter() - progress_at > stall:
            break
        ended.changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(0.5, max(0.0, deadline - time.perf_counter()))):
                await ended.changed.wait()
    return time.perf_counter()


async def pg_db_stats(database: str) -> dict[str, int]:
    rows = await _pg_fetch(
        "postgres",
        "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, "
        f"tup_fetched, blks_hit, blks_read FROM pg_stat_database WHERE datname = '{database}'",
    )
    return {k: int(v) for k, v in dict(rows[0]).items()}


async def run_orders(args: argparse.Namespace, tmp: Path, console: Console) -> dict[str, Any]:
    name = f"qd_bench_orders_{os.getpid()}_{secrets.token_hex(3)}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    db_url = _pg_url(name)
    env = server_env(db_url, tmp / "var", args.feed_interval)
    server: Server | None = None
    try:
        console.print(f"database {name}: migrating, loading {SYMBOL} and an admin...")
        await prepare_database(db_url, env, tmp)
        server = await start_server(env, tmp, args.profile, args.server_prefix)
        console.print(f"server pid {server.pid} on {server.base}; creating traders...")
        limits = httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency
        )
        async with httpx.AsyncClient(base_url=server.base, timeout=60, limits=limits) as c:
            traders = await make_traders(c, args.users)
            ended = Ended()
            readies = [asyncio.Event() for _ in traders]
            followers = [
                asyncio.create_task(follow_orders(server.base, t, ended, ev))
                for t, ev in zip(traders, readies, strict=True)
            ]
            async with asyncio.timeout(30):
                await asyncio.gather(*(ev.wait() for ev in readies))

            warm = await place_orders(c, traders, args.warmup, args.concurrency, "w")
            warm_ids = [s.order_id for s in warm if s.order_id]
            await wait_ended(ended, warm_ids, 60, 30)
            if len(warm_ids) < len(warm) or not all(i in ended.at for i in warm_ids):
                raise RuntimeError("warm-up orders were not all accepted and filled")
            # Baskets on the idle server, before the measured run (which they do not count in).
            baskets = await run_baskets(c, traders, ended, args.baskets, args.basket_size)
            await asyncio.sleep(1.5)  # let the backends flush their statistics

            console.print(
                f"placing {args.orders} market orders from {args.concurrency} workers "
                f"for {args.users} traders"
                + (f" at {args.rate:g}/s..." if args.rate else " back to back...")
            )
            stats0, counts0 = await pg_db_stats(name), await server.counts()
            meter = CpuMeter({"server": server.pid, "client": os.getpid()}, name)
            meter.start()
            t0 = time.perf_counter()
            samples = await place_orders(c, traders, args.orders, args.concurrency, "o", args.rate)
            t_placed = time.perf_counter()
            ids = [s.order_id for s in samples if s.order_id]
            t_end = await wait_ended(ended, ids, args.fill_timeout, args.stall_timeout)
            cpu = await meter.stop()
            counts1 = await server.counts()
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
        server.stop()  # its backends exit, which flushes their statistics
        await asyncio.sleep(1.0)
        stats1 = await pg_db_stats(name)
        statuses = {
            r["status"]: int(r["n"])
            for r in await _pg_fetch(
                name, "SELECT status, count(*) AS n FROM orders GROUP BY status ORDER BY status"
            )
        }
        log_lines = server.log.read_text(errors="replace").splitlines()
    finally:
        if server is not None:
            server.stop()
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    accepted = [s for s in samples if s.order_id]
    filled = [i for i in ids if ended.at.get(i, (0, ""))[1] == "FILLED"]
    last_answer = max((s.answered for s in samples), default=t_placed)
    done_at = max((ended.at[i][0] for i in ids if i in ended.at), default=t_end)
    place_ms = [(s.answered - s.sent) * 1000 for s in accepted]
    fill_ms = [(ended.at[s.order_id][0] - s.sent) * 1000 for s in accepted if s.order_id in filled]
    n_ok = max(len(accepted), 1)
    d_pg = {k: stats1[k] - stats0[k] for k in stats0}
    d_counts = {k: counts1.get(k, 0) - counts0.get(k, 0) for k in counts1}
    stmts = sum(v for k, v in d_counts.items() if k.startswith("stmt:"))
    warnings = [ln for ln in log_lines if '"level": "warning"' in ln or '"level": "error"' in ln]
    return {
        "orders": args.orders,
        "accepted": len(accepted),
        "rejected": len(samples) - len(accepted),
        "errors": Counter(f"{s.status}: {s.error}" for s in samples if not s.order_id),
        "filled": len(filled),
        "not_terminal": sum(1 for i in ids if i not in ended.at),
        "other_terminal": Counter(
            ended.at[i][1] for i in ids if i in ended.at and ended.at[i][1] != "FILLED"
        ),
        "placed_per_s": len(accepted) / (last_answer - t0),
        "filled_per_s": len(filled) / (done_at - t0),
        "place_p50_ms": statistics.median(place_ms) if place_ms else float("nan"),
        "place_p99_ms": pct(place_ms, 99),
        "fill_p50_ms": statistics.median(fill_ms) if fill_ms else float("nan"),
        "fill_p99_ms": pct(fill_ms, 99),
        "fill_max_ms": max(fill_ms, default=float("nan")),
        "pg_xacts_per_order": (d_pg["xact_commit"] + d_pg["xact_rollback"]) / n_ok,
        "pg_commits_per_order": d_pg["xact_commit"] / n_ok,
        "pg_rollbacks_per_order": d_pg["xact_rollback"] / n_ok,
        "pg_rows_written_per_order": (
            d_pg["tup_inserted"] + d_pg["tup_updated"] + d_pg["tup_deleted"]
        )
        / n_ok,
        "pg_xacts_per_s": (d_pg["xact_commit"] + d_pg["xact_rollback"]) / (done_at - t0),
        "sql_statements_per_order": stmts / n_ok,
        "sql_by_kind_per_order": {k: round(v / n_ok, 2) for k, v in sorted(d_counts.items()) if v},
        "cpu": cpu,
        "db_statuses": statuses,
        "server_warnings": len(warnings),
        "server_warning_samples": warnings[:5],
        "baskets": baskets,
    }


async def run_baskets(
    c: httpx.AsyncClient, traders: list[Trader], ended: Ended, count: int, size: int
) -> dict[str, Any]:
    """``count`` baskets of ``size`` market buys through ``POST /orders/batch``, one after the
    other (each from the next trader): the time to the answer and to the last order's terminal
    WebSocket event."""
    answered, filled, accepted = [], [], 0
    for k in range(count):
        t = traders[k % len(traders)]
        orders = [
            {
                "client_order_id": f"basket{k}-{i}",
                "symbol": SYMBOL,
                "side": "BUY",
                "quantity": 1,
                "order_type": "MARKET",
                "product": "CNC",
            }
            for i in range(size)
        ]
        t0 = time.perf_counter()
        r = await c.post("/api/v1/orders/batch", json={"orders": orders}, headers=t.headers)
        answered.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"basket refused: {r.status_code} {r.text[:200]}")
        ids = [x["order"]["id"] for x in r.json()["results"] if x["order"]]
        accepted += len(ids)
        await wait_ended(ended, ids, 60, 30)
        if not all(i in ended.at for i in ids):
            raise RuntimeError(f"basket {k}: orders without a terminal event")
        filled.append((max(ended.at[i][0] for i in ids) - t0) * 1000)
    return {
        "count": count,
        "size": size,
        "accepted": accepted,
        "answer_p50_ms": statistics.median(answered) if answered else float("nan"),
        "answer_max_ms": max(answered, default=float("nan")),
        "filled_p50_ms": statistics.median(filled) if filled else float("nan"),
        "filled_max_ms": max(filled, default=float("nan")),
    }


def find_pgbench() -> str:
    found = shutil.which("pgbench") or next(
        iter(sorted(glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True)), None
    )
    if not found:
        raise SystemExit("pgbench not found: apt-get install postgresql-contrib")
    return found


def _pg_args() -> list[str]:
    m = re.match(r"postgresql://(?:([^@:/]+)@)?([^:/]+)(?::(\d+))?/", PG_ADMIN_DSN)
    if not m:
        raise SystemExit(f"cannot read host/user from {PG_ADMIN_DSN}")
    user, host, port = m.group(1) or "postgres", m.group(2), m.group(3) or "5432"
    return ["-h", host, "-p", port, "-U", user]


async def run_pgbench(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    exe = find_pgbench()
    name = f"qd_bench_pgbench_{os.getpid()}_{secrets.token_hex(3)}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        console.print(f"pgbench -i -s {args.pgbench_scale} on {name}...")
        init = await asyncio.to_thread(
            subprocess.run,
            [exe, *_pg_args(), "-i", "-q", "-s", str(args.pgbench_scale), name],
            capture_output=True,
            text=True,
            check=False,
        )
        if init.returncode != 0:
            raise RuntimeError(f"pgbench -i failed: {init.stderr}")
        cmd = [
            exe,
            *_pg_args(),
            "-c",
            str(args.concurrency),
            "-j",
            "2",
            "-T",
            str(args.pgbench_seconds),
            name,
        ]
        console.print(" ".join(cmd[:1] + cmd[7:]) + "...")
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        meter = CpuMeter({"pgbench": proc.pid}, name)
        meter.start()
        out, err = await proc.communicate()
        cpu = await meter.stop()
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    text = out.decode()
    tps = re.search(r"^tps = ([0-9.]+)", text, re.M)
    lat = re.search(r"^latency average = ([0-9.]+) ms", text, re.M)
    if proc.returncode != 0 or tps is None:
        raise RuntimeError(f"pgbench failed:\n{text}\n{err.decode()}")
    return {
        "tps": float(tps.group(1)),
        "latency_avg_ms": float(lat.group(1)) if lat else None,
        "clients": args.concurrency,
        "scale": args.pgbench_scale,
        "seconds": args.pgbench_seconds,
        "postgres_cores": cpu["postgres_cpu_s"] / cpu["wall_s"],
        "pgbench_client_cores": cpu["pgbench_cpu_s"] / cpu["wall_s"],
        "postgres_cpu_ms_per_xact": cpu["postgres_cpu_s"]
        * 1000
        / (float(tps.group(1)) * cpu["wall_s"]),
        "machine_busy_cores": cpu["machine_busy_s"] / cpu["wall_s"],
    }


# --- report -----------------------------------------------------------------------------------


def show(result: dict[str, Any], console: Console) -> None:
    o, p = result["orders"], result["pgbench"]
    cpu = o["cpu"]
    wall = cpu["wall_s"]
    other = cpu["machine_busy_s"] - sum(
        cpu[k] for k in ("server_cpu_s", "postgres_cpu_s", "client_cpu_s")
    )
    n = max(o["accepted"], 1)
    table = Table(title=f"QuantDesk orders on PostgreSQL ({result['cores']} cores)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("orders sent / accepted / refused", f"{o['orders']} / {o['accepted']} / {o['rejected']}"),
        ("filled / other terminal / not terminal", f"{o['filled']} / "
         f"{sum(o['other_terminal'].values())} / {o['not_terminal']}"),
        ("placements accepted per second", f"{o['placed_per_s']:.0f}"),
        ("orders placed AND filled per second", f"[bold]{o['filled_per_s']:.0f}[/]"),
        ("POST /orders latency p50 / p99", f"{o['place_p50_ms']:.1f} / {o['place_p99_ms']:.1f} ms"),
        ("POST -> FILLED latency p50 / p99", f"{o['fill_p50_ms']:.1f} / {o['fill_p99_ms']:.1f} ms"),
        ("POST /orders/batch of " + str(o["baskets"]["size"]) + ": answered p50 / max",
         f"{o['baskets']['answer_p50_ms']:.0f} / {o['baskets']['answer_max_ms']:.0f} ms"),
        ("... and every order FILLED p50 / max",
         f"{o['baskets']['filled_p50_ms']:.0f} / {o['baskets']['filled_max_ms']:.0f} ms"),
        ("pgbench TPC-B tps (same clients)", f"{p['tps']:.0f}"),
        ("orders/s / pgbench tps", f"{o['filled_per_s'] / p['tps']:.3f}"),
        ("our PG transactions/s", f"{o['pg_xacts_per_s']:.0f}"),
        ("PG transactions per order (commit+rollback)",
         f"{o['pg_xacts_per_order']:.2f} ({o['pg_commits_per_order']:.2f} + "
         f"{o['pg_rollbacks_per_order']:.2f})"),
        ("SQL statements per order", f"{o['sql_statements_per_order']:.1f}"),
        ("rows written per order", f"{o['pg_rows_written_per_order']:.1f}"),
        ("CPU cores: server process", f"{cpu['server_cpu_s'] / wall:.2f}"),
        ("CPU cores: postgres (all backends)", f"{cpu['postgres_cpu_s'] / wall:.2f}"),
        ("CPU cores: this client", f"{cpu['client_cpu_s'] / wall:.2f}"),
        ("CPU cores: other processes", f"{other / wall:.2f}"),
        ("CPU cores: machine busy", f"{cpu['machine_busy_s'] / wall:.2f}"),
        ("pgbench: postgres / pgbench / machine cores", f"{p['postgres_cores']:.2f} / "
         f"{p['pgbench_client_cores']:.2f} / {p['machine_busy_cores']:.2f}"),
        ("postgres CPU per pgbench transaction", f"{p['postgres_cpu_ms_per_xact']:.2f} ms"),
        ("postgres CPU per order", f"{cpu['postgres_cpu_s'] * 1000 / n:.2f} ms"),
        ("server CPU per order", f"{cpu['server_cpu_s'] * 1000 / n:.2f} ms"),
    ]  # fmt: skip
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    sql = Table(title="What one order costs the server in SQL (per accepted order)")
    sql.add_column("statement / event")
    sql.add_column("per order", justify="right")
    labels = {
        "checkout": "pool checkout (no round trip: no pre-ping)",
        "commit": "COMMIT",
        "rollback": "ROLLBACK (session end)",
    }
    for kind, per in sorted(o["sql_by_kind_per_order"].items(), key=lambda kv: -kv[1]):
        sql.add_row(labels.get(kind, kind.removeprefix("stmt:")), f"{per:.2f}")
    console.print(sql)
    console.print(f"order statuses in the database: {o['db_statuses']}")
    if o["errors"]:
        console.print(f"refused: {dict(o['errors'])}")
    if o["not_terminal"]:
        console.print(
            f"[bold red]{o['not_terminal']} accepted orders never reached a terminal status[/] "
            f"(no terminal event within {result['stall_timeout_s']:.0f} s of the last one): "
            "the paper engine does not have them in its book."
        )
    if o["server_warnings"]:
        console.print(f"[yellow]server logged {o['server_warnings']} warnings/errors[/], e.g.:")
        for line in o["server_warning_samples"]:
            console.print(line[:300], markup=False, highlight=False)
    server_cores = cpu["server_cpu_s"] / wall
    if server_cores > 0.85:
        console.print(
            f"[bold]Bound:[/] the server process used {server_cores:.2f} cores: its one Python "
            "event loop is saturated (see --profile)."
        )
    elif cpu["machine_busy_s"] / cpu["machine_total_s"] > 0.9:
        console.print("[bold]Bound:[/] the machine's CPUs are saturated.")


def _print_profile(path: str, console: Console) -> None:
    import io
    import pstats

    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(path, stream=buf).sort_stats(key).print_stats(25)
        console.print(f"--- server profile by {key} ({path}) ---")
        console.print(buf.getvalue(), markup=False, highlight=False)


async def main_async(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="qd-bench-orders-") as d:
        orders = await run_orders(args, Path(d), console)
    pgbench = await run_pgbench(args, console)
    return {
        "cores": os.cpu_count(),
        "concurrency": args.concurrency,
        "users": args.users,
        "feed_interval_s": args.feed_interval,
        "stall_timeout_s": args.stall_timeout,
        "orders": orders,
        "pgbench": pgbench,
        "ratio_orders_per_pgbench_tps": orders["filled_per_s"] / pgbench["tps"],
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve_wrapper(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--orders", type=int, default=1000, help="measured orders")
    ap.add_argument("--concurrency", type=int, default=32, help="concurrent HTTP requests")
    ap.add_argument(
        "--rate", type=float, help="offered orders/s (open loop); default: as fast as answered"
    )
    ap.add_argument("--users", type=int, default=8, help="traders the orders are spread over")
    ap.add_argument("--warmup", type=int, default=100, help="orders before measuring")
    ap.add_argument("--feed-interval", type=float, default=0.02, help="seconds between quotes")
    ap.add_argument("--fill-timeout", type=float, default=120.0, help="seconds to wait for fills")
    ap.add_argument(
        "--stall-timeout",
        type=float,
        default=10.0,
        help="stop waiting for fills after this many seconds without one",
    )
    ap.add_argument("--baskets", type=int, default=5, help="POST /orders/batch baskets after")
    ap.add_argument("--basket-size", type=int, default=50, help="orders per basket (<= 100)")
    ap.add_argument("--pgbench-seconds", type=int, default=15)
    ap.add_argument("--pgbench-scale", type=int, default=10)
    ap.add_argument("--profile", metavar="FILE", help="cProfile the server into FILE")
    ap.add_argument(
        "--server-prefix",
        metavar="CMD",
        help="run the server under CMD, e.g. 'py-spy record -f raw -o spy.txt --'",
    )
    ap.add_argument("--json", action="store_true", help="print the results as JSON only")
    args = ap.parse_args()
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    console = Console(stderr=args.json)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(main_async(args, console))
    else:  # what uvicorn runs the server on, so the client is not the slower side
        result = uvloop.run(main_async(args, console))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        show(result, console)
    if args.profile:
        _print_profile(args.profile, console)


if __name__ == "__main__":
    main()
